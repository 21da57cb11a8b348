"""An HTTP trigger source: sisflow asks the SIS for an export of the customer's active school
year, waits until it is ready, then downloads it (IST Extens/Sats, IST Everyday,
SkoleAdmin/Hypernet and others export on request; docs/rules.md, rule 12).

The exchange, relative to the source's ``url`` on the connection's host:

    POST {url}                 {"customer": ..., "school_year": "2025-2026",
                                "start": "2025-08-01", "end": "2026-07-31"}  -> {"id": ...}
    GET  {url}/{id}            -> {"status": "pending" | "ready" | "failed", "name": ...,
                                   "reason": ...}
    GET  {url}/{id}/file       -> the export

The school year asked for is the one the customer's calendar says is active on the run's date,
so it changes only when the calendar's school year does (at rollover); the status email shows
which one was asked for. The client is the HTTP provider's hook behind a small adapter
(:func:`sisflow.airflow_connections.http_source`): ``post_json``, ``get_json``, ``download``.
"""

from __future__ import annotations

import time
from pathlib import Path

from . import landing
from .complete import SourceError


def school_year_label(window) -> str:
    return f"{window.start.year}-{window.end.year}"


def fetch(
    customer: str, source, client, school_year, *, sleep=time.sleep, clock=time.monotonic
) -> str:
    url = source.url.rstrip("/")
    label = school_year_label(school_year)
    answer = client.post_json(
        url,
        {
            "customer": customer,
            "school_year": label,
            "start": school_year.start.isoformat(),
            "end": school_year.end.isoformat(),
        },
    )
    export_id = answer.get("id") if isinstance(answer, dict) else None
    if not export_id:
        raise SourceError(f"the SIS did not accept the export request for school year {label}")
    deadline = clock() + source.ready_minutes * 60
    while True:
        status = client.get_json(f"{url}/{export_id}")
        state = (status or {}).get("status")
        if state == "ready":
            break
        if state == "failed":
            raise SourceError(
                f"the SIS could not make export {export_id} (school year {label}):"
                f" {status.get('reason') or 'no reason given'}"
            )
        if clock() >= deadline:
            raise SourceError(
                f"export {export_id} for school year {label} was not ready within "
                f"{source.ready_minutes:g} minutes"
            )
        sleep(source.poll_seconds)
    name = Path(status.get("name") or f"{customer}-{label}-{export_id}.xml").name
    return landing.land(customer, name, lambda f: client.download(f"{url}/{export_id}/file", f))
