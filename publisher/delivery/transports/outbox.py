"""The outbox transport: each message becomes one file in a Maildir (`state/outbox` by default).

Written to `tmp/`, fsynced, then renamed into `new/`, so a reader (a mail client, a script that
hands the files to a relay) never sees half a message. The envelope is kept as `Return-Path` and
`X-Original-To` header lines above the message.
"""

from __future__ import annotations

import itertools
import os
import socket
import threading
from collections.abc import Sequence
from pathlib import Path

from publisher.delivery.transports import TemporaryFailure


class OutboxTransport:
    """A Maildir: each message written to tmp/, fsynced, then renamed into new/ (one file each)."""

    _counter = itertools.count()
    _lock = threading.Lock()

    def __init__(self, root: Path) -> None:
        self.root = root
        self._ready = False

    def _prepare(self) -> None:
        for sub in ("tmp", "new", "cur"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self._ready = True

    def send(self, sender: str, recipients: Sequence[str], message: bytes) -> str:
        try:
            if not self._ready:
                self._prepare()
            with self._lock:
                serial = next(self._counter)
            # Maildir's unique name: process and serial, randomness, host.
            name = f"{os.getpid()}_{serial}_{os.urandom(4).hex()}.{socket.gethostname().replace('/', '_')}"
            tmp = self.root / "tmp" / name
            envelope = "".join(f"X-Original-To: {r}\r\n" for r in recipients if _safe_header(r))
            with tmp.open("xb") as fh:
                fh.write(f"Return-Path: <{sender}>\r\n".encode() if _safe_header(sender) else b"")
                fh.write(envelope.encode())
                fh.write(message)
                fh.flush()
                os.fsync(fh.fileno())
            tmp.replace(self.root / "new" / name)
        except OSError as exc:
            raise TemporaryFailure(0, f"cannot write to outbox {self.root}: {exc.strerror or exc}") from exc
        return f"new/{name}"

    def close(self) -> None:
        pass


def _safe_header(value: str) -> bool:
    return value.isprintable() and "\r" not in value and "\n" not in value and ">" not in value
