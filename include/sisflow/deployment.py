"""A deployment's first step (the compose file's ``airflow-init``, the Helm chart's migrate
job): its secrets are checked before anything starts, and the folders the services write are
made and handed to the user the services run as.

A placeholder secret (``change-me``, empty, too short) or a Fernet key that is not one stops
the deployment with the names of the settings at fault, never their values: a deployment
that started on ``change-me`` would encrypt connections with it, and sign tokens with it.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

#: the secrets a deployment must set: environment name -> (what it is, shortest length)
SECRETS = {
    "PGPASSWORD": ("the Postgres password (POSTGRES_PASSWORD in .env)", 12),
    "AIRFLOW__CORE__FERNET_KEY": ("the Fernet key of Airflow's connections", 44),
    "AIRFLOW__API_AUTH__JWT_SECRET": ("the secret that signs Airflow's tokens", 32),
    "AIRFLOW__API__SECRET_KEY": ("the api-server's session secret", 32),
    "AIRFLOW_ADMIN_PASSWORD": ("the Airflow administrator's password", 12),
}
_PLACEHOLDER = re.compile(
    r"^(change[-_ ]?me.*|changeme.*|secret|password|admin|airflow|example.*|x+|\*+|todo.*)$",
    re.I,
)


class DeploymentError(Exception):
    """A setting a deployment must not start with; the message names it, never its value."""


@dataclass(frozen=True)
class Prepared:
    folders: list[str]
    passwords_file: str | None


def check_secrets(env: dict[str, str] | None = None) -> None:
    """Every secret in :data:`SECRETS` set, not a placeholder, long enough; the Fernet key a
    Fernet key. Raises :class:`DeploymentError` listing every one at fault."""
    env = dict(os.environ if env is None else env)
    faults = []
    for name, (what, shortest) in SECRETS.items():
        value = env.get(name, "")
        if not value:
            faults.append(f"{name} ({what}) is not set")
        elif _PLACEHOLDER.match(value.strip()):
            faults.append(f"{name} ({what}) is a placeholder")
        elif len(value) < shortest:
            faults.append(f"{name} ({what}) is shorter than {shortest} characters")
    key = env.get("AIRFLOW__CORE__FERNET_KEY", "")
    if key and not any(name.startswith("AIRFLOW__CORE__FERNET_KEY") for name in faults):
        from cryptography.fernet import Fernet

        try:
            Fernet(key.encode())
        except ValueError:
            faults.append(
                "AIRFLOW__CORE__FERNET_KEY is not a Fernet key (make one: python -c 'from"
                " cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
            )
    if faults:
        raise DeploymentError("refused to start: " + "; ".join(faults))


def prepare(folders: list[Path], owner: int, env: dict[str, str] | None = None) -> Prepared:
    """The secrets checked, then each folder made (with its parents) and given to ``owner``
    (group 0, group-writable, as the official Airflow image expects), and the simple auth
    manager's passwords file written from ``AIRFLOW_ADMIN_USER`` and ``AIRFLOW_ADMIN_PASSWORD``
    (the api-server keeps a password it finds there: the login stays the one in ``.env``)."""
    env = dict(os.environ if env is None else env)
    check_secrets(env)
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        os.chown(folder, owner, 0)
        folder.chmod(0o775)
    return Prepared([str(f) for f in folders], write_login(owner, env))


def write_login(owner: int, env: dict[str, str] | None = None) -> str | None:
    """The simple auth manager's passwords file (``AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_
    PASSWORDS_FILE``) with ``AIRFLOW_ADMIN_USER`` and ``AIRFLOW_ADMIN_PASSWORD``, readable by
    ``owner`` only; None when no such file is configured."""
    env = dict(os.environ if env is None else env)
    file = env.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE")
    if not file:
        return None
    password = env.get("AIRFLOW_ADMIN_PASSWORD", "")
    if not password or _PLACEHOLDER.match(password):
        raise DeploymentError(
            "refused to start: AIRFLOW_ADMIN_PASSWORD is not set or is a placeholder"
        )
    path = Path(file)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chown(path.parent, owner, 0)
    path.touch(mode=0o600)
    user = env.get("AIRFLOW_ADMIN_USER") or "admin"
    path.write_text(json.dumps({user: password}), encoding="utf-8")
    os.chown(path, owner, 0)
    path.chmod(0o600)
    return file
