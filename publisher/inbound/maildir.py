"""A Maildir as a source of returned mail: read every message not yet marked seen, and mark a
handled one by moving it into cur/ with the Seen flag (`:2,S`), as a mail reader would. Nothing
is ever deleted, and a message left alone keeps its name and place.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from publisher.errors import PublisherError


class MailboxError(PublisherError):
    """The mailbox cannot be read or changed."""


class Maildir:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.name = str(root)

    def check(self) -> None:
        missing = [sub for sub in ("new", "cur", "tmp") if not (self.root / sub).is_dir()]
        if missing:
            raise MailboxError(
                f"{self.root}: not a Maildir (no {', '.join(m + '/' for m in missing)})",
                hint="inbound.maildir must name the folder holding new/, cur/ and tmp/",
            )

    def messages(self) -> Iterator[tuple[str, bytes]]:
        """(key, bytes) of each unseen message, oldest name first; key = its path under the root."""
        self.check()
        for sub in ("new", "cur"):
            try:
                names = sorted(p.name for p in (self.root / sub).iterdir())
            except OSError as exc:
                raise MailboxError(f"{self.root / sub}: cannot list: {exc.strerror or exc}") from exc
            for name in names:
                if name.startswith(".") or (sub == "cur" and "S" in _flags(name)):
                    continue
                path = self.root / sub / name
                try:
                    data = path.read_bytes()
                except FileNotFoundError:  # moved by a mail reader meanwhile
                    continue
                except OSError as exc:
                    raise MailboxError(f"{path}: cannot read: {exc.strerror or exc}") from exc
                yield f"{sub}/{name}", data

    def mark_handled(self, key: str) -> None:
        """new/NAME → cur/NAME:2,S; cur/NAME:2,FLAGS → cur/NAME:2,FLAGS+S (one atomic rename)."""
        sub, _, name = key.partition("/")
        base, _, info = name.partition(":2,")
        flags = "".join(sorted(set(info) | {"S"})) if sub == "cur" else "S"
        target = self.root / "cur" / f"{base}:2,{flags}"
        try:
            (self.root / sub / name).rename(target)
        except FileNotFoundError:
            return  # a mail reader moved it meanwhile; it is recorded as handled all the same
        except OSError as exc:
            raise MailboxError(f"{self.root / key}: cannot move into cur/: {exc.strerror or exc}") from exc

    def close(self) -> None:
        pass


def _flags(name: str) -> str:
    return name.partition(":2,")[2]
