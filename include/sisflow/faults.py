"""Crash points: where a test may kill the process for real, to prove that a re-run finishes
the job. Set ``SISFLOW_CRASH_POINT`` to a point's name (e.g. ``apply:memberships:batch``) and
the process is killed with SIGKILL when it gets there; unset, this does nothing."""

from __future__ import annotations

import os
import signal


def crash_point(name: str) -> None:
    if os.environ.get("SISFLOW_CRASH_POINT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
