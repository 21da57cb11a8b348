"""The deployment files as a reviewer reads them: docker-compose.yaml, the Dockerfile and
.env.example agree with each other and with what the code reads. (No Docker engine runs on the
development machines, so the images are not built here.)"""

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
AIRFLOW_SERVICES = {
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
}
#: environment variables the code reads that a deployment does not set
NOT_FOR_DEPLOYMENT = {
    "SISFLOW_CRASH_POINT",
    "SISFLOW_FAIL_POINT",
    "SISFLOW_DELAY_POINT",
    "SISFLOW_TEST_DATABASE_URL",
    "SISFLOW_AIRFLOW_API_URL",
    "SISFLOW_AIRFLOW_USERNAME",
    "SISFLOW_AIRFLOW_PASSWORD",
}


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yaml").read_text(encoding="utf-8"))


def test_a_celery_deployment_with_one_postgres_and_redis():
    services = compose()["services"]
    assert {"postgres", "redis", "mailpit"} | AIRFLOW_SERVICES <= set(services)
    for name in AIRFLOW_SERVICES:
        env = services[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:"), name
        assert "@postgres/airflow" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], name
        assert "@postgres/sisflow" in env["SISFLOW_DATABASE_URL"], name
    init = (ROOT / "deploy" / "postgres-init.sql").read_text()
    assert "CREATE DATABASE sisflow" in init
    mounts = services["postgres"]["volumes"]
    assert any(
        m.startswith("./deploy/postgres-init.sql:/docker-entrypoint-initdb.d/") for m in mounts
    )


def test_every_image_is_pinned_and_airflow_matches_the_requirements():
    for name, service in compose()["services"].items():
        image = service["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and re.match(r"v?\d+(\.\d+)+", tag), f"{name}: {image} is not pinned"
    pinned = re.search(
        r"^apache-airflow==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M
    ).group(1)
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(rf"^FROM apache/airflow:{re.escape(pinned)}-python3\.11$", dockerfile, re.M)
    assert "pip install --no-cache-dir -r requirements.txt" in dockerfile
    assert "_PIP_ADDITIONAL_REQUIREMENTS" not in (ROOT / "docker-compose.yaml").read_text()


def test_every_long_running_service_has_a_health_check():
    for name, service in compose()["services"].items():
        if name == "airflow-init":
            assert service["restart"] == "no"
            continue
        assert service["healthcheck"]["test"], name
        assert service["restart"] == "always", name


def test_the_state_folder_and_the_database_live_on_volumes():
    data = compose()
    for name in AIRFLOW_SERVICES:
        service = data["services"][name]
        home = service["environment"]["SISFLOW_HOME"]
        assert f"sisflow-state:{home}" in service["volumes"], name  # landing zone and outbox
    assert "postgres-data:/var/lib/postgresql/data" in data["services"]["postgres"]["volumes"]
    assert {"postgres-data", "sisflow-state"} <= set(data["volumes"])


def test_the_environment_names_are_the_ones_the_code_reads():
    read = set()
    for path in (ROOT / "include" / "sisflow").rglob("*.py"):
        read |= set(
            re.findall(
                r"""environ(?:\.get\(|\[)["'](SISFLOW_[A-Z_]+)["']""",
                path.read_text(encoding="utf-8"),
            )
        )
    assert read, "no environment variable found in the code: the pattern is wrong"
    env = compose()["services"]["airflow-worker"]["environment"]
    deployed = {k for k in env if k.startswith("SISFLOW_")}
    assert deployed <= read, f"set but never read: {deployed - read}"
    assert read - NOT_FOR_DEPLOYMENT <= deployed, f"read but never set: {read - deployed}"
    assert env["AIRFLOW__API__BASE_URL"]  # links in status emails need it


def test_every_variable_without_a_default_is_in_env_example():
    text = (ROOT / "docker-compose.yaml").read_text()
    needed = set(re.findall(r"(?<!\$)\$\{([A-Z_]+)\}", text))  # ${NAME} has no default
    example = set(re.findall(r"^([A-Z_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert needed, "the compose file names no variables: the pattern is wrong"
    assert needed <= example, f"missing from .env.example: {needed - example}"
    for line in text.splitlines():  # no secret is written into the compose file itself
        if re.search(r"password|secret|api_key", line, re.I) and not line.lstrip().startswith("#"):
            assert "${" in line, line


def test_without_a_sendgrid_key_the_emails_go_to_the_mail_catcher():
    data = compose()
    env = data["services"]["airflow-worker"]["environment"]
    smtp = json.loads(env["AIRFLOW_CONN_SISFLOW_SMTP"])
    assert (smtp["conn_type"], smtp["host"], smtp["port"]) == ("smtp", "mailpit", 1025)
    assert "mailpit" in data["services"] and data["services"]["mailpit"]["healthcheck"]
