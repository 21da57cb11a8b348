"""The daily digest to the operations team: every customer that needs a person first (held
runs and their deadlines, breakdowns, missing exports, blocking readiness findings, a
rollover due), then counts for the rest. Sent through the same sender as the status emails,
to ``SISFLOW_OPS_RECIPIENTS`` (comma-separated)."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from . import fleet
from .config import CustomerConfig

#: the order of the reasons a customer needs a person, most urgent first
REASONS = {
    "held": "held by the filter",
    "failed": "the last run broke down",
    "missing": "no new export",
    "readiness": "blocking readiness findings",
    "rollover": "the new school year may begin, or its rollover waits",
}


@dataclass
class Digest:
    subject: str
    day: str
    attention: list[dict[str, Any]]  # customers that need a person: the row and its reasons
    counts: dict[str, int]  # the rest, by the last run's outcome
    total: int
    recipients: list[str] = field(default_factory=list)
    customer: str = "operations"  # the outbox folder
    outcome: str = "digest"
    run: dict | None = None
    template: str = "digest"


def recipients() -> list[str]:
    return [a.strip() for a in os.environ.get("SISFLOW_OPS_RECIPIENTS", "").split(",") if a.strip()]


def build(rows: list[fleet.Row], now: datetime | None = None) -> Digest:
    now = now or datetime.now(UTC)
    attention: list[dict[str, Any]] = []
    for row in rows:
        reasons = [REASONS[flag] for flag in REASONS if flag in row.flags]
        if reasons:
            attention.append({"row": row.as_dict(), "reasons": reasons})
    order = list(REASONS)
    attention.sort(
        key=lambda a: (
            min(order.index(f) for f in a["row"]["flags"] if f in REASONS),
            (a["row"]["held"] or {}).get("deadline") or "",
            a["row"]["customer"],
        )
    )
    listed = {a["row"]["customer"] for a in attention}
    counts = Counter(
        (r.last_run or {}).get("outcome", "no run yet") for r in rows if r.customer not in listed
    )
    day = now.date().isoformat()
    return Digest(
        subject=f"[sisflow] {day}: {len(attention)} of {len(rows)} customers need a person",
        day=day,
        attention=attention,
        counts=dict(sorted(counts.items())),
        total=len(rows),
        recipients=recipients(),
    )


def send(
    conn,
    configs: list[CustomerConfig],
    services,
    now: datetime | None = None,
    waiting: dict[str, dict] | None = None,
) -> dict:
    """The digest built from the fleet's rows and sent; what was sent where. ``waiting``: the
    rollovers that wait for their effective date, by customer (default: asked of Airflow)."""
    if waiting is None:
        waiting = fleet.waiting_rollovers()
    digest = build(fleet.rows(conn, configs, now, waiting), now)
    where = services.sender.send(digest)
    return {"subject": digest.subject, "sent": where, "attention": len(digest.attention)}
