"""Speed and memory of reading, staging and diffing, for three municipality sizes.

Prints one row per size: file size, raw lxml iterparse time over the same file (the floor),
read+stage time and its ratio to the floor, rows per second, diff time for a first import and
for the next school year (rollover), commit time, and peak RSS of the sisflow process (the
Postgres server is a process of its own and not counted).

Each size runs in a fresh subprocess so that peak RSS is that size's alone. Files are
generated once into $SISFLOW_HOME/bench and reused. The database is the embedded one (or
SISFLOW_DATABASE_URL).

    python benchmarks/bench.py [--sizes small,medium,large]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from lxml import etree
from sisflow import pipeline, settings, state
from sisflow.ims import generate as gen

YEAR = 2025


def _file(size: str, year: int) -> Path:
    folder = settings.home() / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{size}-{year}.xml"
    if not path.exists():
        gen.generate(path, seed=1, year=year, size=size)
    return path


def raw_iterparse(path: Path) -> float:
    """The floor: lxml walking the same file, clearing each record, doing nothing else."""
    start = time.perf_counter()
    tags = ("{*}properties", "{*}person", "{*}group", "{*}membership")
    for _event, el in etree.iterparse(str(path), events=("end",), tag=tags,
                                      remove_comments=True, resolve_entities=False):
        el.clear(keep_tail=False)
        while el.getprevious() is not None:
            del el.getparent()[0]
    return time.perf_counter() - start


def one(size: str) -> dict:
    from sisflow.db.connection import connect

    first, second = _file(size, YEAR), _file(size, YEAR + 1)
    conn = connect()
    customer = f"bench-{size}"
    with conn, conn.cursor() as cur:
        state.forget(cur, customer)
    floor = min(raw_iterparse(first) for _ in range(2))

    t = time.perf_counter()
    staged = pipeline.stage(conn, customer, first)
    stage_s = time.perf_counter() - t
    t = time.perf_counter()
    pipeline.compute_diff(conn, staged["id"])
    diff_first_s = time.perf_counter() - t
    t = time.perf_counter()
    pipeline.commit(conn, staged["id"])
    commit_first_s = time.perf_counter() - t

    t = time.perf_counter()
    staged2 = pipeline.stage(conn, customer, second)
    stage2_s = time.perf_counter() - t
    t = time.perf_counter()
    diffed2 = pipeline.compute_diff(conn, staged2["id"])
    diff_rollover_s = time.perf_counter() - t
    t = time.perf_counter()
    pipeline.commit(conn, staged2["id"])
    commit_rollover_s = time.perf_counter() - t

    rows = sum(staged["records"].values())
    changes = sum(sum(c.values()) for c in diffed2["counts"].values())
    with conn, conn.cursor() as cur:
        state.forget(cur, customer)
    conn.close()
    return {
        "size": size,
        "mb": first.stat().st_size / 1e6,
        "records": staged["records"],
        "iterparse_s": floor,
        "stage_s": stage_s,
        "ratio": stage_s / floor,
        "rows_per_s": rows / stage_s,
        "diff_first_s": diff_first_s,
        "commit_first_s": commit_first_s,
        "stage_rollover_s": stage2_s,
        "diff_rollover_s": diff_rollover_s,
        "rollover_changes": changes,
        "commit_rollover_s": commit_rollover_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="small,medium,large")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one)))
        return
    header = (f"{'size':<7}{'file MB':>8}{'persons':>9}{'groups':>8}{'members':>9}"
              f"{'iterparse s':>12}{'read+stage s':>13}{'ratio':>6}{'rows/s':>9}"
              f"{'diff 1st s':>11}{'commit s':>9}{'rollover: stage s':>18}{'diff s':>7}"
              f"{'changes':>9}{'peak RSS MB':>12}")
    print(header)
    for size in args.sizes.split(","):
        _file(size, YEAR), _file(size, YEAR + 1)  # generated outside the measured process
        out = subprocess.run([sys.executable, __file__, "--one", size], check=True,
                             capture_output=True, text=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        n = r["records"]
        print(f"{size:<7}{r['mb']:>8.1f}{n['person']:>9}{n['group']:>8}{n['membership']:>9}"
              f"{r['iterparse_s']:>12.2f}{r['stage_s']:>13.2f}{r['ratio']:>6.2f}"
              f"{r['rows_per_s']:>9.0f}{r['diff_first_s']:>11.2f}{r['commit_first_s']:>9.2f}"
              f"{r['stage_rollover_s']:>18.2f}{r['diff_rollover_s']:>7.2f}"
              f"{r['rollover_changes']:>9}{r['peak_rss_mb']:>12.0f}", flush=True)


if __name__ == "__main__":
    main()
