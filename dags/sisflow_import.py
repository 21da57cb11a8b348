"""An import, a rollover and a readiness DAG per customer file in the customers folder.

    sisflow_import__<customer>     on the customer's schedule
    sisflow_rollover__<customer>   by hand: the new school year, the effective date (the run
                                   waits, deferred, until that day), dry run, override
    sisflow_readiness__<customer>  by hand, and on the customer's ``readiness_on`` days
    sisflow_undo__<customer>       by hand: a run (or one school's part of it) taken back

    import, rollover:  begin -> fetch -> stage_and_judge -> (approval) -> apply -> finish
    readiness:         check -> (approval) -> attach
    undo:              preview -> (approval) -> undo

Each task's callable is in ``sisflow.airflow_tasks``: a call or two into ``sisflow.pipeline``,
the same phases ``sisflow run`` runs; the run's plan (date, calendar mode, run id) travels over
XCom. Parsing reads the customer
files and nothing else: no database, no network. A broken customer file gives that customer
a one-task DAG that fails with the file's error; the other customers' DAGs load as usual.

The tasks are classic operators around module-level functions rather than ``@task`` closures:
with 500 customers the DAG processor builds 6,000 task objects, and the decorator machinery
doubled that cost (see docs/performance.md). For the same reason the decision on a
held run is recorded by ``apply``, right after the approval (the standard provider's
``ApprovalOperator`` idiom: the action follows the approval, and is skipped on a rejection).
"""

from __future__ import annotations

from datetime import timedelta
from functools import cache

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.providers.standard.operators.python import BranchPythonOperator, PythonOperator
from airflow.sdk import DAG, Param, ParamsDict, get_parsing_context
from airflow.timetables.trigger import CronTriggerTimetable
from sisflow.airflow_api import ACCEPT, OPEN, REJECT
from sisflow.airflow_tasks import (
    ATTACH,
    DO_NOT_ATTACH,
    DO_NOT_UNDO,
    UNDO,
    apply,
    attach,
    begin,
    check,
    decided_already,
    fetch,
    finish,
    stage_and_judge,
    undo,
    undo_preview,
)
from sisflow.config import ConfigError, CustomerConfig, load_all
from sisflow_operators import ApprovalUnlessDecided, WaitingPythonOperator

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
UNDO_FORM = {
    "run": Param(0, type="integer", minimum=1, description="the id of the run to undo", **_DRAFT7),
    "school": Param(
        None,
        type=["null", "string"],
        description="undo only this school's part: its unit's sync key",
        **_DRAFT7,
    ),
    "dry_run": Param(
        False, type="boolean", description="show what it would do, change nothing", **_DRAFT7
    ),
    "force": Param(
        False,
        type="boolean",
        description="a rollover after its delay-delete window: undo it anyway",
        **_DRAFT7,
    ),
    "reason": Param(type="string", minLength=1, description="why (kept with the undo)", **_DRAFT7),
}
# Every form's defaults resolve against its schema, checked here once: Airflow would check a
# scheduled DAG's form again for each of the 500 customers (a tenth of the DAG folder's parse).
for _form in (FORM, ROLLOVER_FORM, READINESS_FORM):
    ParamsDict(_form).validate()  # the undo form has no defaults: a person fills it in


def _give_form(dag: DAG, form: dict[str, Param]) -> None:
    """The form, given once the DAG's tasks exist: Airflow deep-copies a DAG's params into every
    task it builds, while at run time a task's context takes them from the DAG anyway
    (``process_params``). Added to the DAG's own ParamsDict, the defaults are not validated
    again (they were, above)."""
    dag.params.update(form)


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
            "An identity change that is not certain (a key leaves, another arrives for the same"
            " person or group) holds the run too: list the pairs to accept in *accept_pairs*"
            " and open (the others are refused), or `sisflow relink RUN --accept ID --refuse ID"
            " --by NAME`.",
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
        dag_display_name=f"{config.name or customer}: {kind}",
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
            op_kwargs={"customer": customer, "kind": kind},
        )
        got = PythonOperator(task_id="fetch", python_callable=fetch)
        judged = BranchPythonOperator(task_id="stage_and_judge", python_callable=stage_and_judge)
        approval = ApprovalUnlessDecided(
            task_id="approval",
            decided=decided_already,
            subject=f"{config.name or customer}: the filter holds this {kind}",
            body="{{ ti.xcom_pull(task_ids='stage_and_judge', key='held') }}",
            options=[OPEN, REJECT],
            defaults=[REJECT],  # taken at the deadline, with no one as the responder
            params={
                "reason": Param("", type="string", description="why (kept with the run)"),
                ACCEPT: Param(
                    "",
                    type="string",
                    description="identity changes to accept: their pair ids (e.g. 12 14);"
                    " opening refuses every pair not listed",
                ),
            },
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
            op_kwargs={"customer": customer, "kind": kind},
            trigger_rule="all_done",
        )
        first >> got >> judged >> [approval, applied, done]
        approval >> applied >> done
    _give_form(dag, ROLLOVER_FORM if rollover else FORM)
    return dag


# -- readiness -----------------------------------------------------------------------------------


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
        dag_display_name=f"{config.name or config.id}: readiness",
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
            subject=f"{config.name or config.id}: attach the proposed sync keys?",
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


# -- undo ----------------------------------------------------------------------------------------


_PREVIEW = """What the undo would do (computed and rolled back; nothing has changed yet):

{{ ti.xcom_pull(task_ids='preview', key='preview') }}

Undo puts back what the run removed or changed, takes away what it created and nobody used
since, and leaves alone (listed) what was changed since. It is a run of its own: it is emailed
and can be undone in turn."""


def build_undo(config: CustomerConfig) -> DAG:
    with DAG(
        dag_id=f"sisflow_undo__{config.id}",
        dag_display_name=f"{config.name or config.id}: undo",
        schedule=None,
        max_active_runs=1,
        tags=["sisflow", "undo", config.id, config.sis_vendor.value],
        doc_md=f"# Undo: {config.name or config.id}\n\nTake a run back: the LMS and the import"
        " database as they were before it (or one school's part of it). The *preview* shows"
        " what would be put back and what cannot; nothing changes before the *approval*."
        " Same as `sisflow undo RUN [--school UNIT-ID] --by NAME --reason TEXT`.",
        default_args={"owner": OWNER, "retries": 0},
        **_configured(),
    ) as dag:
        previewed = BranchPythonOperator(
            task_id="preview", python_callable=undo_preview, op_kwargs={"customer": config.id}
        )
        approval = HITLOperator(
            task_id="approval",
            subject=f"{config.name or config.id}: undo this run?",
            body=_PREVIEW,
            options=[UNDO, DO_NOT_UNDO],
            defaults=[DO_NOT_UNDO],
            response_timeout=timedelta(days=2),
        )
        undone = PythonOperator(
            task_id="undo", python_callable=undo, op_kwargs={"customer": config.id}
        )
        previewed >> approval >> undone
    dag.params.update(UNDO_FORM)
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
    for _kind in ("import", "rollover", "readiness", "undo"):
        if _only and _only != f"sisflow_{_kind}__{_config.id}":
            continue
        if _kind == "readiness":
            _dag = build_readiness(_config)
        elif _kind == "undo":
            _dag = build_undo(_config)
        else:
            _dag = build(_config, rollover=_kind == "rollover")
        globals()[_dag.dag_id] = _dag
for _error in _errors:
    if not _only or _only == f"sisflow_import__{_error.path.stem}":
        globals()[f"sisflow_import__{_error.path.stem}"] = _broken(_error)
