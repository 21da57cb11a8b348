"""Render one status email per outcome to HTML files and, where Chromium is installed, to PNG
screenshots, to look at them as a person would.

    python scripts/render_emails.py [OUT_FOLDER]     (default: $SISFLOW_HOME/emails)

Runs a small synthetic customer through each outcome on the import database (the embedded one
unless SISFLOW_DATABASE_URL is set) and shows the emails the runs sent (the outbox); the
customer "email-gallery" is reset first.
"""

from __future__ import annotations

import email
import email.policy
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

from sisflow import pipeline, settings, state
from sisflow.config import CustomerConfig
from sisflow.db.connection import connect
from sisflow.drift import check_and_tell
from sisflow.ims.generate import generate
from sisflow.lms.postgres_site import forget_site
from sisflow.services import Services
from sisflow.undo import undo_and_tell

CUSTOMER = "email-gallery"


def config(**extra) -> CustomerConfig:
    return CustomerConfig.model_validate(
        {
            "id": CUSTOMER,
            "name": "Galleri kommune",
            "recipients": ["drift@galleri.kommune.no"],
            "filter": {
                "default": {
                    "person": {"delete": {"count": 3, "percent": 5}},
                    "membership": {"delete": {"count": 400}},
                    "min_share": 50,
                }
            },
            **extra,
        }
    )


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else settings.home() / "emails"
    out.mkdir(parents=True, exist_ok=True)
    files = out / "files"
    files.mkdir(exist_ok=True)
    for year in (2025, 2026):
        generate(files / f"{year}.xml", seed=11, year=year, size="tiny")
    (files / "cut.xml").write_bytes((files / "2025.xml").read_bytes()[:5000])
    conn = connect()
    with conn, conn.cursor() as cur:
        state.forget(cur, CUSTOMER)
        forget_site(cur, CUSTOMER)
    cfg = config()

    rendered = []

    def show(name, result):
        """Write the email the run sent (from the outbox) as HTML and text."""
        with open(result["email"]["sent"], "rb") as eml:
            msg = email.message_from_bytes(eml.read(), policy=email.policy.default)
        (out / f"{name}.html").write_text(msg.get_body(("html",)).get_content(), "utf-8")
        (out / f"{name}.txt").write_text(msg.get_body(("plain",)).get_content(), "utf-8")
        rendered.append(name)
        print(f"{name:<20} {msg['Subject']}")

    def case(name, file, on, cfg=cfg, rollover=False):
        kind = pipeline.Kind.ROLLOVER if rollover else pipeline.Kind.IMPORT
        request = pipeline.Request(CUSTOMER, files / file, on=on, kind=kind)
        result = pipeline.run(conn, request, Services(configs={CUSTOMER: cfg}))
        show(name, result)
        return result

    case("applied", "2025.xml", date(2025, 9, 1))
    case("nothing-changed", "2025.xml", date(2025, 9, 2))
    case("rejected-file", "cut.xml", date(2025, 9, 3))
    held = case("held", "2026.xml", date(2026, 8, 10))
    pipeline.decide(
        conn,
        held["id"],
        "opened",
        by="kari.nordmann",
        reason="confirmed with the school owner",
        via="cli",
    )
    show(
        "opened", pipeline.resume(conn, held["id"], Services(configs={cfg.id: cfg}))
    )  # sisflow filter open
    # the opened run taken back (sisflow undo), after a person edited one of its accounts
    with conn, conn.cursor() as cur:
        cur.execute(
            "UPDATE lms.users SET trashed_at = NULL WHERE site = %s AND id ="
            " (SELECT min(id) FROM lms.users WHERE site = %s AND trashed_at IS NOT NULL)",
            (CUSTOMER, CUSTOMER),
        )
    _, sent = undo_and_tell(
        conn,
        held["id"],
        services=Services(configs={cfg.id: cfg}),
        holder=pipeline.Holder.this_process(),
        by="kari.nordmann",
        reason="the school owner sent the wrong file",
        via="cli",
    )
    show("undone", {"email": sent})
    with conn, conn.cursor() as cur:  # a pupil trashed by hand: the nightly drift check
        cur.execute(
            "UPDATE lms.users SET trashed_at = now() WHERE site = %s AND id ="
            " (SELECT min(id) FROM lms.users WHERE site = %s AND sync_key LIKE 'elev-%%')",
            (CUSTOMER, CUSTOMER),
        )
    _, where = check_and_tell(conn, cfg, Services(configs={cfg.id: cfg}))
    show("drift", {"email": {"sent": where}})
    case(
        "paused",
        "2026.xml",
        date(2027, 7, 10),
        cfg=config(pause=[{"start": "2027-07-01", "end": "2027-07-31"}]),
    )
    case("rollover-too-early", "2026.xml", date(2026, 7, 20), rollover=True)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        print("chromium not found: HTML only (apt-get install chromium for screenshots)")
        return
    for name in rendered:
        subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={out / '.chromium'}",
                "--window-size=700,1200",
                f"--screenshot={out / f'{name}.png'}",
                (out / f"{name}.html").as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
    print(f"screenshots in {out}")


if __name__ == "__main__":
    main()
