"""Where every customer stands, in one query: the rows of the operations page and the digest.

Per customer: its calendar today, the active school year and the earliest rollover, the last
run and its real outcome (the status email's), a held run with its deadline, the last
readiness check, and when the last new export came (a missing export is an alert once
``missing_export_days`` school days passed without one: weekdays outside the customer's pause
windows). Ids, dates and counts only: no personal data.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from . import calendar, school_year
from .config import CustomerConfig

log = logging.getLogger(__name__)

#: the filters of the page and the digest, by name: which rows each keeps
FILTERS = ("held", "failed", "paused", "missing", "rollover", "readiness")

#: status email outcomes that are a breakdown (the run stopped where it should not have)
FAILED = ("failed", "rejected-file", "contradicting-decision", "invalid-customer")

_QUERY = """
WITH c AS (SELECT unnest(%(customers)s::text[]) AS customer)
SELECT c.customer,
       last.id, last.status, last.emails ->> -1, last.counts, last.created_at,
       last.airflow_run, last.profile,
       held.id, held.deadline, held.airflow_run, held.verdict,
       fresh.created_at,
       yr.label, yr.start_date, yr.end_date,
       rd.checked_at, rd.blocking, rd.school_year
FROM c
LEFT JOIN LATERAL (
    SELECT id, status, emails, counts, created_at, airflow_run, profile FROM sis.runs r
    WHERE r.customer = c.customer ORDER BY id DESC LIMIT 1) last ON true
LEFT JOIN LATERAL (
    SELECT id, deadline, airflow_run, verdict FROM sis.runs r
    WHERE r.customer = c.customer AND r.status = 'held' ORDER BY id DESC LIMIT 1) held ON true
LEFT JOIN LATERAL (
    SELECT created_at FROM sis.runs r
    WHERE r.customer = c.customer AND r.status <> 'unchanged' AND r.undo_of IS NULL
      AND r.sha256 IS NOT NULL ORDER BY id DESC LIMIT 1) fresh ON true
LEFT JOIN LATERAL (
    SELECT label, start_date, end_date FROM sis.school_years y
    WHERE y.customer = c.customer ORDER BY set_at DESC, start_date DESC LIMIT 1) yr ON true
LEFT JOIN LATERAL (
    SELECT checked_at, blocking, school_year FROM sis.readiness_checks k
    WHERE k.customer = c.customer ORDER BY checked_at DESC LIMIT 1) rd ON true
"""


@dataclass
class Row:
    customer: str
    name: str
    vendor: str
    mode: str  # normal, paused, delay-delete
    until: str | None
    school_year: str
    earliest_rollover: str
    rollover_due: bool  # the earliest rollover date has come
    next_import: str | None  # ISO, in the customer's time zone
    last_run: dict | None = None  # id, status, outcome, changes, at, airflow
    held: dict | None = None  # id, deadline, trips, airflow
    readiness: dict | None = None  # checked_at, blocking (count), school_year
    last_new_export: str | None = None
    school_days_without_export: int | None = None
    missing_export: bool = False
    #: a rollover DAG run deferred to its effective date: dag_id, run_id, until, school_year
    rollover_waiting: dict | None = None
    flags: list[str] = field(default_factory=list)  # the FILTERS this row is in

    def as_dict(self) -> dict:
        return asdict(self)


def local(moment: datetime, tz: ZoneInfo) -> str:
    """A moment as a person in the customer's time zone reads it."""
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M")


def _school_days(config: CustomerConfig, since: date, today: date) -> int:
    """Weekdays after ``since`` up to ``today`` outside the pause windows."""
    days, day = 0, since + timedelta(days=1)
    while day <= today:
        if day.weekday() < 5 and not any(day in w for w in config.pause):
            days += 1
        day += timedelta(days=1)
    return days


def waiting_rollovers() -> dict[str, dict]:
    """The rollovers that wait, deferred, for their effective date, asked of Airflow's REST API
    (a waiting rollover holds nothing here); none when Airflow cannot be asked, said in the
    log. The Customers page, inside Airflow, reads them from Airflow's database instead."""
    from . import airflow_api

    try:
        return airflow_api.waiting_rollovers()
    except airflow_api.AirflowApiError as err:
        log.warning("waiting rollovers not known: %s", err)
        return {}


def rows(
    conn,
    configs: list[CustomerConfig],
    now: datetime | None = None,
    waiting: dict[str, dict] | None = None,
) -> list[Row]:
    """Every customer's row, in the order of ``configs``. ``waiting``: the rollovers that
    wait for their effective date, by customer; only Airflow knows them (a waiting rollover
    holds nothing here)."""
    now = now or datetime.now(UTC)
    with conn, conn.cursor() as cur:
        cur.execute(_QUERY, {"customers": [c.id for c in configs]})
        found = {r[0]: r for r in cur.fetchall()}
    waiting = waiting or {}
    return [_row(c, found[c.id], now, waiting.get(c.id)) for c in configs]


def _row(config: CustomerConfig, r: tuple, now: datetime, waiting: dict | None) -> Row:
    tz = ZoneInfo(config.schedule.timezone)
    today = now.astimezone(tz).date()
    (_, last_id, status, outcome, counts, at, airflow, profile) = r[:8]
    held_id, deadline, held_airflow, verdict, fresh = r[8:13]
    year_label, year_start, year_end, checked_at, blocking, checked_year = r[13:19]
    active = school_year.SchoolYear(year_start, year_end) if year_start else None
    cal = calendar.state_on(config, today, active)
    row = Row(
        customer=config.id,
        name=config.name or config.id,
        vendor=config.sis_vendor.value,
        mode=str(cal.mode),
        until=cal.until.isoformat() if cal.until else None,
        school_year=cal.school_year.label,
        earliest_rollover=cal.earliest_rollover.isoformat(),
        rollover_due=today >= cal.earliest_rollover,
        next_import=local(calendar.next_run(config, now), tz) if config.source else None,
        rollover_waiting=waiting,
    )
    if last_id is not None:
        row.last_run = {
            "id": last_id,
            "status": status,
            "outcome": outcome or status,
            "kind": "undo" if profile == "undo" else profile,
            "changes": sum(sum(ops.values()) for ops in (counts or {}).values()),
            "at": local(at, tz),
            "airflow": airflow,
        }
    if held_id is not None:
        trips = [t for t in (verdict or {}).get("trips", [])]
        row.held = {
            "id": held_id,
            "deadline": local(deadline, tz) if deadline else None,
            "hours_left": round((deadline - now).total_seconds() / 3600, 1) if deadline else None,
            "trips": [f"{t['entity']} {t['op']}" for t in trips],
            "airflow": held_airflow,
        }
    if checked_at is not None:
        row.readiness = {
            "checked_at": local(checked_at, tz),
            "blocking": sum((blocking or {}).values()),
            "school_year": checked_year,
        }
    if fresh is not None:
        row.last_new_export = fresh.astimezone(tz).date().isoformat()
        row.school_days_without_export = _school_days(config, fresh.astimezone(tz).date(), today)
        row.missing_export = (
            cal.mode != calendar.PAUSED
            and row.school_days_without_export >= config.missing_export_days
        )
    row.flags = [name for name in FILTERS if _in(row, name)]
    return row


def _in(row: Row, name: str) -> bool:
    if name == "held":
        return row.held is not None
    if name == "failed":
        return bool(row.last_run and row.last_run["outcome"] in FAILED)
    if name == "paused":
        return row.mode == calendar.PAUSED
    if name == "missing":
        return row.missing_export
    if name == "rollover":  # the new school year may begin and has not, or waits for its day
        return row.rollover_due or row.rollover_waiting is not None
    if name == "readiness":
        return bool(row.readiness and row.readiness["blocking"])
    raise ValueError(name)


def needs_a_person(row: Row) -> bool:
    """What the digest lists first: held, failed, missing export, blocking readiness, a
    rollover due."""
    return bool({"held", "failed", "missing", "readiness", "rollover"} & set(row.flags))
