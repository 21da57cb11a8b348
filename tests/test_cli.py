"""The ``sisflow`` command as a user runs it: a real process, real files, a real database."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.factory import enterprise, group, member, membership, person, write

# the console script that pyproject.toml installs next to this Python
SISFLOW = str(Path(sys.executable).with_name("sisflow"))


def sisflow(*args, env_extra=None, home=None):
    env = {**os.environ, **(env_extra or {})}
    if home:
        env["SISFLOW_HOME"] = str(home)
    return subprocess.run(
        [SISFLOW, *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.fixture
def export(tmp_path):
    return write(
        tmp_path,
        enterprise(
            person("p1", "Åse", "Ødegård", email="aase@skole.no", bday="2015-01-01"),
            group("5A"),
            membership("5A", member("p1"), member("ghost")),
        ),
    )


def test_validate_prints_problems_and_exits_zero_for_a_usable_file(export):
    out = sisflow("validate", export)
    assert out.returncode == 0, out.stderr
    assert "unknown person 'ghost'" in out.stdout
    ghost_line = next(
        i for i, line in enumerate(export.read_text().splitlines(), 1) if "ghost" in line
    )
    assert f"line {ghost_line}: error: membership 5A/ghost" in out.stdout
    for secret in ("Åse", "Ødegård", "aase@skole.no", "2015-01-01"):
        assert secret not in out.stdout + out.stderr


def test_validate_json_is_machine_readable(export):
    out = sisflow("validate", export, "--json")
    data = json.loads(out.stdout)
    assert data["ok"] is True
    assert data["records"] == {"person": 1, "group": 1, "membership": 2}
    assert data["problems"][0]["id"] == "5A/ghost"


def test_validate_exits_non_zero_on_a_fatal_problem(tmp_path):
    bad = write(tmp_path, '<?xml version="1.0"?>\n<roster/>\n', "roster.xml")
    out = sisflow("validate", bad)
    assert out.returncode == 1
    assert "REJECTED: line 2: the root element is <roster>" in out.stdout


def test_diff_prints_counts_and_applies_nothing(export, db_url, tmp_path):
    env = {"SISFLOW_DATABASE_URL": db_url}
    out = sisflow("diff", "kommune", export, "--json", env_extra=env, home=tmp_path)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["status"] == "dry-run"
    assert data["counts"]["person"] == {"create": 1, "update": 0, "delete": 0}
    again = json.loads(sisflow("diff", "kommune", export, "--json", env_extra=env).stdout)
    assert again["counts"] == data["counts"]  # nothing was applied by the first


def test_run_applies_and_lms_state_shows_the_site_without_personal_data(export, db_url, tmp_path):
    env = {"SISFLOW_DATABASE_URL": db_url}
    dry = sisflow("run", "kommune", export, "--dry-run", "--json", env_extra=env, home=tmp_path)
    assert json.loads(dry.stdout)["lms_applied_at"] is None
    empty = json.loads(sisflow("lms-state", "kommune", "--json", env_extra=env).stdout)
    assert empty["users"] == []
    out = sisflow("run", "kommune", export, "--on", "2025-09-01", "--json", env_extra=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["lms_counts"]["users"]["applied"] == 1
    state_out = sisflow("lms-state", "kommune", "--json", env_extra=env)
    data = json.loads(state_out.stdout)
    assert [(u["sync_key"], u["profile"]) for u in data["users"]] == [("p1", "student")]
    for secret in ("Åse", "Ødegård", "aase@skole.no"):
        assert secret not in state_out.stdout
    text = sisflow("lms-state", "kommune", env_extra=env).stdout
    assert "users: 1 (0 manual, 0 in the trash)" in text


def test_run_in_a_pause_window_reads_nothing(tmp_path, db_url):
    customers = tmp_path / "customers"
    customers.mkdir()
    (customers / "kommune.yaml").write_text(
        "pause:\n  - {start: 2025-07-01, end: 2025-07-31}\n", encoding="utf-8"
    )
    missing = tmp_path / "never-read.xml"  # a paused run must not even open the file
    env = {"SISFLOW_DATABASE_URL": db_url, "SISFLOW_CUSTOMERS_DIR": str(customers)}
    out = sisflow("run", "kommune", missing, "--on", "2025-07-15", env_extra=env, home=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "paused until 2025-07-31" in out.stdout


def test_generate_writes_a_file_that_reads(tmp_path):
    out_file = tmp_path / "tiny.xml"
    out = sisflow("generate", "--size", "tiny", "--seed", "5", "-o", out_file)
    assert out.returncode == 0, out.stderr
    assert sisflow("validate", out_file).returncode == 0


def test_demo_runs_end_to_end_on_the_embedded_database(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "SISFLOW_DATABASE_URL"}
    env["SISFLOW_HOME"] = str(tmp_path / "home")
    out = subprocess.run(
        [SISFLOW, "demo", "--size", "tiny"], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert "first import" in out.stdout and "rollover" in out.stdout
    assert out.stdout.count(": committed") == 2
    # the first-grader made by hand got their sync key from the readiness check: only the two
    # administrators are manual after the rollover, and no second account was made
    assert "1  Manual accounts that match a person in the SIS data" in out.stdout
    assert "attached 1 sync key(s)" in out.stdout
    assert "(2 manual" in out.stdout and "(0 duplicates)" in out.stdout
    assert "archived" in out.stdout
    outbox = tmp_path / "home" / "outbox" / "demo"
    # one status email per run, and the readiness report
    assert sorted(p.name.rsplit("-", 1)[0] for p in outbox.glob("*.eml")) == [
        "readiness-blocking",
        "run-1-applied",
        "run-2-applied",
    ]
    assert (tmp_path / "home" / "pg" / "PG_VERSION").exists()


@pytest.mark.parametrize("args", [["calendar", "../customers/c1"], ["run", "../x", "f.xml"]])
def test_a_bad_customer_id_gets_one_clear_line(args, tmp_path, db_url):
    out = sisflow(*args, env_extra={"SISFLOW_DATABASE_URL": db_url}, home=tmp_path)
    assert out.returncode in (2, 3)
    assert "not a customer id" in out.stdout + out.stderr
    assert "Traceback" not in out.stderr and "pydantic" not in out.stderr


def test_a_malformed_database_url_never_shows_its_password(tmp_path, export):
    for url in (
        "postgresql://sisflow:s3cr3t-pw@localhost:notaport/sisflow",
        "postgresql://sisflow:s3cr3t-pw@127.0.0.1:1/sisflow",
        "host=127.0.0.1 port=1 user=x password=s3cr3t-pw dbname=y",
    ):
        out = sisflow(
            "run", "kommune", export, env_extra={"SISFLOW_DATABASE_URL": url}, home=tmp_path
        )
        assert out.returncode == 2, out.stderr
        # unreadable as a URL, or unreachable: either way one line that names the setting
        assert "SISFLOW_DATABASE_URL" in out.stderr
        assert "s3cr3t-pw" not in out.stdout + out.stderr and "Traceback" not in out.stderr


def test_relink_decides_a_held_runs_pair_and_prints_one_json_document(tmp_path, db_url):
    """A pupil re-keyed with a new login (only email, name and birth date agree) holds the
    run; ``sisflow relink`` refuses the pair and the run goes on as delete + create."""

    def school(key, login):
        return enterprise(
            person(
                key,
                "Åse",
                "Ødegård",
                email="aase@skole.no",
                bday="2015-01-01",
                userids=[("username", login)],
            ),
            group("5A"),
            membership("5A", member(key)),
        )

    env = {"SISFLOW_DATABASE_URL": db_url}
    day1 = write(tmp_path, school("p1", "aase"), "day1.xml")
    assert sisflow("run", "kommune", day1, env_extra=env, home=tmp_path).returncode == 0
    day2 = write(tmp_path, school("p9", "aase.o"), "day2.xml")
    held = json.loads(
        sisflow("run", "kommune", day2, "--json", env_extra=env, home=tmp_path).stdout
    )
    assert held["status"] == "held"
    (pair,) = held["relinks"]["pairs"]
    shown = sisflow("relink", held["id"], env_extra=env, home=tmp_path)
    assert f"pair {pair['id']}: person p1 -> p9 (low: email+name+birth date)" in shown.stdout
    refused = sisflow(
        "relink",
        held["id"],
        "--refuse",
        pair["id"],
        "--by",
        "kari",
        "--json",
        env_extra=env,
        home=tmp_path,
    )
    assert refused.returncode == 0, refused.stderr
    result = json.loads(refused.stdout)  # one document, nothing else on stdout
    # refused, the pupil leaves and another arrives: the default filter holds a delete of
    # every person, and the run waits for the filter's decision as any other
    assert (result["status"], result["decision"]) == ("held", None)
    assert result["relinks"]["counts"] == {"accepted": 0, "refused": 1, "waiting": 0}
    assert "identity" not in {t["kind"] for t in result["verdict"]["trips"]}
    opened = sisflow(
        "filter",
        "open",
        held["id"],
        "--by",
        "kari",
        "--reason",
        "a new pupil",
        "--json",
        env_extra=env,
        home=tmp_path,
    )
    result = json.loads(opened.stdout)
    assert result["status"] == "committed"
    assert result["counts"]["person"] == {"create": 1, "update": 0, "delete": 1}
    no_reason = sisflow("relink", "kommune", "--undo", pair["id"], "--by", "kari", env_extra=env)
    assert no_reason.returncode == 2 and "--reason is required" in no_reason.stderr
    not_relinked = sisflow(
        "relink",
        "kommune",
        "--undo",
        pair["id"],
        "--by",
        "kari",
        "--reason",
        "test",
        env_extra=env,
        home=tmp_path,
    )
    assert not_relinked.returncode == 3
    assert f"pair {pair['id']} was not relinked (refused" in not_relinked.stderr
