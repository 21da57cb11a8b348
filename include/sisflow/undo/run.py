"""Undoing a run: the LMS and the import database put back as they were before it.

An undo is a run of its own (``sis.runs`` with ``undo_of``): it holds the customer's lease,
its LMS changes are journaled, its change set is committed, it is emailed, and it can be
undone in turn. Everything happens in one transaction: a dry run is the same work rolled
back, so what it reports is exactly what the undo would do.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime

from .. import runs
from ..calendar import today as oslo_today
from ..config import CustomerConfig
from ..errors import UndoNeedsForce, UndoRefused
from ..lms.postgres_site import PostgresSite
from ..runs import PENDING, RunStatus
from . import scope
from .state import turn_around

log = logging.getLogger(__name__)

#: the objects an undo left alone that its result and email list by key
LISTED = 50
#: the run id a dry run's changes are written under, before they are rolled back
DRY_RUN_ID = 0


@dataclass
class UndoResult:
    customer: str
    undone: int
    undo_run: int | None  # None for a dry run
    school: str | None
    dry_run: bool
    forced: bool
    by: str
    reason: str
    via: str
    lms: dict = field(default_factory=dict)  # kind -> verdict -> count
    state: dict = field(default_factory=dict)  # entity -> op -> count (the change set)
    state_conflicts: dict = field(default_factory=dict)  # entity -> records left alone
    left_alone: list[dict] = field(default_factory=list)  # the first LISTED: kind, key, why
    left_alone_count: int = 0
    school_year_back: bool = False

    def as_dict(self) -> dict:
        return asdict(self)

    def put_back(self) -> int:
        return sum(v.get("restored", 0) + v.get("removed", 0) for v in self.lms.values())

    def lines(self) -> list[str]:
        """What the undo did (or would do), in words: ids and counts only."""
        what = f"run {self.undone}" + (f", school {self.school}" if self.school else "")
        if self.dry_run:
            out = [f"dry run: undoing {what} would do this (nothing was changed)"]
        else:
            out = [f"undo run {self.undo_run} took back {what}"]
        for kind, verdicts in sorted(self.lms.items()):
            parts = [f"{n} {v}" for v, n in sorted(verdicts.items()) if n and v != "unchanged"]
            if parts:
                out.append(f"  {kind}: " + ", ".join(parts))
        changes = {e: {op: n for op, n in ops.items() if n} for e, ops in self.state.items()}
        out.append(
            "  import database: "
            + (
                "; ".join(
                    f"{e} " + ", ".join(f"{op} {n}" for op, n in ops.items())
                    for e, ops in changes.items()
                    if ops
                )
                or "no change"
            )
        )
        if any(self.state_conflicts.values()):
            out.append(
                "  import database, changed since by a later run (left alone): "
                + ", ".join(f"{e} {n}" for e, n in self.state_conflicts.items() if n)
            )
        if self.school_year_back:
            out.append("  the school year goes back to the one before the rollover")
        if self.left_alone_count:
            out.append(f"  left alone ({self.left_alone_count}):")
            out += [f"    {o['kind']} {o['key']}: {o['why']}" for o in self.left_alone]
            if self.left_alone_count > len(self.left_alone):
                out.append(f"    and {self.left_alone_count - len(self.left_alone)} more")
        return out


class _DryRun(Exception):
    """Rolls the undo's transaction back once its result is known."""


def undo(
    conn,
    run_id: int,
    *,
    by: str,
    reason: str,
    via: str,
    config: CustomerConfig,
    holder,
    school: str | None = None,
    dry_run: bool = False,
    force: bool = False,
    today: date | None = None,
) -> UndoResult:
    """Undo run ``run_id`` (or its part in one school). Refused with one line
    (:class:`UndoRefused`) when there is nothing it could rightly do."""
    if not (by or "").strip():
        raise UndoRefused("an undo needs the name of the person who decides it (--by)")
    if not (reason or "").strip():
        raise UndoRefused("an undo needs a reason (--reason): it is kept with the undo")
    try:
        with conn, conn.cursor() as cur:
            run = _undoable(cur, run_id, config, force=force, today=today or oslo_today())
    except UndoNeedsForce as err:  # say what it would do: the forced undo, rolled back
        forced = undo(
            conn,
            run_id,
            by=by,
            reason=reason,
            via=via,
            config=config,
            holder=holder,
            school=school,
            dry_run=True,
            force=True,
            today=today,
        )
        err.would = forced.lines()
        raise
    customer = run["customer"]
    result = UndoResult(customer, run_id, None, school, dry_run, force, by, reason, via)
    runs.acquire(conn, customer, holder.id, holder.description, process=True)
    try:
        try:
            with conn, conn.cursor() as cur:
                runs.guard(cur, customer, holder.id)
                _undoable(cur, run_id, config, force=force, today=today or oslo_today())
                _do(cur, run, result)
                if dry_run:
                    raise _DryRun
        except _DryRun:
            result.undo_run = None
    finally:
        runs.release(conn, customer, holder.id)
    log.info(
        "%s: run %s undone by undo run %s%s (%s)",
        customer,
        run_id,
        result.undo_run,
        " (dry run)" if dry_run else "",
        {k: v for k, v in result.lms.items()},
    )
    return result


def _undoable(cur, run_id: int, config: CustomerConfig, *, force: bool, today: date) -> dict:
    """The run, if it can be undone; else the one line that says why not."""
    try:
        run = runs.row(cur, run_id)
    except LookupError:
        raise UndoRefused(f"there is no run {run_id}") from None
    run["applied"], run["pruned"] = run["lms_applied_at"], run["pruned_at"]
    run["day"] = (run["plan"] or {}).get("day")
    if run["customer"] != config.id:
        raise UndoRefused(f"run {run_id} belongs to {run['customer']}, not {config.id}")
    if run["status"] == RunStatus.DRY_RUN:
        raise UndoRefused(f"run {run_id} was a dry run: it changed nothing")
    if run["status"] != RunStatus.COMMITTED:
        raise UndoRefused(f"run {run_id} is {run['status']}: only an applied run is undone")
    if run["applied"] is None:
        raise UndoRefused(
            f"run {run_id} is not fully applied yet: let it finish (sisflow filter resume)"
            " before undoing it"
        )
    if run["pruned"] is not None:
        raise UndoRefused(
            f"run {run_id} is older than the journal: its history was removed after the"
            " retention period (SISFLOW_RETENTION_DAYS)"
        )
    cur.execute("SELECT count(*) FROM sis.lms_journal WHERE run_id = %s", (run_id,))
    journaled = cur.fetchone()[0]
    changes = sum(sum(ops.values()) for ops in (run["counts"] or {}).values())
    if not journaled:
        cur.execute("SELECT applied_at FROM public.sisflow_migrations WHERE version = 14")
        began = cur.fetchone()
        if began and run["applied"] < began[0]:
            raise UndoRefused(f"run {run_id} is older than the journal: nothing records it")
        if not changes:
            raise UndoRefused(f"run {run_id} applied nothing: there is nothing to undo")
    cur.execute(
        "SELECT id, status FROM sis.runs WHERE customer = %s AND id > %s"
        " AND status = ANY(%s) ORDER BY id LIMIT 1",
        (run["customer"], run_id, [str(s) for s in PENDING]),
    )
    pending = cur.fetchone()
    if pending:
        raise UndoRefused(
            f"run {pending[0]} of {run['customer']} is {pending[1]}: let it finish, or reject"
            f" it, before undoing run {run_id}"
        )
    cur.execute(
        "SELECT u.run_id, u.decided_by FROM sis.undos u WHERE u.undone_run = %s"
        " AND NOT EXISTS (SELECT 1 FROM sis.undos a WHERE a.undone_run = u.run_id)",
        (run_id,),
    )
    done = cur.fetchone()
    if done:
        raise UndoRefused(f"run {run_id} was undone already by undo run {done[0]} ({done[1]})")
    cur.execute(
        "SELECT count(*) FROM sis.relinks WHERE applied_run = %s AND undone_at IS NULL",
        (run_id,),
    )
    relinked = cur.fetchone()[0]
    if relinked:
        raise UndoRefused(
            f"run {run_id} relinked {relinked} identity change(s): undo those first"
            f" (sisflow relink {config.id} lists them; --undo ID takes one back)"
        )
    if run["profile"] == "rollover" and not force:
        cur.execute(
            "SELECT count(*) FROM sis.runs WHERE customer = %s AND id > %s AND status = %s",
            (run["customer"], run_id, str(RunStatus.COMMITTED)),
        )
        later = cur.fetchone()[0]
        # the rollover's calendar day (its effective date), and the undo's
        day = date.fromisoformat(run["day"]) if run["day"] else run["applied"].date()
        inside = any(day in window and today in window for window in config.delay_delete)
        if later and not inside:
            raise UndoNeedsForce(
                f"run {run_id} is a rollover, {later} run(s) built on it since and its"
                " delay-delete window is over: undoing it takes the whole school year back"
                " (see --dry-run); add --force to do it"
            )
    return run


def _do(cur, run: dict, result: UndoResult) -> None:
    customer, undone = run["customer"], run["id"]
    committed = runs.latest(cur, customer, (RunStatus.COMMITTED,))
    # the state goes back to the run before: so does the date of the export it comes from
    # (a file older than the current state is refused, see pipeline.stage)
    cur.execute("SELECT file_datetime FROM sis.runs WHERE id = %s", (run["base_run"],))
    base_datetime = (cur.fetchone() or (None,))[0]
    name = f"undo of run {undone}" + (f" (school {result.school})" if result.school else "")
    # a dry run takes no run id: ids are what a later run is known by, the same through
    # both doors (the DAG's preview is a dry run)
    undo_run = DRY_RUN_ID
    if not result.dry_run:
        undo_run = runs.create(
            cur,
            customer,
            name,
            name,
            0,
            None,
            profile="undo",
            undo_of=undone,
            file_datetime=base_datetime,
        )
    result.undo_run = undo_run
    scoped = result.school is not None
    if scoped:
        assert result.school is not None
        if scope.fill(cur, customer, undone, result.school) <= 1:
            cur.execute(
                "SELECT 1 FROM sis.groups WHERE customer = %s AND sourcedid = %s"
                " UNION SELECT 1 FROM sis.group_changes WHERE run_id = %s AND sourcedid = %s",
                (customer, result.school, undone, result.school),
            )
            if cur.fetchone() is None:
                raise UndoRefused(
                    f"{result.school} is not a group of {customer} (in the current state or"
                    f" in run {undone}): give the school's sync key"
                )
    result.lms = PostgresSite(cur, customer, journal=undo_run).restore(undone, scoped=scoped)
    back = turn_around(cur, customer, undone, undo_run, scoped=scoped)
    result.state, result.state_conflicts = back["counts"], back["conflicts"]
    if not scoped:
        # deletions the run kept back (delay delete) never go out now; those it released
        # wait to be released again, by a run the filter judges
        cur.execute(
            "UPDATE sis.deferred_deletions SET dropped_run = %(u)s WHERE customer = %(c)s"
            " AND deferred_run = %(r)s AND applied_run IS NULL AND dropped_run IS NULL",
            {"u": undo_run, "c": customer, "r": undone},
        )
        cur.execute(
            "UPDATE sis.deferred_deletions SET applied_run = NULL WHERE customer = %(c)s"
            " AND applied_run = %(r)s",
            {"c": customer, "r": undone},
        )
        cur.execute(
            "DELETE FROM sis.school_years WHERE customer = %s AND run_id = %s",
            (customer, undone),
        )
        result.school_year_back = cur.rowcount > 0
    _left_alone(cur, undo_run, result)
    if result.dry_run:
        return
    runs.update(
        cur,
        undo_run,
        status=RunStatus.COMMITTED,
        counts=result.state,
        base_counts=back["base_counts"],
        base_run=committed["id"] if committed else None,
        lms_applied_at=datetime.now(UTC),
        lms_mode="undo",
        lms_counts=result.lms,
    )
    cur.execute(
        "INSERT INTO sis.undos (run_id, undone_run, school, decided_by, via, reason, forced)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (undo_run, undone, result.school, result.by, result.via, result.reason, result.forced),
    )


def _left_alone(cur, undo_run: int, result: UndoResult) -> None:
    """What the undo did not put back, kept with the undo run as outcomes (conflict, kept)."""
    cur.execute(
        """
        CREATE TEMP TABLE _undo_left ON COMMIT DROP AS
        SELECT o.kind, COALESCE(o.sync_key, o.object_id::text) AS key, o.verdict, o.why
        FROM _undo_objects o WHERE o.verdict IN ('conflict', 'kept')
        UNION ALL
        SELECT m.kind, COALESCE(g.sync_key, n.sync_key, m.group_id::text) || '/'
                       || COALESCE(u.sync_key, m.user_id::text),
               'conflict', 'changed since (' || m.now_state || ', not ' || m.after || ')'
        FROM _undo_members m
        LEFT JOIN lms.courses g ON m.kind = 'participant' AND g.id = m.group_id
        LEFT JOIN lms.units n ON m.kind = 'unit_member' AND n.id = m.group_id
        LEFT JOIN lms.users u ON u.id = m.user_id
        WHERE m.verdict = 'conflict'
        """
    )
    cur.execute(
        "INSERT INTO sis.apply_outcomes (run_id, entity, record_key, outcome, detail)"
        " SELECT %s, CASE kind WHEN 'user' THEN 'person' WHEN 'term' THEN 'term'"
        " WHEN 'unit' THEN 'group' WHEN 'course' THEN 'group' ELSE 'membership' END,"
        " key, verdict, kind || ': ' || why FROM _undo_left",
        (undo_run,),
    )
    cur.execute("SELECT count(*) FROM _undo_left")
    result.left_alone_count = cur.fetchone()[0]
    cur.execute(
        "SELECT kind, key, verdict, why FROM _undo_left ORDER BY kind, key LIMIT %s", (LISTED,)
    )
    result.left_alone = [
        {"kind": k, "key": key, "verdict": v, "why": why} for k, key, v, why in cur.fetchall()
    ]
