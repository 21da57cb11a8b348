"""A customer's calendar: its state on a date (normal, paused, delay delete).

Dates are Europe/Oslo dates; a window's start and end days are both inside it. The school year
and the earliest rollover shown beside the state are :mod:`sisflow.school_year`'s, for the
active school year the caller knows (the one the day falls in when it knows none).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from . import school_year as years
from .config import CustomerConfig

OSLO = ZoneInfo("Europe/Oslo")


class Mode(StrEnum):
    """What the calendar allows on a day."""

    NORMAL = "normal"
    PAUSED = "paused"  # nothing is fetched, nothing changes in the LMS
    DELAY_DELETE = "delay-delete"  # deletions wait; creations and updates go through


NORMAL, PAUSED, DELAY_DELETE = Mode.NORMAL, Mode.PAUSED, Mode.DELAY_DELETE


@dataclass(frozen=True)
class CalendarState:
    mode: Mode
    until: date | None  # the last day of the window, inclusive
    school_year: years.SchoolYear  # the active one
    earliest_rollover: date

    def as_dict(self) -> dict:
        return {
            "mode": str(self.mode),
            "until": self.until.isoformat() if self.until else None,
            "school_year": [self.school_year.start.isoformat(), self.school_year.end.isoformat()],
            "earliest_rollover": self.earliest_rollover.isoformat(),
        }


def today() -> date:
    return datetime.now(OSLO).date()


def day_of(moment: datetime, config: CustomerConfig) -> date:
    """The customer's calendar day at a moment (an Airflow run's logical date, say)."""
    return moment.astimezone(ZoneInfo(config.schedule.timezone)).date()


def state_on(
    config: CustomerConfig, day: date, active: years.SchoolYear | None = None
) -> CalendarState:
    """The calendar on ``day``, beside the active school year (``active``; before the first
    import, the one ``day`` falls in) and the earliest day of the rollover after it."""
    mode, until = NORMAL, None
    for window in config.pause:
        if day in window:
            mode, until = PAUSED, window.end
    for window in config.delay_delete:
        if day in window:
            mode, until = DELAY_DELETE, window.end
    year = active or years.containing(day, config)
    return CalendarState(mode, until, year, years.earliest_rollover(config, year))


def outlook(config: CustomerConfig, start: date, days: int = 120) -> list[tuple[date, date, str]]:
    """The coming ``days`` as runs of equal mode: (first day, last day, mode)."""
    spans: list[tuple[date, date, str]] = []
    for offset in range(days):
        day = start + timedelta(days=offset)
        mode = state_on(config, day).mode
        if spans and spans[-1][2] == mode:
            spans[-1] = (spans[-1][0], day, mode)
        else:
            spans.append((day, day, mode))
    return spans


def next_run(config: CustomerConfig, after: datetime | None = None) -> datetime:
    """When the customer's import runs next, in its time zone."""
    from croniter import croniter

    tz = ZoneInfo(config.schedule.timezone)
    return croniter(config.schedule.cron, (after or datetime.now(tz)).astimezone(tz)).get_next(
        datetime
    )
