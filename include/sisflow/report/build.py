"""The status report of one run: what arrived, what changed, what was held back and why, and
what needs a person. Ids, counts and lines only: never names, emails or birth dates.

Every run of a customer's import ends with one of these, whatever happened; the outcome says
which story the email tells.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..calendar import next_run
from ..config import CustomerConfig
from ..deferred import waiting
from ..filter import cap, limits, profile_for

MAX_EXAMPLES = 20

SUBJECTS = {
    "applied": "applied: {changes:,} changes",
    "finished-pending": "applied: {finished:,} changes that run {finished_run} left half-way;"
    " the file itself is unchanged",
    "nothing-changed": "nothing changed",
    "held": "HELD by the filter: a person must decide",
    "rejected": "stopped: the held import was rejected",
    "expired": "stopped: no decision before the deadline",
    "opened": "applied after the filter was opened: {changes:,} changes",
    "paused": "paused until {until}: nothing fetched",
    "delay-delete": "applied, {deferred:,} deletions held back until {until}",
    "rejected-file": "REJECTED FILE: nothing imported",
    "failed": "FAILED at {where}: {reason}",
    "dry-run": "dry run: {changes:,} changes computed, nothing applied",
    "busy": "not run: another run for {customer} is in progress",
    "rollover-too-early": "REFUSED: {reason}",
    "invalid-customer": "REFUSED: the customer configuration is invalid",
    "contradicting-decision": "REFUSED: contradicting decisions on run {run_id}, nothing applied",
    "superseded": "stopped: a newer file replaced this run",
    "refused": "REFUSED: {reason}",
    "not-ready": "STOPPED by blocking readiness findings: nothing applied",
}


@dataclass
class Report:
    customer: str
    customer_name: str
    outcome: str
    subject: str
    run: dict | None = None
    calendar: dict | None = None
    deferred_waiting: int = 0
    problems: list[dict] = field(default_factory=list)
    limits: list[dict] = field(default_factory=list)
    next_steps: list[str] = field(default_factory=list)
    airflow: dict | None = None  # dag_id, run_id, url
    recipients: list[str] = field(default_factory=list)
    next_run: str | None = None
    kind: str = "import"  # or rollover
    reason: str | None = None  # why the run was refused or failed, in one line
    headline: str = ""  # the subject without its "[sisflow] customer:" (a DAG run's note)
    finished: list[dict] = field(default_factory=list)  # earlier runs whose apply this finished
    #: records kept as they were because the file's copy was invalid: the first ones, and all
    kept: list[dict] = field(default_factory=list)
    kept_count: int = 0
    school_year_asked: str | None = None  # an HTTP trigger's request
    failed_task: str | None = None
    school_year: dict | None = None  # the school year the run worked in (a rollover's new one)
    readiness: dict | None = None  # a rollover's readiness findings (summary)
    #: groups of a later school year, kept back until its rollover
    later_year: int = 0


def _outcome(run: dict | None, plan: dict | None, refusal: dict | None, failed: dict | None) -> str:
    if failed:
        return "failed"
    if refusal:
        return refusal["outcome"]
    if run is None:
        return "paused" if plan and plan.get("outcome") == "paused" else "failed"
    status = run["status"]
    decision = (run.get("decision") or {}).get("decision")
    if status == "rejected":
        return "rejected-file"
    if status == "unchanged":
        return "finished-pending" if plan and plan.get("finished") else "nothing-changed"
    if status == "held":
        return "held"
    if status == "aborted":
        return "expired" if decision == "expired" else "rejected"
    if status == "dry-run":
        return "dry-run"
    if status == "superseded":
        return "superseded"
    if status == "committed":
        if run.get("lms_mode") == "delay-delete":
            return "delay-delete"
        return "opened" if decision == "opened" else "applied"
    return "failed"


def _limits(run: dict, config: CustomerConfig) -> list[dict]:
    """Changes against their thresholds, for the small chart in the email."""
    _, profile = profile_for(config, run.get("profile") == "rollover")
    rows = []
    for entity, op, limit in limits(profile):
        n = (run["counts"] or {}).get(entity, {}).get(op, 0)
        most = cap(limit, (run.get("base_counts") or {}).get(entity, 0))
        if most is None:
            continue
        rows.append(
            {
                "entity": entity,
                "op": op,
                "actual": n,
                "limit": round(most),
                "share": min(100, round(100 * n / most)) if most else 100,
                "over": n > most,
            }
        )
    return rows


def build(
    conn,
    config: CustomerConfig,
    run: dict | None,
    *,
    plan: dict | None = None,
    refusal: dict | None = None,
    failed: dict | None = None,
) -> Report:
    """The report of a run (``run``: its summary, None when no file was read) under its plan."""
    outcome = _outcome(run, plan, refusal, failed)
    calendar = (plan or {}).get("calendar")
    with conn.cursor() as cur:
        deferred = waiting(cur, config.id)
        problems, kept, kept_count, later_year = [], [], 0, 0
        if run:
            cur.execute(
                "SELECT entity, record_id, line, reason, severity FROM sis.problems"
                " WHERE run_id = %s ORDER BY line NULLS FIRST LIMIT %s",
                (run["id"], MAX_EXAMPLES),
            )
            problems = [
                dict(zip(("entity", "id", "line", "reason", "severity"), row, strict=True))
                for row in cur.fetchall()
            ]
            cur.execute(
                "SELECT count(*) FILTER (WHERE waits_for_year IS NULL),"
                " count(*) FILTER (WHERE waits_for_year IS NOT NULL)"
                " FROM sis.kept WHERE run_id = %(run)s",
                {"run": run["id"]},
            )
            kept_count, later_year = cur.fetchone()
            cur.execute(
                "SELECT entity, COALESCE(record_id, '(no id)')"
                " || COALESCE('/' || member_id, ''), line, reason"
                " FROM sis.kept WHERE run_id = %s AND waits_for_year IS NULL"
                " ORDER BY line NULLS LAST LIMIT %s",
                (run["id"], MAX_EXAMPLES),
            )
            kept = [
                dict(zip(("entity", "id", "line", "reason"), row, strict=True))
                for row in cur.fetchall()
            ]
    changes = (
        sum(sum(c.values()) for c in run["counts"].values()) if run and run.get("counts") else 0
    )
    finished = (plan or {}).get("finished") or []
    reason = (refusal or {}).get("reason") or (failed or {}).get("reason")
    until = (calendar or {}).get("until") or "?"
    subject = SUBJECTS[outcome].format(
        changes=changes,
        until=until,
        deferred=deferred,
        customer=config.id,
        where=(failed or {}).get("task") or "see the run",
        reason=reason,
        run_id=run["id"] if run else "?",
        finished=sum(f["changes"] for f in finished),
        finished_run=", ".join(str(f["run"]) for f in finished),
    )
    kind = (plan or {}).get("kind") or "import"
    name = config.name or config.id
    report = Report(
        customer=config.id,
        customer_name=name,
        outcome=outcome,
        # a database error's reason runs over lines; a subject is one line (the body has it all)
        subject=" ".join(
            f"[sisflow] {name}{' rollover' if kind == 'rollover' else ''}: {subject}".split()
        ),
        headline=" ".join(subject.split()),
        run=run,
        calendar=calendar,
        deferred_waiting=deferred,
        problems=problems,
        limits=_limits(run, config) if run and run.get("counts") else [],
        airflow=(plan or {}).get("airflow"),
        recipients=list(config.recipients),
        next_run=None
        if kind == "rollover"
        else f"{next_run(config):%Y-%m-%d %H:%M} {config.schedule.timezone}",
        kind=kind,
        reason=reason,
        finished=finished,
        kept=kept,
        kept_count=kept_count,
        school_year_asked=((plan or {}).get("fetched") or {}).get("school_year"),
        failed_task=(failed or {}).get("task"),
        school_year=(plan or {}).get("school_year"),
        readiness=(plan or {}).get("readiness"),
        later_year=later_year,
    )
    report.next_steps = _next_steps(report, refusal)
    return report


def _next_steps(r: Report, refusal: dict | None = None) -> list[str]:
    run_id = r.run["id"] if r.run else None
    steps = {
        "held": [
            f"Check the change with {r.customer_name}. If it is right, open the filter: "
            "answer the approval task of the run in Airflow, or run "
            f"'sisflow filter open {run_id} --by NAME --reason TEXT'. If it is wrong, "
            f"reject it ('sisflow filter reject {run_id} ...') and ask for a new export."
        ],
        "rejected": ["Nothing was applied. Ask for a corrected export."],
        "expired": [
            "Nothing was applied: no one decided before the deadline. The next file "
            "will be judged again."
        ],
        "failed": [
            "The export could not be fetched (the reason is above): check that the SIS "
            "made it and that the source and its Airflow connection are right; the next "
            "run tries again. Nothing was imported."
        ]
        if r.failed_task == "fetch"
        else [
            "Look at the failed task's log in Airflow, fix the cause and clear the task; "
            "the steps are safe to run again."
        ],
        "finished-pending": [
            f"Nothing: run(s) {', '.join(str(f['run']) for f in r.finished)} "
            "had not reached the LMS in full; this run applied the rest."
        ],
        "delay-delete": [
            f"{r.deferred_waiting} deletions wait for the end of the delay-delete "
            "window. The first import after it will carry them and may trip the "
            "filter: check them before opening it."
        ],
        "paused": ["Nothing to do: the integration resumes after the pause."],
    }
    result = list(steps.get(r.outcome, []))
    if refusal and refusal.get("advice"):
        result.append(refusal["advice"])
    if r.kept_count:
        result.append(
            f"{r.kept_count} records are invalid in this file and were kept as they "
            "were (listed below): ask the SIS supplier to fix them."
        )
    if r.later_year:
        result.append(
            f"{r.later_year} groups belong to a school year after "
            f"{(r.school_year or {}).get('label', 'the active one')}: they wait, "
            "untouched, until the customer's rollover into their year."
        )
    if r.readiness and r.readiness.get("overridden"):
        result.append(
            "The rollover went on despite blocking readiness findings (overridden in "
            "its form): check the lists below."
        )
    if r.problems:
        result.append("Some records were skipped (listed above): ask the SIS supplier to fix them.")
    return result or ["Nothing: the import went through."]
