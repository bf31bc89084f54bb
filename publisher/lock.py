"""One publisher process per state folder: an exclusive `flock` on `state/lock`.

`publisher run` holds it for its whole life; `publisher build` and `publisher digest --send` take it
for their run, so a cron job and the daemon never send the same digest twice. `flock` (not POSIX
`lockf`) because its lock belongs to the open file, not the process: a second `state_lock` in the
same process is refused too, and the kernel drops the lock when the holder dies, so a stale file is
never a problem. The holder writes its pid into the file only so that the refusal can name it.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from publisher.config import Settings
from publisher.errors import LockedError, StateError

LOCK_NAME = "lock"
_RETRY = 0.05  # seconds between attempts while waiting; a lock is held for seconds to months
# Even without --wait, keep trying this long: `publisher status` holds a shared lock for an instant
# to see whether anyone is at work, and that instant must not turn a cron run away.
_MIN_WAIT = 0.25


def lock_path(settings: Settings) -> Path:
    return settings.state_dir / LOCK_NAME


def holder(settings: Settings) -> str | None:
    """What the lock file says about its holder ("pid 123, publisher run"), or None."""
    try:
        text = lock_path(settings).read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None
    return text or None


def held_by(settings: Settings) -> str | None:
    """Who holds the lock now ("pid 123, publisher run"), or None when nobody does. Never blocks."""
    path = lock_path(settings)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return holder(settings) or "a process that has not written its pid yet"
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


@contextmanager
def state_lock(settings: Settings, *, wait: float = 0, purpose: str = "publisher") -> Iterator[None]:
    """Hold the state folder's lock for the `with` block, waiting up to `wait` seconds for it.

    Raises LockedError (exit code 3) naming the holder's pid (and `purpose`, e.g. "publisher run")
    when it stays taken.
    """
    path = lock_path(settings)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise StateError(f"{path}: cannot open the lock file: {exc.strerror or exc}") from exc
    try:
        deadline = time.monotonic() + max(wait, _MIN_WAIT)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise _locked(settings, wait) from None
                time.sleep(_RETRY)
        # The pid goes in only after the lock is ours; a reader racing us sees an empty file.
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}, {purpose}\n".encode(), 0)
        try:
            yield
        finally:
            # Empty the file before letting go so nobody names a process that has finished.
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _locked(settings: Settings, wait: float) -> LockedError:
    who = holder(settings) or "a process that has not written its pid yet"
    waited = f" after waiting {wait:g} s" if wait > 0 else ""
    return LockedError(
        f"{settings.state_dir} is in use by another publisher process ({who}){waited}",
        hint="let it finish or stop the daemon; --wait SECONDS waits for the lock",
    )
