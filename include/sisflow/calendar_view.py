"""The customers' calendars as text (one customer) or as an HTML picture (all of them): one row
per customer, one cell per day, coloured by state, with the earliest rollover marked."""

from __future__ import annotations

from datetime import date, timedelta
from html import escape

from .calendar import DELAY_DELETE, NORMAL, PAUSED, outlook, state_on
from .config import CustomerConfig

COLOURS = {NORMAL: "#dfeedd", PAUSED: "#f4c7c3", DELAY_DELETE: "#fce8b2"}


def as_text(config: CustomerConfig, start: date, days: int) -> str:
    state = state_on(config, start)
    lines = [
        f"{config.id} ({config.name or config.id}), from {start}:",
        f"  school year {state.school_year.start} to {state.school_year.end}; "
        f"rollover allowed from {state.earliest_rollover}",
    ]
    lines += [f"  {a} to {b}  {mode}" for a, b, mode in outlook(config, start, days)]
    return "\n".join(lines)


def as_html(configs: list[CustomerConfig], start: date, days: int) -> str:
    dates = [start + timedelta(days=i) for i in range(days)]
    head = "".join(
        f'<th class="m">{d:%b}</th>' if d.day == 1 or i == 0 else "<th></th>"
        for i, d in enumerate(dates)
    )
    rows = []
    for config in configs:
        rollover = state_on(config, start).earliest_rollover
        cells = []
        for d in dates:
            mode = state_on(config, d).mode
            mark = " r" if d == rollover else ""
            cells.append(f'<td class="{mode}{mark}" title="{d} {mode}"></td>')
        rows.append(
            f"<tr><th class='name'>{escape(config.name or config.id)}</th>"
            + "".join(cells)
            + "</tr>"
        )
    legend = "".join(
        f'<span class="key" style="background:{c}"></span>{m} ' for m, c in COLOURS.items()
    )
    style = "".join(f"td.{m}{{background:{c}}}" for m, c in COLOURS.items())
    return f"""<!doctype html><html lang="no"><meta charset="utf-8">
<title>sisflow calendars from {start}</title>
<style>body{{font:14px system-ui,sans-serif;margin:1.5em}}table{{border-collapse:collapse}}
td{{width:6px;height:22px;padding:0}}th.name{{text-align:left;padding-right:1em;
white-space:nowrap}}th.m{{font-weight:normal;text-align:left}}{style}
td.r{{box-shadow:inset 2px 0 0 #1a4d8f}}.key{{display:inline-block;width:1em;height:1em;
margin:0 .3em 0 1em;vertical-align:middle}}</style>
<h1>Customer calendars, {start} to {dates[-1]}</h1>
<p>{legend}<span class="key" style="box-shadow:inset 3px 0 0 #1a4d8f"></span>earliest rollover</p>
<table><tr><th></th>{head}</tr>{"".join(rows)}</table></html>
"""
