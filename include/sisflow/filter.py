"""The filter: a safety valve that holds a run whose change set is larger than it should be.

Thresholds are set per entity (person, group, membership) and operation (create, update,
delete), as a count and/or a percentage of the customer's current size (either trips). A guard
holds a full file that is empty or much smaller than what the customer has now. There is a
strict default profile and a separate, wider one for rollover runs. The verdict lists every rule
that tripped with its actual value, limit and base, so the status email can say why.

Only a person can say that a held change is right: the decision (opened, rejected, or expired
at the deadline) is stored once per run, whichever way it was made.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from .config import FilterProfile

ENTITIES = ("person", "group", "membership")
OPS = ("create", "update", "delete")


@dataclass(frozen=True)
class Trip:
    entity: str
    op: str  # create, update, delete, or "size" for the guard
    kind: str  # count, percent or guard
    actual: float
    limit: float
    base: int

    def describe(self) -> str:
        if self.kind == "guard":
            return (f"the file holds {int(self.actual)} {self.entity}s, "
                    f"{100 * self.actual / self.base:.0f}% of the {self.base} there are now "
                    f"(at least {self.limit:g}% expected)")
        if self.kind == "percent":
            return (f"{self.entity} {self.op}: {100 * self.actual / self.base:.1f}% of {self.base}"
                    f" ({int(self.actual)}) is over the limit of {self.limit:g}%")
        return f"{self.entity} {self.op}: {int(self.actual)} is over the limit of {int(self.limit)}"


@dataclass(frozen=True)
class Verdict:
    profile: str
    trips: tuple[Trip, ...]

    @property
    def passed(self) -> bool:
        return not self.trips

    def as_dict(self) -> dict:
        return {"profile": self.profile, "passed": self.passed,
                "trips": [{**asdict(t), "text": t.describe()} for t in self.trips]}


def judge(counts: dict, base: dict[str, int], kept: dict[str, int] | None,
          profile: FilterProfile, profile_name: str) -> Verdict:
    """Judge a change set. ``base``: the current size per entity; ``kept``: the records of a
    full file that were kept (None for a delta file, which the size guard does not concern)."""
    trips = []
    for entity in ENTITIES:
        limits = getattr(profile, entity)
        for op in OPS:
            limit = getattr(limits, op)
            if limit is None:
                continue
            n = counts.get(entity, {}).get(op, 0)
            if limit.count is not None and n > limit.count:
                trips.append(Trip(entity, op, "count", n, limit.count, base[entity]))
            share = 100 * n / base[entity] if base[entity] else 0.0
            if limit.percent is not None and base[entity] and share > limit.percent:
                trips.append(Trip(entity, op, "percent", n, limit.percent, base[entity]))
    if kept is not None:
        for entity in ("person", "group"):
            if base[entity] and 100 * kept[entity] / base[entity] < profile.min_share:
                trips.append(Trip(entity, "size", "guard", kept[entity], profile.min_share,
                                  base[entity]))
    return Verdict(profile_name, tuple(trips))


def record_decision(cur, run_id: int, decision: str, *, by: str | None, reason: str | None,
                    via: str, at: datetime | None = None) -> dict:
    """Store the decision on a held run, once: the first decision stands. Returns the stored one."""
    cur.execute(
        "INSERT INTO sis.filter_decisions (run_id, decision, decided_by, reason, via, decided_at)"
        " VALUES (%s, %s, %s, %s, %s, COALESCE(%s, now())) ON CONFLICT (run_id) DO NOTHING",
        (run_id, decision, by, reason, via, at),
    )
    return stored_decision(cur, run_id)


def stored_decision(cur, run_id: int) -> dict | None:
    cur.execute(
        "SELECT decision, decided_by, decided_at, reason, via FROM sis.filter_decisions"
        " WHERE run_id = %s",
        (run_id,),
    )
    row = cur.fetchone()
    if row is None:
        return None
    return dict(zip(("decision", "decided_by", "decided_at", "reason", "via"), row, strict=True))
