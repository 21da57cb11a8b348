"""A run that dies at any point (kill -9 of a real ``sisflow`` process) is finished or started
again by the next run of the customer, and ends as a run that was never interrupted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sisflow.ims.generate import generate

from tests.test_apply import site

SISFLOW = str(Path(sys.executable).with_name("sisflow"))
#: every status a run can be in when it dies: reading, staged, diffed, judged, committed, and
#: committed with its LMS apply half-way
POINTS = [
    "stage:reading",
    "stage:staged",
    "diff:done",
    "judge:done",
    "commit:done",
    "apply:memberships:batch",
    "apply:courses:done",
]


def _runs(conn, customer):
    with conn.cursor() as cur:
        cur.execute(
            "SELECT status, lms_applied_at IS NOT NULL, emails FROM sis.runs"
            " WHERE customer = %s ORDER BY id",
            (customer,),
        )
        return cur.fetchall()


@pytest.mark.parametrize("point", POINTS)
def test_a_run_killed_in_any_status_is_finished_by_the_next(conn, db_url, tmp_path, point):
    first, second = tmp_path / "y1.xml", tmp_path / "y2.xml"
    generate(first, seed=9, year=2025, size="tiny")
    generate(second, seed=9, year=2026, size="tiny")
    env = {**os.environ, "SISFLOW_DATABASE_URL": db_url, "SISFLOW_HOME": str(tmp_path)}

    def sisflow(customer, path, *how, **extra):
        return subprocess.run(
            [SISFLOW, "run", customer, str(path), *(how or ("--on", "2026-08-10", "--rollover"))],
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=300,
        )

    for customer in ("killed", "calm"):
        assert sisflow(customer, first, "--on", "2025-09-01").returncode == 0
    killed = sisflow("killed", second, SISFLOW_CRASH_POINT=point)
    assert killed.returncode == -signal.SIGKILL
    committed = point == "commit:done" or point.startswith("apply:")
    if committed:
        # the rollover switched the school year before it died: triggered again, a rollover
        # goes into the year after (too early), and the next import finishes the LMS apply
        refused = sisflow("killed", second)
        assert refused.returncode == 3 and "allowed from 2027-08-01" in refused.stderr
        again = sisflow("killed", second, "--on", "2026-08-10")
    else:
        again = sisflow("killed", second)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "committed" in again.stdout
    assert sisflow("calm", second).returncode == 0
    assert site(conn, "killed") == site(conn, "calm")
    if committed:
        # committed, not applied: the next run finishes the apply first, then finds the same
        # file committed already, and its email says what it finished
        assert _runs(conn, "killed")[1:] == [
            ("committed", True, []),
            ("unchanged", False, ["finished-pending"]),
        ]
    else:  # one run carried the file to the LMS, with its email, as the calm one did
        assert _runs(conn, "killed") == _runs(conn, "calm")
    # and the customer is not wedged: the file is known
    third = sisflow("killed", second, "--on", "2026-08-11")
    assert third.returncode == 0 and "unchanged" in third.stdout


def test_a_run_killed_while_reading_gives_way_to_another_file(conn, db_url, tmp_path):
    """The killed run took no checksum (the reader takes it on its way): a file of another
    size is another file, and supersedes it rather than going on under its id."""
    first, other = tmp_path / "a.xml", tmp_path / "b.xml"
    generate(first, seed=9, year=2025, size="tiny")
    generate(other, seed=10, year=2025, size="tiny")
    assert first.stat().st_size != other.stat().st_size
    env = {**os.environ, "SISFLOW_DATABASE_URL": db_url, "SISFLOW_HOME": str(tmp_path)}

    def sisflow(path, **extra):
        return subprocess.run(
            [SISFLOW, "run", "kommune", str(path), "--on", "2025-09-01"],
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=300,
        )

    assert sisflow(first, SISFLOW_CRASH_POINT="stage:reading").returncode == -signal.SIGKILL
    assert sisflow(other).returncode == 0
    assert [status for status, _, _ in _runs(conn, "kommune")] == ["superseded", "committed"]
