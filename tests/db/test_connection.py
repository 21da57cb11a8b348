"""The embedded database, as many processes find it at once."""

import os
import subprocess
import sys
from pathlib import Path

import pytest


def test_many_processes_starting_on_a_fresh_state_folder_create_the_database_once(tmp_path):
    """A scheduler starting many tasks against a fresh state folder: one process creates the
    import database, the others find it; nobody prints an error."""
    env = {k: v for k, v in os.environ.items() if k != "SISFLOW_DATABASE_URL"}
    env["SISFLOW_HOME"] = str(tmp_path / "home")
    code = ("from sisflow.db.connection import connect\n"
            "conn = connect()\n"
            "cur = conn.cursor(); cur.execute('SELECT current_database()')\n"
            "print(cur.fetchone()[0]); conn.close()\n")
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(16)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0] * 16, [err for _, err in outs]
    assert [out.strip() for out, _ in outs] == ["sisflow"] * 16
    printed = "".join(out + err for out, err in outs)
    assert "ERROR" not in printed and "already exists" not in printed
    assert "duplicate key" not in printed


PASSWORD = "Hemmelig-pw1"
MALFORMED = [
    f"sisuser:{PASSWORD}@localhost/sisflow",  # no scheme
    f"postgresql://sisuser:{PASSWORD[:4]} {PASSWORD[4:]}@localhost/sisflow",  # a space
    f"postgresql://sisuser:{PASSWORD[:4]}@{PASSWORD[4:]}@localhost:5/sisflow",  # an @
    f"postgresql://sisuser:{PASSWORD}@localhost:port/sisflow",  # a port that is no number
    f"host=localhost password={PASSWORD} port=x",
    f"postgresql://sisuser:{PASSWORD}@localhost:5/sisflow",  # well-formed, nobody there
    f"postgresql://sisuser:{PASSWORD}@/sisflow?host=/nowhere",
]


@pytest.mark.parametrize("url", MALFORMED)
def test_no_message_ever_holds_the_database_password(url, tmp_path):
    for args in (["lms-state", "demo"], ["run", "demo", "--json"], ["maintenance"]):
        out = subprocess.run([str(Path(sys.executable).with_name("sisflow")), *args],
                             env={**os.environ, "SISFLOW_DATABASE_URL": url,
                                  "SISFLOW_HOME": str(tmp_path)},
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 2, out.stdout + out.stderr
        printed = out.stdout + out.stderr
        assert "Traceback" not in printed
        for piece in (PASSWORD, PASSWORD[:4], PASSWORD[4:]):
            assert piece not in printed
        assert "SISFLOW_DATABASE_URL" in printed
