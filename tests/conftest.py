"""A real Postgres for the tests: SISFLOW_TEST_DATABASE_URL if set, else an embedded server.

Every test that asks for ``conn`` gets a database of its own, cloned from a migrated template,
so tests never see each other's runs and may look at the whole schema.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
import warnings
from pathlib import Path

import psycopg2
import pytest
from sisflow.db.migrations import migrate

SHARED = Path(__file__).resolve().parents[2] / "shared"

# Airflow, for the DAG tests and for Airflow connections in the source tests: a home of its own
# (SQLite) in a temporary folder, set before Airflow is first imported, so nothing leaks in from
# the user's home.
_HOME = tempfile.mkdtemp(prefix="sisflow-airflow-")
#: the operator who answers approvals through the REST API in the tests
API_USER, API_PASSWORD = "kari", "kari-test-password"
os.environ.update(
    {
        "AIRFLOW_HOME": _HOME,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(Path(__file__).resolve().parents[1] / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(Path(__file__).resolve().parents[1] / "plugins"),
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{API_USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": f"{_HOME}/passwords.json",
        "AIRFLOW__API_AUTH__JWT_SECRET": "sisflow-tests-only",
    }
)
Path(_HOME, "passwords.json").write_text(json.dumps({API_USER: API_PASSWORD}))

REFERENCE = SHARED / "reference" / "pifu-ims"


@pytest.fixture(autouse=True)
def state_folder(tmp_path, monkeypatch):
    """Every test has a state folder of its own: runs write their status emails there."""
    monkeypatch.setenv("SISFLOW_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture(scope="session")
def pg_server_url():
    url = os.environ.get("SISFLOW_TEST_DATABASE_URL")
    if url:
        yield url
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver
    folder = tempfile.mkdtemp(prefix="sisflow-test-pg-")
    server = pgserver.get_server(folder, cleanup_mode="delete")
    yield server.get_uri("postgres")
    server.cleanup()


def _admin(url):
    conn = psycopg2.connect(url)
    conn.autocommit = True
    return conn


def _with_db(url: str, name: str) -> str:
    """The same server URL with another database name."""
    base, _, query = url.partition("?")
    base = base.rsplit("/", 1)[0] + "/" + name
    return f"{base}?{query}" if query else base


@pytest.fixture(scope="session")
def template_db(pg_server_url):
    name = f"sisflow_template_{uuid.uuid4().hex[:8]}"
    admin = _admin(pg_server_url)
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name} ENCODING 'UTF8' TEMPLATE template0")
    conn = psycopg2.connect(_with_db(pg_server_url, name))
    migrate(conn)
    conn.close()
    yield name
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name}")
    admin.close()


@pytest.fixture
def new_db(pg_server_url, template_db):
    """Makes fresh migrated databases (one per door of a two-door test); returns their URLs."""
    admin = _admin(pg_server_url)
    names = []

    def make() -> str:
        name = f"sisflow_test_{uuid.uuid4().hex[:10]}"
        with admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE {name} TEMPLATE {template_db}")
        names.append(name)
        return _with_db(pg_server_url, name)

    yield make
    with admin.cursor() as cur:
        for name in names:
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.close()


@pytest.fixture
def db_url(new_db):
    return new_db()


@pytest.fixture
def conn(db_url):
    from sisflow.db.connection import connect

    c = connect(db_url)
    yield c
    c.close()


@pytest.fixture
def reference_dir():
    if not REFERENCE.is_dir():
        pytest.skip(f"the PIFU-IMS reference files are not here ({REFERENCE})")
    return REFERENCE
