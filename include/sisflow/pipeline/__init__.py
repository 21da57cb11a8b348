"""One customer's run, in phases: what ``sisflow run`` and the DAG tasks both call.

    begin            the date and the calendar; rollover allowed?; the customer's lease;
                     finish the LMS apply an earlier run left half-way        (begin.py)
    fetch            the file into the customer's landing zone                (fetch.py)
    stage_and_judge  read and stage (stage.py), readiness for a rollover, diff and the
                     filter's verdict (judge.py); a held run sends its HELD email now
    decide           a person's answer on a held run (one decision record, whichever door),
                     and on its identity changes (relink.py)
    apply            commit to the import database, then apply to the LMS     (commit.py)
    finish           the status email, the lease given back                   (finish.py)

:func:`run` (whole.py) is their composition for the command line; the DAG runs the same phases
as tasks (:mod:`sisflow.airflow_tasks`), passing a :class:`Plan` over XCom. Both doors build
the same :class:`~sisflow.services.Services` (the email sender, the clock) and read the
customer's file once per run. Every decision about a run is made in this package, once: which
date and calendar mode, whether the unchanged-file short-circuit is allowed, whether deferred
deletions are released, which filter profile, go or no go, what the email says.

Each phase is idempotent: called again after a crash or a retry it reaches the same end state.
Every transaction that changes the customer's state is guarded by the run's lease on the
customer (:mod:`sisflow.runs`), and reads the run's status under that lock.
"""

from .begin import PAUSED, begin, prepare, take, waits_until
from .commit import apply, commit
from .decide import accepted_pairs, as_answer, decide, from_approval, goes_on
from .fetch import confine, fetch
from .finish import finish, finish_without_plan, notify
from .judge import HELD_GRACE, compute_diff, judge
from .plan import Ending, Holder, Kind, Plan, Request, customer_config
from .relink import relink
from .stage import stage
from .stage_and_judge import stage_and_judge
from .whole import resume, run

__all__ = [
    "HELD_GRACE",
    "PAUSED",
    "Ending",
    "Holder",
    "Kind",
    "Plan",
    "Request",
    "accepted_pairs",
    "apply",
    "as_answer",
    "begin",
    "commit",
    "compute_diff",
    "confine",
    "customer_config",
    "decide",
    "fetch",
    "finish",
    "finish_without_plan",
    "from_approval",
    "goes_on",
    "judge",
    "notify",
    "prepare",
    "relink",
    "resume",
    "run",
    "stage",
    "stage_and_judge",
    "take",
    "waits_until",
]
