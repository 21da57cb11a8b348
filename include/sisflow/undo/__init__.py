"""Taking a run back: ``sisflow undo`` and the ``sisflow_undo__<customer>`` DAG call
:func:`undo_and_tell`, so both doors undo and email alike."""

from __future__ import annotations

import json

from .run import UndoResult, undo
from .state import redone

__all__ = ["UndoResult", "redone", "undo", "undo_and_tell"]


def undo_and_tell(
    conn, run_id: int, *, services, holder, airflow: dict | None = None, **options
) -> tuple[UndoResult, dict | None]:
    """The undo (see :func:`sisflow.undo.run.undo`), then its email unless it was a dry run;
    the result and where the email went."""
    from .report import build

    config = services.config(_customer_of(conn, run_id))
    result = undo(conn, run_id, config=config, holder=holder, **options)
    if result.dry_run:
        return result, None
    report = build(result, config, airflow)
    sent = services.sender.send(report)
    with conn, conn.cursor() as cur:
        cur.execute(
            "UPDATE sis.runs SET emails = emails || %s::jsonb WHERE id = %s",
            (json.dumps([report.outcome]), result.undo_run),
        )
    return result, {"subject": report.subject, "sent": sent}


def _customer_of(conn, run_id: int) -> str:
    from ..errors import UndoRefused

    with conn, conn.cursor() as cur:
        cur.execute("SELECT customer FROM sis.runs WHERE id = %s", (run_id,))
        row = cur.fetchone()
    if row is None:
        raise UndoRefused(f"there is no run {run_id}")
    return row[0]
