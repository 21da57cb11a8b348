"""A customer's calendar: its state on a date, its school year and its earliest rollover.

Dates are Europe/Oslo dates; a window's start and end days are both inside it. The school year
runs from 1 August to 31 July unless the customer's file gives its own. This year's rollover is
allowed from 1 August; customers on Visma Flyt Skole may roll over from the day after their
school year ends (they set ``school_year``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from .config import CustomerConfig, SisVendor, Window

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
    school_year: Window
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


def school_year_on(config: CustomerConfig, day: date) -> Window:
    if config.school_year and day <= config.school_year.end:
        return config.school_year
    start_year = day.year if day >= date(day.year, 8, 1) else day.year - 1
    return Window(start=date(start_year, 8, 1), end=date(start_year + 1, 7, 31))


def earliest_rollover(config: CustomerConfig, day: date) -> date:
    """The first day this year's rollover is allowed (it may lie behind ``day``)."""
    year = config.school_year
    if config.sis_vendor == SisVendor.VISMA_FLYT_SKOLE and year and day >= year.start:
        return year.end + timedelta(days=1)
    return date(day.year, 8, 1)


def state_on(config: CustomerConfig, day: date) -> CalendarState:
    mode, until = NORMAL, None
    for window in config.pause:
        if day in window:
            mode, until = PAUSED, window.end
    for window in config.delay_delete:
        if day in window:
            mode, until = DELAY_DELETE, window.end
    return CalendarState(mode, until, school_year_on(config, day), earliest_rollover(config, day))


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
