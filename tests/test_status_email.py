"""Status emails for every outcome: subject, content, no personal data, and the real SendGrid
request as it reaches a local HTTP server."""

import email
import email.policy
import http.server
import json
import threading
from datetime import date

import pytest
from sisflow import pipeline
from sisflow.config import CustomerConfig
from sisflow.report.email import Outbox, Retry, SendGrid
from sisflow.services import Services

from tests.factory import enterprise, group, member, membership, person, run_once, write

SECRETS = ("Hemmelig", "Navnesen", "hemmelig@skole.no", "2014-03-09")
DAY = date(2025, 9, 1)


def config(**extra):
    return CustomerConfig.model_validate(
        {
            "id": "kommune",
            "name": "Testkommune",
            "recipients": ["drift@test.kommune.no"],
            "filter": {"default": {"person": {"delete": {"count": 1}}, "min_share": 0}},
            **extra,
        }
    )


def school(*pupils, bad=False):
    people = [
        person(p, "Hemmelig", "Navnesen", email="hemmelig@skole.no", bday="2014-03-09")
        for p in pupils
    ]
    members = [member(p) for p in pupils] + ([member("ghost")] if bad else [])
    return enterprise(*people, group("5A"), membership("5A", *members))


def read(path):
    with open(path, "rb") as eml:
        msg = email.message_from_bytes(eml.read(), policy=email.policy.default)
    return msg, msg.get_body(("plain",)).get_content(), msg.get_body(("html",)).get_content()


def send(conn, tmp_path, cfg, result):
    """The status email the run sent (to the outbox of the test's state folder)."""
    status = result["email"]
    return (status, *read(status["sent"]))


def run(conn, tmp_path, text, name, cfg=None, on=DAY, **kw):
    return run_once(
        conn, "kommune", write(tmp_path, text, name), config=cfg or config(), on=on, **kw
    )


@pytest.fixture
def first(conn, tmp_path):
    return run(conn, tmp_path, school("p1", "p2", "p3", bad=True), "a.xml")


def check(msg, text, html, subject_part):
    assert subject_part in msg["Subject"] and msg["Subject"].startswith("[sisflow] Testkommune")
    assert msg["To"] == "drift@test.kommune.no"
    for secret in SECRETS:
        assert secret not in text and secret not in html


def test_applied(conn, tmp_path, first):
    status, msg, text, html = send(conn, tmp_path, config(), first)
    assert status["outcome"] == "applied"
    check(msg, text, html, "applied: 7 changes")
    assert "a.xml" in text and first["sha256"] in text and "sas@test.kommune.no" in text
    assert "names person 'ghost'" not in text and "unknown person 'ghost'" in text  # example
    assert "line " in text
    assert "Next scheduled run: " in text and "Europe/Oslo" in text


def test_nothing_changed(conn, tmp_path, first):
    again = run(conn, tmp_path, school("p1", "p2", "p3", bad=True), "a-again.xml")
    status, msg, text, html = send(conn, tmp_path, config(), again)
    assert status["outcome"] == "nothing-changed"
    check(msg, text, html, "nothing changed")


@pytest.fixture
def held(conn, tmp_path, first):
    return run(conn, tmp_path, school("p1", bad=True), "b.xml")  # two leave: over one


def test_held_carries_the_verdict_and_how_to_open(conn, tmp_path, held):
    status, msg, text, html = send(conn, tmp_path, config(), held)
    assert status["outcome"] == "held"
    check(msg, text, html, "HELD by the filter")
    assert "person delete: 2 is over the limit of 1" in text
    assert f"sisflow filter open {held['id']}" in text and "approval task" in text
    assert "2 of 1" in html  # the bar against the limit


@pytest.mark.parametrize(
    ("decision", "outcome", "subject"),
    [
        ("opened", "opened", "applied after the filter was opened"),
        ("rejected", "rejected", "the held import was rejected"),
        ("expired", "expired", "no decision before the deadline"),
    ],
)
def test_after_a_decision(conn, tmp_path, held, decision, outcome, subject):
    pipeline.decide(conn, held["id"], decision, by="kari", reason="sjekket", via="cli")
    # what `sisflow filter open|reject` does next, when no Airflow run waits for the answer
    result = pipeline.resume(conn, held["id"], Services(configs={"kommune": config()}))
    status, msg, text, html = send(conn, tmp_path, config(), result)
    assert status["outcome"] == outcome
    check(msg, text, html, subject)
    assert f"Decision: {decision}" in text


def test_paused(conn, tmp_path):
    cfg = config(pause=[{"start": "2025-07-01", "end": "2025-07-31"}])
    result = run(conn, tmp_path, school("p1"), "a.xml", cfg=cfg, on=date(2025, 7, 10))
    status, msg, text, html = send(conn, tmp_path, cfg, result)
    assert status["outcome"] == "paused"
    check(msg, text, html, "paused until 2025-07-31")


def test_delay_delete_says_how_many_wait_and_until_when(conn, tmp_path):
    cfg = config(
        delay_delete=[{"start": "2025-06-01", "end": "2025-08-31"}],
        filter={"default": {"min_share": 0}},
    )
    run(conn, tmp_path, school("p1", "p2", "p3"), "a.xml", cfg=cfg, on=date(2025, 5, 1))
    result = run(conn, tmp_path, school("p1"), "b.xml", cfg=cfg, on=date(2025, 6, 10))
    status, msg, text, html = send(conn, tmp_path, cfg, result)
    assert status["outcome"] == "delay-delete"
    check(msg, text, html, "deletions held back until 2025-08-31")
    assert "deferred deletions are waiting" in text


def test_rejected_file(conn, tmp_path):
    result = run(conn, tmp_path, "<enterprise><properties>", "cut.xml")
    status, msg, text, html = send(conn, tmp_path, config(), result)
    assert status["outcome"] == "rejected-file"
    check(msg, text, html, "REJECTED FILE")
    assert "not well-formed" in text


def test_failed_task(conn, tmp_path, first):
    plan = pipeline.Plan.from_dict({**first["plan"], "run_id": first["id"]})
    status = pipeline.notify(
        conn,
        plan,
        config(),
        Outbox(tmp_path / "outbox"),
        pipeline.Ending(failed={"task": "apply", "reason": "OperationalError: LMS down"}),
    )
    assert status["outcome"] == "failed"
    msg, text, html = read(status["sent"])
    check(msg, text, html, "FAILED at apply: OperationalError: LMS down")


def test_a_database_error_over_several_lines_still_gives_one_subject_line(conn, tmp_path, first):
    """Postgres errors carry HINT and CONTEXT lines; the email still goes, the subject on one
    line and the whole reason in the body."""
    plan = pipeline.Plan.from_dict({**first["plan"], "run_id": first["id"]})
    reason = (
        "BadCopyFileFormat: unquoted carriage return found in data\n"
        "HINT:  Use quoted CSV field to represent carriage return.\n"
        "CONTEXT:  COPY staged_membership_r2, line 55\n"
    )
    status = pipeline.notify(
        conn,
        plan,
        config(),
        Outbox(tmp_path / "outbox"),
        pipeline.Ending(failed={"task": "run", "reason": reason}),
    )
    msg, text, html = read(status["sent"])
    check(
        msg,
        text,
        html,
        "FAILED at run: BadCopyFileFormat: unquoted carriage return found"
        " in data HINT: Use quoted CSV field",
    )
    assert "\n" not in msg["Subject"] and "CONTEXT:  COPY staged_membership_r2" in text


def test_one_customers_email_holds_nothing_of_another(conn, tmp_path, first):
    other = CustomerConfig(id="annen", name="Annen kommune", recipients=["x@annen.no"])
    result = run_once(
        conn, "annen", write(tmp_path, school("q1"), "annen.xml"), config=other, on=DAY
    )
    _, msg, text, html = send(conn, tmp_path, other, result)
    assert "Testkommune" not in text + html and "a.xml" not in text + html
    assert "p1" not in text + html and msg["To"] == "x@annen.no"


# -- SendGrid, against a local server that records the real request ------------------------


@pytest.fixture
def sendgrid_server():
    """A loopback stand-in for api.sendgrid.com: records each request, answers ``codes``."""
    seen, codes = [], []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (the stdlib's name)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen.append(
                {"path": self.path, "auth": self.headers["Authorization"], "json": json.loads(body)}
            )
            self.send_response(codes.pop(0) if codes else 202)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", seen, codes
    server.shutdown()


def test_sendgrid_request_is_valid(conn, tmp_path, first, sendgrid_server):
    host, seen, _ = sendgrid_server
    held = run(
        conn,
        tmp_path,
        school("p1", bad=True),
        "b.xml",
        sender=SendGrid("SG.test-key", host=host, from_email="sisflow@drift.no"),
    )
    assert held["status"] == "held"
    (request,) = seen
    assert request["path"] == "/v3/mail/send"
    assert request["auth"] == "Bearer SG.test-key"
    mail = request["json"]
    assert mail["from"]["email"] == "sisflow@drift.no"
    assert mail["personalizations"][0]["to"] == [{"email": "drift@test.kommune.no"}]
    assert mail["subject"].startswith("[sisflow] Testkommune: HELD")
    assert [c["type"] for c in mail["content"]] == ["text/plain", "text/html"]
    for secret in SECRETS:
        assert secret not in json.dumps(mail, ensure_ascii=False)


def test_a_sendgrid_error_is_retried_then_fails_loudly(conn, tmp_path, first, sendgrid_server):
    host, seen, codes = sendgrid_server
    codes.extend([500, 500, 500])
    sender = SendGrid("SG.test-key", host=host, retry=Retry(attempts=3, wait=0.01))
    again = school("p1", "p2", "p3", bad=True)
    with pytest.raises(RuntimeError, match="not sent after 3 attempts"):
        run(conn, tmp_path, again, "a2.xml", sender=sender)
    assert len(seen) == 3
    codes.extend([500])  # one failure, then through on the retry; the customer is not locked
    assert run(conn, tmp_path, again, "a3.xml", sender=sender)["email"]["sent"] == "sendgrid:202"


def test_the_status_email_by_smtp_reaches_a_real_smtp_server(conn, tmp_path, first):
    """An SMTP relay or a development mail catcher (Mailpit): aiosmtpd on loopback here."""
    from aiosmtpd.controller import Controller
    from sisflow.report.email import Smtp

    received = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
            received.append(envelope)
            return "250 OK"

    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = Controller(Handler(), hostname="127.0.0.1", port=port)
    server.start()
    try:
        sender = Smtp("127.0.0.1", port, from_email="sisflow@drift.no")
        result = run(conn, tmp_path, school("p1", "p2", "p3", bad=True), "again.xml", sender=sender)
    finally:
        server.stop()
    assert result["email"]["sent"] == f"smtp:127.0.0.1:{port}"
    (envelope,) = received
    assert envelope.mail_from == "sisflow@drift.no"
    assert envelope.rcpt_tos == ["drift@test.kommune.no"]
    msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
    text, html = msg.get_body(("plain",)).get_content(), msg.get_body(("html",)).get_content()
    check(msg, text, html, "nothing changed")
