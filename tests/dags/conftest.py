"""Airflow for the DAG tests: a metadata database of its own (SQLite) in a temporary folder,
set up before Airflow is first imported, so nothing leaks in from the user's home."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import _HOME, API_PASSWORD, API_USER  # noqa: E402 (set up there)


@pytest.fixture(scope="session")
def airflow_db():
    airflow = str(Path(sys.executable).with_name("airflow"))
    subprocess.run([airflow, "db", "migrate"], check=True, capture_output=True, timeout=300)
    return _HOME


@pytest.fixture(scope="session")
def airflow_api(airflow_db):
    """Airflow's real REST API (its FastAPI app under uvicorn) on a loopback port, over the
    tests' metadata database: what `sisflow filter open` talks to for a parked run."""
    import uvicorn
    from airflow.api_fastapi.app import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("Airflow's API server did not start")
        time.sleep(0.1)
    yield {
        "SISFLOW_AIRFLOW_API_URL": f"http://127.0.0.1:{port}",
        "SISFLOW_AIRFLOW_USERNAME": API_USER,
        "SISFLOW_AIRFLOW_PASSWORD": API_PASSWORD,
    }
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def customers(tmp_path, monkeypatch):
    """A customers folder of this test's own; returns a function that writes a customer."""
    folder = tmp_path / "customers"
    folder.mkdir()
    monkeypatch.setenv("SISFLOW_CUSTOMERS_DIR", str(folder))
    monkeypatch.setenv("SISFLOW_HOME", str(tmp_path / "home"))

    def add(customer: str, text: str) -> Path:
        path = folder / f"{customer}.yaml"
        path.write_text(text, encoding="utf-8")
        return path

    return add


def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])


@pytest.fixture
def worlds(airflow_db, airflow_api, new_db, tmp_path, monkeypatch):
    """The command-line door and the DAG door, each in a world of its own."""
    import shutil

    from tests.dags.doors import CliDoor, DagDoor, World

    for key in (
        "SISFLOW_DATABASE_URL",
        "SISFLOW_HOME",
        "SISFLOW_CUSTOMERS_DIR",
        "SISFLOW_LANDING",
        "AIRFLOW_CONN_SISFLOW_SMTP",
        *airflow_api,  # the DAG door gives its tasks the API (run notes)
    ):
        monkeypatch.setenv(key, os.environ.get(key, ""))  # restored after the test
    cli = World(new_db(), tmp_path / "cli", smtp=True)
    dag = World(new_db(), tmp_path / "dag", smtp=True)
    yield (CliDoor(cli, airflow_api), DagDoor(dag, airflow_api))
    cli.close()
    dag.close()
    shutil.rmtree(tmp_path / "cli" / "home" / "pg", ignore_errors=True)
