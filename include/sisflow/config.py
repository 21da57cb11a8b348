"""Per-customer configuration: one YAML file per customer, validated with pydantic.

The customers folder is ``SISFLOW_CUSTOMERS_DIR``, else ``customers/`` in the project.
Secrets never live here: connections and keys come from Airflow or the environment.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

PROJECT = Path(__file__).resolve().parents[2]
CUSTOMER_ID = r"^[a-z0-9][a-z0-9_-]{0,62}$"


class Window(BaseModel):
    """A period of days; both ends are included (Europe/Oslo dates)."""

    model_config = ConfigDict(extra="forbid")
    start: date
    end: date

    @model_validator(mode="after")
    def _ordered(self):
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self

    def __contains__(self, day: date) -> bool:
        return self.start <= day <= self.end


class CustomerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Annotated[str, Field(pattern=CUSTOMER_ID)]
    name: str | None = None
    #: archive an integration-created course whose group left the file (else: detach it)
    course_archiving: bool = True
    #: deletions reach the import database but are held back from the LMS
    delay_delete: list[Window] = []
    #: nothing is fetched and nothing changes in the LMS
    pause: list[Window] = []


def customers_dir() -> Path:
    return Path(os.environ.get("SISFLOW_CUSTOMERS_DIR") or PROJECT / "customers")


def load_customer(customer: str, folder: Path | None = None) -> CustomerConfig:
    """The customer's configuration; a customer without a file gets the defaults."""
    path = (folder or customers_dir()) / f"{customer}.yaml"
    if not path.exists():
        return CustomerConfig(id=customer)
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    data.setdefault("id", customer)
    return CustomerConfig.model_validate(data)
