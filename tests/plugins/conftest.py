"""The plugins run inside Airflow's api-server: the DAG tests' Airflow (its metadata database
and its real REST API under uvicorn) serves them here too."""

from tests.dags.conftest import airflow_api, airflow_db, customers  # noqa: F401 (fixtures)
