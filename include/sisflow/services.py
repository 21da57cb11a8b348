"""What a run uses from outside the import database: the email sender and the clock.

Both doors build them with :meth:`Services.from_environment`, from the same settings and the
same Airflow connections, so that a customer gets the same email through ``sisflow run`` as
through its DAG:

- SendGrid when the Airflow connection ``sisflow_sendgrid`` exists (with a password),
- else SMTP when ``sisflow_smtp`` exists (a relay, or a development mail catcher),
- else the outbox, ``$SISFLOW_HOME/outbox/<customer>/``.

Outside a task the command line looks the connections up only where Airflow could hold them:
an ``AIRFLOW_CONN_SISFLOW_*`` variable or Airflow's metadata database
(``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN``). Otherwise it does not import Airflow, which costs a
second or two per command.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from .config import CustomerConfig
from .report.email import Mail, Outbox, SendGrid, Smtp


class Sender(Protocol):
    def send(self, report: Mail) -> str: ...


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Services:
    sender: Sender = field(default_factory=Outbox)
    clock: Callable[[], datetime] = _now
    #: customer files given as they are (a test's, the benchmark's); others are read from the
    #: customers folder, once per run
    configs: dict[str, CustomerConfig] = field(default_factory=dict)

    @classmethod
    def from_environment(cls) -> Services:
        return cls(sender=configured_sender())

    def config(self, customer: str) -> CustomerConfig:
        """The customer's file: an invalid one is an :class:`~sisflow.errors.InvalidCustomer`
        refusal."""
        if customer in self.configs:
            return self.configs[customer]
        from .pipeline.plan import customer_config

        return customer_config(customer)

    def config_or_placeholder(self, customer: str) -> CustomerConfig:
        """The customer's file, or a stand-in that lets a refusal's email say why it is
        invalid."""
        from .errors import InvalidCustomer

        try:
            return self.config(customer)
        except InvalidCustomer:
            return CustomerConfig(id="invalid-customer")


def _airflow_may_hold_connections() -> bool:
    return (
        "airflow" in sys.modules
        or bool(os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"))
        or any(key.startswith("AIRFLOW_CONN_SISFLOW_") and v for key, v in os.environ.items())
    )


def configured_sender() -> Sender:
    """The sender the Airflow connections configure (see the module's docstring)."""
    if not _airflow_may_hold_connections():
        return Outbox()
    from .airflow_connections import sendgrid_settings, smtp_settings

    settings = sendgrid_settings()
    if settings and settings["api_key"]:
        extra = {"from_email": settings["from_email"]} if settings["from_email"] else {}
        return SendGrid(settings["api_key"], host=settings["host"], **extra)
    settings = smtp_settings()
    if settings:
        login = (settings["user"], settings["password"] or "") if settings["user"] else None
        return Smtp(
            settings["host"],
            settings["port"],
            login=login,
            starttls=settings["starttls"],
            **({"from_email": settings["from_email"]} if settings["from_email"] else {}),
        )
    return Outbox()
