"""The customer's active school year: what imports work in, and what rollover switches.

The active school year is a fact in the import database, set by the first import and then only
by a committed rollover, never by the date alone: a normal import in August with next year's
export keeps next year's groups back (they are "kept", see :mod:`sisflow.staging`), and an SIS
trigger keeps asking for the active year, until an operator rolls the customer over.

A school year runs from 1 August to 31 July, unless the customer's file gives its own dates
(``school_year``, Visma Flyt Skole customers). Labels are ``2025-2026``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

from .config import CustomerConfig, SisVendor

_LABEL = re.compile(r"^(\d{4})[-/](\d{4})$")


@dataclass(frozen=True)
class SchoolYear:
    start: date
    end: date

    @property
    def label(self) -> str:
        return f"{self.start.year}-{self.start.year + 1}"

    def as_dict(self) -> dict:
        return {"label": self.label, "start": self.start.isoformat(), "end": self.end.isoformat()}

    @classmethod
    def from_dict(cls, data: dict) -> SchoolYear:
        return cls(date.fromisoformat(data["start"]), date.fromisoformat(data["end"]))


def starting(year: int, config: CustomerConfig) -> SchoolYear:
    """The school year that starts in ``year``: the customer's own dates when its file gives
    them for that year, else 1 August to 31 July."""
    own = config.school_year
    if own is not None and own.start.year == year:
        return SchoolYear(own.start, own.end)
    return SchoolYear(date(year, 8, 1), date(year + 1, 7, 31))


def of_label(label: str, config: CustomerConfig) -> SchoolYear:
    """``2026-2027`` (or ``2026/2027``) as the customer's school year; ValueError otherwise."""
    found = _LABEL.match(label.strip())
    if not found or int(found[2]) != int(found[1]) + 1:
        raise ValueError(f"'{label}' is not a school year: write it as 2026-2027")
    return starting(int(found[1]), config)


def containing(day: date, config: CustomerConfig) -> SchoolYear:
    """The school year a day falls in by the calendar alone (before anything was stored)."""
    own = config.school_year
    if own is not None and own.start <= day <= own.end:
        return SchoolYear(own.start, own.end)
    return starting(day.year if day >= date(day.year, 8, 1) else day.year - 1, config)


def stored(cur, customer: str) -> SchoolYear | None:
    """The active school year, once an import set it."""
    cur.execute(
        "SELECT start_date, end_date FROM sis.school_years WHERE customer = %s"
        " ORDER BY set_at DESC, start_date DESC LIMIT 1",
        (customer,),
    )
    row = cur.fetchone()
    return SchoolYear(*row) if row else None


def active(cur, customer: str, config: CustomerConfig, day: date) -> SchoolYear:
    """The stored active school year; before the first import, the one ``day`` falls in."""
    return stored(cur, customer) or containing(day, config)


def record(cur, customer: str, year: SchoolYear, run_id: int | None) -> bool:
    """Make ``year`` the active one (a committed rollover, or the first import); returns
    whether it changed."""
    now = stored(cur, customer)
    if now == year:
        return False
    cur.execute(
        "INSERT INTO sis.school_years (customer, label, start_date, end_date, run_id)"
        " VALUES (%s, %s, %s, %s, %s)",
        (customer, year.label, year.start, year.end, run_id),
    )
    return True


def following(year: SchoolYear, config: CustomerConfig) -> SchoolYear:
    """The school year after ``year``: what a rollover goes into unless told otherwise."""
    return starting(year.start.year + 1, config)


def earliest_rollover(
    config: CustomerConfig, current: SchoolYear, target: SchoolYear | None = None
) -> date:
    """The first day the rollover from ``current`` into ``target`` (default: the year after
    it) is allowed: 1 August of the target's first year; on Visma Flyt Skole, the day after
    the current school year ended. The one rule for the run, the email and the calendar."""
    target = target or following(current, config)
    if config.sis_vendor == SisVendor.VISMA_FLYT_SKOLE:
        return min(current.end + timedelta(days=1), date(target.start.year, 8, 1))
    return date(target.start.year, 8, 1)
