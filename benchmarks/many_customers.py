"""Many customers in one import database: N customers, each with the same small file (a
municipality of 1,000 pupils, 2.8 MB), run K at a time, as the scheduler runs them.

Printed: customer runs per hour for the first imports and for a day with 1% changed; the cost
of one run (first import, and a 1% day; medians of three) for the first customer, when the
database is empty, and for the last one, when it holds the other N-1 (run alone both times); and
lock waits: how often a sampler (every 50 ms) saw a backend waiting for a lock, and the
longest wait it saw.

    python benchmarks/bench.py --customers 500 --concurrency 4
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import date

from sisflow.config import CustomerConfig

_conn = None
FIRST, DAY = date(2025, 9, 1), date(2025, 9, 2)


def _config(customer: str) -> CustomerConfig:
    """Speed, not the filter, is measured here: a customer whose filter holds nothing."""
    no_limits = {"person": {}, "group": {}, "membership": {}, "min_share": 0}
    return CustomerConfig.model_validate(
        {"id": customer, "filter": {"default": no_limits, "rollover": no_limits}}
    )


def _init() -> None:
    global _conn
    from sisflow.db.connection import connect

    _conn = connect()


def _run(job: tuple[str, str, str]) -> float:
    """One customer's run (the command line's composition of the phases); its seconds."""
    from sisflow import pipeline
    from sisflow.services import Services

    customer, path, day = job
    start = time.perf_counter()
    request = pipeline.Request(customer, path, on=date.fromisoformat(day))
    result = pipeline.run(_conn, request, Services(configs={customer: _config(customer)}))
    assert result["status"] == "committed", (customer, result["status"], result.get("failed"))
    return time.perf_counter() - start


class LockSampler(threading.Thread):
    """Looks at pg_locks every 50 ms: how often someone waited, and the longest wait seen."""

    def __init__(self):
        super().__init__(daemon=True)
        self.samples = self.waiting = 0
        self.longest = 0.0
        self.stop = threading.Event()

    def run(self) -> None:
        from sisflow.db.connection import connect

        conn = connect()
        conn.autocommit = True
        with conn.cursor() as cur:
            while not self.stop.is_set():
                cur.execute(
                    "SELECT count(*), COALESCE(max(extract(epoch FROM now()"
                    " - a.state_change)), 0) FROM pg_locks l JOIN pg_stat_activity a"
                    " ON a.pid = l.pid WHERE NOT l.granted"
                )
                n, longest = cur.fetchone()
                self.samples += 1
                self.waiting += n > 0
                self.longest = max(self.longest, float(longest))
                time.sleep(0.05)
        conn.close()


def forget(conn, *customers: str) -> None:
    """The customers' runs, state and LMS sites gone, in one transaction."""
    from sisflow import state
    from sisflow.lms.postgres_site import forget_site

    with conn, conn.cursor() as cur:
        for customer in customers:
            state.forget(cur, customer)
            forget_site(cur, customer)


def _forget(customers: list[str]) -> None:
    from sisflow.db.connection import connect

    conn = connect()
    forget(conn, *customers)
    conn.close()


def _alone(customer: str, first: str, day: str, repeat: int = 3) -> tuple[float, float]:
    """The median of ``repeat`` first imports (the customer forgotten before each) and of
    ``repeat`` small days (the 1% file and the whole one, in turn)."""
    import statistics

    firsts, days = [], []
    for _ in range(repeat):
        _forget([customer])
        firsts.append(_run((customer, first, FIRST.isoformat())))
    for i in range(repeat):
        days.append(_run((customer, (day, first)[i % 2], date(2025, 9, 2 + i).isoformat())))
    return statistics.median(firsts), statistics.median(days)


def measure(n: int, k: int, first: str, day: str) -> dict:
    customers = [f"many-{i:04d}" for i in range(1, n + 1)]
    _forget(customers)
    _init()
    alone = {"first": {}, "day": {}}
    alone["first"]["first customer"], alone["day"]["first customer"] = _alone(
        customers[0], first, day
    )
    sampler = LockSampler()
    sampler.start()
    rates = {}
    with ProcessPoolExecutor(max_workers=k, initializer=_init) as pool:
        for name, path, when in (("first", first, FIRST), ("day", day, DAY)):
            start = time.perf_counter()
            list(pool.map(_run, [(c, path, when.isoformat()) for c in customers[1:-1]]))
            rates[name] = (n - 2) / (time.perf_counter() - start) * 3600
    sampler.stop.set()
    sampler.join()
    alone["first"]["last customer"], alone["day"]["last customer"] = _alone(
        customers[-1], first, day
    )
    _forget(customers)
    return {
        "rates": rates,
        "alone": alone,
        "lock_share": sampler.waiting / max(1, sampler.samples),
        "longest_wait": sampler.longest,
    }


def report(n: int, k: int, r: dict) -> None:
    print(f"{n} customers x the small file, {k} at a time:")
    print(
        f"  runs per hour: first imports {r['rates']['first']:,.0f}, a 1% day "
        f"{r['rates']['day']:,.0f} (aim: at least 6,000)"
    )
    for name, label in (("first", "first import"), ("day", "a 1% day")):
        one, last = r["alone"][name]["first customer"], r["alone"][name]["last customer"]
        print(
            f"  {label:<13} alone: customer 1 {one:.2f} s, customer {n} {last:.2f} s "
            f"({(last / one - 1) * 100:+.0f}%; aim: within 20%)"
        )
    half = r["alone"]["day"]["last customer"] / r["alone"]["first"]["last customer"]
    print(f"  a 1% day costs {half:.0%} of a first import (aim: at most 50%)")
    print(
        f"  lock waits: seen in {r['lock_share']:.1%} of the samples, the longest "
        f"{r['longest_wait']:.2f} s"
    )
