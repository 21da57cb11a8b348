"""Pairs and their decisions, one record per customer and pair (``sis.relinks``).

The rule decides a pair whose evidence is certain (two independent kinds agree) and that no
other pair of the same finding shares a key with. Everything else waits for a person: a pair
with one kind of evidence, and every pair of an ambiguous finding (one account, two
candidates: nothing is guessed). A decision is remembered: the same pair found again by a
later run, or first foreseen by readiness, is not asked again; a relink that was undone
comes back refused.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from psycopg2.extras import execute_values

from ..errors import ContradictingDecision, NotDecidable
from . import pairs as find

ACCEPTED, REFUSED = "accepted", "refused"

_COLUMNS = (
    "id",
    "entity",
    "old_key",
    "new_key",
    "run_id",
    "certainty",
    "ambiguous",
    "evidence",
    "decision",
    "decided_by",
    "decided_via",
    "decided_at",
    "reason",
    "applied_run",
    "undone_by",
    "undone_at",
)


@dataclass(frozen=True)
class Pair:
    """One pair, with ids and evidence names only (what an email or a log may show)."""

    id: int
    entity: str
    old_key: str
    new_key: str
    run_id: int | None
    certainty: str
    ambiguous: bool
    evidence: list[str]
    decision: str | None
    decided_by: str | None
    decided_via: str | None
    decided_at: datetime | None
    reason: str | None
    applied_run: int | None
    undone_by: str | None
    undone_at: datetime | None

    def describe(self) -> str:
        who = self.decided_by or ("the rule" if self.decided_via == "rule" else None)
        state = f"{self.decision} by {who}" if self.decision else "waits for a person"
        return (
            f"pair {self.id}: {self.entity} {self.old_key} -> {self.new_key}"
            f" ({self.certainty}{', ambiguous' if self.ambiguous else ''}:"
            f" {' + '.join(self.evidence)}) {state}"
        )

    def as_dict(self) -> dict:
        data = asdict(self)
        for key in ("decided_at", "undone_at"):
            data[key] = data[key].isoformat() if data[key] else None
        return data


def record(cur, customer: str, entity: str, run_id: int | None) -> None:
    """Store the pairs just found (``_identity_found``: see :mod:`.pairs`) with their
    certainty and ambiguity, keeping decisions made before; a relink that was undone comes
    back refused. In the database: an SIS that re-keyed everything brings 140,000 pairs."""
    cur.execute(
        """
        INSERT INTO sis.relinks AS r (customer, entity, old_key, new_key, run_id, certainty,
                                      ambiguous, evidence)
        SELECT %(customer)s, %(entity)s, old_key, new_key, %(run)s,
               CASE WHEN cardinality(evidence) >= 2 OR %(entity)s = 'group' THEN 'high'
                    ELSE 'low' END,
               count(*) OVER (PARTITION BY old_key) > 1
               OR count(*) OVER (PARTITION BY new_key) > 1,
               evidence
        FROM _identity_found
        ON CONFLICT (customer, entity, old_key, new_key) DO UPDATE SET
            run_id = COALESCE(EXCLUDED.run_id, r.run_id), certainty = EXCLUDED.certainty,
            ambiguous = EXCLUDED.ambiguous, evidence = EXCLUDED.evidence, found_at = now(),
            decision = CASE WHEN r.undone_at IS NOT NULL THEN 'refused' ELSE r.decision END,
            decided_by = CASE WHEN r.undone_at IS NOT NULL THEN r.undone_by
                              ELSE r.decided_by END,
            decided_via = CASE WHEN r.undone_at IS NOT NULL THEN 'undo' ELSE r.decided_via END,
            reason = CASE WHEN r.undone_at IS NOT NULL THEN 'the relink was undone'
                          ELSE r.reason END
        """,
        {"customer": customer, "entity": entity, "run": run_id},
    )


def find_in_run(cur, run_id: int, customer: str) -> int:
    """The identity changes in a diffed run's change set: found, stored, and decided by the
    rule where it can. Returns how many pairs the run has."""
    params = {"run": run_id, "customer": customer}
    found = 0
    for entity, pair in (("person", find.persons), ("group", find.groups)):
        if pair(cur, *find.run_sides(entity), params):
            record(cur, customer, entity, run_id)
            found += 1
    if not found:
        return 0
    cur.execute(
        "UPDATE sis.relinks SET decision = 'accepted', decided_via = 'rule',"
        " decided_at = now(), reason = 'two kinds of evidence agree: '"
        " || array_to_string(evidence, ' + ')"
        " WHERE run_id = %s AND decision IS NULL AND certainty = 'high' AND NOT ambiguous",
        (run_id,),
    )
    cur.execute("SELECT count(*) FROM sis.relinks WHERE run_id = %s", (run_id,))
    return cur.fetchone()[0]


def listed(
    cur,
    *,
    run_id: int | None = None,
    customer: str | None = None,
    ids=None,
    just_found: bool = False,
    first: int | None = None,
) -> list[Pair]:
    """The pairs of a run, or a customer's (foreseen by readiness, or all), or by id;
    ``just_found``: only those in ``_identity_found`` (see :mod:`.pairs`); ``first``: only
    so many, those that wait for a person first."""
    where: list[str] = []
    args: list = []
    if just_found:
        where.append("(old_key, new_key) IN (SELECT old_key, new_key FROM _identity_found)")
    if run_id is not None:
        where.append("run_id = %s")
        args.append(run_id)
    if customer is not None:
        where.append("customer = %s")
        args.append(customer)
    if ids is not None:
        where.append("id = ANY(%s)")
        args.append(list(ids))
    cur.execute(
        f"SELECT {', '.join(_COLUMNS)} FROM sis.relinks WHERE {' AND '.join(where) or 'true'}"
        + (" ORDER BY decision IS NOT NULL, id LIMIT %s" if first else " ORDER BY id"),
        [*args, first] if first else args,
    )
    return [Pair(*row) for row in cur.fetchall()]


def undecided(cur, run_id: int) -> dict[str, int]:
    """How many of a run's pairs wait for a person, per entity."""
    cur.execute(
        "SELECT entity, count(*) FROM sis.relinks WHERE run_id = %s AND decision IS NULL"
        " GROUP BY entity",
        (run_id,),
    )
    return dict(cur.fetchall())


def decide(
    cur,
    customer: str,
    *,
    accept=(),
    refuse=(),
    by: str,
    via: str,
    reason: str | None = None,
    run_id: int | None = None,
) -> list[Pair]:
    """A person's decisions on pairs (call under the customer's lock). The same decision again
    is accepted; a contradicting one is refused, and so is accepting two pairs that share a
    key (one account cannot take two keys, nor two accounts one key)."""
    wanted = {int(i): ACCEPTED for i in accept} | {int(i): REFUSED for i in refuse}
    if set(map(int, accept)) & set(map(int, refuse)):
        raise NotDecidable("a pair cannot be both accepted and refused")
    found = {p.id: p for p in listed(cur, customer=customer, ids=wanted)}
    for pair_id in wanted:
        pair = found.get(pair_id)
        if pair is None or (run_id is not None and pair.run_id != run_id):
            where = f"run {run_id}" if run_id is not None else customer
            raise NotDecidable(f"pair {pair_id} is not a pair of {where}")
    for pair_id, decision in wanted.items():
        pair = found[pair_id]
        if pair.decision is not None and pair.decision != decision:
            raise ContradictingDecision(
                f"pair {pair_id} was already {pair.decision} by"
                f" {pair.decided_by or 'the rule'}; '{decision}' by {by} contradicts it"
            )
    accepted = [p for p in found.values() if wanted[p.id] == ACCEPTED]
    for pair in accepted:
        cur.execute(
            "SELECT id FROM sis.relinks WHERE customer = %s AND entity = %s AND id <> %s"
            " AND (old_key = %s OR new_key = %s) AND run_id IS NOT DISTINCT FROM %s"
            " AND (decision = 'accepted' OR id = ANY(%s))",
            (
                customer,
                pair.entity,
                pair.id,
                pair.old_key,
                pair.new_key,
                pair.run_id,
                [p.id for p in accepted],
            ),
        )
        clash = [row[0] for row in cur.fetchall()]
        if clash:
            raise NotDecidable(
                f"pair {pair.id} shares a key with pair {clash[0]}, which is accepted too:"
                " one of them must be refused"
            )
    execute_values(
        cur,
        "UPDATE sis.relinks r SET decision = v.decision, decided_by = v.by,"
        " decided_via = v.via, decided_at = now(), reason = v.reason"
        " FROM (VALUES %s) AS v(id, decision, by, via, reason)"
        " WHERE r.id = v.id AND r.decision IS NULL",
        [(pair_id, decision, by, via, reason) for pair_id, decision in wanted.items()],
        template="(%s::bigint, %s, %s, %s, %s)",
    )
    return listed(cur, ids=wanted)


def undone_since(cur, customer: str, run_id: int) -> bool:
    """Whether a relink was undone after the run ended: the current state then no longer is
    what that run's file said, and the same file is not the same import any more."""
    cur.execute(
        "SELECT EXISTS (SELECT 1 FROM sis.relinks WHERE customer = %s AND undone_at >"
        " (SELECT updated_at FROM sis.runs WHERE id = %s))",
        (customer, run_id),
    )
    return cur.fetchone()[0]
