"""The embedded database, as many processes find it at once."""

import os
import subprocess
import sys
from pathlib import Path

import pytest


def test_many_processes_starting_on_a_fresh_state_folder_create_the_database_once(tmp_path):
    """A scheduler starting many tasks against a fresh state folder: one process creates the
    import database, the others find it; nobody prints an error."""
    env = {k: v for k, v in os.environ.items() if k != "SISFLOW_DATABASE_URL"}
    env["SISFLOW_HOME"] = str(tmp_path / "home")
    code = (
        "from sisflow.db.connection import connect\n"
        "conn = connect()\n"
        "cur = conn.cursor(); cur.execute('SELECT current_database()')\n"
        "print(cur.fetchone()[0]); conn.close()\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(16)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0] * 16, [err for _, err in outs]
    assert [out.strip() for out, _ in outs] == ["sisflow"] * 16
    printed = "".join(out + err for out, err in outs)
    assert "ERROR" not in printed and "already exists" not in printed
    assert "duplicate key" not in printed


PASSWORD = "Hemmelig-pw1"
MALFORMED = [
    f"sisuser:{PASSWORD}@localhost/sisflow",  # no scheme
    f"postgresql://sisuser:{PASSWORD[:4]} {PASSWORD[4:]}@localhost/sisflow",  # a space
    f"postgresql://sisuser:{PASSWORD[:4]}@{PASSWORD[4:]}@localhost:5/sisflow",  # an @
    f"postgresql://sisuser:{PASSWORD}@localhost:port/sisflow",  # a port that is no number
    f"host=localhost password={PASSWORD} port=x",
    f"postgresql://sisuser:{PASSWORD}@localhost:5/sisflow",  # well-formed, nobody there
    f"postgresql://sisuser:{PASSWORD}@/sisflow?host=/nowhere",
]


@pytest.mark.parametrize("url", MALFORMED)
def test_no_message_ever_holds_the_database_password(url, tmp_path):
    for args in (["lms-state", "demo"], ["run", "demo", "--json"], ["maintenance"]):
        out = subprocess.run(
            [str(Path(sys.executable).with_name("sisflow")), *args],
            env={**os.environ, "SISFLOW_DATABASE_URL": url, "SISFLOW_HOME": str(tmp_path)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 2, out.stdout + out.stderr
        printed = out.stdout + out.stderr
        assert "Traceback" not in printed
        for piece in (PASSWORD, PASSWORD[:4], PASSWORD[4:]):
            assert piece not in printed
        assert "SISFLOW_DATABASE_URL" in printed


def _embedded_env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "SISFLOW_DATABASE_URL"}
    return {**env, "SISFLOW_HOME": str(home)}


def _postmaster(home: Path) -> int | None:
    import psutil

    pidfile = home / "pg" / "postmaster.pid"
    if not pidfile.exists():
        return None
    pid = int(pidfile.read_text().split()[0])
    return pid if psutil.pid_exists(pid) else None


def _stop(home: Path) -> None:
    if _postmaster(home):
        from pgserver._commands import pg_ctl

        pg_ctl(["-w", "stop"], pgdata=home / "pg", user="pgserver" if os.geteuid() == 0 else None)


SISFLOW = str(Path(sys.executable).with_name("sisflow"))
PROJECT = Path(__file__).resolve().parents[2]


def test_the_server_make_airflow_started_outlives_every_sisflow_command(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = _embedded_env(home)
    start = (
        "import sys; from pathlib import Path; sys.path.insert(0, 'scripts');"
        f" import airflow_local; airflow_local._postgres(Path({str(home)!r}))"
    )
    subprocess.run(
        [sys.executable, "-c", start],
        env=env,
        cwd=PROJECT,
        check=True,
        capture_output=True,
        timeout=120,
    )
    try:
        server = _postmaster(home)
        assert server is not None
        for args in (["lms-state", "demo"], ["filter", "show", "4"]):
            out = subprocess.run(
                [SISFLOW, *args], env=env, capture_output=True, text=True, timeout=120
            )
            assert _postmaster(home) == server, out.stderr  # still the same server
        # a run that is not there: one line that says which database was looked in
        assert out.returncode == 2
        assert f"no run 4 in the embedded server in {home / 'pg'}" in out.stderr
    finally:
        _stop(home)


def test_a_killed_run_leaves_no_embedded_server_behind(tmp_path):
    from sisflow.ims.generate import generate

    home = tmp_path / "home"
    env = _embedded_env(home)
    export = tmp_path / "export.xml"
    generate(export, seed=2, year=2025, size="tiny")
    try:
        killed = subprocess.run(
            [SISFLOW, "run", "kommune", str(export), "--on", "2025-09-01"],
            env={**env, "SISFLOW_CRASH_POINT": "stage:reading"},
            capture_output=True,
            timeout=120,
        )
        assert killed.returncode == -9
        assert _postmaster(home) is not None  # nobody stopped it: its holder was killed
        out = subprocess.run(
            [SISFLOW, "lms-state", "kommune"], env=env, capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, out.stderr
        assert _postmaster(home) is None  # the last live holder stopped it
    finally:
        _stop(home)
