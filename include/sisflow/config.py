"""Per-customer configuration: one YAML file per customer, validated with pydantic.

The customers folder is ``SISFLOW_CUSTOMERS_DIR``, else ``customers/`` in the project. Secrets
never live here: a source names an Airflow connection id, and the connection holds the
credentials. ``customers/customer.schema.json`` is the JSON Schema for editors
(``sisflow config schema`` writes it).
"""

from __future__ import annotations

import os
import re
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

PROJECT = Path(__file__).resolve().parents[2]
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
CUSTOMER_ID = r"^[a-z0-9][a-z0-9_-]{0,62}$"
#: a plain address, nothing a mail header could be bent with (no display name, no brackets,
#: no spaces or line breaks)
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
EMAIL = rf"^[A-Za-z0-9.!#$%&'*+/=?^_`{{|}}~-]+@{_LABEL}(?:\.{_LABEL})+$"
#: control characters and line or paragraph separators: never in a name that goes into a subject
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u0085]")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Window(_Strict):
    """A period of days; both ends are included (Europe/Oslo dates)."""

    start: date
    end: date

    @model_validator(mode="after")
    def _ordered(self):
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self

    def __contains__(self, day: date) -> bool:
        return self.start <= day <= self.end

    def overlaps(self, other: Window) -> bool:
        return self.start <= other.end and other.start <= self.end


class SisVendor(StrEnum):
    VISMA_FLYT_SKOLE = "Visma Flyt Skole"
    IST_EXTENS = "IST Extens"
    IST_EVERYDAY = "IST Everyday"
    SKOLEADMIN = "SkoleAdmin/Hypernet"
    OTHER = "other"


class Source(_Strict):
    """Where the SIS export is fetched: a folder, an SFTP server or an HTTP trigger."""

    kind: Literal["folder", "sftp", "http"] = "folder"
    conn_id: str | None = Field(None, description="Airflow connection id (credentials live there)")
    path: str | None = Field(None, description="folder, or remote folder (or file) for sftp")
    pattern: str = Field("*.xml", description="which files in the folder are exports")
    url: str | None = Field(None, description="endpoint path of the export requests, for http")
    done_marker: bool = Field(
        False, description="an export is complete when <name>.done exists next to it"
    )
    stable_seconds: Annotated[float, Field(ge=0)] = Field(
        5, description="without a done-marker: complete when the size holds this long"
    )
    poll_seconds: Annotated[float, Field(gt=0)] = Field(
        30, description="http: how often to ask whether the export is ready"
    )
    ready_minutes: Annotated[float, Field(gt=0)] = Field(
        60, description="http: how long to wait for the export before the fetch fails"
    )

    @model_validator(mode="after")
    def _complete(self):
        if self.kind == "folder" and not self.path:
            raise ValueError("a folder source needs a path")
        if self.kind == "sftp" and not (self.conn_id and self.path):
            raise ValueError("an sftp source needs a conn_id and a path")
        if self.kind == "http" and not (self.conn_id and self.url):
            raise ValueError(
                "an http source needs a conn_id (the SIS's host and credentials) "
                "and a url (the endpoint path of the export requests)"
            )
        return self


class Schedule(_Strict):
    cron: str = Field("0 5 * * *", description="when the import runs, five-field cron")
    timezone: Literal["Europe/Oslo"] = "Europe/Oslo"

    @model_validator(mode="after")
    def _cron(self):
        from croniter import croniter

        if len(self.cron.split()) != 5 or not croniter.is_valid(self.cron):
            raise ValueError(f"cron '{self.cron}' is not a valid five-field cron expression")
        return self


class Limit(_Strict):
    """A threshold as a count, a percentage of the current size, or both (either trips)."""

    count: Annotated[int, Field(ge=0)] | None = None
    percent: Annotated[float, Field(ge=0)] | None = None


class EntityLimits(_Strict):
    create: Limit | None = None
    update: Limit | None = None
    delete: Limit | None = None


class FilterProfile(_Strict):
    person: EntityLimits = EntityLimits()
    group: EntityLimits = EntityLimits()
    membership: EntityLimits = EntityLimits()
    #: the guard against an empty or nearly empty file: it must hold at least this share of
    #: the persons (and groups) the customer has now
    min_share: Annotated[float, Field(ge=0, le=100)] = 50.0


def _strict_profile() -> FilterProfile:
    return FilterProfile(
        person=EntityLimits(
            update=Limit(count=500, percent=10), delete=Limit(count=200, percent=5)
        ),
        group=EntityLimits(delete=Limit(count=50, percent=10)),
        membership=EntityLimits(delete=Limit(count=2000, percent=10)),
        min_share=80,
    )


def _rollover_profile() -> FilterProfile:
    # at rollover most classes and teaching groups are replaced by new ones: what is guarded is
    # losing people, and a file from the wrong year or an empty one (min_share)
    return FilterProfile(
        person=EntityLimits(update=Limit(percent=60), delete=Limit(percent=25)),
        min_share=60,
    )


class FilterConfig(_Strict):
    default: FilterProfile = Field(default_factory=_strict_profile)
    rollover: FilterProfile = Field(default_factory=_rollover_profile)
    #: a held run that nobody opens or rejects within this many hours is aborted
    deadline_hours: Annotated[float, Field(gt=0)] = 48


def _plain_name(value: str | None) -> str | None:
    if value is not None and (_CONTROL.search(value) or len(value) > 200):
        raise ValueError(
            "a name is one line of at most 200 characters, without control "
            "characters or line separators"
        )
    return value


class CustomerConfig(_Strict):
    id: Annotated[str, Field(pattern=CUSTOMER_ID)]
    name: Annotated[str | None, AfterValidator(_plain_name)] = None
    sis_vendor: SisVendor = SisVendor.OTHER
    source: Source | None = None
    schedule: Schedule = Schedule()
    #: the active school year, e.g. {start: 2025-08-15, end: 2026-06-19}
    school_year: Window | None = None
    #: nothing is fetched and nothing changes in the LMS, not even creations
    pause: list[Window] = []
    #: deletions reach the import database but are held back from the LMS
    delay_delete: list[Window] = []
    #: summer teaching: the integration cannot be paused
    summer_school: bool = False
    #: days the readiness DAG runs by itself (06:00 Europe/Oslo), before the school year ends
    readiness_on: list[date] = []
    filter: FilterConfig = FilterConfig()
    #: archive an integration-created course whose group left the file (else: detach it)
    course_archiving: bool = True
    recipients: list[Annotated[str, Field(pattern=EMAIL)]] = []
    inactive_months: Literal[6, 12] = 12
    #: what a file whose properties/type is missing or unknown is (with a warning each time)
    file_type: Literal["full", "delta"] = "full"
    #: fetched exports stay this many days in the landing zone (the newest ones always stay)
    landing_days: Annotated[float, Field(gt=0)] = 30
    #: school days (weekdays outside the pause windows) without a new export before the
    #: operations page and the daily digest raise an alert
    missing_export_days: Annotated[int, Field(ge=1)] = 3

    @model_validator(mode="after")
    def _calendar(self):
        if self.summer_school and self.pause:
            raise ValueError("a summer-school customer cannot be paused: remove the pause windows")
        windows = [("pause", w) for w in self.pause] + [
            ("delay_delete", w) for w in self.delay_delete
        ]
        for i, (kind_a, a) in enumerate(windows):
            for kind_b, b in windows[i + 1 :]:
                if a.overlaps(b):
                    raise ValueError(
                        f"{kind_a} {a.start}..{a.end} overlaps {kind_b} {b.start}..{b.end}"
                    )
        return self


class ConfigError(Exception):
    """A customer file is not valid: the message names the file, the field and the reason."""

    def __init__(self, path: Path, problems: list[str]):
        self.path, self.problems = path, problems
        super().__init__(f"{path}: " + "; ".join(problems))


def customers_dir() -> Path:
    return Path(os.environ.get("SISFLOW_CUSTOMERS_DIR") or PROJECT / "customers")


def _parse(path: Path, customer: str) -> CustomerConfig:
    try:
        # libyaml's loader when the wheel has it: 500 customer files parse in a DAG file
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_LOADER) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        problem = getattr(err, "problem", err)
        raise ConfigError(path, [f"{where}not valid YAML: {problem}"]) from None
    if not isinstance(data, dict):
        raise ConfigError(path, ["the file must hold a mapping of settings"])
    data.setdefault("id", customer)
    if data["id"] != customer:
        raise ConfigError(path, [f"id: '{data['id']}' differs from the file name '{customer}'"])
    try:
        return CustomerConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(
            path,
            [f"{'.'.join(str(p) for p in e['loc']) or '(file)'}: {e['msg']}" for e in err.errors()],
        ) from None


def check_id(customer: str) -> None:
    """A customer id names a file in the customers folder: checked before any file is opened."""
    if not isinstance(customer, str) or not re.match(CUSTOMER_ID, customer):
        raise ConfigError(
            Path(f"{customer}"),
            ["not a customer id: use lower-case letters, digits, '-' and '_' (at most 63)"],
        )


def load_customer(customer: str, folder: Path | None = None) -> CustomerConfig:
    """The customer's configuration; a customer without a file gets the defaults."""
    check_id(customer)
    path = (folder or customers_dir()) / f"{customer}.yaml"
    if not path.exists():
        return CustomerConfig(id=customer)
    return _parse(path, customer)


def load_for_run(customer: str) -> CustomerConfig:
    """The customer's configuration for a run, refused wherever ``sisflow config check``
    refuses it: an invalid file, or a source folder that overlaps another customer's (a run of
    either could read the other's export)."""
    config = load_customer(customer)
    if config.source and config.source.kind == "folder" and config.source.path:
        refused = next((e for e in load_all()[1] if e.path.stem == customer), None)
        if refused is not None:
            raise refused
    return config


def load_all(folder: Path | None = None) -> tuple[list[CustomerConfig], list[ConfigError]]:
    """Every customer file in the folder: the valid ones, and the errors of the others (a
    broken file never stops the rest from loading). Two customers whose source folders overlap
    are both errors: one customer's run could read the other's export."""
    configs, errors = [], []
    for path in sorted((folder or customers_dir()).glob("*.yaml")):
        try:
            configs.append(_parse(path, path.stem))
        except ConfigError as err:
            errors.append(err)
    overlapping = _overlapping_sources(configs)
    for config in [c for c in configs if c.id in overlapping]:
        configs.remove(config)
        errors.append(
            ConfigError((folder or customers_dir()) / f"{config.id}.yaml", [overlapping[config.id]])
        )
    return configs, errors


def _overlapping_sources(configs: list[CustomerConfig]) -> dict[str, str]:
    """Customers whose source folders are the same or one inside the other. Sorted by their
    path parts, a folder comes right after the folders that contain it, so one pass with a
    stack of the folders still open finds every overlap (the DAG file runs this at parse)."""
    folders = sorted(
        (Path(c.source.path).expanduser().resolve().parts, c.id)
        for c in configs
        if c.source and c.source.kind == "folder" and c.source.path
    )
    found: dict[str, str] = {}
    open_folders: list[tuple[tuple[str, ...], str]] = []
    for parts, customer in folders:
        while open_folders and open_folders[-1][0] != parts[: len(open_folders[-1][0])]:
            open_folders.pop()
        if open_folders:
            outer_parts, outer = open_folders[-1]
            inner_path, outer_path = Path(*parts), Path(*outer_parts)
            found.setdefault(
                customer,
                f"source.path {inner_path} overlaps the source folder "
                f"of customer '{outer}' ({outer_path})",
            )
            found.setdefault(
                outer,
                f"source.path {outer_path} overlaps the source folder of "
                f"customer '{customer}' ({inner_path})",
            )
        open_folders.append((parts, customer))
    return found


def json_schema() -> dict:
    schema = CustomerConfig.model_json_schema()
    schema["title"] = "sisflow customer"
    return schema
