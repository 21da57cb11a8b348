"""A run's outcome in one line, as the DAG run's note and the command's ``note``.

Ops scan a column of these on a DAG's grid, so each says what happened in words with the
figures that matter ("applied: 13,543 changes", "held until 5 Dec 07:05 (Oslo): person
delete 1,087 over 100"), moments in the customer's time zone. Ids and counts only: a note is
read by everyone who can see the DAG.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from .config import CustomerConfig

#: Airflow keeps at most this many characters of a note
MOST = 1000


def moment(at: datetime, config: CustomerConfig) -> str:
    """``5 Dec 07:05 (Oslo)``: the customer's wall clock and where it hangs."""
    zone = config.schedule.timezone
    local = at.astimezone(ZoneInfo(zone))
    return f"{local.day} {local:%b %H:%M} ({zone.rsplit('/', 1)[-1].replace('_', ' ')})"


def final(result: dict) -> str:
    """A finished run's note: its status email's headline, with the run's id when it has one.
    A run that waits at the filter gets :func:`held` instead."""
    headline = (result.get("email") or {}).get("headline") or result.get("outcome") or "ended"
    run = f"run {result['id']}: " if result.get("id") else ""
    return fit(f"{run}{headline}")


def held(run: dict, config: CustomerConfig) -> str:
    """``held until <deadline>: <what tripped>``; the approval task has the whole story."""
    trips = "; ".join(_trip(t) for t in (run.get("verdict") or {}).get("trips") or [])
    until = f" until {moment(run['deadline'], config)}" if run.get("deadline") else ""
    return fit(f"run {run['id']}: held{until}: {trips}")


def waits(until: datetime, config: CustomerConfig, school_year: str) -> str:
    """A rollover deferred to its effective date: it holds nothing while it waits."""
    return fit(f"waits until {moment(until, config)}: the rollover into {school_year}")


def _trip(t: dict) -> str:
    n = f"{int(t['actual']):,}"
    if t["kind"] == "identity":
        return f"{t['entity']} relink: {n} waiting for a person"
    if t["kind"] == "undone":
        return f"{t['entity']} redo: {n} undone change(s) again"
    if t["kind"] == "guard":
        share = 100 * t["actual"] / t["base"] if t["base"] else 0
        return f"file holds {share:.0f}% of the {t['entity']}s (at least {t['limit']:g}%)"
    if t["kind"] == "percent":
        share = 100 * t["actual"] / t["base"] if t["base"] else 0
        return f"{t['entity']} {t['op']} {n} ({share:.1f}%) over {t['limit']:g}%"
    return f"{t['entity']} {t['op']} {n} over {int(t['limit']):,}"


def fit(text: str) -> str:
    """One line, as long as Airflow keeps."""
    text = " ".join(text.split())
    return text if len(text) <= MOST else text[: MOST - 3] + "..."
