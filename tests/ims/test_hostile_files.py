"""Whatever a file holds, reading it stays within a fixed memory bound (measured in a child
process), or the file is refused whole with its line and reason; and a record that is in the
file, however mangled, is never taken for a record that left."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from sisflow import state

from tests.factory import enterprise, group, lenient, member, membership, person, run_once, write

SISFLOW = str(Path(sys.executable).with_name("sisflow"))
BOUND_MB = 400
MB = 1 << 20


_MEASURED = """
import sys
from sisflow.cli import main
code = main(["validate", sys.argv[1], "--json"])
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM"))
sys.stderr.write(hwm)
sys.exit(code)
"""


def peak_of_validate(path: Path) -> tuple[dict, int]:
    """``sisflow validate --json`` in a child process: its result and its own peak RSS (MB).
    The peak is the child's VmHWM, which starts afresh at exec (ru_maxrss would carry the
    size of the test process it was forked from)."""
    out = subprocess.run(
        [sys.executable, "-c", _MEASURED, str(path)], capture_output=True, text=True, timeout=300
    )
    hwm = next(line for line in out.stderr.splitlines() if line.startswith("VmHWM"))
    return json.loads(out.stdout), int(hwm.split()[1]) // 1024


def base() -> str:
    return enterprise(
        person("p1", "Åse", "Lund", bday="2015-01-01"),
        person("p2"),
        group("school", "skole"),
        group("5A", parent="school"),
        membership("5A", member("p1"), member("p2")),
    )


HOSTILE = {
    "white space after the root": lambda t: t + " \n" * (60 * MB),
    "white space between records": lambda t: t.replace("<group>", "\n" * (60 * MB) + "<group>", 1),
    "white space inside a record": lambda t: t.replace("<person>", "<person>" + " " * (60 * MB), 1),
    "one huge value": lambda t: t.replace("<fn>", "<fn>" + "x" * (60 * MB), 1),
    "a huge value in an ISO-8859-1 file": lambda t: t.replace(
        'encoding="UTF-8"', 'encoding="ISO-8859-1"'
    ).replace("<fn>", "<fn>" + "y" * (60 * MB), 1),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_memory_stays_bounded_whatever_the_file_holds(tmp_path, name):
    path = tmp_path / "hostile.xml"
    text = HOSTILE[name](base())
    path.write_bytes(text.encode("latin-1" if "ISO" in name else "utf-8"))
    result, peak = peak_of_validate(path)
    assert peak < BOUND_MB, f"{name}: {peak} MB"
    if result["fatal"]:  # refused whole: with a line and a reason that says why
        assert "longer than 32 MB" in result["fatal"]["reason"]
        assert result["fatal"]["line"] is not None
    else:
        assert result["records"]["person"] == 2


# -- a seeded fuzz over layouts, white space, sizes and values -----------------------------------


def _mutations(rng: random.Random):
    spaces = ["", " ", "\n", "\t", "\r\n", "  \n  ", "<!-- x -->"]
    values = ["", " ", "ø" * rng.randint(1, 400), "\\.", "a\tb", "&amp;", "\u2028", "x" * 300]

    def around_tags(text):  # white space (and comments) between and around records
        return "\n".join(part + rng.choice(spaces) for part in text.split("\n"))

    def inside_tags(text):  # white space inside elements, where XML allows it
        return text.replace("</id>", rng.choice(["</id >", "</id\n>", "</id>"]))

    def a_value(text):
        return text.replace("<given>Ola", f"<given>{rng.choice(values)}", 1)

    def an_id(text):
        target = rng.choice(["p1", "p2", "5A", "school"])
        return text.replace(
            f"<id>{target}</id>",
            rng.choice(["<id></id>", "<id> </id>", f"<id>{'z' * 300}</id>", ""]),
            1,
        )

    def a_date(text):
        return text.replace("2015-01-01", rng.choice(["2015-02-30", "", "01.01.2015"]))

    def a_role(text):
        return text.replace('roletype="01"', f'roletype="{rng.choice(["99", "", "1"])}"', 1)

    return [around_tags, inside_tags, a_value, an_id, a_date, a_role]


@pytest.mark.parametrize("seed", range(12))
def test_a_mangled_record_is_never_taken_for_one_that_left(conn, tmp_path, seed):
    """Every record of day 1 is still in day 2's file, mangled or not: so whatever day 2's file
    holds, nothing is removed (or the file is refused whole, and nothing changes)."""
    rng = random.Random(seed)
    config = lenient()
    run_once(conn, "kommune", write(tmp_path, base(), "day1.xml"), config=config)
    before = state.snapshot(conn.cursor(), "kommune")
    text = base()
    for mutate in rng.sample(_mutations(rng), k=rng.randint(1, 4)):
        text = mutate(text)
    result = run_once(conn, "kommune", write(tmp_path, text, "day2.xml"), config=config)
    if result["status"] == "rejected":
        assert state.snapshot(conn.cursor(), "kommune") == before
        return
    assert result["status"] == "committed", result
    for entity in ("person", "group", "membership"):
        assert result["counts"][entity]["delete"] == 0, (seed, entity, text)
    after = state.snapshot(conn.cursor(), "kommune")
    for entity in ("person", "group", "membership"):
        assert len(after[entity]) == len(before[entity]), (seed, entity)
