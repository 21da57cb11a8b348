"""Airflow for real: the scheduler, the dag-processor, the triggerer, the api-server and a Celery
worker as separate processes on loopback, with one Postgres (Airflow's metadata and the import
database) and a Redis server as the broker, started the way ``make airflow`` starts them. The
test speaks to it through the REST API only, as an operator's tools would, and stops every
process it started, also when it fails."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

PROJECT = Path(__file__).resolve().parents[1]
IMPORT = "sisflow_import__demo"
READINESS = "sisflow_readiness__demo"
SCRIPT = PROJECT / "scripts" / "airflow_local.py"


class Api:
    def __init__(self, base: str, user: str, password: str):
        self.base = base
        request = urllib.request.Request(
            f"{base}/auth/token",
            method="POST",
            headers={"Content-Type": "application/json"},
            data=json.dumps({"username": user, "password": password}).encode(),
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            self.token = json.load(answer)["access_token"]

    def call(self, method: str, path: str, body: dict | None = None):
        request = urllib.request.Request(
            f"{self.base}{path}",
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
            data=json.dumps(body).encode() if body is not None else None,
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.load(answer)

    def page(self, path: str) -> str:
        request = urllib.request.Request(
            f"{self.base}{path}", headers={"Authorization": f"Bearer {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.read().decode()

    def note(self, dag_id: str, run_id: str) -> str:
        return self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["note"] or ""

    def trigger(self, dag_id: str, run_id: str, conf: dict) -> None:
        self.call(
            "POST",
            f"/api/v2/dags/{dag_id}/dagRuns",
            {"logical_date": None, "dag_run_id": run_id, "conf": conf},
        )

    def wait(self, what, timeout: float = 240):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                found = what()
            except urllib.error.HTTPError as err:
                if err.code != 404:
                    raise
                found = None
            if found:
                return found
            time.sleep(2)
        raise TimeoutError(f"waited {timeout} s")

    def finished(self, dag_id: str, run_id: str) -> str:
        def state():
            s = self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"]
            return s if s in ("success", "failed") else None

        return self.wait(state)


def _demo_scheduled_far_from_now(folder: Path) -> Path:
    """The demo customer with its daily import twelve hours from now. A new DAG runs its
    latest scheduled time at once when that was less than 2.4 hours ago (Airflow's
    CronTriggerTimetable): with the demo's 05:00, a test started between 05:00 and 07:24
    Oslo time would find that run holding the customer."""
    folder.mkdir()
    later = datetime.now(ZoneInfo("Europe/Oslo")) + timedelta(hours=12)
    text = (PROJECT / "customers" / "demo.yaml").read_text()
    (folder / "demo.yaml").write_text(
        text + f'schedule: {{cron: "{later.minute} {later.hour} * * *"}}\n'
    )
    return folder


@pytest.fixture
def airflow(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "SISFLOW_HOME": str(tmp_path / "home"),
        "SISFLOW_AIRFLOW_PORT": str(port),
        "SISFLOW_AIRFLOW_EXECUTOR": "CeleryExecutor",
        "SISFLOW_CUSTOMERS_DIR": str(_demo_scheduled_far_from_now(tmp_path / "customers")),
    }
    api = ("SISFLOW_AIRFLOW_API_URL", "SISFLOW_AIRFLOW_USERNAME", "SISFLOW_AIRFLOW_PASSWORD")
    for key in [k for k in env if k.startswith(("AIRFLOW_", "AIRFLOW__")) or k in api]:
        del env[key]  # the tests' own Airflow settings are not this Airflow's
    started = subprocess.run(
        [sys.executable, str(SCRIPT), "start"], env=env, capture_output=True, text=True, timeout=600
    )
    home = tmp_path / "home"
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        password = json.loads((home / "airflow" / "passwords.json").read_text())["admin"]
        yield Api(f"http://localhost:{port}", "admin", password), home
    finally:
        state = home / "airflow" / "processes.json"
        pids = json.loads(state.read_text())["pids"] if state.exists() else []
        stopped = subprocess.run(
            [sys.executable, str(SCRIPT), "stop"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        left = []
        for pid in pids:  # every process group it started (Redis, the components, workers)
            try:
                os.killpg(pid, 0)
                left.append(pid)
            except OSError:
                pass
        assert left == [] and len(pids) == 6, (pids, left)
        assert not (home / "pg" / "postmaster.pid").exists()  # Postgres stopped too


def waiting_for_answer(api: Api, run_id: str) -> list:
    details = api.call("GET", "/api/v2/dags/~/dagRuns/~/hitlDetails")["hitl_details"]
    return [
        d
        for d in details
        if d["task_instance"]["dag_run_id"] == run_id and d.get("response_received") is False
    ]


def started_here(home: Path) -> tuple[list[tuple[str, int]], int]:
    """The addresses the started processes listen on (every process of their groups), and
    how many task processes the Celery worker runs."""
    import psutil

    groups = set(json.loads((home / "airflow" / "processes.json").read_text())["pids"])
    mine = {p.pid: p for p in psutil.process_iter(["cmdline"]) if _group(p.pid) in groups}
    listening = [
        (c.laddr.ip, c.laddr.port)
        for c in psutil.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.pid in mine
    ]
    celery = [p for p in mine.values() if "celery" in " ".join(p.info["cmdline"] or [])]
    return listening, len(celery) - 1  # the worker's main process, then one per slot


def _group(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def outcomes(home: Path) -> list[str]:
    folder = home / "outbox" / "demo"
    return sorted(p.name.split("-", 2)[2].rsplit("-", 1)[0] for p in folder.glob("run-*.eml"))


@pytest.mark.slow
def test_the_demo_through_the_rest_api_on_celery(airflow):
    api, home = airflow
    api.wait(lambda: api.call("GET", "/api/v2/dags/sisflow_import__demo"))
    # the demo's first school year
    api.trigger("sisflow_import__demo", "first", {"file": "demo-2025.xml", "date": "2025-09-01"})
    assert api.finished("sisflow_import__demo", "first") == "success"
    # every run says what it did in its note, written by its tasks through the REST API
    assert re.fullmatch(r"run 1: applied: [\d,]+ changes", api.note(IMPORT, "first"))
    # what it started listens on this machine only, with a handful of task slots
    listening, workers = started_here(home)
    assert listening and all(ip in ("127.0.0.1", "::1") for ip, _ in listening), listening
    assert 1 <= workers <= 8
    # readiness against next year's export: the pupil made by hand is proposed a sync key,
    # and the approval attaches it
    api.trigger(READINESS, "ready", {"file": "demo-2026.xml"})
    api.wait(lambda: waiting_for_answer(api, "ready"))
    api.call(
        "PATCH",
        f"/api/v2/dags/{READINESS}/dagRuns/ready/taskInstances/approval/-1/hitlDetails",
        {"chosen_options": ["Attach"], "params_input": {}},
    )
    assert api.finished(READINESS, "ready") == "success"
    attach = api.call("GET", f"/api/v2/dags/{READINESS}/dagRuns/ready/taskInstances/attach")
    assert attach["state"] == "success"
    # the next year's file through the import DAG: the default filter holds it
    api.trigger("sisflow_import__demo", "held", {"file": "demo-2026.xml", "date": "2026-08-10"})

    api.wait(lambda: waiting_for_answer(api, "held"))
    assert outcomes(home) == ["applied", "held"]  # the HELD email is out while it waits
    held = r"run 2: held until \d+ \w{3} \d\d:\d\d \(Oslo\): \w+ \w+ [\d,]+ .+"
    assert re.fullmatch(held, api.note(IMPORT, "held"))
    api.call(
        "PATCH",
        "/api/v2/dags/sisflow_import__demo/dagRuns/held/taskInstances/approval/-1/hitlDetails",
        {
            "chosen_options": ["Open the filter"],
            "params_input": {"reason": "checked with the school", "accept_pairs": ""},
        },
    )
    assert api.finished("sisflow_import__demo", "held") == "success"
    opened = r"run 2: applied after the filter was opened: [\d,]+ changes"
    assert re.fullmatch(opened, api.note(IMPORT, "held"))
    # the rollover DAG with the effective date from its form: the same file, now read for the
    # new school year, creates the new year's groups that the import kept back
    api.trigger(
        "sisflow_rollover__demo",
        "rollover",
        {"file": "demo-2026.xml", "effective_date": "2026-08-10"},
    )
    assert api.finished("sisflow_rollover__demo", "rollover") == "success"
    # exactly one email per outcome
    assert outcomes(home) == ["applied", "applied", "held", "opened"]
    # next year's rollover, triggered early: it waits, deferred, and the Customers page says so
    rollover = "sisflow_rollover__demo"
    later = {"effective_date": "2027-08-10", "school_year": "2027-2028", "file": "demo-2026.xml"}
    api.trigger(rollover, "later", later)
    api.wait(lambda: api.note(rollover, "later").startswith("waits until"))
    assert api.note(rollover, "later") == (
        "waits until 10 Aug 00:00 (Oslo): the rollover into 2027-2028"
    )
    assert "rollover into 2027-2028 waits until 2027-08-10" in api.page("/sisflow/customers")
    api.call("PATCH", f"/api/v2/dags/{rollover}/dagRuns/later", {"state": "failed"})
    assert "waits until" not in api.page("/sisflow/customers")
    assert outcomes(home) == ["applied", "applied", "held", "opened"]  # it never began
