"""One import DAG and one rollover DAG per customer file in the customers folder.

    sisflow_import__<customer>     on the customer's schedule
    sisflow_rollover__<customer>   by hand, on the date the operator chooses (rollover profile)

Parsing reads the customer files and nothing else: no database, no network. The tasks call
``sisflow.pipeline`` with small arguments (a customer id, a path, a run id) and pass small
results over XCom; the data stays in Postgres and in the landing zone. A broken customer file
gives that customer a one-task DAG that fails with the file's error, and never stops the other
customers' DAGs from loading.
"""

from __future__ import annotations

import json
from datetime import date, timedelta

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import DAG, Param, dag, get_current_context, get_parsing_context, task
from airflow.timetables.trigger import CronTriggerTimetable
from sisflow.config import ConfigError, CustomerConfig, load_all

OWNER = "integration-ops"
OPEN, REJECT = "Open the filter", "Reject"
FIRST_STEPS = ("users", "units", "terms", "courses")
ARCHIVE_STEPS = ("groups_removed",)
LAST_STEPS = ("memberships", "users_removed", "deferred_settled")


def _conn():
    from sisflow.db.connection import connect  # at run time only: parsing touches no database

    return connect()


def _day(params) -> date:
    from sisflow.calendar import today

    return date.fromisoformat(params["date"]) if params.get("date") else today()


def _calendar(customer: str, params):
    """The customer's file as it is now, and its calendar on the run's date."""
    from sisflow.calendar import state_on
    from sisflow.config import load_customer

    config = load_customer(customer)
    return config, state_on(config, _day(params))


def _mode(context) -> str:
    """normal or delay-delete: whichever of the two branch tasks ran."""
    return next(m for m in context["ti"].xcom_pull(task_ids=["normal", "delay_delete"]) if m)


def _doc(config: CustomerConfig, rollover: bool) -> str:
    profile = config.filter.rollover if rollover else config.filter.default
    rows = []
    for entity in ("person", "group", "membership"):
        for op in ("create", "update", "delete"):
            limit = getattr(getattr(profile, entity), op)
            if limit:
                rows.append(f"| {entity} | {op} | {limit.count if limit.count is not None else ''}"
                            f" | {f'{limit.percent:g}%' if limit.percent is not None else ''} |")
    windows = [f"- pause {w.start} to {w.end}" for w in config.pause]
    windows += [f"- delay delete {w.start} to {w.end}" for w in config.delay_delete]
    kind = "Rollover (by hand, rollover filter profile)" if rollover else "Import"
    return "\n".join([
        f"# {kind}: {config.name or config.id}",
        f"SIS: {config.sis_vendor.value}. Course archiving: "
        f"{'on' if config.course_archiving else 'off'}. Summer school: "
        f"{'yes' if config.summer_school else 'no'}.",
        "## Calendar (days inclusive, Europe/Oslo)",
        *(windows or ["- no windows"]),
        "## Filter thresholds (count and/or share of the current size)",
        "| entity | operation | count | percent |", "|---|---|---|---|", *rows,
        f"Files holding less than {profile.min_share:g}% of the current persons or groups are held."
        f" A held run waits {config.filter.deadline_hours:g} hours for a decision:"
        " answer the *approval* task, or `sisflow filter open RUN --by NAME --reason TEXT`.",
    ])


def build(config: CustomerConfig, *, rollover: bool = False) -> DAG:
    customer = config.id
    kind = "rollover" if rollover else "import"

    @dag(
        dag_id=f"sisflow_{kind}__{customer}",
        schedule=None if rollover else CronTriggerTimetable(config.schedule.cron,
                                                            timezone=config.schedule.timezone),
        max_active_runs=1,
        tags=["sisflow", kind, customer, config.sis_vendor.value],
        doc_md=_doc(config, rollover),
        default_args={"owner": OWNER, "retries": 2, "retry_delay": timedelta(minutes=2)},
        params={
            "dry_run": Param(False, type="boolean", description="compute and judge, apply nothing"),
            "file": Param(None, type=["null", "string"],
                          description="import this file instead of fetching the newest"),
            "date": Param(None, type=["null", "string"], format="date",
                          description="read the calendar for this date instead of today"),
        },
    )
    def customer_dag():
        @task.branch
        def check_calendar(params=None) -> str:
            from sisflow import calendar

            _, state = _calendar(customer, params)
            if state.mode == calendar.PAUSED:
                return "paused"
            if rollover and _day(params) < state.earliest_rollover:
                raise ValueError(f"rollover is allowed from {state.earliest_rollover}")
            return "fetch"

        @task
        def paused(params=None) -> dict:
            _, state = _calendar(customer, params)
            print(f"{customer} is paused until {state.until}: nothing fetched, nothing applied")
            return {"status": "paused", "until": state.until.isoformat()}

        @task
        def fetch(params=None) -> str:
            from sisflow.config import load_customer
            from sisflow.sources import folder

            source = load_customer(customer).source
            if source and source.kind != "folder" and not params.get("file"):
                raise NotImplementedError(f"{source.kind} sources are not built yet")
            return str(folder.fetch(customer, source.path if source else "", params.get("file")))

        @task
        def read_and_stage(path: str) -> dict:
            from sisflow import pipeline

            conn = _conn()
            result = pipeline.stage(conn, customer, path)
            context = get_current_context()
            with conn, conn.cursor() as cur:
                cur.execute("UPDATE sis.runs SET airflow_run = %s WHERE id = %s",
                            (json.dumps({"dag_id": context["dag"].dag_id,
                                         "run_id": context["run_id"]}), result["id"]))
            return {"run_id": result["id"], "status": result["status"]}

        @task
        def diff(staged: dict, params=None) -> dict:
            from sisflow import calendar, pipeline

            if staged["status"] not in ("staged", "diffed", "held"):
                return staged
            _, state = _calendar(customer, params)
            result = pipeline.compute_diff(_conn(), staged["run_id"],
                                           release_deferred=state.mode == calendar.NORMAL)
            return {"run_id": result["id"], "status": result["status"], "counts": result["counts"]}

        @task.branch
        def filter(diffed: dict) -> str:  # noqa: A001 (the task's name in the UI)
            from sisflow import pipeline
            from sisflow.config import load_customer

            if diffed["status"] not in ("diffed", "held"):
                return "report"  # rejected or unchanged: nothing to judge
            result = pipeline.judge(_conn(), diffed["run_id"], load_customer(customer),
                                    rollover=rollover)
            return "describe_hold" if result["status"] == "held" else "choose_mode"

        approval = HITLOperator(
            task_id="approval",
            subject=f"{customer}: the filter holds this import",
            body="{{ ti.xcom_pull(task_ids='describe_hold') }}",
            options=[OPEN, REJECT],
            params={"reason": Param("", type="string", description="why (kept with the run)")},
            response_timeout=timedelta(hours=config.filter.deadline_hours),
            retries=0,
        )

        @task
        def describe_hold(diffed: dict) -> str:
            from sisflow import pipeline

            run = pipeline.summary(_conn(), diffed["run_id"])
            lines = [f"Run {run['id']} ({run['file_name']}) is held by the filter "
                     f"({run['verdict']['profile']} profile):"]
            lines += [f"- {t['text']}" for t in run["verdict"]["trips"]]
            lines.append("Check the change with the customer, then open the filter or reject. "
                         f"CLI: sisflow filter open {run['id']} --by NAME --reason TEXT")
            return "\n".join(lines)

        @task.branch(trigger_rule="all_done", retries=0)
        def decide(diffed: dict | None) -> str:
            """The one place a decision on a held run is stored, however it was made."""
            from sisflow import pipeline

            if not diffed:  # paused, or nothing was staged: there is nothing to decide
                return "report"
            conn = _conn()
            run = pipeline.summary(conn, diffed["run_id"])
            if run["status"] == "held" and run["decision"] is None:
                context = get_current_context()
                answer = context["ti"].xcom_pull(task_ids="approval")
                if answer:  # answered in the Airflow UI (or its REST API)
                    by = (answer.get("responded_by_user") or {}).get("name")
                    reason = (answer.get("params_input") or {}).get("reason") or None
                    choice = "opened" if answer["chosen_options"] == [OPEN] else "rejected"
                    run = pipeline.decide(conn, run["id"], choice, by=by, reason=reason,
                                          via="airflow")
                else:  # the approval task timed out at the deadline (or failed)
                    run = pipeline.decide(conn, run["id"], "expired", by=None,
                                          reason="no answer before the deadline", via="deadline")
            passed = run["status"] == "diffed"  # the filter passed: nothing was held
            opened = (run["decision"] or {}).get("decision") == "opened"
            return "choose_mode" if passed or opened else "report"

        @task.branch(trigger_rule="none_failed_min_one_success")
        def choose_mode(params=None) -> str:
            from sisflow import calendar

            _, state = _calendar(customer, params)
            if params.get("dry_run"):
                return "report"
            return "delay_delete" if state.mode == calendar.DELAY_DELETE else "normal"

        @task
        def normal() -> str:
            return "normal"

        @task
        def delay_delete() -> str:
            return "delay-delete"

        @task(trigger_rule="none_failed_min_one_success")
        def apply() -> int:
            # the run id comes from XCom, not an argument: an argument would make diff an
            # upstream, and "one success" would then let apply run when no mode was chosen
            from sisflow import pipeline
            from sisflow.config import load_customer

            context = get_current_context()
            run_id = context["ti"].xcom_pull(task_ids="read_and_stage")["run_id"]
            conn, config, mode = _conn(), load_customer(customer), _mode(context)
            # an earlier run that failed half-way through the LMS is finished first
            pipeline.finish_pending_apply(conn, customer, config, mode)
            pipeline.commit(conn, run_id)
            pipeline.apply_to_lms(conn, run_id, config, mode, only=FIRST_STEPS)
            return run_id

        @task
        def archive_courses(run: int) -> int:
            from sisflow import pipeline
            from sisflow.config import load_customer

            pipeline.apply_to_lms(_conn(), run, load_customer(customer),
                                  _mode(get_current_context()), only=ARCHIVE_STEPS)
            return run

        @task
        def apply_removals(run: int) -> int:
            from sisflow import pipeline
            from sisflow.config import load_customer

            pipeline.apply_to_lms(_conn(), run, load_customer(customer),
                                  _mode(get_current_context()), only=LAST_STEPS)
            return run

        @task(trigger_rule="all_done", retries=0)
        def report(params=None) -> dict:
            """Exactly one status email per run, whatever happened (no retries: a SendGrid
            error is retried inside the sender, then fails this task loudly)."""
            from sisflow import pipeline
            from sisflow.airflow_connections import sendgrid_settings
            from sisflow.report.email import SendGrid

            context = get_current_context()
            ti, dag_run = context["ti"], context["dag_run"]
            states = ti.get_task_states(dag_id=dag_run.dag_id, run_ids=[dag_run.run_id])
            states = states.get(dag_run.run_id, {})
            # tasks that failed themselves (upstream_failed ones are consequences); the approval
            # task fails at its deadline, and that outcome is "expired", not a failure
            failed = sorted(t for t, s in states.items() if s == "failed" and t != "approval")
            config, state = _calendar(customer, params)
            staged = ti.xcom_pull(task_ids="read_and_stage")
            settings = sendgrid_settings()
            sender = None
            if settings:
                sender = SendGrid(settings["api_key"], host=settings["host"],
                                  **({"from_email": settings["from_email"]}
                                     if settings["from_email"] else {}))
            base = context["conf"].get("api", "base_url", fallback="") if "conf" in context \
                else ""
            status = pipeline.send_status(
                _conn(), config, staged["run_id"] if staged else None,
                calendar={"date": _day(params).isoformat(), **state.as_dict()},
                failed_task=failed[0] if failed else None,
                airflow={"dag_id": dag_run.dag_id, "run_id": dag_run.run_id,
                         "url": f"{base}/dags/{dag_run.dag_id}/runs/{dag_run.run_id}"},
                sender=sender)
            print(f"{customer}: {status['subject']} -> {status['sent']}")
            return status

        gate = check_calendar()
        fetched = fetch()
        diffed = diff(read_and_stage(fetched))
        judged = filter(diffed)
        pause_note = paused()
        gate >> [pause_note, fetched]
        hold = describe_hold(diffed)
        judged >> hold >> approval
        decided = decide(diffed)
        approval >> decided
        mode = choose_mode()
        judged >> mode
        decided >> mode
        applied = apply()
        modes = [normal(), delay_delete()]
        mode >> modes >> applied
        archived = archive_courses(applied)
        done = apply_removals(archived)
        finish = report()
        # report hangs off every path (a branch skips the direct downstream it did not choose,
        # unless it lies on the chosen path)
        [done, judged, decided, mode, pause_note] >> finish
        # the run fails when any task failed; report runs whatever happened
        end = EmptyOperator(task_id="end", trigger_rule="none_failed")
        everything = [gate, fetched, diffed, judged, hold, approval, decided, mode, *modes,
                      applied, archived, done, finish]
        everything >> end

    return customer_dag()


def _broken(error: ConfigError) -> DAG:
    """A customer whose file is invalid: one task that fails with the file's error."""
    customer = error.path.stem

    @dag(dag_id=f"sisflow_import__{customer}", schedule=None, tags=["sisflow", "config-error"],
         doc_md=f"# Invalid customer file\n\n`{error}`", default_args={"owner": OWNER})
    def broken():
        @task(retries=0)
        def invalid_configuration():
            raise ValueError(str(error))

        invalid_configuration()

    return broken()


# A worker running one task parses this file for that task's DAG only: building the other
# customers' DAGs would cost every task start-up about 0.6 ms per task object in Airflow.
_only = get_parsing_context().dag_id
_configs, _errors = load_all()
for _config in _configs:
    for _rollover in (False, True):
        if _only and _only != f"sisflow_{'rollover' if _rollover else 'import'}__{_config.id}":
            continue
        _dag = build(_config, rollover=_rollover)
        globals()[_dag.dag_id] = _dag
for _error in _errors:
    globals()[f"sisflow_import__{_error.path.stem}"] = _broken(_error)
