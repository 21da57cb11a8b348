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


def _customers(show, vendor, sort) -> str:
    from sisflow.config import load_all
    from sisflow.db.connection import connect
    from sisflow.web.pages import customers_page

    conn = connect()
    try:
        return customers_page(
            conn, load_all()[0], show=show, vendor=vendor, sort=sort, airflow_base=_airflow_base()
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
        return customer_page(conn, config, airflow_base=_airflow_base())
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
