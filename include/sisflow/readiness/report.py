"""The readiness report as a status email: ids, counts and reasons in the body, one CSV per
list attached (the same frames, without names)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from ..config import CustomerConfig
from .checks import LISTS, Findings

MAX_ROWS = 20


@dataclass
class ReadinessReport:
    customer: str
    customer_name: str
    outcome: str  # readiness-ok or readiness-blocking
    subject: str
    summary: dict
    lists: list[dict]
    recipients: list[str] = field(default_factory=list)
    airflow: dict | None = None
    attachments: list[tuple[str, bytes]] = field(default_factory=list)
    template: str = "readiness"
    run: dict | None = None  # a readiness report belongs to no import run


def _cell(value) -> str:
    return "" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


def build(
    config: CustomerConfig, findings: Findings, *, airflow: dict | None = None
) -> ReadinessReport:
    blocking = findings.blocking
    name = config.name or config.id
    n = sum(blocking.values())
    verdict = (
        f"{n} blocking finding{'' if n == 1 else 's'}"
        if blocking
        else "ready (nothing blocks the rollover)"
    )
    lists = []
    for key in LISTS:
        table = findings.table(key)
        lists.append(
            {
                "name": key,
                "title": findings.title(key),
                "count": len(table),
                "blocking": LISTS[key].blocking,
                "columns": list(table.columns),
                "rows": [
                    [_cell(v) for v in row] for row in table.head(MAX_ROWS).itertuples(index=False)
                ],
            }
        )
    return ReadinessReport(
        customer=config.id,
        customer_name=name,
        outcome="readiness-blocking" if blocking else "readiness-ok",
        subject=f"[sisflow] {name} readiness for {findings.school_year.label}: {verdict}",
        summary=findings.summary(),
        lists=lists,
        recipients=list(config.recipients),
        airflow=airflow,
        attachments=[(f"{config.id}-{key}.csv", findings.csv(key)) for key in LISTS],
    )
