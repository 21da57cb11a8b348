"""Where sisflow keeps its state, from the environment (never from customer files)."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """The state folder: embedded Postgres, landing zone, outbox. ``SISFLOW_HOME`` or .sisflow/."""
    path = Path(os.environ.get("SISFLOW_HOME") or ".sisflow").expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def database_url() -> str | None:
    """A Postgres URL when ``SISFLOW_DATABASE_URL`` is set; None means the embedded server."""
    return os.environ.get("SISFLOW_DATABASE_URL") or None


def fast_reader() -> bool:
    """``SISFLOW_READER=straightforward`` reads every record the straightforward way: the
    fast path's yardstick in tests and benchmarks, and a way out should it ever be doubted."""
    value = (os.environ.get("SISFLOW_READER") or "fast").strip().lower()
    if value not in ("fast", "straightforward"):
        raise ValueError(f"SISFLOW_READER is '{value}': use fast or straightforward")
    return value == "fast"
