"""The undo's status email: what was put back and what was left alone, ids and counts only."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config import CustomerConfig
from .run import UndoResult


@dataclass
class UndoReport:
    customer: str
    customer_name: str
    outcome: str  # undone, or undone-with-conflicts
    subject: str
    result: dict
    lines: list[str]
    recipients: list[str] = field(default_factory=list)
    airflow: dict | None = None
    run: dict | None = None
    template: str = "undo"


def build(result: UndoResult, config: CustomerConfig, airflow: dict | None = None) -> UndoReport:
    left = result.left_alone_count + sum(result.state_conflicts.values())
    outcome = "undone-with-conflicts" if left else "undone"
    what = f"run {result.undone}" + (f" (school {result.school})" if result.school else "")
    subject = f"[sisflow] {config.name or config.id}: {what} undone by {result.by}" + (
        f", {left} left alone" if left else ""
    )
    return UndoReport(
        customer=config.id,
        customer_name=config.name or config.id,
        outcome=outcome,
        subject=subject,
        result=result.as_dict(),
        lines=result.lines(),
        recipients=list(config.recipients),
        airflow=airflow,
        run={"id": result.undo_run},
    )
