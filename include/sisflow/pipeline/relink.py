"""A person's decisions on a held run's identity changes, whichever door they come through.

Once no pair of the run waits, the accepted ones become updates in its change set, the filter
judges it again, and a run that nothing else holds goes on: its one decision is recorded as
opened by the same person, since deciding the pairs was all it waited for. A run that the
filter still holds waits for the filter's decision as before.
"""

from __future__ import annotations

import logging

from .. import diff, identity, runs
from ..config import CustomerConfig
from ..errors import NotDecidable
from ..filter import Decision
from ..runs import RunStatus
from .decide import decide
from .judge import verdict_of

log = logging.getLogger(__name__)


def relink(
    conn,
    run_id: int,
    config: CustomerConfig,
    *,
    accept=(),
    refuse=(),
    by: str,
    via: str,
    reason: str | None = None,
    refuse_the_rest: bool = False,
) -> dict:
    """Record the decisions on pairs of a held run (``refuse_the_rest``: every pair not
    accepted is refused, as the approval form says); then settle the run when none waits."""
    with conn, conn.cursor() as cur:
        run = runs.row(cur, run_id)
        runs.lock_customer(cur, run["customer"])
        run = runs.row(cur, run_id)
        if run["status"] != RunStatus.HELD:
            raise NotDecidable(
                f"run {run_id} is {run['status']}: only a held run's identity changes are decided"
            )
        refuse = [int(i) for i in refuse]
        if refuse_the_rest:
            waiting = identity.listed(cur, run_id=run_id)
            taken = {int(i) for i in accept} | set(refuse)
            refuse += [p.id for p in waiting if p.decision is None and p.id not in taken]
        decided = identity.decide(
            cur,
            run["customer"],
            accept=accept,
            refuse=refuse,
            by=by,
            via=via,
            reason=reason,
            run_id=run_id,
        )
        log.info(
            "run %s: identity changes decided via %s: %s",
            run_id,
            via,
            {p.id: p.decision for p in decided},
        )
        if identity.undecided(cur, run_id):
            return runs.summary(conn, run_id)
        if identity.rewrite(cur, run_id, run["customer"]):
            runs.update(cur, run_id, counts=diff.counts(cur, run_id))
    summary = runs.summary(conn, run_id)
    _, verdict = verdict_of(conn, summary, config, summary["profile"] == "rollover")
    with conn, conn.cursor() as cur:
        runs.update(cur, run_id, verdict=verdict.as_dict())
    if verdict.passed and summary["decision"] is None:
        return decide(
            conn,
            run_id,
            Decision.OPENED,
            by=by,
            reason=reason or "identity changes decided; nothing else held the run",
            via=via,
        )
    return runs.summary(conn, run_id)
