"""Status emails: rendered from Jinja2 templates (HTML with inline styles, and plain text), and
sent through SendGrid, or written as .eml files into the outbox when no SendGrid connection
is configured (the embedded default)."""

from __future__ import annotations

import base64
import email.policy
import logging
import re
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Protocol

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from .. import settings

log = logging.getLogger(__name__)

_ENV = Environment(
    loader=PackageLoader("sisflow.report", "templates"),
    autoescape=select_autoescape(enabled_extensions=("html.j2",)),
    undefined=StrictUndefined,
    trim_blocks=False,
)
#: control characters and line separators from a file, shown as escapes in the plain text
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _one_line(value):
    """Every value printed into the plain-text email stays on its line: an id from the file
    with a line break or another control character in it cannot add lines to the email."""
    if isinstance(value, str):
        return _CONTROL.sub(lambda m: repr(m.group())[1:-1], value)
    return value


_TEXT_ENV = Environment(
    loader=PackageLoader("sisflow.report", "templates"),
    undefined=StrictUndefined,
    trim_blocks=False,
    finalize=_one_line,
)
DEFAULT_FROM = "sisflow@localhost"


class Mail(Protocol):
    """What a sender sends: a run's status report, or a readiness report."""

    customer: str
    outcome: str
    subject: str
    recipients: list[str]
    run: dict | None


def render(report: Mail) -> tuple[str, str]:
    """(html, text) of the email: a run's status, or another report (readiness) that names
    its own ``template``."""
    name = getattr(report, "template", "status")
    return (
        _ENV.get_template(f"{name}.html.j2").render(r=report),
        _TEXT_ENV.get_template(f"{name}.txt.j2").render(r=report),
    )


class Outbox:
    """Writes each email as an .eml file under ``$SISFLOW_HOME/outbox/<customer>/``, named by
    run, outcome and time, so that no email ever replaces another."""

    def __init__(self, folder: Path | None = None, from_email: str = DEFAULT_FROM):
        self.folder = folder or settings.home() / "outbox"
        self.from_email = from_email

    def send(self, report: Mail) -> str:
        msg = message(report, self.from_email)
        folder = self.folder / report.customer
        folder.mkdir(parents=True, exist_ok=True)
        # every email is kept: the HELD one and the final one of a run are two files
        run = f"run-{report.run['id']}-" if report.run else ""
        path = folder / f"{run}{report.outcome}-{time.time_ns()}.eml"
        # SMTP line endings; long subjects stay on one line (RFC 5322 allows 998 characters)
        path.write_bytes(msg.as_bytes(policy=email.policy.SMTP.clone(max_line_length=998)))
        log.info("status email for %s written to %s", report.customer, path)
        return str(path)


def message(report: Mail, from_email: str) -> EmailMessage:
    """The status email as a MIME message: plain text with an HTML alternative."""
    html, text = render(report)
    msg = EmailMessage()
    msg["Subject"] = report.subject
    msg["From"] = from_email
    msg["To"] = ", ".join(report.recipients) or "undisclosed-recipients:;"
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(domain="sisflow")
    # for mail rules and for whoever reads a mailbox of many runs: ids and outcomes only
    msg["X-Sisflow-Customer"] = report.customer
    msg["X-Sisflow-Outcome"] = report.outcome
    run = getattr(report, "run", None)
    if run:
        msg["X-Sisflow-Run"] = str(run["id"])
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    for filename, data in getattr(report, "attachments", []):
        msg.add_attachment(data, maintype="text", subtype="csv", filename=filename)
    return msg


@dataclass(frozen=True)
class Retry:
    """How often a sender tries, and how long it waits before the next try (times the try)."""

    attempts: int = 3
    wait: float = 1.0


class Smtp:
    """An SMTP server (a mail relay, or a development mail catcher such as Mailpit)."""

    def __init__(
        self,
        host: str,
        port: int = 25,
        *,
        login: tuple[str, str] | None = None,
        starttls: bool = False,
        from_email: str = DEFAULT_FROM,
        retry: Retry = Retry(),
    ):
        """``login``: user and password, when the server asks for them."""
        self.host, self.port, self.login = host, port, login
        self.starttls, self.from_email = starttls, from_email
        self.attempts, self.wait = retry.attempts, retry.wait

    def send(self, report: Mail) -> str:
        import smtplib

        if not report.recipients:
            raise ValueError(f"{report.customer} has no status email recipients")
        msg = message(report, self.from_email)
        for attempt in range(1, self.attempts + 1):
            try:
                with smtplib.SMTP(self.host, self.port, timeout=30) as smtp:
                    if self.starttls:
                        smtp.starttls()
                    if self.login:
                        smtp.login(*self.login)
                    smtp.send_message(msg)
                log.info("status email for %s sent by SMTP", report.customer)
                return f"smtp:{self.host}:{self.port}"
            except (OSError, smtplib.SMTPException) as err:
                if attempt == self.attempts:
                    raise RuntimeError(
                        f"status email for {report.customer} not sent by SMTP "
                        f"after {attempt} attempts: {type(err).__name__}"
                    ) from None
                time.sleep(self.wait * attempt)
        raise AssertionError("unreachable")


class SendGrid:
    """SendGrid's own client, with the host overridable (tests point it at a local server)."""

    def __init__(
        self,
        api_key: str,
        *,
        host: str | None = None,
        from_email: str = DEFAULT_FROM,
        retry: Retry = Retry(),
    ):
        self.api_key, self.host, self.from_email = api_key, host, from_email
        self.attempts, self.wait = retry.attempts, retry.wait

    def send(self, report: Mail) -> str:
        from sendgrid import SendGridAPIClient
        from sendgrid.helpers.mail import (
            Attachment,
            Disposition,
            FileContent,
            FileName,
            FileType,
            Mail,
        )

        if not report.recipients:
            raise ValueError(f"{report.customer} has no status email recipients")
        html, text = render(report)
        mail = Mail(
            from_email=self.from_email,
            to_emails=report.recipients,
            subject=report.subject,
            plain_text_content=text,
            html_content=html,
        )
        for filename, data in getattr(report, "attachments", []):
            mail.add_attachment(
                Attachment(
                    FileContent(base64.b64encode(data).decode()),
                    FileName(filename),
                    FileType("text/csv"),
                    Disposition("attachment"),
                )
            )
        kwargs = {"host": self.host} if self.host else {}
        client = SendGridAPIClient(api_key=self.api_key, **kwargs)
        for attempt in range(1, self.attempts + 1):
            try:
                response = client.send(mail)
                if response.status_code >= 300:
                    raise RuntimeError(f"SendGrid answered {response.status_code}")
                log.info(
                    "status email for %s sent (SendGrid %s)", report.customer, response.status_code
                )
                return f"sendgrid:{response.status_code}"
            except Exception as err:
                if attempt == self.attempts:
                    raise RuntimeError(
                        f"status email for {report.customer} not sent after {attempt} "
                        f"attempts: {err}"
                    ) from err
                log.warning(
                    "SendGrid attempt %s for %s failed: %s",
                    attempt,
                    report.customer,
                    type(err).__name__,
                )
                time.sleep(self.wait * attempt)
        raise AssertionError("unreachable")
