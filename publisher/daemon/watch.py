"""Watching seeds/: the only module that imports watchfiles.

Filesystem events (inotify through watchfiles), or polling when `daemon.watch = "poll"` (network
and container filesystems that send no events). A file is handed over only once it has stopped
changing: its size and modification time must stay the same for `daemon.settle` seconds, so a slow
copy is never read half-written. And because a build reads the whole folder, the hand-over waits
until *every* file that changed has settled: a build started while one copy is still running would
read that copy half-written. Hidden, temporary and editor files (ingest's rules) are ignored.

Two threads: one blocks in watchfiles and notes changes; one sleeps until the next file is due to
be looked at again (or indefinitely when nothing is pending), so an idle daemon does next to no
work: once a second, it checks that seeds/ is still the folder being watched (a folder removed and
made again, or swapped in by a rename, is watched anew and built from). When
watchfiles fails (it cannot name a path that is not UTF-8), seeds/ is polled by scanning it until
the watcher works again.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import watchfiles

from publisher.config import Settings
from publisher.ingest import is_candidate, is_ignored, is_image, scan
from publisher.models import escape_name

log = logging.getLogger("publisher.daemon.watch")

# watchfiles yields a batch once no event came for STEP ms, or after DEBOUNCE ms of steady events.
_STEP_MS = 50
_DEBOUNCE_MS = 400
_RETRY_SECONDS = 2.0  # after the watcher failed (seeds/ missing, too many watches, …)
_RETRY_MAX_SECONDS = 60.0  # while it keeps failing the same way (seeds/ is polled meanwhile)
_CHECK_MS = 1000  # how often an idle watcher looks whether seeds/ was removed or replaced
_NAG_SECONDS = 30.0  # how often to say that settled files wait for one that keeps changing

Signature = tuple[int, int, bool] | None  # (size, mtime_ns, is_dir), or None when it is gone


def signature(path: Path) -> Signature:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, stat.S_ISDIR(st.st_mode))


@dataclass
class _Pending:
    seen: Signature
    since: float  # monotonic time the signature was last seen to change


class Settler:
    """Tracks changed paths until each has kept the same size and mtime for `settle` seconds.

    Separate from the watching so it can be driven directly; `clock` is a monotonic clock.
    """

    def __init__(self, settle: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.settle = settle
        self.clock = clock
        self.pending: dict[Path, _Pending] = {}
        self.ready: set[Path] = set()
        self.waiting_since: float | None = None  # when the oldest settled path started waiting

    def changed(self, path: Path, age: float = 0.0) -> None:
        """Note a change to `path` that happened `age` seconds ago (its mtime, when known)."""
        now = self.clock()
        self.ready.discard(path)
        # Events arrive a little after the write (watchfiles batches them): count the quiet time
        # from the write itself, but never more than a full settle period.
        self.pending[path] = _Pending(signature(path), now - min(max(age, 0.0), self.settle))

    def due(self) -> float | None:
        """Seconds until a pending path should be looked at again; None when nothing is pending."""
        if not self.pending:
            return None
        earliest = min(p.since for p in self.pending.values())
        return max(0.0, earliest + self.settle - self.clock())

    def poll(self) -> list[Path] | None:
        """Look at the due paths; when nothing is pending any more, return (and forget) the ready ones."""
        now = self.clock()
        for path, entry in list(self.pending.items()):
            if now - entry.since < self.settle:
                continue
            current = signature(path)
            if current != entry.seen:
                # Still being written (or replaced): start its quiet period again.
                self.pending[path] = _Pending(current, now)
                continue
            del self.pending[path]
            self.ready.add(path)
            if self.waiting_since is None:
                self.waiting_since = now
        if self.pending or not self.ready:
            return None
        done = sorted(self.ready)
        self.ready.clear()
        self.waiting_since = None
        return done


class SeedWatcher:
    """Watch seeds/ and call `on_ready(paths)` (from its own thread) when changed files have settled."""

    def __init__(self, settings: Settings, on_ready: Callable[[list[Path]], None]) -> None:
        self.settings = settings
        self.root = settings.seeds_dir
        self.poll = settings.daemon.watch == "poll"
        self.poll_interval = settings.daemon.poll_interval
        self.on_ready = on_ready
        self.settler = Settler(settings.daemon.settle)
        self._stop = threading.Event()
        self._wake = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._last_nag = 0.0

    def start(self) -> None:
        for name, target in (("watch", self._watch_loop), ("settle", self._settle_loop)):
            thread = threading.Thread(target=target, name=f"publisher-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        if not self.root.is_dir():
            return  # the watch loop says it is waiting for the folder, then that it appeared
        log.info(
            "watching %s (%s, settle %gs)",
            self.root,
            f"polling every {self.poll_interval:g}s" if self.poll else "filesystem events",
            self.settler.settle,
        )

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with self._wake:
            self._wake.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def relevant(self, path: Path) -> bool:
        """Changes worth a look: not hidden/editor files; articles, images beside them, or folders."""
        try:
            parts = path.relative_to(self.root).parts
        except ValueError:
            return False
        if not parts or any(is_ignored(part) for part in parts):
            return False
        name = parts[-1]
        return (
            is_candidate(name) or is_image(name) or path.is_dir() or (not path.exists() and "." not in name)
        )

    def _watch_loop(self) -> None:
        complained = replaced = False
        failed: str | None = None  # the last failure of the watcher, until it works again
        retry = _RETRY_SECONDS
        while not self._stop.is_set():
            held = _Held.open(self.root)
            if held is None:
                if not complained:
                    log.error("%s does not exist; waiting for it to appear", self.root)
                    complained = True
                self._stop.wait(self.poll_interval if self.poll else _RETRY_SECONDS)
                continue
            # A new folder (the first, one that appeared, one swapped in): a build compares it with
            # what is published, once the watch is in place (at its first batch), so that what
            # comes between is seen by the build or by the watch.
            fresh = complained or replaced
            if fresh:
                log.info("%s %s; watching it", self.root, "appeared" if complained else "was replaced")
                complained = replaced = False
            try:
                for changes in watchfiles.watch(
                    self.root,
                    watch_filter=lambda _change, raw: self.relevant(Path(raw)),
                    debounce=_DEBOUNCE_MS,
                    step=_STEP_MS,
                    stop_event=self._stop,
                    force_polling=self.poll,
                    poll_delay_ms=int(self.poll_interval * 1000),
                    rust_timeout=_CHECK_MS,  # an empty batch at least this often: look at the folder
                    yield_on_timeout=True,
                    raise_interrupt=False,
                ):
                    if failed is not None:
                        log.info("watching %s again", self.root)
                        failed = None
                    if fresh:
                        self._note([self.root])
                        fresh = False
                    if changes:
                        self._note([Path(raw) for _change, raw in changes])
                    if replaced := held.gone():
                        break  # inotify follows the old folder: watch what the path names now
            except Exception as exc:  # the watcher must outlive any filesystem trouble
                # watchfiles cannot name a path that is not UTF-8 (it stops at such a file, and
                # cannot start in a tree holding such a folder); the changes it held are lost.
                # Meanwhile seeds/ is polled here, so nothing is missed and nothing waits.
                why, first = escape_name(str(exc)), failed is None
                if failed != why:
                    log.error("watching %s failed: %s; polling it instead, and retrying", self.root, why)
                    failed = why
                if first:
                    retry = _RETRY_SECONDS
                if first or fresh:
                    self._note([self.root])  # what the lost changes were, a build finds out
                replaced = self._poll_for(retry, held)
                retry = min(retry * 2, _RETRY_MAX_SECONDS)  # starting a watch over a large tree costs
            finally:
                held.close()

    def _poll_for(self, seconds: float, held: _Held) -> bool:
        """Look for changes in seeds/ by scanning it every poll interval for `seconds` (while the
        watcher cannot work): each article file that appears, changes or goes is noted. True when
        the folder was removed or replaced meanwhile (then at once)."""
        deadline = time.monotonic() + seconds
        before = self._snapshot()
        while not self._stop.wait(max(0.0, min(self.poll_interval, deadline - time.monotonic()))):
            if held.gone():
                return True
            after = self._snapshot()
            if after != before:
                files = {entry[0] for entry in after[0] ^ before[0]}
                # A name refused or no longer refused (not UTF-8, say): a build reports it.
                self._note([self.root / rel for rel in sorted(files)] or [self.root])
            before = after
            if time.monotonic() >= deadline:
                break
        return False

    def _snapshot(self) -> tuple[set[tuple[str, int, int]], set[str]]:
        """What a poll compares: each article file with its size and mtime; what scan refused."""
        files, problems = scan(self.settings)
        return {(f.rel, f.size, f.mtime_ns) for f in files}, {str(p) for p in problems}

    def _note(self, paths: list[Path]) -> None:
        with self._wake:
            for path in paths:
                log.debug("changed: %s", escape_name(str(path)))
                self.settler.changed(path, _age(path))
            self._wake.notify_all()

    def _settle_loop(self) -> None:
        while not self._stop.is_set():
            with self._wake:
                delay = self.settler.due()
                if delay is None or delay > 0:
                    # Sleep until the next file is due, or until a change arrives: no busy loop.
                    self._wake.wait(delay)
                    continue
                ready = self.settler.poll()
                self._nag()
            if ready:
                try:
                    self.on_ready(ready)
                except Exception:
                    log.exception("handing over changed files failed")

    def _nag(self) -> None:
        since = self.settler.waiting_since
        now = time.monotonic()
        if since is None or now - since < _NAG_SECONDS or now - self._last_nag < _NAG_SECONDS:
            return
        self._last_nag = now
        busy = ", ".join(sorted(escape_name(str(p.relative_to(self.root))) for p in self.settler.pending)[:5])
        log.warning("waiting for files still being written before publishing: %s", busy)


class _Held:
    """The folder being watched, held open. `gone()` is true once its path no longer names it
    (removed, or replaced: `mv seeds seeds.old; mv seeds.new seeds`), which inotify never says: its
    watch follows the old folder. Holding it open keeps its inode number from being given to a new
    folder made in its place, so the comparison cannot be fooled."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.fd = fd

    @classmethod
    def open(cls, path: Path) -> _Held | None:
        """The folder at `path`, or None when there is none (or it cannot be opened)."""
        try:
            return cls(path, os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
        except OSError:
            return None

    def gone(self) -> bool:
        try:
            now, held = self.path.stat(), os.fstat(self.fd)
        except OSError:
            return True
        return (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino)

    def close(self) -> None:
        os.close(self.fd)


def _age(path: Path) -> float:
    """Seconds since `path` was last modified (0 when it is gone or its clock runs ahead)."""
    try:
        return max(0.0, time.time() - path.stat().st_mtime)
    except OSError:
        return 0.0


def wait_until_quiet(settings: Settings, stop: threading.Event, limit: float | None = None) -> bool:
    """Wait until no article file in seeds/ has been modified in the last `settle` seconds; False
    when `limit` seconds passed (or `stop` was set) first.

    For builds that no event asked for (at start): a copy in progress when the daemon starts must
    not be read half-written either. Files dated in the future (a copied mtime) are not "in
    progress" and are left out.
    """
    settle = settings.daemon.settle
    deadline = None if limit is None else time.monotonic() + limit
    while settle > 0:
        files, _ = scan(settings)
        now = time.time()
        recent = [age for f in files if -1.0 <= (age := now - f.mtime_ns / 1e9) < settle]
        if not recent:
            return True
        if stop.is_set() or (deadline is not None and time.monotonic() >= deadline):
            return False
        stop.wait(settle - min(recent) if min(recent) > 0 else settle)
    return True
