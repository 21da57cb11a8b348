"""Airflow's REST API, where sisflow must act as a person in the UI would: answering a held
run's approval task from the command line, and writing a DAG run's note from its tasks.

When a held run is parked in Airflow (its DAG run waits at the ``approval`` task), a decision
made with ``sisflow filter open|reject`` must move that DAG run too, or the two doors would
disagree. The CLI records the decision, then answers the approval task the way the Required
Actions page does: ``PATCH /api/v2/dags/{dag}/dagRuns/{run}/taskInstances/approval/-1/
hitlDetails``. The DAG's ``apply`` task then finds the same decision stored.

Where Airflow is and who may answer, in this order:

- ``SISFLOW_AIRFLOW_API_URL`` (e.g. ``http://localhost:8080``), ``SISFLOW_AIRFLOW_USERNAME``
  and ``SISFLOW_AIRFLOW_PASSWORD`` in the environment;
- else the Airflow connection ``sisflow_airflow_api`` (host and port or a full URL in host,
  login, password), where Airflow's configuration is at hand.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

CONN_ID = "sisflow_airflow_api"
APPROVAL_TASK = "approval"
OPEN, REJECT = "Open the filter", "Reject"
#: the approval form's field for the identity changes to accept (pair ids)
ACCEPT = "accept_pairs"


class AirflowApiError(Exception):
    """Airflow could not be reached or refused the answer; the message says what to do."""


class NotWaiting(AirflowApiError):
    """The DAG run does not wait at its approval task (it ended, or was never parked)."""


class AlreadyAnswered(AirflowApiError):
    """Someone answered the approval task already."""


@dataclass(frozen=True)
class Credentials:
    url: str
    username: str
    password: str


def credentials() -> Credentials | None:
    url = os.environ.get("SISFLOW_AIRFLOW_API_URL")
    if url:
        return Credentials(
            url.rstrip("/"),
            os.environ.get("SISFLOW_AIRFLOW_USERNAME", ""),
            os.environ.get("SISFLOW_AIRFLOW_PASSWORD", ""),
        )
    from .airflow_connections import airflow_api_settings

    settings = airflow_api_settings(CONN_ID)
    return Credentials(**settings) if settings else None


def _need(creds: Credentials | None) -> Credentials:
    creds = creds or credentials()
    if creds is None:
        raise AirflowApiError(
            "no Airflow API configured: set SISFLOW_AIRFLOW_API_URL, SISFLOW_AIRFLOW_USERNAME "
            f"and SISFLOW_AIRFLOW_PASSWORD, or an Airflow connection '{CONN_ID}'"
        )
    return creds


def _login(creds: Credentials, timeout: float):
    """A requests session carrying the auth manager's token for ``creds``."""
    import requests  # here: the DAG file reads this module's option labels at every parse

    session = requests.Session()
    try:
        token = session.post(
            f"{creds.url}/auth/token",
            timeout=timeout,
            json={"username": creds.username, "password": creds.password},
        )
    except requests.RequestException as err:
        raise AirflowApiError(
            f"Airflow at {creds.url} cannot be reached ({type(err).__name__})"
        ) from None
    if token.status_code >= 300:
        raise AirflowApiError(
            f"Airflow at {creds.url} refused the login of '{creds.username}' ({token.status_code})"
        )
    session.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
    return session


def _send(session, method: str, url: str, body: dict, timeout: float):
    import requests

    try:
        return session.request(method, url, json=body, timeout=timeout)
    except requests.RequestException as err:
        reached = type(err).__name__
        raise AirflowApiError(f"Airflow at {url} cannot be reached ({reached})") from None


def answer(
    dag_id: str,
    run_id: str,
    decision: str,
    reason: str | None,
    creds: Credentials | None = None,
    timeout: float = 15,
) -> dict:
    """Answer the run's approval task: ``opened`` chooses *Open the filter*, anything else
    *Reject*. Returns Airflow's record of the answer."""
    creds = _need(creds)
    session = _login(creds, timeout)
    path = (
        f"{creds.url}/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/"
        f"{APPROVAL_TASK}/-1/hitlDetails"
    )
    body: dict[str, Any] = {
        "chosen_options": [OPEN if decision == "opened" else REJECT],
        # every field of the form: the pairs were decided before, on the command line
        "params_input": {"reason": reason or "", ACCEPT: ""},
    }
    response = _send(session, "PATCH", path, body, timeout)
    if response.status_code == 404:
        raise NotWaiting(f"{dag_id} run {run_id} does not wait at its approval task")
    if response.status_code == 409:
        raise AlreadyAnswered(
            f"the approval task of {dag_id} run {run_id} was answered "
            "already (see the run in Airflow)"
        )
    if response.status_code >= 300:
        raise AirflowApiError(
            f"Airflow refused the answer ({response.status_code}): {response.text[:200]}"
        )
    return response.json()


def set_note(
    dag_id: str, run_id: str, note: str, creds: Credentials | None = None, timeout: float = 15
) -> None:
    """The DAG run's note: a task cannot write one through the Task SDK, so it asks the REST
    API as a person in the UI would."""
    creds = _need(creds)
    session = _login(creds, timeout)
    url = f"{creds.url}/api/v2/dags/{dag_id}/dagRuns/{run_id}"
    response = _send(session, "PATCH", f"{url}?update_mask=note", {"note": note}, timeout)
    if response.status_code >= 300:
        raise AirflowApiError(
            f"Airflow refused the note ({response.status_code}): {response.text[:200]}"
        )


def waiting_rollovers(creds: Credentials | None = None, timeout: float = 15) -> dict[str, dict]:
    """The rollover DAG runs whose ``begin`` waits, deferred, for the effective date, by
    customer (a waiting rollover holds nothing in the import database: only Airflow knows)."""
    creds = _need(creds)
    session = _login(creds, timeout)
    api = f"{creds.url}/api/v2/dags"
    found = session.get(
        f"{api}/~/dagRuns/~/taskInstances",
        params={
            "task_id": "begin",
            "state": "deferred",
            "dag_id_prefix_pattern": "sisflow_rollover__",
            "limit": 1000,
        },
        timeout=timeout,
    )
    if found.status_code >= 300:
        raise AirflowApiError(f"Airflow refused the question ({found.status_code})")
    waiting = {}
    for ti in found.json()["task_instances"]:
        run = session.get(f"{api}/{ti['dag_id']}/dagRuns/{ti['dag_run_id']}", timeout=timeout)
        conf = run.json().get("conf") or {} if run.status_code < 300 else {}
        waiting[ti["dag_id"].split("__", 1)[1]] = {
            "dag_id": ti["dag_id"],
            "run_id": ti["dag_run_id"],
            "until": conf.get("effective_date"),
            "school_year": conf.get("school_year"),
        }
    return waiting
