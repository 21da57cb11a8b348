"""The "Customers" page (every customer in a row, with filters and sorting) and a page per
customer (its calendar, last runs, decisions, relinks and undo candidates). Ids, dates and
counts only. Links are relative: the pages are served under the api-server's plugin prefix
and shown in Airflow's own navigation."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from .. import fleet
from ..config import CustomerConfig

_ENV = Environment(
    loader=PackageLoader("sisflow.web", "templates"),
    autoescape=select_autoescape(enabled_extensions=("html.j2",)),
    undefined=StrictUndefined,
)

#: the columns a person may sort by: name -> the row's value
SORTS = {
    "customer": lambda r: r.customer,
    "name": lambda r: r.name.lower(),
    "vendor": lambda r: r.vendor,
    "last run": lambda r: (r.last_run or {}).get("at") or "",
    "next import": lambda r: r.next_import or "",
    "deadline": lambda r: (r.held or {}).get("deadline") or "9999",
    "days without export": lambda r: -(r.school_days_without_export or 0),
}


def customers_page(
    conn,
    configs: list[CustomerConfig],
    *,
    show: str | None = None,
    vendor: str | None = None,
    sort: str = "customer",
    airflow_base: str = "",
    now: datetime | None = None,
    waiting: dict[str, dict] | None = None,
) -> str:
    rows = fleet.rows(conn, configs, now, waiting)
    counts = {name: sum(name in r.flags for r in rows) for name in fleet.FILTERS}
    vendors = sorted({r.vendor for r in rows})
    if show in fleet.FILTERS:
        rows = [r for r in rows if show in r.flags]
    if vendor:
        rows = [r for r in rows if r.vendor == vendor]
    rows.sort(key=SORTS.get(sort, SORTS["customer"]))
    return _ENV.get_template("customers.html.j2").render(
        rows=rows,
        counts=counts,
        total=len(configs),
        vendors=vendors,
        show=show,
        vendor=vendor,
        sort=sort,
        sorts=list(SORTS),
        filters=fleet.FILTERS,
        airflow=airflow_base.rstrip("/"),
        now=(now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC"),
    )


def customer_page(
    conn,
    config: CustomerConfig,
    *,
    airflow_base: str = "",
    now: datetime | None = None,
    waiting: dict[str, dict] | None = None,
) -> str:
    from .. import calendar

    (row,) = fleet.rows(conn, [config], now, waiting)
    with conn, conn.cursor() as cur:
        cur.execute(
            "SELECT r.id, r.created_at, r.status, r.emails ->> -1, r.profile, r.counts, r.undo_of,"
            " d.decision, d.decided_by, d.via, d.reason, u.decided_by, u.reason,"
            " (SELECT count(*) FROM sis.lms_journal j WHERE j.run_id = r.id) > 0"
            " AND r.pruned_at IS NULL AND NOT EXISTS (SELECT 1 FROM sis.undos x"
            "   WHERE x.undone_run = r.id)"
            " FROM sis.runs r LEFT JOIN sis.filter_decisions d ON d.run_id = r.id"
            " LEFT JOIN sis.undos u ON u.run_id = r.id"
            " WHERE r.customer = %s ORDER BY r.id DESC LIMIT 30",
            (config.id,),
        )
        runs = [
            dict(
                zip(
                    (
                        "id",
                        "at",
                        "status",
                        "outcome",
                        "profile",
                        "counts",
                        "undo_of",
                        "decision",
                        "decided_by",
                        "via",
                        "reason",
                        "undone_by",
                        "undo_reason",
                        "undoable",
                    ),
                    r,
                    strict=True,
                )
            )
            for r in cur.fetchall()
        ]
        cur.execute(
            "SELECT id, entity, old_key, new_key, certainty, decision, decided_by, applied_run,"
            " undone_at IS NOT NULL FROM sis.relinks WHERE customer = %s ORDER BY id DESC"
            " LIMIT 30",
            (config.id,),
        )
        relinks = cur.fetchall()
        cur.execute(
            "SELECT id, account_id, sync_key, attached_by, attached_at, undone_at IS NOT NULL"
            " FROM sis.sync_key_attachments WHERE customer = %s ORDER BY id DESC LIMIT 30",
            (config.id,),
        )
        attachments = cur.fetchall()
    tz = ZoneInfo(config.schedule.timezone)
    for run in runs:
        run["at"] = fleet.local(run["at"], tz)
    attachments = [(*a[:4], fleet.local(a[4], tz), a[5]) for a in attachments]
    spans = [
        {"from": a.isoformat(), "to": b.isoformat(), "mode": str(mode)}
        for a, b, mode in calendar.outlook(config, calendar.today(), 120)
    ]
    return _ENV.get_template("customer.html.j2").render(
        row=row,
        runs=runs,
        relinks=relinks,
        attachments=attachments,
        spans=spans,
        airflow=airflow_base.rstrip("/"),
    )
