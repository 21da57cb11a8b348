"""Airflow for the DAG tests: a metadata database of its own (SQLite) in a temporary folder,
set up before Airflow is first imported, so nothing leaks in from the user's home."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

_HOME = tempfile.mkdtemp(prefix="sisflow-airflow-")
os.environ.update({
    "AIRFLOW_HOME": _HOME,
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__DAGS_FOLDER": str(Path(__file__).resolve().parents[2] / "dags"),
    "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
    "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
})


@pytest.fixture(scope="session")
def airflow_db():
    airflow = str(Path(sys.executable).with_name("airflow"))
    subprocess.run([airflow, "db", "migrate"], check=True, capture_output=True, timeout=300)
    return _HOME


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
