"""The "Customers" page in Airflow's UI: a FastAPI app mounted in the api-server at
``/sisflow`` and shown in the navigation (``external_views``), one row per customer with
filters, sorting and links to the runs and approvals (see ``sisflow.web``).

Protected like the rest of Airflow: every request needs the auth manager's token (the
Authorization header, or the UI's session cookie), else 401. It reads the customer files and
the import database (``SISFLOW_DATABASE_URL``), never the LMS's personal data.
"""

from __future__ import annotations

import asyncio

from airflow.api_fastapi.core_api.security import get_user
from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import HTMLResponse

app = FastAPI(title="sisflow: customers", dependencies=[Depends(get_user)])


def _airflow_base() -> str:
    from airflow.configuration import conf

    return conf.get("api", "base_url", fallback="").rstrip("/")


def _waiting_rollovers() -> dict[str, dict]:
    """The rollover DAG runs whose ``begin`` waits, deferred, for the effective date: known to
    Airflow only (a waiting rollover holds nothing in the import database)."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        found = session.execute(
            select(DagRun.dag_id, DagRun.run_id, DagRun.conf)
            .join(TI, (TI.dag_id == DagRun.dag_id) & (TI.run_id == DagRun.run_id))
            .where(
                DagRun.dag_id.startswith("sisflow_rollover__", autoescape=True),
                DagRun.state == "running",
                TI.task_id == "begin",
                TI.state == "deferred",
            )
        ).all()
    return {
        dag_id.split("__", 1)[1]: {
            "dag_id": dag_id,
            "run_id": run_id,
            "until": (conf or {}).get("effective_date"),
            "school_year": (conf or {}).get("school_year"),
        }
        for dag_id, run_id, conf in found
    }


def _customers(show, vendor, sort) -> str:
    from sisflow.config import load_all
    from sisflow.db.connection import connect
    from sisflow.web.pages import customers_page

    conn = connect()
    try:
        return customers_page(
            conn,
            load_all()[0],
            show=show,
            vendor=vendor,
            sort=sort,
            airflow_base=_airflow_base(),
            waiting=_waiting_rollovers(),
        )
    finally:
        conn.close()


def _customer(customer: str) -> str | None:
    from sisflow.config import load_all
    from sisflow.db.connection import connect
    from sisflow.web.pages import customer_page

    config = next((c for c in load_all()[0] if c.id == customer), None)
    if config is None:
        return None
    conn = connect()
    try:
        return customer_page(
            conn, config, airflow_base=_airflow_base(), waiting=_waiting_rollovers()
        )
    finally:
        conn.close()


@app.get("/customers", response_class=HTMLResponse)
async def customers(show: str | None = None, vendor: str | None = None, sort: str = "customer"):
    return await asyncio.to_thread(_customers, show, vendor, sort)


@app.get("/customers/{customer}", response_class=HTMLResponse)
async def customer(customer: str):
    page = await asyncio.to_thread(_customer, customer)
    if page is None:
        raise HTTPException(status_code=404, detail=f"no customer {customer}")
    return page


class SisflowFleet(AirflowPlugin):
    name = "sisflow_fleet"
    fastapi_apps = [{"app": app, "url_prefix": "/sisflow", "name": "sisflow customers"}]
    external_views = [
        {
            "name": "Customers",
            "href": "sisflow/customers",
            "url_route": "customers",
            "destination": "nav",
            "category": "browse",
        }
    ]
