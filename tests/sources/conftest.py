"""Real servers on loopback for the sources: an SFTP server (asyncssh, password login, files
in a temporary folder) and an HTTP server that makes exports on request. sisflow reaches them
through Airflow connections given as environment variables, as a deployment would."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest


@pytest.fixture(scope="module")
def sftp_server(tmp_path_factory):
    import asyncssh

    root = tmp_path_factory.mktemp("sftp-root")
    key = asyncssh.generate_private_key("ssh-ed25519")
    loop = asyncio.new_event_loop()

    class Server(asyncssh.SSHServer):
        def begin_auth(self, username):
            return True

        def password_auth_supported(self):
            return True

        def validate_password(self, username, password):
            return (username, password) == ("sis", "sis-password")

    def sftp_factory(chan):
        return asyncssh.SFTPServer(chan, chroot=str(root))

    server = loop.run_until_complete(
        asyncssh.listen(
            "127.0.0.1", 0, server_factory=Server, server_host_keys=[key], sftp_factory=sftp_factory
        )
    )
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    port = server.sockets[0].getsockname()[1]
    yield {"root": root, "port": port, "host_key": key.export_public_key().decode().strip()}
    loop.call_soon_threadsafe(server.close)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=5)


def sftp_connection(server: dict, **changes) -> str:
    """The Airflow connection (as its JSON environment form) for the test server."""
    conn = {
        "conn_type": "sftp",
        "host": "127.0.0.1",
        "port": server["port"],
        "login": "sis",
        "password": "sis-password",
        "extra": {"host_key": server["host_key"]},
    }
    extra = changes.pop("extra", None)
    conn.update(changes)
    if extra is not None:
        conn["extra"] = extra
    return json.dumps(conn)
