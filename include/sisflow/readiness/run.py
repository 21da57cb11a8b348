"""One readiness check of a customer, as the command line and the readiness DAG run it."""

from __future__ import annotations

import json
import logging
from datetime import date

from .. import calendar, school_year
from ..config import CustomerConfig
from .checks import Findings, check
from .people import file_people, state_people
from .report import build

log = logging.getLogger(__name__)


def readiness(
    conn, config: CustomerConfig, *, file: str | None = None, on: date | None = None
) -> Findings:
    """The checks for rolling the customer into the school year after its active one, against
    ``file`` (an export of the new year, say) or else the current state."""
    on = on or calendar.today()
    with conn, conn.cursor() as cur:
        current = school_year.active(cur, config.id, config, on)
        target = school_year.starting(current.start.year + 1, config)
        people = file_people(file, config.id) if file else state_people(cur, config.id)
        findings = check(cur, config, target, people=people, on=on, current=current)
        counts = {name: len(frame) for name, frame in findings.frames.items()}
        cur.execute(  # ids and counts, for the operations page and the digest
            "INSERT INTO sis.readiness_checks (customer, school_year, blocking, counts)"
            " VALUES (%s, %s, %s, %s)",
            (config.id, target.label, json.dumps(findings.blocking), json.dumps(counts)),
        )
    log.info(
        "%s readiness for %s: %s",
        config.id,
        target.label,
        {name: len(frame) for name, frame in findings.frames.items()},
    )
    return findings


def send(
    findings: Findings, config: CustomerConfig, *, sender=None, airflow: dict | None = None
) -> dict:
    """The readiness report as an email (to the outbox unless a sender is given)."""
    from ..report.email import Outbox

    report = build(config, findings, airflow=airflow)
    where = (sender or Outbox()).send(report)
    return {"outcome": report.outcome, "subject": report.subject, "sent": where}
