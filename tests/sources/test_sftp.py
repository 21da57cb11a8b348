"""The SFTP source against a real SFTP server on loopback, through the SFTP provider's hook."""

import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from sisflow.airflow_connections import InsecureConnection, sftp_client
from sisflow.config import Source
from sisflow.sources import sftp
from sisflow.sources.complete import NothingToFetch, SourceError, StillBeingWritten

from tests.factory import run_once
from tests.sources.conftest import sftp_connection


@pytest.fixture
def server(sftp_server, monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_CONN_SIS_SFTP", sftp_connection(sftp_server))
    monkeypatch.setenv("SISFLOW_HOME", str(tmp_path / "home"))
    export = sftp_server["root"] / "eksport"
    export.mkdir(exist_ok=True)
    for old in export.iterdir():
        old.unlink()
    return SimpleNamespace(folder=export, **sftp_server)


def source(**settings):
    return Source(kind="sftp", conn_id="sis_sftp", path="/eksport", stable_seconds=0.3, **settings)


def drop(folder, name, text, age=0):
    path = folder / name
    path.write_text(text, encoding="utf-8")
    if age:
        stamp = time.time() - age
        import os

        os.utime(path, (stamp, stamp))
    return path


def test_the_newest_complete_export_lands_in_the_landing_zone(server):
    drop(server.folder, "export-1.xml", "<old/>", age=60)
    drop(server.folder, "export-2.xml", "<new/>")
    drop(server.folder, "readme.txt", "not an export")
    with sftp_client("sis_sftp") as client:
        landed = Path(sftp.fetch("kommune", source(), client))
    assert landed.name == "export-2.xml" and landed.read_text() == "<new/>"
    assert landed.parent.name == "kommune" and landed.parent.parent.name == "landing"


def test_a_file_still_being_written_is_not_taken(server):
    growing = drop(server.folder, "export.xml", "<enterprise>")

    def keep_writing():
        for _ in range(5):
            time.sleep(0.05)
            with open(growing, "a") as f:
                f.write("<person/>")

    writer = threading.Thread(target=keep_writing)
    writer.start()
    with sftp_client("sis_sftp") as client, pytest.raises(StillBeingWritten, match="still writing"):
        sftp.fetch("kommune", source(), client)
    writer.join()
    with sftp_client("sis_sftp") as client:  # the next try, once it is complete
        assert Path(sftp.fetch("kommune", source(), client)).read_text().count("<person/>") == 5


def test_with_a_done_marker_only_a_marked_export_is_taken(server):
    drop(server.folder, "export.xml", "<x/>")
    with (
        sftp_client("sis_sftp") as client,
        pytest.raises(StillBeingWritten, match="no export.xml.done"),
    ):
        sftp.fetch("kommune", source(done_marker=True), client)
    drop(server.folder, "export.xml.done", "")
    with sftp_client("sis_sftp") as client:
        assert Path(sftp.fetch("kommune", source(done_marker=True), client)).name == "export.xml"


def test_an_export_that_appears_late_is_fetched_on_the_next_try(server):
    with sftp_client("sis_sftp") as client, pytest.raises(NothingToFetch, match="/eksport"):
        sftp.fetch("kommune", source(), client)
    drop(server.folder, "export.xml", "<late/>")
    with sftp_client("sis_sftp") as client:
        assert Path(sftp.fetch("kommune", source(), client)).read_text() == "<late/>"


def test_wrong_credentials_fail_with_a_clear_reason_and_no_password(server, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_SIS_SFTP", sftp_connection(server.__dict__, password="wrong-secret")
    )
    opening = pytest.raises(SourceError, match="cannot open the SFTP connection 'sis_sftp'")
    with opening as err, sftp_client("sis_sftp"):
        pass
    assert "Authentication" in str(err.value) and "wrong-secret" not in str(err.value)


def test_a_server_that_is_down_fails_with_a_clear_reason(server, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SIS_SFTP", sftp_connection(server.__dict__, port=1))
    with pytest.raises(SourceError, match="127.0.0.1:1"), sftp_client("sis_sftp"):
        pass


def test_a_server_with_another_host_key_is_refused(server, monkeypatch):
    import asyncssh

    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    monkeypatch.setenv(
        "AIRFLOW_CONN_SIS_SFTP", sftp_connection(server.__dict__, extra={"host_key": other})
    )
    with (
        pytest.raises(SourceError, match="cannot open the SFTP connection"),
        sftp_client("sis_sftp"),
    ):
        pass


@pytest.mark.parametrize(
    "extra", [{"no_host_key_check": "true"}, {"allow_host_key_change": "true"}]
)
def test_a_connection_that_skips_the_host_key_check_is_refused(server, monkeypatch, extra):
    monkeypatch.setenv("AIRFLOW_CONN_SIS_SFTP", sftp_connection(server.__dict__, extra=extra))
    with pytest.raises(InsecureConnection, match="host_key"), sftp_client("sis_sftp"):
        pass


def test_an_insecure_connection_is_a_refusal_of_the_run_not_a_crash(
    server, monkeypatch, tmp_path, db_url
):
    """Through the command: one line, the fetch named, exit 3, no traceback, nothing landed."""
    import os
    import subprocess
    import sys

    drop(server.folder, "export.xml", "<enterprise/>")
    (tmp_path / "customers").mkdir()
    (tmp_path / "customers" / "kommune.yaml").write_text(
        "source: {kind: sftp, conn_id: sis_sftp, path: /eksport}\n", encoding="utf-8"
    )
    env = {
        **os.environ,
        "SISFLOW_DATABASE_URL": db_url,
        "SISFLOW_CUSTOMERS_DIR": str(tmp_path / "customers"),
        "AIRFLOW_CONN_SIS_SFTP": sftp_connection(
            server.__dict__, extra={"allow_host_key_change": "true"}
        ),
    }
    out = subprocess.run(
        [str(Path(sys.executable).with_name("sisflow")), "run", "kommune", "--on", "2025-09-01"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 3, out.stdout + out.stderr
    assert "skips the host key check (allow_host_key_change): refused" in out.stdout
    assert "Traceback" not in out.stderr
    assert not list((tmp_path / "home" / "landing").rglob("*.xml"))


def test_through_the_whole_run_the_same_export_twice_then_an_older_one(server, conn):
    from datetime import date

    from tests.factory import enterprise, lenient, person

    def export(stamp, *pupils):
        props = (
            f"<properties><datasource>sas</datasource><type>full</type>"
            f"<datetime>{stamp}</datetime></properties>"
        )
        return enterprise(*(person(p) for p in pupils), properties=props)

    config = lenient(
        source={"kind": "sftp", "conn_id": "sis_sftp", "path": "/eksport", "stable_seconds": 0.1}
    )
    drop(server.folder, "export.xml", export("2025-08-15T05:00:00", "p1", "p2"))
    first = run_once(conn, "kommune", None, config=config, on=date(2025, 9, 1))
    assert first["status"] == "committed"
    again = run_once(conn, "kommune", None, config=config, on=date(2025, 9, 2))
    assert again["status"] == "unchanged" and again["same_as_run"] == first["id"]
    drop(server.folder, "export.xml", export("2025-08-01T05:00:00", "p1"))  # last month's
    older = run_once(conn, "kommune", None, config=config, on=date(2025, 9, 3))
    assert older["status"] == "rejected"
    assert "an older export is not imported unless a person accepts it" in older["fatal"]["reason"]
    assert older["email"]["outcome"] == "rejected-file"


@pytest.mark.parametrize("port", ["up", 1])
def test_run_json_is_one_document_on_stdout_whatever_the_source_logs(
    server, tmp_path, db_url, port
):
    """Airflow's logging, paramiko and the hooks write while an SFTP source is fetched: none of
    it reaches stdout, which holds the one JSON document, for a run that works or fails."""
    import json
    import os
    import subprocess
    import sys

    from tests.factory import enterprise, person

    drop(server.folder, "export.xml", enterprise(person("p1"), person("p2")))
    (tmp_path / "customers").mkdir()
    (tmp_path / "customers" / "kommune.yaml").write_text(
        "source: {kind: sftp, conn_id: sis_sftp, path: /eksport, stable_seconds: 0.1}\n",
        encoding="utf-8",
    )
    changes = {} if port == "up" else {"port": port}
    env = {
        **os.environ,
        "SISFLOW_DATABASE_URL": db_url,
        "SISFLOW_CUSTOMERS_DIR": str(tmp_path / "customers"),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "AIRFLOW_CONN_SIS_SFTP": sftp_connection(server.__dict__, **changes),
    }
    out = subprocess.run(
        [
            str(Path(sys.executable).with_name("sisflow")),
            "-v",
            "run",
            "kommune",
            "--on",
            "2025-09-01",
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    result = json.loads(out.stdout)
    if port == "up":
        assert out.returncode == 0 and result["status"] == "committed"
        assert result["outcome"] == "applied"
    else:
        assert out.returncode == 1
        assert result["status"] == result["outcome"] == "failed"
        assert result["failed"]["task"] == "fetch"
    assert out.stderr  # the logs went somewhere: to stderr
