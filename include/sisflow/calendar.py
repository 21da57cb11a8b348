"""A customer's state on a date: normal, paused, or delay delete (until when)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from .config import CustomerConfig

OSLO = ZoneInfo("Europe/Oslo")

NORMAL, PAUSED, DELAY_DELETE = "normal", "paused", "delay-delete"


@dataclass(frozen=True)
class CalendarState:
    mode: str
    until: date | None = None  # the last day of the window, inclusive


def today() -> date:
    return datetime.now(OSLO).date()


def state_on(config: CustomerConfig, day: date) -> CalendarState:
    for window in config.pause:
        if day in window:
            return CalendarState(PAUSED, window.end)
    for window in config.delay_delete:
        if day in window:
            return CalendarState(DELAY_DELETE, window.end)
    return CalendarState(NORMAL)
