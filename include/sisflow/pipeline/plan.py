"""What a run is asked to do (:class:`Request`), who runs it (:class:`Holder`), and what it
was found to be when it began (:class:`Plan`, which travels between the phases and over XCom)."""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import asdict, dataclass, field
from datetime import date
from enum import StrEnum

from ..config import ConfigError, CustomerConfig, load_for_run
from ..errors import InvalidCustomer


class Kind(StrEnum):
    IMPORT = "import"  # on the customer's schedule
    ROLLOVER = "rollover"  # by hand: into the next school year, with the rollover profile


@dataclass(frozen=True)
class Request:
    """A run as a person or a schedule asks for it, whichever door it comes through."""

    customer: str
    file: str | None = None  # import this file instead of fetching the newest export
    on: date | None = None  # the calendar's date (default: today in Europe/Oslo)
    kind: Kind = Kind.IMPORT
    dry_run: bool = False  # compute and judge, apply nothing
    school_year: str | None = None  # a rollover's target (default: after the active one)
    override: bool = False  # a rollover goes on despite blocking readiness findings
    #: import a file older than the one the current state comes from (a person checked it)
    accept_older: bool = False

    def __post_init__(self):
        object.__setattr__(self, "kind", Kind(self.kind))
        if self.file is not None:
            object.__setattr__(self, "file", os.fspath(self.file))


@dataclass(frozen=True)
class Holder:
    """Who holds the customer's lease for a run: a ``sisflow`` process (the lease ends with
    its database session), or an Airflow DAG run (the same for every task and retry)."""

    id: str
    description: str  # in words, for the email of a run turned away as busy

    @classmethod
    def this_process(cls) -> Holder:
        host, pid = socket.gethostname(), os.getpid()
        return cls(f"cli:{host}:{pid}:{uuid.uuid4().hex[:8]}", f"sisflow on {host} (pid {pid})")

    @classmethod
    def airflow_run(cls, dag_id: str, run_id: str) -> Holder:
        return cls(f"airflow:{dag_id}:{run_id}", f"Airflow {dag_id} run {run_id}")

    @staticmethod
    def is_process(holder: str) -> bool:
        return holder.startswith("cli:")


@dataclass
class Plan:
    """What a run was found to be when it began (date, calendar mode, school year, lease
    holder); the phases add what they learn (the run id, its status, the HELD email)."""

    customer: str
    kind: str  # a Kind
    day: str  # the calendar's date, ISO
    mode: str  # a calendar.Mode
    dry_run: bool
    holder: str  # who holds the customer's lease for this run
    description: str  # the holder in words, for a busy email
    calendar: dict
    airflow: dict | None = None  # dag_id, run_id, url
    run_id: int | None = None
    status: str | None = None
    outcome: str | None = None  # set when the run ends early on purpose: paused
    #: earlier runs whose LMS apply this run finished: [{"run": id, "changes": n}]
    finished: list[dict] = field(default_factory=list)
    held_email: dict | None = None  # the HELD email, when this run was held
    fetched: dict | None = None  # what the fetch asked for: {"school_year": "2025-2026"}
    #: the school year the run works in: the active one, or the one a rollover switches to
    school_year: dict | None = None
    override: bool = False  # rollover: go on despite blocking readiness findings
    #: import a file older than the one the current state comes from (a person checked it)
    accept_older: bool = False
    readiness: dict | None = None  # rollover: the readiness findings' summary

    @property
    def rollover(self) -> bool:
        return self.kind == Kind.ROLLOVER

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Plan:
        return cls(**data)


@dataclass(frozen=True)
class Ending:
    """How a run ended when it did not end as planned: a refusal on purpose (its
    ``as_dict``), or a failure in a task (``{"task": ..., "reason": ...}``)."""

    refusal: dict | None = None
    failed: dict | None = None


def customer_config(customer: str) -> CustomerConfig:
    """The customer's file as it is now; a malformed id or an invalid file is an
    :class:`~sisflow.errors.InvalidCustomer` refusal. Read once per run (or per task)."""
    try:
        return load_for_run(customer)  # the id is checked before any file is opened
    except ConfigError as err:
        raise InvalidCustomer(str(err)) from None
