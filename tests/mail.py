"""A mail catcher for the tests: a real SMTP server (aiosmtpd) on a loopback port, as Mailpit
is for ``make airflow``. What the ``sisflow_smtp`` connection points at in the two-door
matrix."""

from __future__ import annotations

import email
import email.policy
import json
import socket
from email.message import EmailMessage


class MailCatcher:
    def __init__(self):
        from aiosmtpd.controller import Controller

        self.messages: list[EmailMessage] = []
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        caught = self.messages

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's)
                caught.append(
                    email.message_from_bytes(envelope.content, policy=email.policy.default)
                )
                return "250 OK"

        self._server = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self._server.start()

    @property
    def connection(self) -> str:
        """The ``sisflow_smtp`` Airflow connection, as an ``AIRFLOW_CONN_`` variable's JSON."""
        return json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": self.port,
                "extra": {"from_email": "sisflow@drift.test"},
            }
        )

    def stop(self) -> None:
        self._server.stop()
