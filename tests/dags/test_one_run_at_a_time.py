"""One run of a customer at a time, whichever DAG, process or person started it: a second run
ends at once as "busy" (with its email), and never applies anything."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.dags.doors import OPEN, STRICT, World, answer_in_airflow, sisflow

AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def test_an_import_held_in_airflow_keeps_a_rollover_dag_run_and_the_command_out(worlds):
    _, dag = worlds
    w = dag.world
    w.configure(default=STRICT)
    w.export(2025)
    assert dag.run("2025-09-01") == "success"
    w.export(2026)
    others = []

    def others_try_then_open(key):
        # a rollover DAG run of the same customer, in a process of its own
        rollover = subprocess.run(
            [
                AIRFLOW,
                "dags",
                "test",
                "sisflow_rollover__kommune",
                "-c",
                json.dumps({"date": "2026-08-10"}),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, **w.env},
        )
        others.append(rollover)
        others.append(sisflow(w, "run", "kommune", w.newest(), "--on", "2026-08-10"))
        answer_in_airflow(OPEN, "checked with the school")(key)

    assert dag.run("2026-08-10", answer=others_try_then_open) == "success"
    rollover, command = others
    assert rollover.returncode == 0, rollover.stderr[-2000:]
    assert command.returncode == 3
    assert (
        "another run for kommune is in progress: Airflow sisflow_import__kommune" in command.stdout
    )
    # the import went on; the other two did nothing but say so
    assert w.outbox() == ["applied", "held", "busy", "busy", "opened"]
    assert w.query("SELECT status FROM sis.runs ORDER BY id") == [("committed",), ("committed",)]
    assert w.query("SELECT count(*) FROM sis.customer_leases") == [(0,)]


def _start(world: World, year_file: Path, delay: str):
    env = {**os.environ, **world.env, "SISFLOW_DELAY_POINT": delay}
    return subprocess.Popen(
        [
            str(Path(sys.executable).with_name("sisflow")),
            "run",
            "kommune",
            str(year_file),
            "--on",
            "2026-08-10",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_two_processes_started_at_the_same_moment(new_db, tmp_path):
    w = World(new_db(), tmp_path / "w")
    w.configure()
    older, newer = w.by_hand(2025), w.by_hand(2026)
    # whichever gets the customer first holds it for at least two seconds
    first, second = _start(w, older, "apply:users:done=2"), _start(w, newer, "apply:users:done=2")
    results = [json.loads(p.communicate(timeout=300)[0]) for p in (first, second)]
    codes = sorted(p.returncode for p in (first, second))
    assert codes == [0, 3]
    busy = next(r for r in results if r.get("refusal"))
    done = next(r for r in results if not r.get("refusal"))
    assert busy["refusal"]["outcome"] == "busy" and busy["id"] is None
    assert done["status"] == "committed"
    assert sorted(w.outbox()) == ["applied", "busy"]
    # exactly one run reached the import database and the LMS, and nothing is left locked
    assert w.query("SELECT status, file_name FROM sis.runs") == [("committed", done["file_name"])]
    assert w.query("SELECT count(*) FROM sis.customer_leases") == [(0,)]
    # the next run goes ahead as usual
    again = sisflow(w, "run", "kommune", newer, "--on", "2026-08-11")
    assert again.returncode == 0


def test_a_killed_process_does_not_keep_the_customer(new_db, tmp_path):
    w = World(new_db(), tmp_path / "w")
    w.configure()
    path = w.by_hand(2025)
    killed = sisflow(
        w,
        "run",
        "kommune",
        path,
        "--on",
        "2025-09-01",
        extra_env={"SISFLOW_CRASH_POINT": "apply:users:done"},
    )
    assert killed.returncode == -9
    assert w.query("SELECT count(*) FROM sis.customer_leases") == [(1,)]  # left behind...
    again = sisflow(w, "run", "kommune", path, "--on", "2025-09-01")  # ...but its owner is gone
    assert again.returncode == 0, again.stdout + again.stderr
    assert "finished the LMS apply of run 1 first" in again.stdout
    assert w.query("SELECT count(*) FROM sis.customer_leases") == [(0,)]
