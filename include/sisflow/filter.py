"""The filter: a safety valve that holds a run whose change set is larger than it should be.

Thresholds are set per entity (person, group, membership) and operation (create, update,
delete), as a count and/or a percentage of the customer's current size (either trips). A guard
holds a full file that is empty or much smaller than what the customer has now. There is a
strict default profile and a separate, wider one for rollover runs. The verdict lists every rule
that tripped with its actual value, limit and base, so the status email can say why.

Only a person can say that a held change is right: the decision (opened, rejected, or expired
at the deadline) is stored once per run, whichever way it was made (Airflow's approval task,
its REST API, the command line, the deadline). The same answer again is accepted quietly; a
contradicting one is refused with :class:`ContradictingDecision`, never ignored.

Which profile judges a run, and what each threshold comes to against the customer's current
size, is decided here only: the verdict, the status email's chart and the DAG's documentation
all read :func:`profile_for` and :func:`limits`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum

from .config import CustomerConfig, FilterProfile, Limit
from .errors import ContradictingDecision

ENTITIES = ("person", "group", "membership")
OPS = ("create", "update", "delete")


@dataclass(frozen=True)
class Trip:
    entity: str
    #: create, update, delete; "size" for the guard, "relink" for identity changes, "redo"
    #: for changes an undo took back
    op: str
    kind: str  # count, percent, guard, identity or undone
    actual: float
    limit: float
    base: int

    def describe(self) -> str:
        if self.kind == "identity":
            return (
                f"{self.entity} relink: {int(self.actual)} identity change(s) wait for a person"
                " (one key leaves, another arrives, and the evidence is not certain)"
            )
        if self.kind == "undone":
            return (
                f"{self.entity} redo: {int(self.actual)} change(s) would make again what an"
                " undo took back (a person decides whether they come back)"
            )
        if self.kind == "guard":
            return (
                f"the file holds {int(self.actual)} {self.entity}s, "
                f"{100 * self.actual / self.base:.0f}% of the {self.base} there are now "
                f"(at least {self.limit:g}% expected)"
            )
        if self.kind == "percent":
            return (
                f"{self.entity} {self.op}: {100 * self.actual / self.base:.1f}% of {self.base}"
                f" ({int(self.actual)}) is over the limit of {self.limit:g}%"
            )
        return f"{self.entity} {self.op}: {int(self.actual)} is over the limit of {int(self.limit)}"


@dataclass(frozen=True)
class Verdict:
    profile: str
    trips: tuple[Trip, ...]

    @property
    def passed(self) -> bool:
        return not self.trips

    def as_dict(self) -> dict:
        return {
            "profile": self.profile,
            "passed": self.passed,
            "trips": [{**asdict(t), "text": t.describe()} for t in self.trips],
        }


class Decision(StrEnum):
    """The one decision on a held run."""

    OPENED = "opened"  # a person let it through: it is applied
    REJECTED = "rejected"  # a person stopped it: aborted, nothing applied
    EXPIRED = "expired"  # nobody answered before the deadline: aborted, nothing applied


DECISIONS = tuple(Decision)


def profile_for(config: CustomerConfig, rollover: bool) -> tuple[str, FilterProfile]:
    """The profile that judges a run: the rollover profile for a rollover, else the default."""
    if rollover:
        return "rollover", config.filter.rollover
    return "default", config.filter.default


def limits(profile: FilterProfile):
    """Every configured threshold: (entity, op, limit)."""
    for entity in ENTITIES:
        for op in OPS:
            limit = getattr(getattr(profile, entity), op)
            if limit is not None and (limit.count is not None or limit.percent is not None):
                yield entity, op, limit


def cap(limit: Limit, base: int) -> float | None:
    """The most changes a limit allows against a current size of ``base`` (None: no cap)."""
    allowed = [
        x
        for x in (
            limit.count,
            base * limit.percent / 100 if limit.percent is not None and base else None,
        )
        if x is not None
    ]
    return min(allowed) if allowed else None


def judge(
    counts: dict,
    base: dict[str, int],
    kept: dict[str, int] | None,
    profile: FilterProfile,
    profile_name: str,
    undecided: dict[str, int] | None = None,
    redone: dict[str, int] | None = None,
) -> Verdict:
    """Judge a change set. ``base``: the current size per entity; ``kept``: the records of a
    full file that were kept (None for a delta file, which the size guard does not concern);
    ``undecided``: identity changes per entity that wait for a person (they hold the run
    whatever the thresholds say); ``redone``: changes per entity that an undo took back,
    made again by the first run after it (they hold the run too)."""
    trips = [
        Trip(entity, "relink", "identity", n, 0, base[entity])
        for entity, n in sorted((undecided or {}).items())
        if n
    ]
    trips += [
        Trip(entity, "redo", "undone", n, 0, base[entity])
        for entity, n in sorted((redone or {}).items())
        if n
    ]
    for entity, op, limit in limits(profile):
        n = counts.get(entity, {}).get(op, 0)
        if limit.count is not None and n > limit.count:
            trips.append(Trip(entity, op, "count", n, limit.count, base[entity]))
        share = 100 * n / base[entity] if base[entity] else 0.0
        if limit.percent is not None and base[entity] and share > limit.percent:
            trips.append(Trip(entity, op, "percent", n, limit.percent, base[entity]))
    if kept is not None:
        for entity in ("person", "group"):
            if base[entity] and 100 * kept[entity] / base[entity] < profile.min_share:
                trips.append(
                    Trip(entity, "size", "guard", kept[entity], profile.min_share, base[entity])
                )
    return Verdict(profile_name, tuple(trips))


def record_decision(
    cur, run_id: int, decision: str, *, by: str | None, reason: str | None, via: str
) -> dict:
    """Store the decision on a held run, once. The same decision again returns the stored one;
    a different one raises :class:`ContradictingDecision` (call under the customer's lock)."""
    if decision not in DECISIONS:
        raise ValueError(f"decision {decision!r}: one of {', '.join(DECISIONS)}")
    stored = stored_decision(cur, run_id)
    if stored is None:
        cur.execute(
            "INSERT INTO sis.filter_decisions (run_id, decision, decided_by, reason, via)"
            " VALUES (%s, %s, %s, %s, %s)",
            (run_id, decision, by, reason, via),
        )
        stored = stored_decision(cur, run_id)
        assert stored is not None  # inserted just now
        return stored
    if stored["decision"] != decision:
        who = f" by {stored['decided_by']}" if stored["decided_by"] else ""
        asked = f" by {by}" if by else ""
        raise ContradictingDecision(
            f"run {run_id} was already {stored['decision']}{who} via {stored['via']} at"
            f" {stored['decided_at']:%Y-%m-%d %H:%M} UTC; '{decision}'{asked} via {via}"
            " contradicts it and is refused"
        )
    return stored


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


def explain(run: dict) -> str:
    """Why a held run is held and how to decide it: the approval task's text (ids and counts)."""
    lines = [
        f"Run {run['id']} ({run['file_name']}) is held by the filter"
        f" ({run['verdict']['profile']} profile):"
    ]
    lines += [f"- {t['text']}" for t in run["verdict"]["trips"]]
    relinks = run.get("relinks") or {}
    waiting = [p for p in relinks.get("pairs", []) if not p["decision"]]
    if waiting:
        lines.append(
            "Identity changes (decide each: accepted, the LMS object keeps its id and history"
            " and takes the new key; refused, the old one is deleted and a new one created):"
        )
        lines += [
            f"- pair {p['id']}: {p['entity']} {p['old_key']} -> {p['new_key']}"
            f" ({p['certainty']}{', ambiguous' if p['ambiguous'] else ''}:"
            f" {' + '.join(p['evidence'])})"
            for p in waiting
        ]
        more = relinks["counts"]["waiting"] - len(waiting)
        if more:
            lines.append(f"- and {more} more: sisflow relink {run['id']} lists them all")
        lines.append(
            f"Decide them with: sisflow relink {run['id']} --accept ID --refuse ID --by NAME;"
            " or here: list the pairs to accept (any pair not accepted is refused) and open."
        )
    lines.append(
        f"Decide before {run['deadline']:%Y-%m-%d %H:%M} UTC; with no answer by then"
        " the run is aborted and nothing is applied."
    )
    lines.append(
        "Check the change with the customer, then open the filter or reject it (here,"
        f" or: sisflow filter open {run['id']} --by NAME --reason TEXT)."
    )
    return "\n".join(lines)
