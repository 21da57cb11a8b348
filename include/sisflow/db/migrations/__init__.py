"""Versioned schema migrations: numbered SQL files applied once each, in order.

Each file runs in its own transaction under an advisory lock, so two processes starting at
once (two Airflow tasks, say) apply it exactly once between them.
"""

from __future__ import annotations

from importlib import resources

_LOCK = 7_262_026  # pg_advisory_xact_lock key for migrations


def available() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every migration file, by version."""
    files = resources.files(__package__)
    found = []
    for f in files.iterdir():
        if f.name.endswith(".sql"):
            version = int(f.name.split("_", 1)[0])
            found.append((version, f.name, f.read_text(encoding="utf-8")))
    return sorted(found)


def migrate(conn) -> list[str]:
    """Apply what is missing; returns the names of the files applied now."""
    applied_now = []
    with conn, conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
        cur.execute(
            "CREATE TABLE IF NOT EXISTS public.sisflow_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        cur.execute("SELECT version FROM public.sisflow_migrations")
        done = {row[0] for row in cur.fetchall()}
        for version, name, sql in available():
            if version in done:
                continue
            cur.execute(sql)
            cur.execute(
                "INSERT INTO public.sisflow_migrations (version, name) VALUES (%s, %s)",
                (version, name),
            )
            applied_now.append(name)
    return applied_now
