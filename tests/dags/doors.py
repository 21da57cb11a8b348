"""The two doors into a customer's run, for the tests: ``CliDoor`` runs the ``sisflow``
command as a real process, ``DagDoor`` runs the customer's DAG for real (``dag.test``). Each door
sees a ``World`` of its own (database, state folder, customers and drop folders), so the end
states of the two can be compared. Both doors say how a run ended in one vocabulary: success,
refused (on purpose, with its email saying why) or failed (a breakdown)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
from sisflow import state
from sisflow.airflow_api import ACCEPT
from sisflow.ims.generate import generate
from sisflow.lms.postgres_site import PostgresSite

from tests.dags.conftest import dagbag
from tests.mail import MailCatcher

SISFLOW = str(Path(sys.executable).with_name("sisflow"))
OPEN, REJECT = "Open the filter", "Reject"
LENIENT = "{person: {}, group: {}, membership: {}, min_share: 0}"
STRICT = "{person: {delete: {count: 1}}, min_share: 0}"
WINDOW = "delay_delete:\n  - {start: 2026-06-20, end: 2026-08-14}\n"
TWO_SECONDS = 0.0006  # deadline_hours
UNDO_REASON = "the export was cut off"


@dataclass
class World:
    """What one door sees: its own database, state folder, customers folder and drop folder."""

    db_url: str
    root: Path
    landing_url: str | None = None  # the landing zone in object storage (file://), if set
    #: emails go to a mail catcher of this world's own through the ``sisflow_smtp`` connection,
    #: the same for both doors; without it, to the outbox
    smtp: bool = False
    #: how each run ended, in words: a DAG run's note, the command's ``note``
    notes: list[str] = field(default_factory=list)

    def notes_here(self) -> list[str | None]:
        """The notes with this world's folder as ``WORLD`` (the doors' folders differ)."""
        return [n and n.replace(str(self.root), "WORLD") for n in self.notes]

    def __post_init__(self):
        for name in ("customers", "drop", "home", "by-hand"):
            (self.root / name).mkdir(parents=True, exist_ok=True)
        self.mail = MailCatcher() if self.smtp else None

    def close(self) -> None:
        if self.mail:
            self.mail.stop()

    @property
    def env(self) -> dict:
        return {
            "SISFLOW_DATABASE_URL": self.db_url,
            "SISFLOW_HOME": str(self.root / "home"),
            "SISFLOW_CUSTOMERS_DIR": str(self.root / "customers"),
            "SISFLOW_LANDING": self.landing_url or "",
            "AIRFLOW_CONN_SISFLOW_SMTP": self.mail.connection if self.mail else "",
            "SISFLOW_OPS_RECIPIENTS": "drift@leverandor.test",
        }

    def configure(
        self,
        extra: str = "",
        default: str = LENIENT,
        deadline_hours: float = 1,
        source: str | None = None,
    ):
        source = source or f"{{kind: folder, path: {self.root / 'drop'}, stable_seconds: 0.2}}"
        (self.root / "customers" / "kommune.yaml").write_text(
            f"source: {source}\n"
            f"filter: {{default: {default}, rollover: {LENIENT},"
            f" deadline_hours: {deadline_hours}}}\n"
            "recipients: [skole@kommune.test]\n"
            f"{extra}",
            encoding="utf-8",
        )

    def export(self, year: int) -> Path:
        """The SIS drops this school year's export (replacing the one before)."""
        for old in (self.root / "drop").glob("*.xml"):
            old.unlink()
        path = self.root / "drop" / f"export-{year}.xml"
        generate(path, seed=4, year=year, size="tiny")
        return path

    def by_hand(self, year: int) -> Path:
        """A file an operator put in the landing zone to import by hand."""
        landing = self.root / "home" / "landing" / "kommune"
        landing.mkdir(parents=True, exist_ok=True)
        path = landing / f"by-hand-{year}.xml"
        generate(path, seed=4, year=year, size="tiny")
        return path

    def newest(self) -> Path:
        return max((self.root / "drop").glob("*.xml"), key=lambda p: p.stat().st_mtime_ns)

    def query(self, sql: str, *args):
        with psycopg2.connect(self.db_url) as conn, conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()

    def first_grader_by_hand(self, year: int) -> dict:
        """A pupil who starts school in August ``year``, made by hand in the LMS (no sync
        key): the classic duplicate in waiting."""
        from sisflow.ims.generate import Municipality, build_year
        from sisflow.lms.seed import seed_manual_objects

        pupil = next(
            p
            for p in build_year(Municipality(4, 70), year)["persons"]
            if p["id"].startswith(f"elev-{year}-")
        )
        with psycopg2.connect(self.db_url) as conn, conn.cursor() as cur:
            seed_manual_objects(
                cur, "kommune", first_grader=(pupil["given"], pupil["family"], pupil["bday"])
            )
        return pupil

    def rekey(self, old: str, new: str, *, username: tuple[str, str] | None = None) -> None:
        """The SIS re-keys a person or group in the newest export (its record and every
        membership); ``username``: and gives a person a new login, (old, new)."""
        path = self.newest()
        text = path.read_text(encoding="utf-8").replace(f"<id>{old}</id>", f"<id>{new}</id>")
        if username:
            text = text.replace(f">{username[0]}<", f">{username[1]}<")
        path.write_text(text, encoding="utf-8")

    def cut_off(self, school: str, keep_every: int = 10) -> set[str]:
        """The SIS sends an export that lost most pupils of one school (a cut-off export):
        of the school's pupils only every ``keep_every``-th stays; the keys of those gone."""
        from lxml import etree

        path = self.newest()
        tree = etree.parse(str(path))
        ns = {"i": tree.getroot().nsmap[None]}
        pupils = tree.xpath(
            "//i:membership[i:sourcedid/i:id = $school]/i:member/i:sourcedid/i:id/text()",
            namespaces=ns,
            school=school,
        )
        pupils = [p for p in pupils if p.startswith("elev-")]
        gone = {p for i, p in enumerate(pupils) if i % keep_every}
        for element in tree.xpath("//i:person | //i:member", namespaces=ns):
            if element.findtext("i:sourcedid/i:id", namespaces=ns) in gone:
                element.getparent().remove(element)
        tree.write(str(path), xml_declaration=True, encoding="UTF-8")
        return gone

    def lms_rows(self) -> dict:
        """The whole LMS site, every column but the time of the last update."""
        tables = {
            "users": "SELECT * FROM lms.users ORDER BY id",
            "units": "SELECT * FROM lms.units ORDER BY id",
            "terms": "SELECT * FROM lms.terms ORDER BY id",
            "courses": "SELECT * FROM lms.courses ORDER BY id",
            "participants": "SELECT * FROM lms.participants ORDER BY 1, 2, 3",
            "unit_members": "SELECT * FROM lms.unit_members ORDER BY 1, 2, 3",
        }
        out = {}
        with psycopg2.connect(self.db_url) as conn, conn.cursor() as cur:
            for name, query in tables.items():
                cur.execute(query)
                columns = [d.name for d in cur.description]
                out[name] = [
                    {c: v for c, v in zip(columns, row, strict=True) if c != "updated_at"}
                    for row in cur.fetchall()
                ]
        return out

    def last_applied(self) -> int:
        return self.query(
            "SELECT max(id) FROM sis.runs WHERE status = 'committed' AND undo_of IS NULL"
        )[0][0]

    def waiting_pairs(self) -> list[int]:
        """The ids of the identity changes that wait for a person."""
        return [row[0] for row in self.query("SELECT id FROM sis.relinks WHERE decision IS NULL")]

    def relink(self, choice: str, *extra, extra_env: dict | None = None):
        """``sisflow relink`` on the held run: every waiting pair accepted or refused."""
        return sisflow(
            self,
            "relink",
            self.held_run(),
            f"--{choice}",
            *self.waiting_pairs(),
            "--by",
            "kari",
            "--reason",
            "checked with the school",
            *extra,
            extra_env=extra_env,
        )

    def held_run(self) -> int:
        return self.query("SELECT id FROM sis.runs WHERE status = 'held' ORDER BY id DESC")[0][0]

    def outbox(self) -> list[str]:
        """The outcomes of the emails sent, oldest first."""
        if self.mail:
            return [msg["X-Sisflow-Outcome"] for msg in self.mail.messages]
        folder = self.root / "home" / "outbox" / "kommune"
        found = []
        for path in folder.glob("*.eml") if folder.exists() else []:
            outcome, ns = re.fullmatch(r"(?:run-\d+-)?(.+)-(\d+)\.eml", path.name).groups()
            found.append((int(ns), outcome))
        return [outcome for _, outcome in sorted(found)]

    def email(self, outcome: str) -> str:
        """The plain text of the (newest) email with that outcome."""
        import email
        import email.policy

        if self.mail:
            msg = [m for m in self.mail.messages if m["X-Sisflow-Outcome"] == outcome][-1]
            return f"Subject: {msg['Subject']}\n" + msg.get_body(("plain",)).get_content()
        folder = self.root / "home" / "outbox" / "kommune"
        path = sorted(folder.glob(f"*{outcome}-*.eml"))[-1]
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        return f"Subject: {msg['Subject']}\n" + msg.get_body(("plain",)).get_content()

    def end_state(self) -> dict:
        def without_ids(rows):
            return sorted(
                tuple((k, str(v)) for k, v in row.items() if not k.endswith("id")) for row in rows
            )

        with psycopg2.connect(self.db_url) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT status, file_name, counts, verdict->'passed', profile, lms_mode,"
                " lms_applied_at IS NOT NULL, emails FROM sis.runs ORDER BY id"
            )
            run_rows = cur.fetchall()
            cur.execute(
                "SELECT r.file_name, d.decision FROM sis.filter_decisions d"
                " JOIN sis.runs r ON r.id = d.run_id ORDER BY d.run_id"
            )
            decisions = cur.fetchall()
            cur.execute(
                "SELECT entity, record_key::text, applied_run IS NOT NULL,"
                " dropped_run IS NOT NULL FROM sis.deferred_deletions ORDER BY 1, 2"
            )
            deferred = cur.fetchall()
            cur.execute("SELECT count(*) FROM sis.customer_leases")
            leases = cur.fetchone()[0]
            current = state.snapshot(cur, "kommune")
            lms = {k: without_ids(v) for k, v in PostgresSite(cur, "kommune").snapshot().items()}
            cur.execute("SELECT label FROM sis.school_years ORDER BY set_at")
            years = [row[0] for row in cur.fetchall()]
            cur.execute(
                "SELECT sync_key, certainty, undone_at IS NOT NULL"
                " FROM sis.sync_key_attachments ORDER BY id"
            )
            attached = cur.fetchall()
            cur.execute(
                "SELECT entity, old_key, new_key, certainty, ambiguous, evidence, decision,"
                " decided_by, applied_run IS NOT NULL, undone_at IS NOT NULL"
                " FROM sis.relinks ORDER BY id"
            )
            relinks = cur.fetchall()
            cur.execute(
                "SELECT (SELECT count(*) FROM sis.person_changes),"
                " (SELECT count(*) FROM sis.membership_changes),"
                " (SELECT count(*) FROM sis.runs WHERE pruned_at IS NOT NULL)"
            )
            history = cur.fetchone()
        return {
            "runs": run_rows,
            "decisions": decisions,
            "deferred": deferred,
            "leases": leases,
            "current": current,
            "lms": lms,
            "outbox": self.outbox(),
            "emails": [
                (
                    m["X-Sisflow-Outcome"],
                    m["Subject"].replace(str(self.root), "<world>"),
                    m["From"],
                    m["To"],
                    sorted(a.get_filename() for a in m.iter_attachments()),
                )
                for m in (self.mail.messages if self.mail else [])
            ],
            "school_years": years,
            "attached": attached,
            "relinks": relinks,
            "history": history,
            "landed": sorted(
                p.name for p in (self.root / "home" / "landing").rglob("*") if p.is_file()
            ),
        }


def sisflow(world: World, *args, extra_env: dict | None = None):
    env = {**os.environ, **world.env, **(extra_env or {})}
    for key in ("SISFLOW_AIRFLOW_API_URL", "SISFLOW_AIRFLOW_USERNAME", "SISFLOW_AIRFLOW_PASSWORD"):
        if key not in (extra_env or {}):
            env.pop(key, None)
    return subprocess.run(
        [SISFLOW, *map(str, args)], capture_output=True, text=True, env=env, timeout=300
    )


def _ended_by_the_command(out, world: World) -> str:
    """How a run ended, in the doors' one vocabulary: success, refused (on purpose: the
    email says why) or failed (a breakdown), from what ``--json`` says."""
    try:
        result = json.loads(out.stdout)
    except ValueError:
        world.notes.append(None)
        return "failed"  # no result at all: the process broke down
    world.notes.append(result.get("note"))
    if result.get("refusal"):
        return "refused"
    return "failed" if result.get("failed") or out.returncode else "success"


def note_of(run) -> str | None:
    """The DAG run's note as Airflow's UI shows it."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        return session.get(DagRun, run.id).note


def notes_given(dag_id: str) -> list[str]:
    """Every note the DAG's runs were given, in order: Airflow's audit log keeps each
    ``PATCH`` of a DAG run with its body."""
    from airflow.models.log import Log
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        extras = session.scalars(
            select(Log.extra)
            .where(Log.event == "patch_dag_run", Log.dag_id == dag_id)
            .order_by(Log.id)
        ).all()
    return [json.loads(e).get("note") for e in extras if e]


def _ended_in_airflow(run, world: World) -> str:
    """The same vocabulary for a DAG run, by the rule ops read it by: red (failed) is a
    breakdown; a green run whose tasks stored a refusal was refused on purpose (its note says
    why)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    world.notes.append(note_of(run))
    if run.state == "failed":
        return "failed"
    with create_session() as session:
        refused = session.scalars(
            select(XComModel.key).where(
                XComModel.dag_id == run.dag_id,
                XComModel.run_id == run.run_id,
                XComModel.key == "refusal",
            )
        ).first()
    return "refused" if refused else "success"


class CliDoor:
    """``sisflow run``, and ``sisflow filter open|reject`` for a held run."""

    name = "cli"

    def __init__(self, world: World, api_env: dict):
        self.world = world

    def run(
        self,
        day: str,
        *,
        rollover=False,
        dry_run=False,
        file=None,
        answer=None,
        fail=None,
        override=False,
        accept_older=False,
    ) -> str:
        # like the DAG, the command fetches the newest export from the source unless given one
        args = ["run", "kommune", *([file] if file else []), "--on", day]
        args += ["--rollover"] * rollover + ["--dry-run"] * dry_run + ["--override"] * override
        args += ["--accept-older"] * accept_older + ["--json"]
        out = sisflow(self.world, *args, extra_env={"SISFLOW_FAIL_POINT": fail} if fail else {})
        if answer and out.returncode == 0:
            how, choice = answer
            if how == "deadline":  # nobody answers; the next run of the same file expires it
                time.sleep(TWO_SECONDS * 3600 + 0.5)
                out = sisflow(self.world, *args)
            elif how in ("relink", "relink-cli"):  # each waiting pair, accepted or refused
                out = self.world.relink(choice, "--json")
            else:
                run_id = self.world.held_run()
                out = sisflow(
                    self.world,
                    "filter",
                    choice,
                    run_id,
                    "--by",
                    "kari",
                    "--reason",
                    "checked with the school",
                    "--json",
                )
        return _ended_by_the_command(out, self.world)

    def undo(self, run_id: int, day: str, *, school: str | None = None, force=False) -> str:
        args = ["undo", run_id, "--on", day, "--by", "kari", "--reason", UNDO_REASON]
        args += ["--school", school] if school else []
        out = sisflow(self.world, *args, *["--force"] * force)
        if out.returncode == 3:
            return "refused"
        assert out.returncode == 0, out.stderr
        return "success"

    def digest(self) -> str:
        out = sisflow(self.world, "digest")
        assert out.returncode == 0, out.stderr
        return "success"

    def drift(self) -> str:
        out = sisflow(self.world, "drift")
        assert out.returncode == 0, out.stderr
        return "success"

    def maintenance(self, days: float) -> str:
        out = sisflow(self.world, "maintenance", "--days", days)
        assert out.returncode == 0, out.stderr
        return "success"

    def readiness(self, file, day: str, *, attach: bool) -> str:
        """The readiness report against ``file``, then the proposed sync keys attached from
        its CSV file (as an operator would, after reading it)."""
        folder = self.world.root / "csv"
        out = sisflow(
            self.world, "readiness", "kommune", "--file", file, "--on", day, "--csv", folder
        )
        assert out.returncode == 0, out.stderr
        if attach:
            out = sisflow(
                self.world,
                "readiness",
                "attach",
                "kommune",
                "--from-csv",
                folder / "kommune-duplicates.csv",
                "--by",
                "kari",
            )
            assert out.returncode == 0, out.stderr
        return "success"


class DagDoor:
    """A real DAG run (``dag.test``); a held run is answered from another thread once its
    approval task waits: as the Required Actions page does, through ``sisflow filter open``
    and Airflow's REST API, or not at all (the scheduler's deadline sweep)."""

    name = "dag"

    def __init__(self, world: World, api_env: dict):
        self.world, self.api_env = world, api_env
        os.environ.update(world.env)

    def run(
        self,
        day: str | None,
        *,
        rollover=False,
        dry_run=False,
        file=None,
        answer=None,
        fail=None,
        logical_date=None,
        override=False,
        accept_older=False,
    ) -> str:
        """``day`` goes into the form's date; None leaves it out (``logical_date`` decides)."""
        os.environ.update(self.world.env)
        os.environ.update(self.api_env)  # the tasks write the run's note through the REST API
        dag = dagbag().dags[f"sisflow_{'rollover' if rollover else 'import'}__kommune"]
        for task in dag.tasks:  # a failure ends the run now instead of after retry delays
            task.retries = 0
        action = answer if callable(answer) else self._answer(*answer) if answer else None
        errors = when_asked(action, dag_id=dag.dag_id) if action else Asked()
        if fail:
            os.environ["SISFLOW_FAIL_POINT"] = fail
        try:
            conf = {"dry_run": dry_run, "file": str(file) if file else None}
            if day:  # the rollover's form has an effective date where the import's has a date
                conf["effective_date" if rollover else "date"] = day
            if override:
                conf["override"] = True
            if accept_older:
                conf["accept_older"] = True
            run = dag.test(run_conf=conf, logical_date=logical_date)
        finally:
            os.environ.pop("SISFLOW_FAIL_POINT", None)
            errors.stop.set()  # an approval that never came is not waited for any more
        assert errors == []
        return _ended_in_airflow(run, self.world)

    def undo(self, run_id: int, day: str, *, school: str | None = None, force=False) -> str:
        """The undo DAG run; its approval answered on the Required Actions page: undo."""
        from datetime import date, datetime, time
        from zoneinfo import ZoneInfo

        os.environ.update(self.world.env)
        os.environ.update(self.api_env)  # the tasks write the run's note through the REST API
        dag = dagbag().dags["sisflow_undo__kommune"]
        errors = when_asked(answer_in_airflow("Undo", UNDO_REASON, fields={}), dag_id=dag.dag_id)
        on = datetime.combine(date.fromisoformat(day), time(9), tzinfo=ZoneInfo("Europe/Oslo"))
        conf = {"run": run_id, "school": school, "force": force, "reason": UNDO_REASON}
        run = dag.test(run_conf=conf, logical_date=on)
        errors.stop.set()
        states = {ti.task_id: ti.state for ti in run.get_task_instances()}
        note = note_of(run) or ""
        if states.get("preview") == "skipped":  # refused before anything was asked
            assert note.startswith("REFUSED: "), note
            return "refused"
        assert errors == []
        assert re.fullmatch(rf"undo run \d+ took back run {run_id}(, school .+)?", note), note
        return run.state

    def maintenance(self, days: float) -> str:
        os.environ.update(self.world.env)
        return dagbag().dags["sisflow_maintenance"].test(run_conf={"days": days}).state

    def drift(self) -> str:
        """The nightly maintenance run: its drift check."""
        return self.maintenance(None)

    def digest(self) -> str:
        """The morning's digest DAG run."""
        os.environ.update(self.world.env)
        return dagbag().dags["sisflow_digest"].test().state

    def readiness(self, file, day: str, *, attach: bool) -> str:
        """The readiness DAG run against ``file``; its approval answered as a person would on
        the Required Actions page: attach, or not."""
        from datetime import date, datetime, time
        from zoneinfo import ZoneInfo

        os.environ.update(self.world.env)
        dag = dagbag().dags["sisflow_readiness__kommune"]
        errors = when_asked(
            answer_in_airflow("Attach" if attach else "Do not attach", "checked the list"),
            dag_id=dag.dag_id,
        )
        on = datetime.combine(date.fromisoformat(day), time(6), tzinfo=ZoneInfo("Europe/Oslo"))
        os.environ.update(self.api_env)  # the tasks write the run's note through the REST API
        run = dag.test(run_conf={"file": str(file)}, logical_date=on)
        errors.stop.set()
        assert errors == []
        said = r"\d+ sync key\(s\) attached, approved by \w+" if attach else r"readiness for .+"
        assert re.fullmatch(said, note_of(run) or ""), note_of(run)
        return run.state

    def _answer(self, how: str, choice: str | None = None):
        if how == "deadline":
            return deadline_passes
        if how == "ui":
            return answer_in_airflow(
                OPEN if choice == "open" else REJECT, "checked with the school"
            )
        if how == "relink":  # the approval form: the pairs to accept, then open
            return answer_in_airflow(
                OPEN,
                "checked with the school",
                accept=lambda: (
                    " ".join(map(str, self.world.waiting_pairs())) if choice == "accept" else ""
                ),
            )
        if how == "relink-cli":  # decided with the command, which answers the approval

            def relink_with_the_command(ti_key):
                out = self.world.relink(str(choice), extra_env=self.api_env)
                assert out.returncode == 0, out.stderr
                assert "answered the approval task" in out.stdout

            return relink_with_the_command

        def with_the_command(ti_key):
            out = sisflow(
                self.world,
                "filter",
                choice,
                self.world.held_run(),
                "--by",
                "kari",
                "--reason",
                "checked with the school",
                extra_env=self.api_env,
            )
            assert out.returncode == 0, out.stderr
            assert "answered the approval task" in out.stdout
            # the Required Actions page names who decided, not only the API's user
            said = answered_reason()
            assert said.endswith(f"({choice}ed by kari with sisflow filter)"), said

        return with_the_command


def answered_reason() -> str:
    """The reason of the approval answered last, as the Required Actions page shows it."""
    from airflow.models.hitl import HITLDetail
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        found = session.scalars(
            select(HITLDetail.params_input)
            .where(HITLDetail.responded_at.is_not(None))
            .order_by(HITLDetail.responded_at.desc())
        ).first()
    return (found or {}).get("reason", "")


class Asked(list):
    """The errors of a waiting answer; ``stop`` ends the wait (the approval never came)."""

    def __init__(self):
        super().__init__()
        self.stop = threading.Event()


def when_asked(action, dag_id: str | None = None):
    """Run ``action(ti_key)`` in a thread once the approval task (of ``dag_id``, if given)
    waits for input. Returns the list its error goes into; a failed action fails the approval
    task so the run ends."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import State, TaskInstanceState
    from sqlalchemy import select
    from sqlalchemy.orm import joinedload

    errors = Asked()

    def waiting():
        with create_session() as session:
            query = select(TaskInstance).where(
                TaskInstance.task_id == "approval",
                TaskInstance.state == TaskInstanceState.AWAITING_INPUT,
            )
            if dag_id is not None:
                query = query.where(TaskInstance.dag_id == dag_id)
            ti = session.scalar(query.options(joinedload(TaskInstance.hitl_detail)))
            return ti.key if ti is not None and ti.hitl_detail is not None else None

    def fail_the_approval(key=None):
        """End the run instead of leaving dag.test() waiting for ever."""
        for _ in range(20):
            try:
                with create_session() as session:
                    query = select(TaskInstance).where(
                        TaskInstance.task_id == "approval",
                        TaskInstance.state == TaskInstanceState.AWAITING_INPUT,
                    )
                    if key is not None:
                        query = query.where(TaskInstance.run_id == key.run_id)
                    for ti in session.scalars(query):
                        ti.state = TaskInstanceState.FAILED
                return
            except Exception:  # noqa: BLE001 (SQLite busy: try again)
                time.sleep(0.3)

    def waits_again(key, seconds: float = 15) -> bool:
        """Whether the answered approval is back to waiting for input: dag.test's session may
        write the task's old state over the answer (seen once in CI: the answer recorded, the
        task waiting for ever). The answer is then given again."""
        deadline = time.monotonic() + seconds
        state = None
        while time.monotonic() < deadline:
            try:
                with create_session() as session:
                    state = session.scalar(
                        select(TaskInstance.state).where(
                            TaskInstance.dag_id == key.dag_id,
                            TaskInstance.run_id == key.run_id,
                            TaskInstance.task_id == "approval",
                        )
                    )
            except Exception:  # noqa: BLE001 (SQLite busy: look again)
                state = None
            if state in State.finished:
                return False
            time.sleep(0.3)
        return state == TaskInstanceState.AWAITING_INPUT

    def wait_and_act():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not errors.stop.is_set():
            try:
                key = waiting()
            except Exception:  # noqa: BLE001 (SQLite is busy while dag.test writes: look again)
                key = None
            if key is not None:
                try:
                    for _ in range(4):
                        action(key)
                        if not waits_again(key):
                            break
                    else:
                        raise TimeoutError(
                            "the approval task still waits for input after"
                            " the answer was given four times"
                        )
                except Exception as err:  # noqa: BLE001 (reported by the test)
                    errors.append(err)
                    fail_the_approval(key)
                return
            time.sleep(0.3)
        if errors.stop.is_set():
            return
        errors.append(TimeoutError("the approval task never waited for input"))
        fail_the_approval()

    threading.Thread(target=wait_and_act, daemon=True).start()
    return errors


def _approval(session, key):
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy import select
    from sqlalchemy.orm import joinedload

    return session.scalar(
        select(TaskInstance)
        .where(
            TaskInstance.dag_id == key.dag_id,
            TaskInstance.run_id == key.run_id,
            TaskInstance.task_id == "approval",
        )
        .options(joinedload(TaskInstance.hitl_detail))
    )


def answer_in_airflow(
    choice: str, reason: str, user: str = "kari", accept="", fields: dict | None = None
):
    """What Airflow's HITL handler does with a person's answer from the Required Actions page;
    ``accept``: the identity changes to accept (pair ids, or a callable that finds them);
    ``fields``: the form's fields, for an approval without the filter's."""
    from airflow.models.hitl import HITLUser
    from airflow.models.trigger import handle_event_submit
    from airflow.sdk import timezone
    from airflow.triggers.base import TriggerEvent
    from airflow.utils.session import create_session

    def act(key):
        from sqlalchemy.exc import OperationalError

        for attempt in range(5):  # SQLite may be busy for a moment while dag.test writes
            try:
                return answer(key)
            except OperationalError:
                if attempt == 4:
                    raise
                time.sleep(0.5)

    def answer(key):
        with create_session() as session:
            ti = _approval(session, key)
            detail = ti.hitl_detail
            detail.responded_by = HITLUser(id=user, name=user)
            detail.responded_at = timezone.utcnow()
            detail.chosen_options = [choice]
            detail.params_input = (
                fields
                if fields is not None
                else {"reason": reason, ACCEPT: accept() if callable(accept) else accept}
            )
            session.add(detail)
            handle_event_submit(
                TriggerEvent(detail.as_resume_event_payload()), task_instance=ti, session=session
            )

    return act


def deadline_passes(key):
    """Nobody answers: once the deadline passed, Airflow's own scheduler sweep resolves the
    approval task (with its default, and no one as the responder)."""
    import logging
    import types

    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
    from airflow.sdk import timezone
    from airflow.utils.session import create_session

    with create_session() as session:
        timeout = _approval(session, key).trigger_timeout
    while timezone.utcnow() <= timeout:
        time.sleep(0.2)
    SchedulerJobRunner.check_awaiting_input_timeouts(
        types.SimpleNamespace(log=logging.getLogger("sweep"))
    )
