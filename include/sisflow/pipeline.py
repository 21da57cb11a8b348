"""One customer's run, in phases: what ``sisflow run`` and the DAG tasks both call.

    begin            the date and the calendar; rollover allowed?; the customer's lease;
                     finish the LMS apply an earlier run left half-way
    fetch            the file into the customer's landing zone
    stage_and_judge  read, stage, diff (releasing deferred deletions after a window), the
                     filter's verdict; a held run sends its HELD email now
    decide           a person's answer on a held run (one decision record, whichever door)
    apply            commit to the import database, then apply to the LMS
    finish           the status email, the lease given back

:func:`run` is their composition for the command line; the DAG runs the same phases as
tasks, passing a :class:`Plan` over XCom. Every decision about a run is made here, once:
which date and calendar mode, whether the unchanged-file short-circuit is allowed, whether
deferred deletions are released, which filter profile, go or no go, what the email says.

Each phase is idempotent: called again after a crash or a retry it reaches the same end state.
Every transaction that changes the customer's state is guarded by the run's lease on the
customer (:mod:`sisflow.runs`), and reads the run's status under that lock.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from . import apply as lms_apply
from . import (
    calendar,
    deferred,
    diff,
    faults,
    partitions,
    runs,
    school_year,
    settings,
    staging,
    state,
)
from . import filter as filter_
from .calendar import Mode
from .config import ConfigError, CustomerConfig, load_for_run
from .errors import (
    FileNotAllowed,
    FileRejected,
    InvalidCustomer,
    NotDecidable,
    NotReady,
    Refusal,
    RolloverTooEarly,
    RunSuperseded,
    WrongSchoolYear,
)
from .ims.reader import ImsReader
from .ims.records import FatalFileError
from .runs import RunStatus
from .sources.complete import SourceError

log = logging.getLogger(__name__)

#: how long past a held run's deadline its lease lasts (the deadline sweep needs a moment)
HELD_GRACE = timedelta(hours=1)


@dataclass
class Plan:
    """What a run is, fixed when it begins; travels between the phases (and over XCom)."""

    customer: str
    kind: str  # import or rollover
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
        return self.kind == "rollover"

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Plan:
        return cls(**data)


def process_holder() -> tuple[str, str]:
    """A lease holder for this process (the command line): (holder, description)."""
    host, pid = socket.gethostname(), os.getpid()
    return (f"cli:{host}:{pid}:{uuid.uuid4().hex[:8]}", f"sisflow on {host} (pid {pid})")


def airflow_holder(dag_id: str, run_id: str) -> tuple[str, str]:
    """A lease holder for an Airflow DAG run: the same for every task and retry of the run."""
    return f"airflow:{dag_id}:{run_id}", f"Airflow {dag_id} run {run_id}"


def customer_config(customer: str, config: CustomerConfig | None = None) -> CustomerConfig:
    """The customer's file as it is now (``config`` when the caller has it already); a
    malformed id or an invalid file is an :class:`~sisflow.errors.InvalidCustomer` refusal."""
    if config is not None:
        return config
    try:
        return load_for_run(customer)  # the id is checked before any file is opened
    except ConfigError as err:
        raise InvalidCustomer(str(err)) from None


# -- begin ---------------------------------------------------------------------------------------


def begin(
    conn,
    customer: str,
    *,
    holder: str,
    description: str,
    day: date | None = None,
    rollover: bool = False,
    dry_run: bool = False,
    airflow: dict | None = None,
    process: bool = False,
    config: CustomerConfig | None = None,
    target_year: str | None = None,
    override: bool = False,
) -> Plan:
    """Resolve the run's date and calendar once, refuse what must not run, take the lease and
    finish what an earlier run left pending. ``process``: the holder is this process.
    A rollover works in ``target_year`` (default: the year after the active one), which its
    commit makes the active school year."""
    config = customer_config(customer, config)
    plan = prepare(
        conn,
        customer,
        holder=holder,
        description=description,
        day=day,
        rollover=rollover,
        dry_run=dry_run,
        airflow=airflow,
        config=config,
        target_year=target_year,
        override=override,
    )
    return take(conn, plan, config=config, process=process)


def prepare(
    conn,
    customer: str,
    *,
    holder: str,
    description: str,
    day: date | None = None,
    rollover: bool = False,
    dry_run: bool = False,
    airflow: dict | None = None,
    config: CustomerConfig | None = None,
    target_year: str | None = None,
    override: bool = False,
) -> Plan:
    """The run's plan, and the refusals that need no lease (a rollover too early, into a
    wrong school year): nothing is held yet, so a rollover may wait for its day after this."""
    config = customer_config(customer, config)
    day = day or calendar.today()
    cal = calendar.state_on(config, day)
    plan = Plan(
        customer=customer,
        kind="rollover" if rollover else "import",
        day=day.isoformat(),
        mode=str(cal.mode),
        dry_run=dry_run,
        holder=holder,
        description=description,
        calendar={"date": day.isoformat(), **cal.as_dict()},
        airflow=airflow,
        override=override,
    )
    with conn, conn.cursor() as cur:
        year = school_year.stored(cur, customer)
        again = rollover and school_year.set_by_rollover(cur, customer)
    # before the first import there is no old school year to keep apart from a new one
    holds_back = rollover or year is not None
    if rollover:
        year = _rollover_year(config, year, target_year, day, again=again)
    plan.school_year = {
        **(year or school_year.containing(day, config)).as_dict(),
        "holds_back": holds_back,
    }
    if cal.mode == Mode.PAUSED:
        log.info("%s is paused until %s: nothing fetched or applied", customer, cal.until)
        plan.outcome = "paused"
    return plan


def take(conn, plan: Plan, *, config: CustomerConfig | None = None, process: bool = False) -> Plan:
    """The customer's lease for the run, and the apply an earlier run left half-way."""
    if plan.outcome == "paused":
        return plan
    config = customer_config(plan.customer, config)
    partitions.ensure(conn, plan.customer)
    runs.acquire(conn, plan.customer, plan.holder, plan.description, process=process)
    if not plan.dry_run:
        plan.finished = _finish_pending_apply(conn, plan, config)
    return plan


def _rollover_year(
    config: CustomerConfig,
    active: school_year.SchoolYear | None,
    label: str | None,
    day: date,
    *,
    again: bool = False,
) -> school_year.SchoolYear:
    """The school year a rollover on ``day`` goes into: by default the one after the active
    one; before any import, the one ``day`` falls in; and the active one itself when a
    rollover switched to it and the next one's date has not come (the rollover triggered
    again: it finishes what a crash left). Refused when it is not a later year, or when
    ``day`` is before the earliest date that year allows."""
    try:
        target = (
            school_year.of_label(label, config)
            if label
            else school_year.starting(active.start.year + 1, config)
            if active
            else school_year.containing(day, config)
        )
    except ValueError as err:
        raise WrongSchoolYear(str(err)) from None
    active = active or school_year.containing(day, config)
    earliest = school_year.earliest_rollover(config, active, target)
    if again and not label and day < earliest:
        return active
    if target.start < active.start:
        raise WrongSchoolYear(f"{target.label} is before the active school year {active.label}")
    if day < earliest:
        raise RolloverTooEarly(
            f"rollover into {target.label} is allowed from {earliest}, not on {day}"
        )
    return target


def waits_until(plan: Plan, now: datetime | None = None) -> datetime | None:
    """A rollover for a later effective date waits until that day begins in the customer's
    time zone (the DAG defers until then, holding nothing); None when it may go on now."""
    start = datetime.combine(
        date.fromisoformat(plan.day), datetime.min.time(), tzinfo=calendar.OSLO
    )
    return start if start > (now or datetime.now(UTC)) else None


def _finish_pending_apply(conn, plan: Plan, config: CustomerConfig) -> list[dict]:
    """A run committed to the import database but not (fully) applied to the LMS is finished
    before anything else: the LMS must never skip a change set."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT id FROM sis.runs WHERE customer = %s AND status = 'committed'"
            " AND lms_applied_at IS NULL ORDER BY id",
            (plan.customer,),
        )
        pending = [row[0] for row in cur.fetchall()]
    finished = []
    for run_id in pending:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM sis.apply_steps WHERE run_id = %s", (run_id,))
            done_before = cur.fetchone()[0]
        log.info("run %s: finishing its LMS apply first (%s steps were done)", run_id, done_before)
        counts = lms_apply.apply_run(
            conn,
            run_id,
            mode=plan.mode,
            course_archiving=config.course_archiving,
            holder=plan.holder,
        )
        finished.append(
            {
                "run": run_id,
                "changes": sum(c["applied"] for c in counts.values()),
                "steps_left": len(counts) - done_before,
            }
        )
    return finished


# -- fetch ---------------------------------------------------------------------------------------


def fetch(
    plan: Plan,
    config: CustomerConfig | None = None,
    file: str | None = None,
    *,
    confined: bool = True,
) -> str:
    """The file to import, in the customer's landing zone: ``file`` when given, else the
    newest export from the customer's source.

    ``confined``: a file given by hand must lie in the customer's own source folder or landing
    zone (a name alone is looked for in the landing zone), and anything else is refused before
    it is read: the Airflow form is no way to read another customer's export or the server's
    files. The command line passes False: its user reads files with their own rights."""
    from .sources import folder, http_trigger, sftp

    config = customer_config(plan.customer, config)
    source = config.source
    if file:
        if confined:
            file = confine(plan.customer, config, file)
        return str(folder.fetch(plan.customer, source, file))
    if source is None:
        raise folder.NothingToFetch(f"{plan.customer} has no source: give a file")
    if source.kind == "folder":
        return folder.fetch(plan.customer, source)
    if source.kind == "sftp":
        from .airflow_connections import sftp_client

        with sftp_client(source.conn_id) as client:
            return sftp.fetch(plan.customer, source, client)
    from .airflow_connections import HttpSource

    year = _year_of(plan, config)
    plan.fetched = {"school_year": http_trigger.school_year_label(year)}
    return http_trigger.fetch(plan.customer, source, HttpSource(source.conn_id), year)


def _year_of(plan: Plan, config: CustomerConfig) -> school_year.SchoolYear:
    if plan.school_year:
        return school_year.SchoolYear.from_dict(plan.school_year)
    return school_year.containing(date.fromisoformat(plan.day), config)  # a plan from before


def confine(customer: str, config: CustomerConfig, file: str) -> str:
    """A file named in an Airflow form, inside the customer's landing zone or source folder;
    :class:`~sisflow.errors.FileNotAllowed` otherwise."""
    from .sources import folder, landing

    landed = landing.within(customer, file)
    if landed is not None:
        return landed
    source = config.source
    if source and source.kind == "folder" and source.path and "://" not in file:
        real = folder.inside(Path(file), Path(source.path))
        if real is not None:
            return str(real)
    raise FileNotAllowed(
        f"{file} is outside {customer}'s source folder and landing zone: refused, nothing "
        f"read (put the file in {landing.folder(customer)} and give its name)"
    )


# -- stage and judge -----------------------------------------------------------------------------


def _sha256(path: str) -> tuple[str, int]:
    """Checksum before reading: an unchanged file is then recognised without parsing it."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest(), os.path.getsize(path)


def _no_changes() -> dict:
    return {e: dict.fromkeys(diff.OPS, 0) for e in ("person", "group", "membership")}


def stage(
    conn,
    plan: Plan,
    path: str | os.PathLike,
    *,
    default_type: str = "full",
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
    sha256, size = _sha256(path)
    recorded = recorded_as or path  # where the export lies (the landing zone), for the record
    name = os.path.basename(recorded)
    with conn, conn.cursor() as cur:
        runs.guard(cur, customer, plan.holder)
        reread = None
        if not plan.dry_run:
            pending = runs.latest(cur, customer)
            if (
                pending
                and pending["sha256"] == sha256
                and pending["status"] in runs.PENDING
                and not pending["dry_run"]
            ):
                if pending["status"] != RunStatus.READING:
                    log.info("run %s: same file as the pending run, resumed", pending["id"])
                    _attach(cur, pending["id"], plan)
                    return runs.summary(conn, pending["id"])
                # its reader died with its process (or its database): the staging
                # transaction went with it, so nothing is staged and the file is read again
                log.warning("run %s: its read was interrupted; read again", pending["id"])
                reread = pending["id"]
            cur.execute(
                "SELECT id FROM sis.runs WHERE customer = %s AND status = ANY(%s) AND id <> %s",
                (customer, [str(s) for s in runs.PENDING], reread or 0),
            )
            for (old,) in cur.fetchall():
                staging.drop(cur, old)
                runs.update(cur, old, status=RunStatus.SUPERSEDED)
                log.info("run %s superseded by a newer file", old)
        committed = runs.latest(cur, customer, (RunStatus.COMMITTED,))
        release = plan.mode == Mode.NORMAL and deferred.waiting(cur, customer) > 0
        # the same file read for another school year (a rollover after an import that kept
        # next year's groups back) is not the same import
        same_year = (committed or {}).get("school_year") in (
            None,
            (plan.school_year or {}).get("label"),
        )
        if committed and committed["sha256"] == sha256 and not release and same_year:
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

    reader = ImsReader(path, default_type=default_type, fast=settings.fast_reader())
    try:
        with conn, conn.cursor() as cur:
            runs.guard(cur, customer, plan.holder)
            staging.stage_records(cur, run_id, reader)
            staging.keep_names_not_given(cur, run_id, customer)
            faults.crash_point("stage:reading")
            result = reader.result
            if result.file.sha256 != sha256:
                raise RuntimeError(f"{path} changed while it was read")
            _refuse_an_older_file(cur, customer, path, result, accept=plan.accept_older)
            staging.store_problems(cur, run_id, result)
            staging.store_kept(cur, run_id, result)
            if plan.school_year and plan.school_year.get("holds_back", True):
                # no new group of a later school year before its rollover
                staging.hold_back_later_years(
                    cur, run_id, customer, school_year.SchoolYear.from_dict(plan.school_year)
                )
            skipped = dict(result.skipped)
            props = result.properties
            if props.type != "full":
                skipped["membership"] += staging.check_delta_references(cur, run_id, customer)
            runs.update(
                cur,
                run_id,
                status=RunStatus.STAGED,
                datasource=props.datasource,
                file_datetime=props.datetime,
                file_type=props.type,
                records=result.records,
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
                fatal=reader.result.fatal.as_dict(),
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
    from .ims.records import Problem

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


def _current(cur, run_id: int, *allowed: RunStatus) -> dict:
    """The run as it is now, read under the customer's lock: a run that a newer one
    superseded is never revived."""
    run = runs.row(cur, run_id)
    if run["status"] == RunStatus.SUPERSEDED:
        raise RunSuperseded(f"run {run_id} was superseded by a newer file: nothing more to do")
    if allowed and run["status"] not in allowed:
        raise NotDecidable(
            f"run {run_id} is {run['status']}, not {' or '.join(str(s) for s in allowed)}"
        )
    return run


def compute_diff(conn, plan: Plan, run_id: int) -> dict:
    """The change set of a staged run (once). After a delay-delete window (normal mode) the
    deletions it deferred join this change set, so the filter judges them."""
    with conn, conn.cursor() as cur:
        runs.guard(cur, plan.customer, plan.holder)
        run = _current(cur, run_id)
        if run["status"] != RunStatus.STAGED:
            return runs.summary(conn, run_id)
        committed = runs.latest(cur, plan.customer, (RunStatus.COMMITTED,))
        cur.execute(
            "SELECT (SELECT count(*) FROM sis.persons WHERE customer = %(c)s),"
            " (SELECT count(*) FROM sis.groups WHERE customer = %(c)s),"
            " (SELECT count(*) FROM sis.memberships WHERE customer = %(c)s)",
            {"c": plan.customer},
        )
        base = dict(zip(("person", "group", "membership"), cur.fetchone(), strict=True))
        counts = diff.compute(
            cur, run_id, plan.customer, run["file_type"], release_deferred=plan.mode == Mode.NORMAL
        )
        runs.update(
            cur,
            run_id,
            status=RunStatus.DIFFED,
            counts=counts,
            base_counts=base,
            base_run=committed["id"] if committed else None,
        )
    log.info("run %s diffed: %s", run_id, counts)
    faults.crash_point("diff:done")
    return runs.summary(conn, run_id)


def judge(
    conn, plan: Plan, run_id: int, config: CustomerConfig, now: datetime | None = None
) -> dict:
    """Put a diffed run through the filter (once). A run over a threshold is held: it waits
    for a person's decision until its deadline."""
    run = runs.summary(conn, run_id)
    if run["status"] != RunStatus.DIFFED or run["verdict"] is not None:
        return run
    name, profile = filter_.profile_for(config, plan.rollover)
    kept = None
    if run["file_type"] == "full":
        kept = {e: run["records"][e] - run["skipped"][e] for e in ("person", "group")}
    verdict = filter_.judge(run["counts"], run["base_counts"], kept, profile, name)
    now = now or datetime.now(UTC)
    deadline = now + timedelta(hours=config.filter.deadline_hours)
    with conn, conn.cursor() as cur:
        if verdict.passed or plan.dry_run:
            runs.guard(cur, plan.customer, plan.holder)
            _current(cur, run_id, RunStatus.DIFFED)
            runs.update(cur, run_id, profile=name, verdict=verdict.as_dict())
        else:
            runs.guard(cur, plan.customer, plan.holder, until=deadline + HELD_GRACE)
            _current(cur, run_id, RunStatus.DIFFED)
            runs.update(
                cur,
                run_id,
                profile=name,
                verdict=verdict.as_dict(),
                status=RunStatus.HELD,
                held_at=now,
                deadline=deadline,
            )
            log.warning("run %s held by the filter: %s rule(s) tripped", run_id, len(verdict.trips))
    faults.crash_point("judge:done")
    return runs.summary(conn, run_id)


def stage_and_judge(
    conn,
    plan: Plan,
    path: str,
    *,
    config: CustomerConfig | None = None,
    sender=None,
    now: datetime | None = None,
) -> Plan:
    """Read, stage, diff and judge the file. A held run sends its HELD email now (once), so
    someone knows that a decision waits; a held run past its deadline is expired."""
    from .sources import landing

    config = customer_config(plan.customer, config)
    with landing.local_copy(path) as local:
        run = stage(conn, plan, local, default_type=config.file_type, recorded_as=path)
    if run["status"] == RunStatus.STAGED and plan.rollover:
        run = _ready(conn, plan, run, config)
    if run["status"] == RunStatus.STAGED:
        run = compute_diff(conn, plan, run["id"])
    if run["status"] == RunStatus.DIFFED:
        run = judge(conn, plan, run["id"], config, now=now)
    if run["status"] == RunStatus.HELD and run["decision"] is None:
        if run["deadline"] and (now or datetime.now(UTC)) >= run["deadline"]:
            run = decide(
                conn,
                run["id"],
                "expired",
                by=None,
                reason="no answer before the deadline",
                via="deadline",
            )
        else:
            # the holder keeps the customer until the decision (or the deadline)
            with conn, conn.cursor() as cur:
                runs.guard(cur, plan.customer, plan.holder, until=run["deadline"] + HELD_GRACE)
            plan.run_id = run["id"]
            plan.held_email = notify(conn, plan, config, sender=sender)
    if plan.dry_run and run["status"] in (RunStatus.DIFFED, RunStatus.HELD):
        with conn, conn.cursor() as cur:  # nothing of a dry run is ever resumed
            runs.guard(cur, plan.customer, plan.holder)
            staging.drop(cur, run["id"])
            runs.update(cur, run["id"], status=RunStatus.DRY_RUN)
    plan.run_id = run["id"]
    plan.status = runs.get(conn, run["id"])["status"]
    if plan.status == RunStatus.REJECTED:
        fatal = run["fatal"] or {}
        where = f"line {fatal['line']}: " if fatal.get("line") else ""
        raise FileRejected(f"{run['file_name']} was rejected whole: {where}{fatal.get('reason')}")
    return plan


def _ready(conn, plan: Plan, run: dict, config: CustomerConfig) -> dict:
    """A rollover's readiness checks, against the file it staged: blocking findings stop it
    (nothing diffed or applied, the school year not switched) unless the operator overrode
    them in the form; a dry run only reports them."""
    from . import readiness

    with conn, conn.cursor() as cur:
        findings = readiness.check(
            cur,
            config,
            school_year.SchoolYear.from_dict(plan.school_year),
            people=readiness.staged_people(cur, run["id"]),
            on=date.fromisoformat(plan.day),
        )
    plan.readiness = {**findings.summary(), "overridden": bool(plan.override and findings.blocking)}
    if not findings.blocking or plan.override or plan.dry_run:
        return run
    with conn, conn.cursor() as cur:
        runs.guard(cur, plan.customer, plan.holder)
        staging.drop(cur, run["id"])
        runs.update(cur, run["id"], status=RunStatus.ABORTED, plan=plan.as_dict())
    plan.run_id, plan.status = run["id"], RunStatus.ABORTED
    raise NotReady(
        f"rollover into {plan.school_year['label']} stopped by blocking readiness "
        "findings: "
        + ", ".join(f"{findings.title(name)} {n}" for name, n in findings.blocking.items())
    )


# -- decide --------------------------------------------------------------------------------------


def decide(
    conn, run_id: int, decision: str, *, by: str | None, reason: str | None, via: str
) -> dict:
    """Record the decision on a held run: opened (it goes on), rejected or expired (aborted).
    The same decision again is accepted; a contradicting one is refused
    (:class:`~sisflow.errors.ContradictingDecision`), and so is a decision on a run that is
    not held (:class:`~sisflow.errors.NotDecidable`)."""
    with conn, conn.cursor() as cur:
        run = runs.row(cur, run_id)
        runs.lock_customer(cur, run["customer"])
        run = runs.row(cur, run_id)
        stored = filter_.stored_decision(cur, run_id)
        if stored is None and run["status"] != RunStatus.HELD:
            raise NotDecidable(f"run {run_id} is {run['status']}: only a held run takes a decision")
        stored = filter_.record_decision(cur, run_id, decision, by=by, reason=reason, via=via)
        if stored["decision"] != "opened" and run["status"] == RunStatus.HELD:
            runs.update(cur, run_id, status=RunStatus.ABORTED)
    log.info("run %s: filter %s via %s", run_id, stored["decision"], stored["via"])
    return runs.summary(conn, run_id)


def goes_on(run: dict) -> bool:
    """Go or no go: the filter passed, or a person opened it; never for a dry run."""
    if run["status"] == RunStatus.DIFFED:
        return bool((run["verdict"] or {}).get("passed"))
    if run["status"] == RunStatus.HELD:
        return (run["decision"] or {}).get("decision") == "opened"
    return run["status"] == RunStatus.COMMITTED and run["lms_applied_at"] is None


# -- apply ---------------------------------------------------------------------------------------


def commit(conn, plan: Plan, run_id: int) -> dict:
    """Move the customer's current state forward by the run's change set (once). Only a run
    that the filter passed, or that a person opened, and that is still the newest, is
    committed."""
    with conn, conn.cursor() as cur:
        runs.guard(cur, plan.customer, plan.holder)
        run = _current(cur, run_id)
        if run["status"] == RunStatus.COMMITTED:
            return runs.summary(conn, run_id)
        decision = filter_.stored_decision(cur, run_id)
        opened = run["status"] == RunStatus.HELD and decision and decision["decision"] == "opened"
        passed = run["status"] == RunStatus.DIFFED and (run["verdict"] or {}).get("passed")
        if not (opened or passed):
            raise NotDecidable(
                f"run {run_id} is {run['status']} and was not passed or opened: it is not committed"
            )
        committed = runs.latest(cur, plan.customer, (RunStatus.COMMITTED,))
        if (committed["id"] if committed else None) != run["base_run"]:
            raise RunSuperseded(
                f"run {run_id} was diffed against run {run['base_run']}, but the current state"
                f" is now run {committed['id'] if committed else None}: stage the file again"
            )
        state.apply_changes(cur, run_id, plan.customer, run["counts"], run["base_counts"])
        if plan.school_year:  # the first import sets it; a rollover switches it
            school_year.record(
                cur, plan.customer, school_year.SchoolYear.from_dict(plan.school_year), run_id
            )
        staging.drop(cur, run_id)
        runs.update(cur, run_id, status=RunStatus.COMMITTED)
    log.info("run %s committed", run_id)
    faults.crash_point("commit:done")
    return runs.summary(conn, run_id)


def apply(conn, plan: Plan, config: CustomerConfig | None = None) -> Plan:
    """Commit the run and apply it to the customer's LMS (resumes where a crash left it)."""
    config = customer_config(plan.customer, config)
    run = commit(conn, plan, plan.run_id)
    if run["lms_applied_at"] is None:
        lms_apply.apply_run(
            conn,
            plan.run_id,
            mode=plan.mode,
            course_archiving=config.course_archiving,
            holder=plan.holder,
        )
    plan.status = RunStatus.COMMITTED
    return plan


# -- finish --------------------------------------------------------------------------------------


def notify(
    conn,
    plan: Plan | None,
    config: CustomerConfig,
    *,
    refusal: dict | None = None,
    failed: dict | None = None,
    sender=None,
    kind: str = "import",
) -> dict:
    """Build the status email and send it (to the outbox unless a sender is given); a run's
    email for one outcome goes out once however often this is called."""
    from .report.build import build
    from .report.email import Outbox

    run = runs.summary(conn, plan.run_id) if plan and plan.run_id else None
    report = build(
        conn,
        config,
        run,
        plan=plan.as_dict() if plan else {"kind": kind},
        refusal=refusal,
        failed=failed,
    )
    if run is not None and report.outcome in (run.get("emails") or []):
        return {"outcome": report.outcome, "subject": report.subject, "sent": None}
    where = (sender or Outbox()).send(report)
    if run is not None:
        with conn, conn.cursor() as cur:
            cur.execute(
                "UPDATE sis.runs SET emails = emails || %s::jsonb WHERE id = %s",
                (f'["{report.outcome}"]', run["id"]),
            )
    return {"outcome": report.outcome, "subject": report.subject, "sent": where}


def finish(
    conn,
    plan: Plan | None,
    *,
    customer: str | None = None,
    config: CustomerConfig | None = None,
    refusal: Refusal | dict | None = None,
    failed: dict | None = None,
    sender=None,
    kind: str = "import",
) -> dict:
    """End the run: its status email (unless it waits at the filter: the HELD email said so
    already) and the lease given back. Returns the run's summary with the outcome. ``plan`` is
    None when the run was refused before it began (``customer`` and ``kind`` say whose)."""
    customer = plan.customer if plan else customer
    if isinstance(refusal, Refusal):
        refusal = refusal.as_dict()
    try:
        config = customer_config(customer, config)
    except InvalidCustomer:
        config = CustomerConfig(id="invalid-customer")  # the email says why; outbox only
    run = runs.summary(conn, plan.run_id) if plan and plan.run_id else None
    waiting = run is not None and run["status"] == RunStatus.HELD and not refusal and not failed
    try:
        email = (
            None
            if waiting
            else notify(
                conn, plan, config, refusal=refusal, failed=failed, sender=sender, kind=kind
            )
        )
    finally:  # an email that cannot be sent never keeps the customer locked
        if plan and plan.outcome != "paused":
            _prune_landing(conn, plan, config)
            runs.release(conn, plan.customer, plan.holder)
    result = (
        dict(run)
        if run
        else {
            "id": None,
            "customer": customer,
            "status": (plan.outcome if plan else None) or ("failed" if failed else "refused"),
        }
    )
    if waiting:
        email = plan.held_email or {"outcome": "held", "subject": None, "sent": None}
    result.update(
        calendar=plan.calendar if plan else None,
        refusal=refusal,
        failed=failed,
        finished=plan.finished if plan else [],
        email=email,
        outcome=email["outcome"],
    )
    return result


def _prune_landing(conn, plan: Plan, config: CustomerConfig) -> None:
    """Exports older than the customer's ``landing_days`` leave the landing zone; the file of
    this run and of the last committed run always stay."""
    from .sources.landing import prune

    with conn.cursor() as cur:
        cur.execute(
            "SELECT file_name FROM sis.runs WHERE customer = %s AND (id = %s OR id ="
            " (SELECT max(id) FROM sis.runs WHERE customer = %s AND status = %s))",
            (plan.customer, plan.run_id, plan.customer, str(RunStatus.COMMITTED)),
        )
        keep = {row[0] for row in cur.fetchall()}
    gone = prune(plan.customer, config.landing_days, keep)
    if gone:
        log.info(
            "%s: %s files older than %g days left the landing zone",
            plan.customer,
            len(gone),
            config.landing_days,
        )


# -- the whole run, for the command line ---------------------------------------------------------


def run(
    conn,
    customer: str,
    path=None,
    *,
    dry_run: bool = False,
    on: date | None = None,
    config: CustomerConfig | None = None,
    rollover: bool = False,
    sender=None,
    holder: tuple[str, str] | None = None,
    now: datetime | None = None,
    target_year: str | None = None,
    override: bool = False,
    accept_older: bool = False,
) -> dict:
    """One run without Airflow: the same phases the DAG's tasks run, in order. ``path``: a
    file to import; None fetches the newest export from the customer's source.

    ``on`` is the date the calendar is read for (default today in Europe/Oslo). A dry run
    computes the change set and the filter's verdict and applies nothing. A rollover goes into
    ``target_year`` (default: the year after the active one), is refused before that year's
    earliest rollover date, stops on blocking readiness findings unless ``override``, is judged
    by the rollover profile and switches the active school year when it commits. A held run
    stops here; ``sisflow filter open`` goes on with it."""
    holder, description = holder or process_holder()
    try:
        plan = begin(
            conn,
            customer,
            holder=holder,
            description=description,
            day=on,
            rollover=rollover,
            dry_run=dry_run,
            process=True,
            config=config,
            target_year=target_year,
            override=override,
        )
    except Refusal as err:
        log.warning("%s: %s", customer, err)
        return finish(
            conn,
            None,
            customer=customer,
            config=config,
            refusal=err,
            sender=sender,
            kind="rollover" if rollover else "import",
        )
    plan.accept_older = accept_older

    def work(plan: Plan) -> Plan:
        if plan.outcome is None:
            given = os.fspath(path) if path else None
            plan = stage_and_judge(
                conn,
                plan,
                fetch(plan, config, given, confined=False),
                config=config,
                sender=sender,
                now=now,
            )
            if not plan.dry_run and goes_on(runs.summary(conn, plan.run_id)):
                plan = apply(conn, plan, config)
        return plan

    return _to_the_end(conn, plan, work, config=config, sender=sender, task="run")


def _to_the_end(conn, plan: Plan, work, *, config, sender, task: str) -> dict:
    """``work(plan)``, then the run's end: a refusal or an error has its email too (and the
    lease is given back); an error is raised again after that."""
    try:
        plan = work(plan)
    except Refusal as err:
        return finish(conn, plan, config=config, refusal=err, sender=sender)
    except SourceError as err:  # nothing to import: said in the email, not a crash
        return finish(
            conn,
            plan,
            config=config,
            sender=sender,
            failed={"task": "fetch", "reason": f"{type(err).__name__}: {err}"},
        )
    except Exception as err:
        finish(
            conn,
            plan,
            config=config,
            sender=sender,
            failed={"task": task, "reason": f"{type(err).__name__}: {err}"},
        )
        raise
    return finish(conn, plan, config=config, sender=sender)


def resume(
    conn,
    run_id: int,
    *,
    config: CustomerConfig | None = None,
    sender=None,
    holder: tuple[str, str] | None = None,
) -> dict:
    """Go on with a held run that a person decided from the command line, when no Airflow run
    waits for it: opened, it is applied under the plan it was judged with; rejected or
    expired, its final email goes out."""
    run = runs.summary(conn, run_id)
    holder, description = holder or process_holder()
    plan = Plan.from_dict(
        {
            **run["plan"],
            "holder": holder,
            "description": description,
            "run_id": run_id,
            "status": run["status"],
            "finished": [],
        }
    )
    try:
        runs.acquire(conn, plan.customer, holder, description, process=True)
    except Refusal as err:
        return finish(conn, None, customer=plan.customer, config=config, refusal=err, sender=sender)
    return _to_the_end(
        conn,
        plan,
        lambda p: apply(conn, p, config) if goes_on(run) else p,
        config=config,
        sender=sender,
        task="apply",
    )
