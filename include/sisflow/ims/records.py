"""The records an IMS Enterprise file carries, as flat tuples.

They are NamedTuples on purpose: a large export holds a million memberships, and a tuple is
the cheapest object Python makes that the staging step can hand to ``csv.writer`` as it is.
Field order is the column order of the staging tables (see ``db/migrations``).
Dates are ISO strings, already checked by the reader; absent values are ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

#: IMS role types (``role/@roletype``).
ROLE_TYPES = {
    "01": "Learner",
    "02": "Instructor",
    "03": "Content developer",
    "04": "Member",
    "05": "Manager",
    "06": "Mentor",
    "07": "Administrator",
    "08": "Teaching assistant",
}

#: ``recstatus``: absent in full files; 1 add, 2 update, 3 delete in delta and event files.
RECSTATUS_ADD, RECSTATUS_UPDATE, RECSTATUS_DELETE = 1, 2, 3

FILE_TYPES = ("full", "delta", "event")


class Properties(NamedTuple):
    datasource: str | None
    target: str | None
    type: str  # full, delta or event
    datetime: str | None
    lang: str | None
    comments: str | None


class Person(NamedTuple):
    line: int
    recstatus: int | None
    sourcedid: str
    source: str | None
    old_ids: str | None  # JSON list of sourcedids marked sourcedidtype="Old"
    userids: str | None  # JSON list of [useridtype, value]
    fn: str | None
    family: str | None
    given: str | None
    email: str | None
    bday: str | None
    gender: str | None
    institution_role: str | None
    extension: str | None  # the <extension> element as XML, kept so nothing is lost


class Group(NamedTuple):
    line: int
    recstatus: int | None
    sourcedid: str
    source: str | None
    grouptype: str | None  # the first typevalue, e.g. "basisgruppe"
    grouptypes: str | None  # JSON list of [scheme, typevalue, level]
    short: str | None
    long: str | None
    full: str | None
    begin: str | None
    end: str | None
    parent_id: str | None  # None for a top-level organisation (which names itself)
    extension: str | None


class Membership(NamedTuple):
    """One role of one member in one group: the unit the LMS knows as a participant."""

    line: int
    recstatus: int | None
    group_id: str
    member_id: str
    idtype: int  # 1 person, 2 group
    roletype: str  # "01".."08"
    subrole: str | None
    status: int  # 1 active, 0 inactive
    begin: str | None
    end: str | None
    extension: str | None


ENTITIES = ("person", "group", "membership")
RECORD_TYPES: dict[str, type[Person] | type[Group] | type[Membership]] = {
    "person": Person,
    "group": Group,
    "membership": Membership,
}


@dataclass(frozen=True)
class Problem:
    """A problem found in a file. Never carries names, emails or birth dates: ids and lines only."""

    entity: str  # person, group, membership, or "file"
    record_id: str | None
    line: int | None
    reason: str
    severity: str = "error"  # error: the record was skipped; warning: kept as it is

    def as_dict(self) -> dict:
        return {
            "entity": self.entity,
            "id": self.record_id,
            "line": self.line,
            "reason": self.reason,
            "severity": self.severity,
        }


@dataclass
class FileInfo:
    path: str
    name: str
    size: int = 0
    sha256: str | None = None


@dataclass
class ValidationResult:
    """What the reader found: the file's identity, its properties, record counts and problems.

    ``fatal`` is set when the file was rejected whole; then nothing from it may be staged.
    ``problems`` keeps at most ``max_examples`` entries; ``problem_counts`` is always exact.
    """

    file: FileInfo
    properties: Properties | None = None
    fatal: Problem | None = None
    records: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ENTITIES, 0))
    skipped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ENTITIES, 0))
    problems: list[Problem] = field(default_factory=list)
    problem_counts: dict[str, int] = field(default_factory=dict)
    max_examples: int = 10_000
    #: records skipped for an error whose key is known, all of them (not only examples): their
    #: current state is kept as it is, never deleted because the file's copy was bad.
    #: (entity, id, member id or None) -> (line, reason); a membership is a group/member pair
    kept: dict[tuple[str, str | None, str | None], tuple[int | None, str]] = field(
        default_factory=dict
    )

    @property
    def ok(self) -> bool:
        return self.fatal is None

    def add(self, problem: Problem) -> None:
        key = f"{problem.severity}: {problem.entity}: {_reason_kind(problem.reason)}"
        self.problem_counts[key] = self.problem_counts.get(key, 0) + 1
        if problem.severity == "error" and problem.entity in self.skipped:
            self.skipped[problem.entity] += 1
        if len(self.problems) < self.max_examples:
            self.problems.append(problem)

    def keep(
        self,
        entity: str,
        record_id: str | None,
        member_id: str | None,
        line: int | None,
        reason: str,
    ) -> None:
        self.kept.setdefault((entity, record_id, member_id), (line, reason))

    def as_dict(self) -> dict:
        return {
            "file": {
                "path": self.file.path,
                "name": self.file.name,
                "size": self.file.size,
                "sha256": self.file.sha256,
            },
            "properties": self.properties._asdict() if self.properties else None,
            "ok": self.ok,
            "fatal": self.fatal.as_dict() if self.fatal else None,
            "records": dict(self.records),
            "skipped": dict(self.skipped),
            "problem_counts": dict(sorted(self.problem_counts.items())),
            "problems": [p.as_dict() for p in self.problems],
            "kept": len(self.kept),
        }


def _reason_kind(reason: str) -> str:
    """The stable part of a reason ("unknown roletype '09'" -> "unknown roletype")."""
    return reason.split(" '", 1)[0].split(":", 1)[0]


class FatalFileError(Exception):
    """The file is rejected whole. The message names the file, the line and the reason."""

    def __init__(self, path: str, line: int | None, reason: str):
        self.path, self.line, self.reason = path, line, reason
        where = f"{path}, line {line}" if line else path
        super().__init__(f"{where}: {reason}")
