"""SMTP over TLS on 127.0.0.1 for tests: a throw-away private CA and server certificate made with
the `openssl` command line, and aiosmtpd's `Controller` serving STARTTLS, implicit TLS or plain
SMTP with a handler that records every message and whether its session was encrypted.

The client is made to trust the CA the way an operator would: `SSL_CERT_FILE` pointing at the CA
file (OpenSSL reads it each time `ssl.create_default_context()` loads the default trust store).
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

Mode = Literal["starttls", "tls", "plain"]


@dataclass(frozen=True)
class Certificates:
    ca_file: Path  # what the client must trust
    cert_file: Path  # the server's certificate (issued by the CA, for 127.0.0.1 and localhost)
    key_file: Path


def make_certificates(folder: Path) -> Certificates:
    """A private CA and a server certificate it signed, valid for IP 127.0.0.1 and DNS localhost.
    EC keys, so the three openssl runs take milliseconds."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca_file = folder / "ca.key", folder / "ca.pem"
    key, csr, cert = folder / "server.key", folder / "server.csr", folder / "server.pem"
    ext = folder / "server.ext"
    ext.write_text(
        "subjectAltName = IP:127.0.0.1, DNS:localhost\n"
        "basicConstraints = critical, CA:FALSE\n"
        "keyUsage = critical, digitalSignature\n"
        "extendedKeyUsage = serverAuth\n",
        encoding="ascii",
    )
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(
        "req", "-x509", *ec, "-keyout", ca_key, "-out", ca_file, "-days", "2",
        "-subj", "/CN=publisher test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    _openssl("req", "-new", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1")
    _openssl(
        "x509", "-req", "-in", csr, "-CA", ca_file, "-CAkey", ca_key, "-CAcreateserial",
        "-days", "2", "-extfile", ext, "-out", cert,
    )  # fmt: skip
    return Certificates(ca_file=ca_file, cert_file=cert, key_file=key)


def _openssl(*args: object) -> None:
    done = subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {done.stderr.strip()}")


@dataclass(frozen=True)
class Received:
    sender: str
    recipients: tuple[str, ...]
    data: bytes
    tls: str | None  # the TLS version the message came over ("TLSv1.3"), None in the clear
    login: str | None  # the user the session logged in as


@dataclass
class Recorder:
    """aiosmtpd handler: keeps each message with its session's TLS version and login."""

    pipelining: bool = True
    lock: threading.Lock = field(default_factory=threading.Lock)
    received: list[Received] = field(default_factory=list)
    mails: int = 0  # MAIL FROM commands that reached the handler
    logins: list[tuple[str, bool]] = field(default_factory=list)  # (user, over TLS) per AUTH

    async def handle_EHLO(
        self, server: SMTP, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_MAIL(self, server: SMTP, session: Any, envelope: Any, address: str, options: Any) -> str:
        with self.lock:
            self.mails += 1
        envelope.mail_from = address
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:
        # The transport the command came in on: the TLS one after STARTTLS or with implicit TLS.
        ssl_object = server.transport.get_extra_info("ssl_object") if server.transport else None
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        with self.lock:
            self.received.append(
                Received(
                    envelope.mail_from,
                    tuple(envelope.rcpt_tos),
                    bytes(envelope.original_content),
                    ssl_object.version() if ssl_object is not None else None,
                    login,
                )
            )
            n = len(self.received)
        return f"250 queued as {n}"

    def messages(self) -> list[Received]:
        with self.lock:
            return list(self.received)


class _BoundController(Controller):
    """aiosmtpd's Controller on a socket bound to port 0 before it starts, so parallel test runs
    never race for a port (Controller itself needs the port number up front)."""

    def __init__(self, handler: Recorder, **kwargs: Any) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        super().__init__(handler, hostname="127.0.0.1", port=self._sock.getsockname()[1], **kwargs)

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self._sock, ssl=self.ssl_context)


class TlsServer:
    """aiosmtpd on 127.0.0.1: `mode` starttls (STARTTLS offered and required before MAIL),
    tls (TLS from the first byte) or plain (no STARTTLS offered). With `login`, AUTH is required,
    and aiosmtpd only offers it once the session is encrypted."""

    def __init__(
        self,
        certs: Certificates,
        mode: Mode,
        *,
        login: tuple[str, str] | None = None,
        pipelining: bool = True,
    ) -> None:
        self.handler = Recorder(pipelining=pipelining)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(certs.cert_file, certs.key_file)
        options: dict[str, Any] = {"server_hostname": "mx.test", "data_size_limit": 0}
        if mode == "starttls":
            options.update(tls_context=context, require_starttls=True)
        elif mode == "tls":
            options.update(ssl_context=context)
        if login is not None:
            options.update(auth_required=True, authenticator=self._authenticator(login))
        self.controller = _BoundController(self.handler, **options)
        self.port: int = self.controller.port

    def _authenticator(self, login: tuple[str, str]) -> Any:
        def authenticate(server: SMTP, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
            user, password = data.login.decode(), data.password.decode()
            encrypted = (
                server.transport is not None and server.transport.get_extra_info("ssl_object") is not None
            )
            with self.handler.lock:
                self.handler.logins.append((user, encrypted))
            # handled=False: aiosmtpd itself answers 535 to a wrong password.
            return AuthResult(success=(user, password) == login, handled=False, auth_data=data)

        return authenticate

    def __enter__(self) -> TlsServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

    def messages(self) -> list[Received]:
        return self.handler.messages()
