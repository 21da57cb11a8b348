"""Fault points: where a test makes the process fail for real, to prove that a re-run finishes
the job. ``SISFLOW_CRASH_POINT=<name>`` kills the process there with SIGKILL (a worker that
dies); ``SISFLOW_FAIL_POINT=<name>`` raises there instead (the LMS went down mid-apply), which
an in-process Airflow task survives to report; ``SISFLOW_DELAY_POINT=<name>=<seconds>`` waits
there (a slow LMS), so that two runs surely overlap. Unset, they do nothing. Names look like
``apply:memberships:batch`` or ``apply:users:done``."""

from __future__ import annotations

import os
import signal
import time


class InjectedFault(RuntimeError):
    """The failure a test asked for at a fault point."""


def crash_point(name: str) -> None:
    if os.environ.get("SISFLOW_CRASH_POINT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get("SISFLOW_FAIL_POINT") == name:
        raise InjectedFault(f"the LMS did not answer at {name} (injected by SISFLOW_FAIL_POINT)")
    delay, _, seconds = os.environ.get("SISFLOW_DELAY_POINT", "").partition("=")
    if delay == name:
        time.sleep(float(seconds))
