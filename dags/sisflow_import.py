"""An import, a rollover and a readiness DAG per customer file in the customers folder.

    sisflow_import__<customer>     on the customer's schedule
    sisflow_rollover__<customer>   by hand: the new school year, the effective date (the run
                                   waits, deferred, until that day), dry run, override
    sisflow_readiness__<customer>  by hand, and on the customer's ``readiness_on`` days

    import, rollover:  begin -> fetch -> stage_and_judge -> (approval) -> apply -> finish
    readiness:         check -> (approval) -> attach

Each task is a call or two into ``sisflow.pipeline``, the same phases ``sisflow run`` runs;
the run's plan (date, calendar mode, run id) travels over XCom. Parsing reads the customer
files and nothing else: no database, no network. A broken customer file gives that customer
a one-task DAG that fails with the file's error; the other customers' DAGs load as usual.

The tasks are classic operators around module-level functions rather than ``@task`` closures:
with 500 customers the DAG processor builds 6,000 task objects, and the decorator machinery
doubled that cost (see docs/performance.md). For the same reason the decision on a
held run is recorded by ``apply``, right after the approval (the standard provider's
``ApprovalOperator`` idiom: the action follows the approval, and is skipped on a rejection).
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import date, timedelta
from functools import cache

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.providers.standard.operators.python import BranchPythonOperator, PythonOperator
from airflow.sdk import DAG, Param, ParamsDict, get_parsing_context
from airflow.timetables.trigger import CronTriggerTimetable
from sisflow.airflow_api import OPEN, REJECT
from sisflow.config import ConfigError, CustomerConfig, load_all
from sisflow_operators import WaitingPythonOperator

OWNER = "integration-ops"
# The trigger form. Its schemas name JSON Schema draft 7, which covers what they use: Airflow
# validates a scheduled DAG's params when it is built, and checking a schema against draft 7's
# metaschema costs a third of checking it against the default 2020-12 one (500 import DAGs).
_DRAFT7 = {"$schema": "http://json-schema.org/draft-07/schema#"}
FORM = {
    "dry_run": Param(
        False, type="boolean", description="compute and judge, apply nothing", **_DRAFT7
    ),
    "file": Param(
        None,
        type=["null", "string"],
        description="import this file (in the customer's landing zone or source "
        "folder) instead of fetching the newest",
        **_DRAFT7,
    ),
    "date": Param(
        None,
        type=["null", "string"],
        format="date",
        description="read the calendar for this date instead of the run's",
        **_DRAFT7,
    ),
    "accept_older": Param(
        False,
        type="boolean",
        description="import the file although it was made before the one "
        "the current state comes from (checked by a person)",
        **_DRAFT7,
    ),
}
ROLLOVER_FORM = {
    "school_year": Param(
        None,
        type=["null", "string"],
        pattern=r"^\d{4}-\d{4}$",
        description="the school year to switch to, e.g. 2026-2027 (default: "
        "the one after the active school year)",
        **_DRAFT7,
    ),
    "effective_date": Param(
        None,
        type=["null", "string"],
        format="date",
        description="the day the rollover takes effect: today (empty) or "
        "a later day; the run waits until then, holding "
        "nothing. Refused before the earliest rollover date.",
        **_DRAFT7,
    ),
    "dry_run": FORM["dry_run"],
    "override": Param(
        False,
        type="boolean",
        description="go on despite blocking readiness findings (checked by a person)",
        **_DRAFT7,
    ),
    "file": FORM["file"],
}
READINESS_FORM = {
    "file": Param(
        None,
        type=["null", "string"],
        description="check against this export (the new school year's, in the "
        "customer's landing zone or source folder) instead of the "
        "current state",
        **_DRAFT7,
    ),
}
ATTACH, DO_NOT_ATTACH = "Attach", "Do not attach"
# Every form's defaults resolve against its schema, checked here once: Airflow would check a
# scheduled DAG's form again for each of the 500 customers (a tenth of the DAG folder's parse).
for _form in (FORM, ROLLOVER_FORM, READINESS_FORM):
    ParamsDict(_form).validate()


def _give_form(dag: DAG, form: dict[str, Param]) -> None:
    """The form, given once the DAG's tasks exist: Airflow deep-copies a DAG's params into every
    task it builds, while at run time a task's context takes them from the DAG anyway
    (``process_params``). Added to the DAG's own ParamsDict, the defaults are not validated
    again (they were, above)."""
    dag.params.update(form)


# -- the tasks: each a call or two into sisflow.pipeline ----------------------------------------


@contextmanager
def _step(ti, conn=None):
    """Refusals end the task at once, without retries (skipped when nothing is wrong, e.g.
    another run is busy); any error is kept for the status email. The connection is closed."""
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
    from sisflow.errors import Refusal

    try:
        yield
    except (AirflowFailException, AirflowSkipException):
        raise  # the task's own verdict, not an error
    except Refusal as err:
        ti.xcom_push(key="refusal", value=err.as_dict())
        if err.fails_the_run:
            raise AirflowFailException(str(err)) from None
        raise AirflowSkipException(str(err)) from None
    except Exception as err:
        ti.xcom_push(
            key="error", value={"task": ti.task_id, "reason": f"{type(err).__name__}: {err}"}
        )
        raise
    finally:
        if conn is not None:
            conn.close()


def _conn():
    from sisflow.db.connection import connect  # at run time only: parsing touches no database

    return connect()


def _plan(ti):
    from sisflow.pipeline import Plan

    data = (
        ti.xcom_pull(task_ids="stage_and_judge", key="plan")
        or ti.xcom_pull(task_ids="fetch", key="plan")
        or ti.xcom_pull(task_ids="begin")
    )
    return Plan.from_dict(data) if data else None


def _sender():
    """SendGrid when the ``sisflow_sendgrid`` connection exists, else SMTP when
    ``sisflow_smtp`` does (a relay, or a development mail catcher), else the outbox."""
    from sisflow.airflow_connections import sendgrid_settings, smtp_settings
    from sisflow.report.email import SendGrid, Smtp

    settings = sendgrid_settings()
    if settings and settings["api_key"]:
        extra = {"from_email": settings["from_email"]} if settings["from_email"] else {}
        return SendGrid(settings["api_key"], host=settings["host"], **extra)
    settings = smtp_settings()
    if settings:
        from_email = settings.pop("from_email")
        return Smtp(**settings, **({"from_email": from_email} if from_email else {}))
    return None


def _airflow(dag_run) -> dict:
    from airflow.configuration import conf

    base = conf.get("api", "base_url", fallback="").rstrip("/")
    return {
        "dag_id": dag_run.dag_id,
        "run_id": dag_run.run_id,
        "url": f"{base}/dags/{dag_run.dag_id}/runs/{dag_run.run_id}",
    }


def begin(customer, rollover, params, dag_run, ti):
    """The date (the form's, else the run's logical date in the customer's time zone), the
    calendar, the school year, the lease, and the apply an earlier run left half-way. A
    rollover for a later effective date answers when to wait until (its operator defers)."""
    from sisflow import calendar, pipeline

    holder, description = pipeline.airflow_holder(dag_run.dag_id, dag_run.run_id)
    with _step(ti, conn := _conn()):
        config = pipeline.customer_config(customer)
        given = params.get("effective_date") or params.get("date")
        day = (
            date.fromisoformat(given)
            if given
            else calendar.day_of(dag_run.logical_date or dag_run.run_after, config)
        )
        plan = pipeline.prepare(
            conn,
            customer,
            holder=holder,
            description=description,
            day=day,
            rollover=rollover,
            dry_run=params["dry_run"],
            airflow=_airflow(dag_run),
            config=config,
            target_year=params.get("school_year"),
            override=bool(params.get("override")),
        )
        plan.accept_older = bool(params.get("accept_older"))
        moment = pipeline.waits_until(plan) if rollover else None
        if moment:
            print(
                f"{customer}: the rollover into {plan.school_year['label']} waits until "
                f"{moment.isoformat()}"
            )
            return {"wait_until": moment.isoformat()}
        return pipeline.take(conn, plan, config=config).as_dict()


def fetch(params, ti):
    from airflow.sdk.exceptions import AirflowSkipException
    from sisflow import pipeline

    plan = _plan(ti)
    if plan.outcome == "paused":
        raise AirflowSkipException(f"paused until {plan.calendar['until']}: nothing fetched")
    with _step(ti):
        try:
            return pipeline.fetch(plan, file=params.get("file"))
        finally:  # what was asked for (the school year of an HTTP trigger), for the email
            ti.xcom_push(key="plan", value=plan.as_dict())


def stage_and_judge(ti):
    from sisflow import filter as filter_
    from sisflow import pipeline, runs

    plan = _plan(ti)
    with _step(ti, conn := _conn()):
        try:
            pipeline.stage_and_judge(conn, plan, ti.xcom_pull(task_ids="fetch"), sender=_sender())
        finally:  # the run it staged, for the later tasks (and the email of a rejected file)
            ti.xcom_push(key="plan", value=plan.as_dict())
        run = runs.summary(conn, plan.run_id)
        if run["status"] == "held":
            ti.xcom_push(key="held", value=filter_.explain(run))
            return "approval"
        return "apply" if pipeline.goes_on(run) else "finish"


def apply(ti):
    """The person's answer first, into the run's one decision record (a contradicting earlier
    decision, from the command line say, refuses it); then the run goes to the LMS, or this
    task is skipped with the reason (rejected, expired): nothing applied."""
    from airflow.sdk.exceptions import AirflowSkipException
    from sisflow import pipeline, runs

    plan, answer = _plan(ti), ti.xcom_pull(task_ids="approval")
    with _step(ti, conn := _conn()):
        if answer:  # the filter held the run, and someone answered (or the deadline did)
            user = answer.get("responded_by_user")
            reason = (answer.get("params_input") or {}).get("reason") or None
            pipeline.decide(
                conn,
                plan.run_id,
                "expired"
                if user is None
                else "opened"
                if answer["chosen_options"] == [OPEN]
                else "rejected",
                by=user["name"] if user else None,
                via="airflow" if user else "deadline",
                reason=reason if user else "no answer before the deadline",
            )
        run = runs.summary(conn, plan.run_id)
        if not pipeline.goes_on(run):
            raise AirflowSkipException(
                f"run {run['id']} was {run['decision']['decision']}: nothing applied"
            )
        pipeline.apply(conn, plan)


def finish(customer, rollover, dag_run, ti):
    """Exactly one final status email per run, whatever happened; the lease is given back.
    The run fails here when a task failed (the email says where and why)."""
    from airflow.sdk.exceptions import AirflowFailException
    from sisflow import pipeline

    tasks = ["begin", "fetch", "stage_and_judge", "approval", "apply"]
    states = ti.get_task_states(dag_id=dag_run.dag_id, run_ids=[dag_run.run_id])
    failed = [t for t in tasks if states.get(dag_run.run_id, {}).get(t) == "failed"]
    refusal = next((r for r in ti.xcom_pull(task_ids=tasks, key="refusal") or [] if r), None)
    error = next((e for e in ti.xcom_pull(task_ids=tasks, key="error") or [] if e), None)
    if failed and not (refusal or error):
        error = {"task": failed[0], "reason": "see the task's log"}
    with _step(ti, conn := _conn()):
        result = pipeline.finish(
            conn,
            _plan(ti),
            customer=customer,
            refusal=refusal,
            failed=error,
            sender=_sender(),
            kind="rollover" if rollover else "import",
        )
    print(f"{customer}: {result['email']['subject']} -> {result['email']['sent']}")
    if failed:
        raise AirflowFailException(
            f"the run stopped at {failed[0]}: "
            f"{(refusal or error)['reason']} (the status email was sent)"
        )
    return {"outcome": result["outcome"], "run": result["id"]}


# -- the DAGs ------------------------------------------------------------------------------------


def _doc(config: CustomerConfig, rollover: bool) -> str:
    from sisflow.filter import limits, profile_for

    name, profile = profile_for(config, rollover)
    rows = [
        f"| {e} | {op} | {'' if lim.count is None else lim.count} |"
        f" {'' if lim.percent is None else f'{lim.percent:g}%'} |"
        for e, op, lim in limits(profile)
    ]
    windows = [f"- pause {w.start} to {w.end}" for w in config.pause]
    windows += [f"- delay delete {w.start} to {w.end}" for w in config.delay_delete]
    kind = "Rollover (by hand, rollover filter profile)" if rollover else "Import"
    return "\n".join(
        [
            f"# {kind}: {config.name or config.id}",
            f"SIS: {config.sis_vendor.value}. Course archiving: "
            f"{'on' if config.course_archiving else 'off'}. Summer school: "
            f"{'yes' if config.summer_school else 'no'}.",
            "## Calendar (days inclusive, Europe/Oslo)",
            *(windows or ["- no windows"]),
            f"## Filter thresholds, {name} profile (count and/or share of the current size)",
            "| entity | operation | count | percent |",
            "|---|---|---|---|",
            *rows,
            f"Files holding less than {profile.min_share:g}% of the current persons or groups"
            " are held."
            f" A held run waits {config.filter.deadline_hours:g} hours for a decision:"
            " answer the *approval* task, or `sisflow filter open RUN --by NAME --reason TEXT`.",
        ]
    )


@cache
def _configured() -> dict:
    """The DAG arguments whose defaults are Airflow settings, read once per parse and given to
    every DAG: each DAG would read them again (lookups that each scan the environment, about a
    tenth of the DAG folder's parse with 500 customers). Never catch up: a missed night's
    import is not replayed, the next run reads the SIS's whole current state anyway."""
    from airflow.sdk.configuration import conf

    return {
        "catchup": False,
        "max_active_tasks": conf.getint("core", "max_active_tasks_per_dag"),
        "max_consecutive_failed_dag_runs": conf.getint(
            "core", "max_consecutive_failed_dag_runs_per_dag"
        ),
        "disable_bundle_versioning": conf.getboolean("dag_processor", "disable_bundle_versioning"),
    }


@cache
def _timetable(cron: str, timezone: str) -> CronTriggerTimetable:
    """One timetable per schedule, shared by the customers on it (they are values: building
    one parses and describes the cron expression)."""
    return CronTriggerTimetable(cron, timezone=timezone)


def build(config: CustomerConfig, *, rollover: bool = False) -> DAG:
    customer, kind = config.id, "rollover" if rollover else "import"
    with DAG(
        dag_id=f"sisflow_{kind}__{customer}",
        schedule=None if rollover else _timetable(config.schedule.cron, config.schedule.timezone),
        max_active_runs=1,
        tags=["sisflow", kind, customer, config.sis_vendor.value],
        doc_md=_doc(config, rollover),
        default_args={"owner": OWNER, "retries": 2, "retry_delay": timedelta(minutes=2)},
        **_configured(),
    ) as dag:
        first = (WaitingPythonOperator if rollover else PythonOperator)(
            task_id="begin",
            python_callable=begin,
            retries=0,
            op_kwargs={"customer": customer, "rollover": rollover},
        )
        got = PythonOperator(task_id="fetch", python_callable=fetch)
        judged = BranchPythonOperator(task_id="stage_and_judge", python_callable=stage_and_judge)
        approval = HITLOperator(
            task_id="approval",
            subject=f"{customer}: the filter holds this {kind}",
            body="{{ ti.xcom_pull(task_ids='stage_and_judge', key='held') }}",
            options=[OPEN, REJECT],
            defaults=[REJECT],  # taken at the deadline, with no one as the responder
            params={"reason": Param("", type="string", description="why (kept with the run)")},
            response_timeout=timedelta(hours=config.filter.deadline_hours),
            retries=0,
        )
        applied = PythonOperator(
            task_id="apply", python_callable=apply, trigger_rule="none_failed_min_one_success"
        )
        done = PythonOperator(
            task_id="finish",
            python_callable=finish,
            retries=0,
            op_kwargs={"customer": customer, "rollover": rollover},
            trigger_rule="all_done",
        )
        first >> got >> judged >> [approval, applied, done]
        approval >> applied >> done
    _give_form(dag, ROLLOVER_FORM if rollover else FORM)
    return dag


# -- readiness -----------------------------------------------------------------------------------


def check(customer, params, dag_run, ti):
    """The readiness report, emailed with a CSV per list (ids only); the proposed sync keys go
    to the approval, when there are any."""
    from sisflow import calendar, pipeline
    from sisflow.readiness import readiness, send

    with _step(ti, conn := _conn()):
        config = pipeline.customer_config(customer)
        file = pipeline.confine(customer, config, params["file"]) if params.get("file") else None
        findings = readiness(
            conn,
            config,
            file=file,
            on=calendar.day_of(dag_run.logical_date or dag_run.run_after, config),
        )
        email = send(findings, config, sender=_sender(), airflow=_airflow(dag_run))
        print(f"{customer}: {email['subject']} -> {email['sent']}")
        ti.xcom_push(key="summary", value=findings.summary())
        proposals = findings.proposals()
        ti.xcom_push(key="proposals", value=proposals)
        return ["approval"] if proposals else []


def attach(customer, dag_run, ti):
    """The approved sync keys, attached and recorded with who approved them."""
    from airflow.sdk.exceptions import AirflowSkipException
    from sisflow.readiness.attach import attach as attach_keys

    answer = ti.xcom_pull(task_ids="approval") or {}
    user = answer.get("responded_by_user")
    if answer.get("chosen_options") != [ATTACH] or not user:
        raise AirflowSkipException("nothing attached: the attach was not approved")
    with _step(ti, conn := _conn()):
        ids = attach_keys(
            conn,
            customer,
            ti.xcom_pull(task_ids="check", key="proposals"),
            by=user["name"],
            via="airflow",
            source=f"{dag_run.dag_id} run {dag_run.run_id}",
        )
    print(f"{customer}: {len(ids)} sync keys attached by {user['name']}: attachments {ids}")
    return ids


_PROPOSALS = """The readiness check proposes these sync keys for manual accounts (duplicates in
waiting). Attached, the rollover updates these accounts instead of creating second ones; every
attach is recorded and can be undone (`sisflow readiness undo CUSTOMER ATTACHMENT --by NAME`).

{% for p in ti.xcom_pull(task_ids='check', key='proposals') or [] %}
- account {{ p.account_id }} gets sync key {{ p.sync_key }} ({{ p.certainty }}: {{ p.evidence }})
{%- endfor %}
"""


def build_readiness(config: CustomerConfig) -> DAG:
    from airflow.timetables.events import EventsTimetable
    from pendulum import datetime as moment

    days = [
        moment(d.year, d.month, d.day, 6, tz=config.schedule.timezone) for d in config.readiness_on
    ]
    with DAG(
        dag_id=f"sisflow_readiness__{config.id}",
        schedule=EventsTimetable(days, restrict_to_events=True, description="readiness_on days")
        if days
        else None,
        max_active_runs=1,
        tags=["sisflow", "readiness", config.id, config.sis_vendor.value],
        doc_md=f"# Readiness: {config.name or config.id}\n\nThe year-end checks before the "
        "rollover, emailed with a CSV per list; the proposed sync keys are attached "
        "once a person approves them.",
        default_args={"owner": OWNER, "retries": 0},
        **_configured(),
    ) as dag:
        checked = BranchPythonOperator(
            task_id="check", python_callable=check, op_kwargs={"customer": config.id}
        )
        approval = HITLOperator(
            task_id="approval",
            subject=f"{config.id}: attach the proposed sync keys?",
            body=_PROPOSALS,
            options=[ATTACH, DO_NOT_ATTACH],
            defaults=[DO_NOT_ATTACH],
            response_timeout=timedelta(days=7),
        )
        attached = PythonOperator(
            task_id="attach", python_callable=attach, op_kwargs={"customer": config.id}
        )
        checked >> approval >> attached
    _give_form(dag, READINESS_FORM)
    return dag


def _broken(error: ConfigError) -> DAG:
    """A customer whose file is invalid: one task that fails with the file's error."""

    def invalid_configuration():
        raise ValueError(str(error))

    with DAG(
        dag_id=f"sisflow_import__{error.path.stem}",
        schedule=None,
        tags=["sisflow", "config-error"],
        doc_md=f"# Invalid customer file\n\n`{error}`",
        default_args={"owner": OWNER},
    ) as dag:
        PythonOperator(
            task_id="invalid_configuration", python_callable=invalid_configuration, retries=0
        )
    return dag


# A worker running one task parses this file for that task's DAG only: building the other
# customers' DAGs would cost every task start-up about 0.3 ms per task object in Airflow.
_only = get_parsing_context().dag_id
_configs, _errors = load_all()
for _config in _configs:
    for _kind in ("import", "rollover", "readiness"):
        if _only and _only != f"sisflow_{_kind}__{_config.id}":
            continue
        _dag = (
            build_readiness(_config)
            if _kind == "readiness"
            else build(_config, rollover=_kind == "rollover")
        )
        globals()[_dag.dag_id] = _dag
for _error in _errors:
    if not _only or _only == f"sisflow_import__{_error.path.stem}":
        globals()[f"sisflow_import__{_error.path.stem}"] = _broken(_error)
