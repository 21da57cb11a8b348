"""The DAG tasks' callables: the Airflow side of a run, kept apart from the domain.

Each task turns what Airflow gives it (the form, the DAG run, XCom, an approval's answer) into
a call or two into :mod:`sisflow.pipeline` or :mod:`sisflow.readiness`, with the same
:class:`~sisflow.services.Services` the command line builds. The DAG file only declares DAGs.
Imports are made at run time: the DAG processor imports this module for every parse.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import date

TASKS = ["begin", "fetch", "stage_and_judge", "approval", "apply"]
ATTACH, DO_NOT_ATTACH = "Attach", "Do not attach"
UNDO, DO_NOT_UNDO = "Undo", "Do not undo"


@contextmanager
def _step(ti, conn=None):
    """A refusal is the run doing its job: its task is skipped at once, without retries, and
    the run ends green with a note that says why (red is kept for breakdowns: ops look for
    red). An export that is not there fails the task at once: trying again in two minutes
    will not make one, and the run must give the customer back. Any error is kept for the
    status email. The connection is closed."""
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    from .errors import Refusal
    from .sources.complete import NothingToFetch

    try:
        yield
    except (AirflowFailException, AirflowSkipException):
        raise  # the task's own verdict, not an error
    except Refusal as err:
        ti.xcom_push(key="refusal", value=err.as_dict())
        _note(ti, f"REFUSED: {err}")  # an import's finish words it as its email does
        raise AirflowSkipException(str(err)) from None
    except NothingToFetch as err:
        ti.xcom_push(key="error", value=_failure(ti, err))
        raise AirflowFailException(str(err)) from None
    except Exception as err:
        ti.xcom_push(key="error", value=_failure(ti, err))
        raise
    finally:
        if conn is not None:
            conn.close()


def _failure(ti, err: Exception) -> dict:
    return {"task": ti.task_id, "reason": f"{type(err).__name__}: {err}"}


def _conn():
    from .db.connection import connect

    return connect()


def _services():
    from .services import Services

    return Services.from_environment()


def _plan(ti):
    from .pipeline import Plan

    data = (
        ti.xcom_pull(task_ids="stage_and_judge", key="plan")
        or ti.xcom_pull(task_ids="fetch", key="plan")
        or ti.xcom_pull(task_ids="begin")
    )
    return Plan.from_dict(data) if data else None


def _airflow(dag_run) -> dict:
    from airflow.configuration import conf

    base = conf.get("api", "base_url", fallback="").rstrip("/")
    return {
        "dag_id": dag_run.dag_id,
        "run_id": dag_run.run_id,
        "url": f"{base}/dags/{dag_run.dag_id}/runs/{dag_run.run_id}",
    }


def _note(ti, text: str) -> None:
    """The DAG run's note, through Airflow's REST API (the Task SDK cannot write one); a run
    never fails for want of a note, and its log has the text either way."""
    from . import airflow_api, run_notes

    text = run_notes.fit(text)
    print(f"note: {text}")
    try:
        airflow_api.set_note(ti.dag_id, ti.run_id, text, timeout=5)
    except airflow_api.AirflowApiError as err:
        print(f"the run's note was not set: {err}")
    except Exception as err:  # never in place of the task's own outcome
        print(f"the run's note was not set: {type(err).__name__}: {err}")


def _day(dag_run, config) -> date:
    """The customer's calendar day of the DAG run (its logical date in the customer's zone)."""
    from . import calendar

    return calendar.day_of(dag_run.logical_date or dag_run.run_after, config)


def request_from_form(customer: str, kind: str, params: dict, day: date):
    """The trigger form as the run's request: the same request ``sisflow run`` builds from
    its arguments."""
    from .pipeline import Kind, Request

    given = params.get("effective_date") or params.get("date")
    return Request(
        customer=customer,
        on=date.fromisoformat(given) if given else day,
        kind=Kind(kind),
        dry_run=bool(params.get("dry_run")),
        school_year=params.get("school_year"),
        override=bool(params.get("override")),
        accept_older=bool(params.get("accept_older")),
    )


def begin(customer, kind, params, dag_run, ti):
    """The date, the calendar, the school year, the lease, and the apply an earlier run left
    half-way. A rollover for a later effective date answers when to wait until (its operator
    defers, holding nothing)."""
    from . import pipeline, run_notes

    holder = pipeline.Holder.airflow_run(dag_run.dag_id, dag_run.run_id)
    with _step(ti, conn := _conn()):
        config = pipeline.customer_config(customer)
        request = request_from_form(customer, kind, params, _day(dag_run, config))
        plan = pipeline.prepare(conn, request, holder, config, _airflow(dag_run))
        moment = pipeline.waits_until(plan) if plan.rollover else None
        if moment:
            _note(ti, run_notes.waits(moment, config, plan.school_year["label"]))
            return {"wait_until": moment.isoformat()}
        return pipeline.take(conn, plan, config).as_dict()


def fetch(params, ti):
    """The export, or the form's file: a file named in the form must lie in the customer's
    own landing zone or source folder."""
    from airflow.sdk.exceptions import AirflowSkipException

    from . import pipeline

    plan = _plan(ti)
    if plan.outcome == pipeline.PAUSED:
        raise AirflowSkipException(f"paused until {plan.calendar['until']}: nothing fetched")
    with _step(ti):
        try:
            config = pipeline.customer_config(plan.customer)
            file = params.get("file")
            if file:
                file = pipeline.confine(plan.customer, config, file)
            return pipeline.fetch(plan, config, file)
        finally:  # what was asked for (the school year of an HTTP trigger), for the email
            ti.xcom_push(key="plan", value=plan.as_dict())


def stage_and_judge(ti):
    from . import filter as filter_
    from . import pipeline, run_notes, runs

    plan = _plan(ti)
    with _step(ti, conn := _conn()):
        config = pipeline.customer_config(plan.customer)
        try:
            path = ti.xcom_pull(task_ids="fetch")
            pipeline.stage_and_judge(conn, plan, path, config, _services())
        finally:  # the run it staged, for the later tasks (and the email of a rejected file)
            ti.xcom_push(key="plan", value=plan.as_dict())
        run = runs.summary(conn, plan.run_id)
        if run["status"] == "held":
            ti.xcom_push(key="held", value=filter_.explain(run))
            _note(ti, run_notes.held(run, config))
            return "approval"
        return "apply" if pipeline.goes_on(run) else "finish"


def apply(ti):
    """The person's answer first, into the run's one decision record (a contradicting earlier
    decision, from the command line say, refuses it); then the run goes to the LMS, or this
    task is skipped with the reason (rejected, expired): nothing applied."""
    from airflow.sdk.exceptions import AirflowSkipException

    from . import pipeline, runs
    from .filter import Decision

    plan, answer = _plan(ti), ti.xcom_pull(task_ids="approval")
    with _step(ti, conn := _conn()):
        if answer:  # the filter held the run, and someone answered (or the deadline did)
            decision = pipeline.from_approval(answer)
            if decision["decision"] == Decision.OPENED and identity_waits(conn, plan.run_id):
                pipeline.relink(
                    conn,
                    plan.run_id,
                    pipeline.customer_config(plan.customer),
                    accept=pipeline.accepted_pairs(answer),
                    by=decision["by"],
                    via=decision["via"],
                    reason=decision["reason"],
                    refuse_the_rest=True,
                )
            pipeline.decide(conn, plan.run_id, **decision)
        run = runs.summary(conn, plan.run_id)
        if not pipeline.goes_on(run):
            raise AirflowSkipException(
                f"run {run['id']} was {run['decision']['decision']}: nothing applied"
            )
        pipeline.apply(conn, plan, pipeline.customer_config(plan.customer))


def decided_already(ti) -> dict | None:
    """The decision stored on the held run before its approval task started (from the command
    line, or an answer before the task was cleared), as the approval's answer; None: ask."""
    from . import filter as filter_
    from . import pipeline

    plan = _plan(ti)
    if plan is None or plan.run_id is None:
        return None
    conn = _conn()
    try:
        with conn.cursor() as cur:
            stored = filter_.stored_decision(cur, plan.run_id)
    finally:
        conn.close()
    return pipeline.as_answer(stored) if stored else None


def identity_waits(conn, run_id: int) -> bool:
    """Whether the run's identity changes wait for the approval's answer."""
    from . import identity

    with conn.cursor() as cur:
        return bool(identity.undecided(cur, run_id))


def finish(customer, kind, dag_run, ti):
    """Exactly one final status email per run, whatever happened; the lease is given back.
    The run fails here when a task failed (the email says where and why)."""
    from airflow.sdk.exceptions import AirflowFailException

    from . import pipeline

    states = ti.get_task_states(dag_id=dag_run.dag_id, run_ids=[dag_run.run_id])
    failed = [t for t in TASKS if states.get(dag_run.run_id, {}).get(t) == "failed"]
    refusal = next((r for r in ti.xcom_pull(task_ids=TASKS, key="refusal") or [] if r), None)
    error = next((e for e in ti.xcom_pull(task_ids=TASKS, key="error") or [] if e), None)
    if failed and not (refusal or error):
        error = {"task": failed[0], "reason": "see the task's log"}
    ending = pipeline.Ending(refusal=refusal, failed=error)
    with _step(ti, conn := _conn()):
        services = _services()
        config = services.config_or_placeholder(customer)
        plan = _plan(ti)
        if plan is None:
            result = pipeline.finish_without_plan(conn, customer, kind, config, services, ending)
        else:
            result = pipeline.finish(conn, plan, config, services, ending)
    print(f"{customer}: {result['email']['subject']} -> {result['email']['sent']}")
    _note(ti, result["note"])
    if failed:
        raise AirflowFailException(
            f"the run stopped at {failed[0]}: "
            f"{(refusal or error)['reason']} (the status email was sent)"
        )
    return {"outcome": result["outcome"], "run": result["id"]}


# -- readiness -----------------------------------------------------------------------------------


def check(customer, params, dag_run, ti):
    """The readiness report, emailed with a CSV per list (ids only); the proposed sync keys go
    to the approval, when there are any."""
    from . import pipeline
    from .readiness import readiness, send

    with _step(ti, conn := _conn()):
        config = pipeline.customer_config(customer)
        file = pipeline.confine(customer, config, params["file"]) if params.get("file") else None
        findings = readiness(conn, config, file=file, on=_day(dag_run, config))
        email = send(findings, config, sender=_services().sender, airflow=_airflow(dag_run))
        print(f"{customer}: {email['subject']} -> {email['sent']}")
        ti.xcom_push(key="summary", value=findings.summary())
        proposals = findings.proposals()
        ti.xcom_push(key="proposals", value=proposals)
        _note(
            ti,
            f"readiness for {findings.school_year.label}: {sum(findings.blocking.values())}"
            f" blocking finding(s), {len(proposals)} sync key(s) proposed",
        )
        return ["approval"] if proposals else []


def attach(customer, dag_run, ti):
    """The approved sync keys, attached and recorded with who approved them."""
    from airflow.sdk.exceptions import AirflowSkipException

    from .readiness.attach import attach as attach_keys

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
    _note(ti, f"{len(ids)} sync key(s) attached, approved by {user['name']}")
    return ids


# -- undo ----------------------------------------------------------------------------------------


def _undo_options(params: dict, dag_run, config) -> dict:
    school = (params.get("school") or "").strip() or None
    return {"school": school, "force": bool(params.get("force")), "today": _day(dag_run, config)}


def undo_preview(customer, params, dag_run, ti):
    """What the undo would put back and what it would leave alone, computed and rolled back;
    the approval shows it. A dry run ends here."""
    from . import pipeline
    from .errors import UndoNeedsForce

    with _step(ti, conn := _conn()):
        config = pipeline.customer_config(customer)
        try:
            result = _preview(conn, customer, params, dag_run, config)
        except UndoNeedsForce as err:
            print("\n".join(err.would))
            raise
        text = "\n".join(result.lines())
        print(text)
        ti.xcom_push(key="preview", value=text)
        if params.get("dry_run"):
            _note(ti, result.lines()[0])
        else:
            school = f", school {result.school}" if result.school else ""
            _note(ti, f"waits for a person: undo run {result.undone}{school}? (see the preview)")
        return [] if params.get("dry_run") else ["approval"]


def _preview(conn, customer, params, dag_run, config):
    from . import pipeline
    from .undo import undo

    return undo(
        conn,
        int(params["run"]),
        by="(preview)",
        reason=params.get("reason") or "(preview)",
        via="airflow",
        config=config,
        holder=pipeline.Holder.airflow_run(dag_run.dag_id, dag_run.run_id),
        dry_run=True,
        **_undo_options(params, dag_run, config),
    )


def undo(customer, params, dag_run, ti):
    """The undo, once a person approved it, in that person's name; its email goes out."""
    from airflow.sdk.exceptions import AirflowSkipException

    from . import pipeline
    from .undo import undo_and_tell

    answer = ti.xcom_pull(task_ids="approval") or {}
    user = answer.get("responded_by_user")
    if answer.get("chosen_options") != [UNDO] or not user:
        raise AirflowSkipException("nothing undone: the undo was not approved")
    with _step(ti, conn := _conn()):
        result, email = undo_and_tell(
            conn,
            int(params["run"]),
            services=_services(),
            holder=pipeline.Holder.airflow_run(dag_run.dag_id, dag_run.run_id),
            airflow=_airflow(dag_run),
            by=user["name"],
            reason=params.get("reason") or "",
            via="airflow",
            **_undo_options(params, dag_run, pipeline.customer_config(customer)),
        )
    print("\n".join(result.lines()))
    print(f"{customer}: {email['subject']} -> {email['sent']}" if email else "")
    _note(ti, result.lines()[0])
    return result.as_dict()


# -- maintenance ---------------------------------------------------------------------------------


def drift_check():
    """Every customer's site against its import database; an email for each that drifted."""
    from .config import load_all
    from .drift import check_and_tell

    conn, services = _conn(), _services()
    drifted = {}
    try:
        for config in load_all()[0]:
            found, sent = check_and_tell(conn, config, services)
            if found.total:
                drifted[config.id] = found.total
                print("\n".join(found.lines()) + f"\n  email -> {sent}")
    finally:
        conn.close()
    print(f"drift: {len(drifted)} customer(s) drifted")
    return drifted


def send_digest():
    """The daily digest to the operations team (``SISFLOW_OPS_RECIPIENTS``)."""
    from .config import load_all
    from .digest import send

    conn = _conn()
    try:
        sent = send(conn, load_all()[0], _services())
    finally:
        conn.close()
    print(f"{sent['subject']} -> {sent['sent']}")
    return sent


def prune(params):
    """What is older than the retention period leaves the import database, the landing zone
    and the outbox; the form's ``days`` overrides ``SISFLOW_RETENTION_DAYS`` for one run."""
    from . import retention

    conn = _conn()
    try:
        gone = retention.prune(conn, older_than_days=params.get("days"))
    finally:
        conn.close()
    print(
        f"retention ({gone['days']:g} days): "
        + ", ".join(f"{k} {v}" for k, v in gone.items() if k != "days")
    )
    return gone
