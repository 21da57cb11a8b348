"""The HTTP trigger source against a real HTTP server on loopback that makes exports on request,
through the HTTP provider's hook; and the whole run through the command line."""

import http.server
import json
import os
import subprocess
import sys
import threading
from datetime import date
from pathlib import Path

import pytest
from sisflow.airflow_connections import HttpSource
from sisflow.config import CustomerConfig, Source, Window
from sisflow.ims.generate import generate
from sisflow.sources import http_trigger
from sisflow.sources.complete import SourceError

from tests.factory import run_once


@pytest.fixture
def sis(tmp_path, monkeypatch):
    """A SIS that makes an export when asked, ready after ``polls_until_ready`` polls."""
    state = {"requests": [], "polls_until_ready": 2, "fail": None, "export": None, "polls": 0}

    class Handler(http.server.BaseHTTPRequestHandler):
        def _send(self, code, body: bytes, kind="application/json"):
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):  # noqa: N802 (the stdlib's name)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state["requests"].append({"path": self.path, **body})
            state["polls"] = 0
            self._send(202, json.dumps({"id": f"x{len(state['requests'])}"}).encode())

        def do_GET(self):  # noqa: N802
            if self.path.endswith("/file"):
                self._send(200, state["export"].read_bytes(), "application/xml")
                return
            state["polls"] += 1
            if state["fail"]:
                status = {"status": "failed", "reason": state["fail"]}
            elif (
                state["polls_until_ready"] is not None
                and state["polls"] >= state["polls_until_ready"]
            ):
                status = {"status": "ready", "name": "pifu-export.xml"}
            else:
                status = {"status": "pending"}
            self._send(200, json.dumps(status).encode())

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state["export"] = tmp_path / "made-by-the-sis.xml"
    generate(state["export"], seed=3, year=2025, size="tiny")
    monkeypatch.setenv(
        "AIRFLOW_CONN_SIS_HTTP",
        json.dumps(
            {"conn_type": "http", "host": "127.0.0.1", "port": server.server_port, "schema": "http"}
        ),
    )
    monkeypatch.setenv("SISFLOW_HOME", str(tmp_path / "home"))
    state["port"] = server.server_port
    yield state
    server.shutdown()


def trigger(**settings):
    return Source(
        kind="http",
        conn_id="sis_http",
        url="/api/pifu/exports",
        poll_seconds=0.05,
        ready_minutes=0.01,
        **settings,
    )


YEAR = Window(start=date(2025, 8, 1), end=date(2026, 7, 31))


def test_the_export_is_asked_for_the_school_year_then_polled_and_downloaded(sis):
    landed = Path(http_trigger.fetch("kommune", trigger(), HttpSource("sis_http"), YEAR))
    assert sis["requests"] == [
        {
            "path": "/api/pifu/exports",
            "customer": "kommune",
            "school_year": "2025-2026",
            "start": "2025-08-01",
            "end": "2026-07-31",
        }
    ]
    assert landed.name == "pifu-export.xml"
    assert landed.read_bytes() == sis["export"].read_bytes()


def test_an_export_never_ready_fails_at_the_deadline(sis):
    sis["polls_until_ready"] = None
    with pytest.raises(SourceError, match="school year 2025-2026 was not ready within 0.01 min"):
        http_trigger.fetch("kommune", trigger(), HttpSource("sis_http"), YEAR)
    assert sis["polls"] > 2


def test_an_export_the_sis_could_not_make_fails_with_its_reason(sis):
    sis["fail"] = "no school year 2025-2026 in the SIS yet"
    with pytest.raises(SourceError, match="no school year 2025-2026 in the SIS yet"):
        http_trigger.fetch("kommune", trigger(), HttpSource("sis_http"), YEAR)


def test_a_sis_that_is_down_fails_with_a_clear_reason(sis, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_SIS_HTTP",
        json.dumps({"conn_type": "http", "host": "127.0.0.1", "port": 1, "schema": "http"}),
    )
    with pytest.raises(SourceError, match="through connection 'sis_http' failed"):
        http_trigger.fetch("kommune", trigger(), HttpSource("sis_http"), YEAR)


SISFLOW = str(Path(sys.executable).with_name("sisflow"))


def run_command(tmp_path, db_url, day, customers, *more):
    env = {**os.environ, "SISFLOW_DATABASE_URL": db_url, "SISFLOW_CUSTOMERS_DIR": str(customers)}
    return subprocess.run(
        [SISFLOW, "run", "kommune", "--on", day, "--json", *more],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_the_school_year_asked_for_changes_with_the_rollover_and_the_email_says_it(
    sis, db_url, tmp_path
):
    customers = tmp_path / "customers"
    customers.mkdir()
    (customers / "kommune.yaml").write_text(
        "source: {kind: http, conn_id: sis_http, url: /api/pifu/exports, poll_seconds: 0.05}\n"
        "school_year: {start: 2025-08-18, end: 2026-06-19}\n"
        "filter: {default: {person: {}, group: {}, membership: {}, min_share: 0}}\n",
        encoding="utf-8",
    )
    before = run_command(tmp_path, db_url, "2026-06-15", customers)
    assert before.returncode == 0, before.stdout + before.stderr
    # in August a daily import still asks for the active school year: only the rollover
    # switches it (domain rule 12)
    august = run_command(tmp_path, db_url, "2026-08-09", customers)
    assert json.loads(august.stdout)["status"] == "unchanged"
    after = run_command(tmp_path, db_url, "2026-08-10", customers, "--rollover")
    assert [r["school_year"] for r in sis["requests"]] == ["2025-2026", "2025-2026", "2026-2027"]
    first = json.loads(before.stdout)
    assert first["status"] == "committed"
    # the SIS sent last year's file again: the rollover stops, nothing switched
    stopped = json.loads(after.stdout)
    assert stopped["status"] == "aborted" and stopped["refusal"]["outcome"] == "not-ready"
    assert "No terms for the new school year in the file" in stopped["refusal"]["reason"]
    text = Path(first["email"]["sent"]).read_text()
    assert "Asked the SIS for an export of school year 2025-2026" in text


def test_a_failed_fetch_ends_the_run_with_its_email(sis, db_url, tmp_path):
    sis["fail"] = "the SIS is closed for maintenance"
    config = CustomerConfig.model_validate(
        {
            "id": "kommune",
            "source": {
                "kind": "http",
                "conn_id": "sis_http",
                "url": "/api/pifu/exports",
                "poll_seconds": 0.05,
            },
        }
    )
    from sisflow.db.connection import connect

    conn = connect(db_url)
    result = run_once(conn, "kommune", None, config=config, on=date(2025, 9, 1))
    conn.close()
    assert result["failed"]["task"] == "fetch" and result["id"] is None
    assert (
        "FAILED at fetch: SourceError: the SIS could not make export" in result["email"]["subject"]
    )
