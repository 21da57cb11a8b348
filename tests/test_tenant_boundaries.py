"""One customer never reads, writes or deletes another's (or the server's) files: links in a
source folder, overlapping source folders, customer ids that would make paths. Through the
``sisflow`` command (a real process) and a real DAG run, against a real database."""

from __future__ import annotations

import os

import pytest
from sisflow.ims.generate import generate

from tests.test_cli import sisflow


def _world(tmp_path, db_url, *customers):
    (tmp_path / "customers").mkdir()
    for customer, drop in customers:
        (tmp_path / "customers" / f"{customer}.yaml").write_text(
            f"source: {{kind: folder, path: {drop}, stable_seconds: 0.05}}\n", encoding="utf-8"
        )
    return {"SISFLOW_DATABASE_URL": db_url, "SISFLOW_CUSTOMERS_DIR": str(tmp_path / "customers")}


def _runs(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT customer, status FROM sis.runs ORDER BY id")
        return cur.fetchall()


@pytest.mark.parametrize("target", ["other customer's export", "/etc/passwd"])
def test_a_link_in_a_source_folder_is_refused_and_nothing_is_read(conn, db_url, tmp_path, target):
    ours, theirs = tmp_path / "drop-a", tmp_path / "drop-b"
    ours.mkdir(), theirs.mkdir()
    generate(theirs / "export.xml", seed=3, year=2025, size="tiny")
    env = _world(tmp_path, db_url, ("a", ours), ("b", theirs))
    os.symlink(
        theirs / "export.xml" if target.startswith("other") else "/etc/passwd", ours / "export.xml"
    )
    out = sisflow("run", "a", "--on", "2025-09-01", env_extra=env, home=tmp_path / "home")
    assert out.returncode == 3, out.stdout + out.stderr
    assert "export.xml in a's source folder" in out.stdout
    assert "symbolic link: refused, nothing read" in out.stdout
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "home" / "landing" / "a" / "export.xml").exists()
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM lms.users WHERE site = 'a'")
        assert cur.fetchone()[0] == 0


def test_a_run_of_a_customer_whose_source_overlaps_another_is_refused(conn, db_url, tmp_path):
    outer = tmp_path / "drop"
    inner = outer / "b"
    inner.mkdir(parents=True)
    generate(inner / "export.xml", seed=3, year=2025, size="tiny")
    env = _world(tmp_path, db_url, ("a", outer), ("b", inner))
    check = sisflow("config", "check", env_extra=env)
    assert check.returncode == 1 and "overlaps the source folder" in check.stdout
    for customer in ("a", "b"):
        out = sisflow("run", customer, "--on", "2025-09-01", env_extra=env, home=tmp_path / "home")
        assert out.returncode == 3, out.stdout + out.stderr
        assert "overlaps the source folder" in out.stdout
    assert _runs(conn) == []


@pytest.mark.parametrize(
    "command",
    [
        ["maintenance", "--customer", "../../x"],
        ["maintenance", "--customer", "x" * 300],
        ["run", "../../x"],
        ["run", "x" * 300],
        ["diff", "../x", "f.xml"],
        ["lms-state", "../x"],
        ["calendar", "../x"],
        ["readiness", "../x"],
    ],
)
def test_every_command_checks_a_customer_id_before_it_touches_a_path(db_url, tmp_path, command):
    victim = tmp_path / "x"
    victim.mkdir()
    (victim / "keep.eml").write_text("not sisflow's")
    os.utime(victim / "keep.eml", (0, 0))
    home = tmp_path / "state" / "home"
    out = sisflow(*command, env_extra={"SISFLOW_DATABASE_URL": db_url}, home=home)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "not a customer id" in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) <= 2
    assert (victim / "keep.eml").exists()
