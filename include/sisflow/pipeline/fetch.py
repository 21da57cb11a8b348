"""The second phase: the file to import, in the customer's landing zone."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from .. import school_year
from ..config import CustomerConfig
from ..errors import FileNotAllowed
from .plan import Plan


def fetch(plan: Plan, config: CustomerConfig, file: str | None = None) -> str:
    """``file`` when given (a door that takes a file from someone it does not trust passes it
    through :func:`confine` first), else the newest export from the customer's source."""
    from ..sources import folder, http_trigger, sftp

    source = config.source
    if file:
        return str(folder.fetch(plan.customer, source, file))
    if source is None:
        raise folder.NothingToFetch(f"{plan.customer} has no source: give a file")
    if source.kind == "folder":
        return folder.fetch(plan.customer, source)
    assert source.conn_id, "the customer file's schema requires a connection for sftp and http"
    if source.kind == "sftp":
        from ..airflow_connections import sftp_client

        with sftp_client(source.conn_id) as client:
            return sftp.fetch(plan.customer, source, client)
    from ..airflow_connections import HttpSource

    year = _year_of(plan, config)
    plan.fetched = {"school_year": http_trigger.school_year_label(year)}
    return http_trigger.fetch(plan.customer, source, HttpSource(source.conn_id), year)


def _year_of(plan: Plan, config: CustomerConfig) -> school_year.SchoolYear:
    if plan.school_year:
        return school_year.SchoolYear.from_dict(plan.school_year)
    return school_year.containing(date.fromisoformat(plan.day), config)  # a plan from before


def confine(customer: str, config: CustomerConfig, file: str) -> str:
    """A file named in an Airflow form, inside the customer's landing zone or source folder;
    :class:`~sisflow.errors.FileNotAllowed` otherwise, before anything is read: the form is no
    way to read another customer's export or the server's files."""
    from ..sources import folder, landing

    landed = landing.within(customer, file)
    if landed is not None:
        return landed
    source = config.source
    if source and source.kind == "folder" and source.path and "://" not in file:
        real = folder.inside(Path(file), Path(source.path))
        if real is not None:
            return str(real)
    raise FileNotAllowed(
        f"{file} is outside {customer}'s source folder and landing zone: refused, nothing "
        f"read (put the file in {landing.folder(customer)} and give its name)"
    )
