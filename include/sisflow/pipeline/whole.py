"""A whole run without Airflow, for the command line: the same phases the DAG's tasks run, in
order, with the same services."""

from __future__ import annotations

import logging
from collections.abc import Callable

from .. import runs
from ..config import CustomerConfig
from ..errors import Refusal
from ..services import Services
from ..sources.complete import SourceError
from .begin import begin
from .commit import apply
from .decide import goes_on
from .fetch import fetch
from .finish import finish, finish_without_plan
from .plan import Ending, Holder, Plan, Request
from .stage_and_judge import stage_and_judge

log = logging.getLogger(__name__)


def run(
    conn, request: Request, services: Services | None = None, holder: Holder | None = None
) -> dict:
    """One run, from the calendar to the status email. A dry run computes the change set and
    the filter's verdict and applies nothing. A rollover goes into ``request.school_year``
    (default: the year after the active one), is refused before that year's earliest
    rollover date, stops on blocking readiness findings unless overridden, is judged by the
    rollover profile and switches the active school year when it commits. A held run stops
    here; ``sisflow filter open`` goes on with it."""
    services = services or Services()
    try:
        config = services.config(request.customer)
        plan = begin(conn, request, holder or Holder.this_process(), config)
    except Refusal as err:
        log.warning("%s: %s", request.customer, err)
        return finish_without_plan(
            conn,
            request.customer,
            str(request.kind),
            services.config_or_placeholder(request.customer),
            services,
            Ending(refusal=err.as_dict()),
        )

    def work(plan: Plan, at: _Task) -> Plan:
        if plan.outcome is None:
            at.name = "fetch"
            path = fetch(plan, config, request.file)
            at.name = "stage_and_judge"
            plan = stage_and_judge(conn, plan, path, config, services)
            assert plan.run_id is not None
            if not plan.dry_run and goes_on(runs.summary(conn, plan.run_id)):
                at.name = "apply"
                plan = apply(conn, plan, config)
        return plan

    return _to_the_end(conn, plan, work, config, services)


def resume(
    conn, run_id: int, services: Services | None = None, holder: Holder | None = None
) -> dict:
    """Go on with a held run that a person decided from the command line, when no Airflow run
    waits for it: opened, it is applied under the plan it was judged with; rejected or
    expired, its final email goes out."""
    services = services or Services()
    holder = holder or Holder.this_process()
    run = runs.summary(conn, run_id)
    plan = Plan.from_dict(
        {
            **run["plan"],
            "holder": holder.id,
            "description": holder.description,
            "run_id": run_id,
            "status": run["status"],
            "finished": [],
        }
    )
    config = services.config_or_placeholder(plan.customer)
    try:
        runs.acquire(conn, plan.customer, holder.id, holder.description, process=True)
    except Refusal as err:
        ending = Ending(refusal=err.as_dict())
        return finish_without_plan(conn, plan.customer, plan.kind, config, services, ending)

    def work(plan: Plan, at: _Task) -> Plan:
        at.name = "apply"
        return apply(conn, plan, config) if goes_on(run) else plan

    return _to_the_end(conn, plan, work, config, services)


class _Task:
    """The phase a run is in, named as the DAG's task is, so that an email about a failure
    says the same place whichever door the run came through."""

    name = "begin"


def _to_the_end(
    conn,
    plan: Plan,
    work: Callable[[Plan, _Task], Plan],
    config: CustomerConfig,
    services: Services,
) -> dict:
    """``work(plan)``, then the run's end: a refusal or an error has its email too (and the
    lease is given back); an error is raised again after that."""
    at = _Task()
    try:
        plan = work(plan, at)
    except Refusal as err:
        return finish(conn, plan, config, services, Ending(refusal=err.as_dict()))
    except SourceError as err:  # nothing to import: said in the email, not a crash
        failed = {"task": "fetch", "reason": f"{type(err).__name__}: {err}"}
        return finish(conn, plan, config, services, Ending(failed=failed))
    except Exception as err:
        failed = {"task": at.name, "reason": f"{type(err).__name__}: {err}"}
        finish(conn, plan, config, services, Ending(failed=failed))
        raise
    return finish(conn, plan, config, services)
