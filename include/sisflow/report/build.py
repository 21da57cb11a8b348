"""The status report of one run: what arrived, what changed, what was held back and why, and
what needs a person. Ids, counts and lines only: never names, emails or birth dates.

Every run of a customer's import ends with one of these, whatever happened; the outcome says
which story the email tells.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..calendar import next_run
from ..config import CustomerConfig

MAX_EXAMPLES = 20

SUBJECTS = {
    "applied": "applied: {changes} changes",
    "nothing-changed": "nothing changed",
    "held": "HELD by the filter: a person must decide",
    "rejected": "stopped: the held import was rejected",
    "expired": "stopped: no decision before the deadline",
    "opened": "applied after the filter was opened: {changes} changes",
    "paused": "paused until {until}: nothing fetched",
    "delay-delete": "applied, {deferred} deletions held back until {until}",
    "rejected-file": "REJECTED FILE: nothing imported",
    "failed": "FAILED: {where}",
    "dry-run": "dry run: {changes} changes computed, nothing applied",
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


def _outcome(run: dict | None, calendar: dict | None, failed_task: str | None) -> str:
    if failed_task:
        return "failed"
    if run is None:
        return "paused" if calendar and calendar["mode"] == "paused" else "failed"
    status = run["status"]
    decision = (run.get("decision") or {}).get("decision")
    if status == "rejected":
        return "rejected-file"
    if status == "unchanged":
        return "nothing-changed"
    if status == "held":
        return "held"
    if status == "aborted":
        return "expired" if decision == "expired" else "rejected"
    if status in ("diffed", "staged"):
        return "dry-run"
    if status == "committed":
        if run.get("lms_mode") == "delay-delete":
            return "delay-delete"
        return "opened" if decision == "opened" else "applied"
    return "failed"


def _limits(run: dict, config: CustomerConfig) -> list[dict]:
    """Changes against their thresholds, for the small chart in the email."""
    profile = config.filter.rollover if run.get("profile") == "rollover" else config.filter.default
    rows = []
    for entity in ("person", "group", "membership"):
        for op in ("create", "update", "delete"):
            limit = getattr(getattr(profile, entity), op)
            if limit is None:
                continue
            n = (run["counts"] or {}).get(entity, {}).get(op, 0)
            base = (run.get("base_counts") or {}).get(entity, 0)
            allowed = [x for x in (limit.count,
                                   base * limit.percent / 100 if limit.percent is not None and base
                                   else None) if x is not None]
            if not allowed:
                continue
            cap = min(allowed)
            rows.append({"entity": entity, "op": op, "actual": n, "limit": round(cap),
                         "share": min(100, round(100 * n / cap)) if cap else 100,
                         "over": n > cap})
    return rows


def build(conn, config: CustomerConfig, run_id: int | None, *, calendar: dict | None = None,
          failed_task: str | None = None, airflow: dict | None = None) -> Report:
    from .. import pipeline

    run = pipeline.summary(conn, run_id) if run_id else None
    outcome = _outcome(run, calendar, failed_task)
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM sis.deferred_deletions WHERE customer = %s"
                    " AND applied_run IS NULL AND dropped_run IS NULL", (config.id,))
        deferred = cur.fetchone()[0]
        problems = []
        if run_id:
            cur.execute("SELECT entity, record_id, line, reason, severity FROM sis.problems"
                        " WHERE run_id = %s ORDER BY line NULLS FIRST LIMIT %s",
                        (run_id, MAX_EXAMPLES))
            problems = [dict(zip(("entity", "id", "line", "reason", "severity"), row,
                                 strict=True)) for row in cur.fetchall()]
    changes = sum(sum(c.values()) for c in (run or {}).get("counts", {}).values()) if run and \
        run.get("counts") else 0
    until = (calendar or {}).get("until") or "?"
    subject = SUBJECTS[outcome].format(changes=changes, until=until, deferred=deferred,
                                       where=failed_task or "see the run")
    report = Report(
        customer=config.id, customer_name=config.name or config.id, outcome=outcome,
        subject=f"[sisflow] {config.name or config.id}: {subject}", run=run, calendar=calendar,
        deferred_waiting=deferred, problems=problems,
        limits=_limits(run, config) if run and run.get("counts") else [],
        airflow=airflow, recipients=list(config.recipients),
        next_run=f"{next_run(config):%Y-%m-%d %H:%M} {config.schedule.timezone}",
    )
    report.next_steps = _next_steps(report)
    return report


def _next_steps(r: Report) -> list[str]:
    run_id = r.run["id"] if r.run else None
    steps = {
        "held": [f"Check the change with {r.customer_name}. If it is right, open the filter: "
                 "answer the approval task of the run in Airflow, or run "
                 f"'sisflow filter open {run_id} --by NAME --reason TEXT'. If it is wrong, "
                 f"reject it ('sisflow filter reject {run_id} ...') and ask for a new export."],
        "rejected-file": ["Ask the SIS supplier for a new export; the reason and line are above. "
                          "Nothing was imported."],
        "rejected": ["Nothing was applied. Ask for a corrected export."],
        "expired": ["Nothing was applied: no one decided before the deadline. The next file "
                    "will be judged again."],
        "failed": ["Look at the failed task's log in Airflow, fix the cause and clear the task; "
                   "the steps are safe to run again."],
        "delay-delete": [f"{r.deferred_waiting} deletions wait for the end of the delay-delete "
                         "window. The first import after it will carry them and may trip the "
                         "filter: check them before opening it."],
        "paused": ["Nothing to do: the integration resumes after the pause."],
    }
    result = list(steps.get(r.outcome, []))
    if r.problems:
        result.append("Some records were skipped (listed above): ask the SIS supplier to fix them.")
    return result or ["Nothing: the import went through."]
