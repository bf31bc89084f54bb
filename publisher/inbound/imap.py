"""An IMAP folder over TLS as a source of returned mail: imaplib's only home.

Unseen messages are fetched with BODY.PEEK[] (which leaves them unseen), so a message publisher
does not handle stays exactly as it was. A handled one gets the flags \\Seen and
`$PublisherHandled`, and is moved to `inbound.imap_move_to` when that is set (RFC 6851 MOVE).
Nothing is ever expunged. The password comes from the environment variable named by
`inbound.imap_password_env`; the server's certificate is checked against the system's CAs (or the
file SSL_CERT_FILE names, for a private CA).
"""

from __future__ import annotations

import imaplib
import socket
import ssl
from collections.abc import Iterator

from publisher.config_mail import InboundSettings
from publisher.inbound.maildir import MailboxError

HANDLED = "$PublisherHandled"


class ImapFolder:
    def __init__(self, settings: InboundSettings) -> None:
        self.settings = settings
        self.name = (
            f"imaps://{settings.imap_user}@{settings.imap_host}:{settings.imap_port}/{settings.imap_folder}"
        )
        self._conn: imaplib.IMAP4_SSL | None = None

    def _connect(self) -> imaplib.IMAP4_SSL:
        s = self.settings
        password = s.imap_password
        if not password:
            raise MailboxError(f"inbound.imap_user is set but ${s.imap_password_env} is empty")
        try:
            conn = imaplib.IMAP4_SSL(
                s.imap_host or "", s.imap_port, ssl_context=ssl.create_default_context(), timeout=s.timeout
            )
        except ssl.SSLCertVerificationError as exc:
            raise MailboxError(
                f"the certificate of IMAP server {s.imap_host}:{s.imap_port} is not trusted: "
                f"{exc.verify_message} (for a private CA, point SSL_CERT_FILE at it)"
            ) from exc
        except (OSError, imaplib.IMAP4.error) as exc:
            raise MailboxError(
                f"cannot reach IMAP server {s.imap_host}:{s.imap_port}: {_reason(exc)}"
            ) from exc
        try:
            conn.login(s.imap_user or "", password)
            typ, _ = conn.select(_quote(s.imap_folder))
            if typ != "OK":
                raise MailboxError(f"IMAP folder {s.imap_folder!r} cannot be opened")
        except imaplib.IMAP4.error as exc:
            conn.shutdown()
            raise MailboxError(f"IMAP server {s.imap_host} refused: {_reason(exc)}") from exc
        except MailboxError:
            conn.shutdown()
            raise
        return conn

    def messages(self) -> Iterator[tuple[str, bytes]]:
        conn = self._conn = self._connect()
        try:
            typ, found = conn.uid("SEARCH", "UNSEEN")
            uids = found[0].split() if typ == "OK" and found and found[0] else []
            for uid in uids:
                typ, data = conn.uid("FETCH", uid, "(BODY.PEEK[])")
                parts = [item for item in data if isinstance(item, tuple)]
                if typ != "OK" or not parts:
                    continue  # gone meanwhile (another client moved it)
                yield uid.decode("ascii"), bytes(parts[0][1])
        except (OSError, imaplib.IMAP4.error) as exc:
            raise MailboxError(f"IMAP server {self.settings.imap_host}: {_reason(exc)}") from exc

    def mark_handled(self, key: str) -> None:
        conn = self._conn
        if conn is None:
            raise MailboxError("IMAP: not connected")
        try:
            conn.uid("STORE", key, "+FLAGS", f"(\\Seen {HANDLED})")
            target = self.settings.imap_move_to
            if target:
                typ, answer = conn.uid("MOVE", key, _quote(target))
                if typ != "OK" and b"TRYCREATE" in b" ".join(a for a in answer if isinstance(a, bytes)):
                    conn.create(_quote(target))  # RFC 3501: the server says the folder is missing
                    typ, answer = conn.uid("MOVE", key, _quote(target))
                if typ != "OK":
                    raise MailboxError(f"IMAP: cannot move a message to {target!r}: {answer!r}")
        except (OSError, imaplib.IMAP4.error) as exc:
            raise MailboxError(f"IMAP server {self.settings.imap_host}: {_reason(exc)}") from exc

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.close()
            conn.logout()
        except (OSError, imaplib.IMAP4.error):
            conn.shutdown()


def _quote(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _reason(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = str(exc)
    return text[2:-1] if text.startswith("b'") else text or type(exc).__name__
