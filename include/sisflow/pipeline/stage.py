"""Reading and staging a file: the run it becomes (new, resumed, unchanged, read again after
a crash, rejected whole), its records in the staging tables, and its problems."""

from __future__ import annotations

import hashlib
import logging
import os
from datetime import UTC, datetime, timedelta

from .. import (
    calendar,
    deferred,
    diff,
    drift,
    faults,
    identity,
    runs,
    school_year,
    settings,
    staging,
    unchanged,
)
from ..calendar import Mode
from ..config import CustomerConfig
from ..ims.reader import ImsReader
from ..ims.records import FatalFileError, Problem
from ..runs import RunStatus
from .plan import Plan

log = logging.getLogger(__name__)


def _sha256(path: str) -> str:
    """Checksum before reading: an unchanged file is then recognised without parsing it."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _same_file(run: dict | None, size: int, sha256: str | None) -> bool:
    """Whether ``run`` was of this file. A run whose read died has no checksum when none was
    taken before it read (the reader takes it on its way): it was of this file when it was of
    its size. Another file of that very size then goes on under the dead run's id, which
    staged nothing."""
    if run is None:
        return False
    if run["sha256"] is None:
        return run["status"] == RunStatus.READING and run["size"] == size
    return run["sha256"] == sha256


def _no_changes() -> dict:
    return {e: dict.fromkeys(diff.OPS, 0) for e in ("person", "group", "membership")}


def stage(
    conn,
    plan: Plan,
    path: str | os.PathLike,
    config: CustomerConfig,
    recorded_as: str | None = None,
) -> dict:
    """Read and stage a file; returns the run summary.

    The same file as the customer's pending run resumes that run; the same file as the last
    committed one gives an ``unchanged`` run, unless deferred deletions wait to be released;
    anything else starts a new run and supersedes the pending one (only the newest file may
    ever reach the current state). A dry run never resumes or supersedes anything. A file
    rejected whole gives a ``rejected`` run with the reason, and nothing staged."""
    customer = plan.customer
    path = os.fspath(path)
    size = os.path.getsize(path)
    recorded = recorded_as or path  # where the export lies (the landing zone), for the record
    name = os.path.basename(recorded)
    with conn, conn.cursor() as cur:
        runs.guard(cur, customer, plan.holder)
        reread = None
        pending = None if plan.dry_run else runs.latest(cur, customer)
        if pending and (pending["status"] not in runs.PENDING or pending["dry_run"]):
            pending = None
        committed = runs.latest(cur, customer, (RunStatus.COMMITTED,))
        # a file of another size than the runs it could be is another file: its checksum is
        # then taken by the reader as it reads, not by a pass of its own before
        maybe_same = any(r is not None and r["size"] == size for r in (pending, committed))
        sha256 = _sha256(path) if maybe_same else None
        if not plan.dry_run:
            if _same_file(pending, size, sha256):
                assert pending is not None
                if pending["status"] != RunStatus.READING:
                    log.info("run %s: same file as the pending run, resumed", pending["id"])
                    _attach(cur, pending["id"], plan)
                    return runs.summary(conn, pending["id"])
                # its reader died with its process (or its database): the staging
                # transaction went with it, so nothing is staged and the file is read again
                log.warning("run %s: its read was interrupted; read again", pending["id"])
                reread = pending["id"]
                runs.update(cur, reread, file_path=recorded, file_name=name, file_size=size)
            cur.execute(
                "SELECT id FROM sis.runs WHERE customer = %s AND status = ANY(%s) AND id <> %s",
                (customer, [str(s) for s in runs.PENDING], reread or 0),
            )
            for (old,) in cur.fetchall():
                staging.drop(cur, old)
                runs.update(cur, old, status=RunStatus.SUPERSEDED)
                log.info("run %s superseded by a newer file", old)
        release = plan.mode == Mode.NORMAL and deferred.waiting(cur, customer) > 0
        # the same file read for another school year (a rollover after an import that kept
        # next year's groups back) is not the same import
        same_year = (committed or {}).get("school_year") in (
            None,
            (plan.school_year or {}).get("label"),
        )
        if (
            committed
            and sha256 is not None
            and committed["sha256"] == sha256
            and not release
            and same_year
            and not identity.undone_since(cur, customer, committed["id"])
            and not drift.repaired_since(cur, customer, committed["id"])
        ):
            if reread is not None:  # the file it was reading is the current state already
                runs.update(cur, reread, status=RunStatus.SUPERSEDED)
            run_id = runs.create(
                cur,
                customer,
                recorded,
                name,
                size,
                sha256,
                status=RunStatus.UNCHANGED,
                same_as_run=committed["id"],
                base_run=committed["id"],
                counts=_no_changes(),
                plan=plan.as_dict(),
                airflow_run=plan.airflow,
            )
            log.info("run %s: unchanged file (same checksum as run %s)", run_id, committed["id"])
            return runs.summary(conn, run_id)
        if reread is not None:
            run_id = reread
            staging.drop(cur, run_id)
            _attach(cur, run_id, plan)
        else:
            run_id = runs.create(
                cur,
                customer,
                recorded,
                name,
                size,
                sha256,
                plan=plan.as_dict(),
                airflow_run=plan.airflow,
            )

    basis = unchanged.basis(config, plan.school_year)
    fast = settings.fast_reader()
    with conn, conn.cursor() as cur:
        known = unchanged.known(cur, customer, committed, basis) if fast else None
    reader = ImsReader(
        path,
        default_type=config.file_type,
        fast=fast,
        known=known,
        digests=fast and config.file_type == "full",
    )
    try:
        with conn, conn.cursor() as cur:
            runs.guard(cur, customer, plan.holder)
            staging.stage_records(cur, run_id, reader, customer)
            staging.keep_names_not_given(cur, run_id, customer)
            faults.crash_point("stage:reading")
            result = reader.result
            if result.file.size != size or sha256 not in (None, result.file.sha256):
                raise RuntimeError(f"{path} changed while it was read")
            _refuse_an_older_file(cur, customer, path, result, accept=plan.accept_older)
            staging.store_problems(cur, run_id, result)
            staging.store_kept(cur, run_id, result)
            digests = reader.table()
            if plan.school_year and plan.school_year.get("holds_back", True):
                # no new group of a later school year before its rollover
                waiting = staging.hold_back_later_years(
                    cur, run_id, config, school_year.SchoolYear.from_dict(plan.school_year)
                )
                if digests is not None and waiting:  # read again until they are let in
                    digests = digests.without("group", waiting).without("membership", waiting)
            if not plan.dry_run:
                unchanged.store(cur, run_id, customer, basis, digests)
            skipped = dict(result.skipped)
            props = result.properties
            assert props is not None  # a file without <properties> is rejected whole
            if props.type != "full":
                skipped["membership"] += staging.check_delta_references(cur, run_id, customer)
            runs.update(
                cur,
                run_id,
                status=RunStatus.STAGED,
                sha256=result.file.sha256,
                datasource=props.datasource,
                file_datetime=props.datetime,
                file_type=props.type,
                records=result.records,
                unchanged=len(reader.taken),
                skipped=skipped,
                problem_counts=result.problem_counts,
            )
    except FatalFileError as err:  # the staging transaction was rolled back whole
        props = reader.result.properties
        said = (
            {
                "datasource": props.datasource,
                "file_datetime": props.datetime,
                "file_type": props.type,
            }
            if props
            else {}
        )
        with conn, conn.cursor() as cur:
            staging.store_problems(cur, run_id, reader.result)
            runs.update(
                cur,
                run_id,
                status=RunStatus.REJECTED,
                sha256=reader.result.file.sha256 or sha256,
                fatal=reader.result.fatal.as_dict() if reader.result.fatal else None,
                problem_counts=reader.result.problem_counts,
                **said,
            )
        log.warning("run %s rejected: line %s: %s", run_id, err.line, err.reason)
    except Exception as err:
        with conn, conn.cursor() as cur:
            runs.update(
                cur,
                run_id,
                status=RunStatus.FAILED,
                sha256=reader.result.file.sha256 or sha256,
                fatal={"line": None, "reason": f"{type(err).__name__}: {err}"},
            )
        raise
    faults.crash_point("stage:staged")
    return runs.summary(conn, run_id)


def _moment(text: str | None) -> datetime | None:
    """A file's properties/datetime as a moment (without a zone: Oslo time, as SIS write it)."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=calendar.OSLO)


#: how far ahead of the clock a file's properties/datetime may be and still order exports
AHEAD_OF_THE_CLOCK = timedelta(days=1)


def _refuse_an_older_file(cur, customer: str, path: str, result, *, accept: bool) -> None:
    """An export made before the one the current state comes from is not imported unless a
    person accepts it (``accept``): it would turn the state back (a file sent again by
    mistake, or a trigger for last year). A datetime far ahead of the clock orders nothing:
    it is a warning on its own file, and it never becomes a floor for the files after it."""

    cur.execute(
        "SELECT id, file_datetime, created_at FROM sis.runs WHERE customer = %s"
        " AND status = %s ORDER BY id DESC LIMIT 1",
        (customer, str(RunStatus.COMMITTED)),
    )
    last = cur.fetchone()
    made, before = _moment(result.properties.datetime), _moment(last[1]) if last else None
    if made and made > datetime.now(UTC) + AHEAD_OF_THE_CLOCK:
        result.add(
            Problem(
                "file",
                None,
                None,
                f"properties/datetime {result.properties.datetime}"
                " is ahead of the clock: it does not order this export",
                "warning",
            )
        )
        return
    if before and before > last[2] + AHEAD_OF_THE_CLOCK:
        before = None  # that file's datetime was ahead of the clock when it came
    if made and before and made < before and not accept:
        reason = (
            f"the file was made at {result.properties.datetime}, before the file of run "
            f"{last[0]} ({last[1]}) that the current state comes from: an older export is "
            "not imported unless a person accepts it (sisflow run --accept-older, or the "
            "form's accept_older)"
        )
        result.fatal = Problem("file", None, None, reason)
        raise FatalFileError(path, None, reason)


def _attach(cur, run_id: int, plan: Plan) -> None:
    """A resumed run goes on under this run's plan (its date, mode, holder, Airflow run)."""
    runs.update(cur, run_id, plan=plan.as_dict(), airflow_run=plan.airflow)
