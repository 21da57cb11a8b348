"""Go or no go: a person's decision on a held run (one decision record, whichever door it
comes through), and what an Airflow approval's answer means as a decision."""

from __future__ import annotations

import logging
import re

from .. import filter as filter_
from .. import identity, runs
from ..airflow_api import ACCEPT, OPEN, REJECT
from ..errors import NotDecidable
from ..runs import RunStatus

log = logging.getLogger(__name__)


def decide(
    conn, run_id: int, decision: str, *, by: str | None, reason: str | None, via: str
) -> dict:
    """Record the decision on a held run: opened (it goes on), rejected or expired (aborted).
    The same decision again is accepted; a contradicting one is refused
    (:class:`~sisflow.errors.ContradictingDecision`), and so is a decision on a run that is
    not held (:class:`~sisflow.errors.NotDecidable`)."""
    with conn, conn.cursor() as cur:
        run = runs.row(cur, run_id)
        runs.lock_customer(cur, run["customer"])
        run = runs.row(cur, run_id)
        stored = filter_.stored_decision(cur, run_id)
        if stored is None and run["status"] != RunStatus.HELD:
            raise NotDecidable(f"run {run_id} is {run['status']}: only a held run takes a decision")
        waiting = sum(identity.undecided(cur, run_id).values())
        if decision == filter_.Decision.OPENED and waiting:
            raise NotDecidable(
                f"run {run_id} waits for {waiting} identity change(s) to be decided first:"
                f" sisflow relink {run_id} --accept ID --refuse ID --by NAME"
            )
        stored = filter_.record_decision(cur, run_id, decision, by=by, reason=reason, via=via)
        if stored["decision"] != filter_.Decision.OPENED and run["status"] == RunStatus.HELD:
            runs.update(cur, run_id, status=RunStatus.ABORTED)
    log.info("run %s: filter %s via %s", run_id, stored["decision"], stored["via"])
    return runs.summary(conn, run_id)


def goes_on(run: dict) -> bool:
    """Go or no go: the filter passed, or a person opened it; never for a dry run."""
    if run["status"] == RunStatus.DIFFED:
        return bool((run["verdict"] or {}).get("passed"))
    if run["status"] == RunStatus.HELD:
        return (run["decision"] or {}).get("decision") == filter_.Decision.OPENED
    return run["status"] == RunStatus.COMMITTED and run["lms_applied_at"] is None


def from_approval(answer: dict) -> dict:
    """An approval task's answer as :func:`decide`'s arguments: opened or rejected by the
    person who answered, or expired when the deadline answered for no one."""
    user = answer.get("responded_by_user")
    if user is None:
        return {
            "decision": filter_.Decision.EXPIRED,
            "by": None,
            "via": "deadline",
            "reason": "no answer before the deadline",
        }
    return {
        "decision": filter_.Decision.OPENED
        if answer["chosen_options"] == [OPEN]
        else filter_.Decision.REJECTED,
        "by": user["name"],
        "via": "airflow",
        "reason": (answer.get("params_input") or {}).get("reason") or None,
    }


def as_answer(stored: dict) -> dict:
    """A stored decision in the shape of an approval's answer (:func:`from_approval` reads it
    back as the same decision), for an approval task that need not ask."""
    by = stored["decided_by"]
    return {
        "chosen_options": [OPEN if stored["decision"] == filter_.Decision.OPENED else REJECT],
        "params_input": {"reason": stored["reason"] or "", ACCEPT: ""},
        "responded_by_user": {"id": by, "name": by} if by else None,
        "responded_at": stored["decided_at"].isoformat(),
        "decided_via": stored["via"],
    }


def accepted_pairs(answer: dict) -> list[int]:
    """The pair ids the approval form's answer accepts (any separator between them)."""
    given = (answer.get("params_input") or {}).get(ACCEPT) or ""
    return [int(i) for i in re.findall(r"\d+", str(given))]
