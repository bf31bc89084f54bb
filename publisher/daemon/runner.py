"""`publisher run` as a process: the lock, the signals, the watcher, the scheduler and (with
`daemon.serve`) the HTTP server in a thread, until told to stop.

Signals are not caught by handlers but blocked in every thread and taken one at a time by the main
thread with `sigwait`: the main thread sleeps in the kernel (no polling), and a signal can never
interrupt a job half-way. SIGTERM and SIGINT stop: the watcher first, then the scheduler, which
lets the running job finish its current step (a digest stops between two messages). SIGHUP reads
the configuration again; a file that does not load, one that moves the state folder (whose lock
we hold), or one whose server cannot start (a broken template, a taken port) is refused with a log
line and the old configuration keeps running.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable

from publisher.clock import Clock
from publisher.config import Settings
from publisher.daemon.scheduler import Daemon, parse_schedule
from publisher.daemon.watch import SeedWatcher
from publisher.delivery.transports import Transport
from publisher.errors import ConfigError, PublisherError
from publisher.lock import state_lock
from publisher.server import Background, create_app
from publisher.store import keys

log = logging.getLogger("publisher.daemon")

_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}


class _Running:
    """One configuration at work: its scheduler and its watcher (and the HTTP server if asked)."""

    def __init__(
        self, settings: Settings, clock: Clock, transport: Transport | None, *, reload: bool | None = False
    ) -> None:
        self.reload = reload  # True: taking over after SIGHUP; None: resuming after a failed one
        self.daemon = Daemon(settings, clock, transport)
        self.watcher = SeedWatcher(settings, self.daemon.files_ready)
        self.http: Background | None = None
        if settings.daemon.serve:
            # Binds now, so a taken port is an error before anything else starts.
            self.http = Background(settings, clock, settings.serve.host, settings.serve.port)

    def start(self) -> None:
        unused = self.daemon.settings.unused_smtp()
        if unused and self.daemon.transport is None:
            log.warning("%s", unused)
        self.daemon.prepare(reload=self.reload)  # the first build, while this process has one thread
        self.watcher.start()
        self.daemon.start()  # builds again at once: catches files dropped during the first build
        if self.http is not None:
            self.http.start()

    def stop(self, *, reload: bool = False) -> None:
        if self.http is not None:
            self.http.stop()
        self.watcher.stop()
        self.daemon.stop(reload=reload)


def run(
    settings: Settings,
    clock: Clock,
    *,
    reload: Callable[[], Settings],
    wait: float = 0,
    transport: Transport | None = None,
) -> int:
    """Run until SIGTERM or SIGINT; return the exit status (0 after a clean stop)."""
    parse_schedule(settings)  # a bad schedule is a configuration error before anything starts
    with state_lock(settings, wait=wait, purpose="publisher run"):
        # Digests carry links signed with the site secret: a lost secret.key stops the daemon now,
        # not at its first digest (publisher/store/keys.py).
        keys.require_at_start(settings)
        # Blocked before any thread starts, so every thread inherits the mask.
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        try:
            running = _Running(settings, clock, transport)
            log.info(
                "daemon started (pid %d, state %s, timezone %s, digest %r)",
                os.getpid(),
                settings.state_dir,
                settings.site.timezone,
                settings.digest.schedule,
            )
            running.start()
            while True:
                received = signal.sigwait(_SIGNALS)
                if received != signal.SIGHUP:
                    log.info("%s received: stopping", signal.Signals(received).name)
                    break
                settings, running = _reload(settings, running, clock, reload, transport)
            running.stop()
            log.info("daemon stopped")
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    return 0


def _reload(
    settings: Settings,
    running: _Running,
    clock: Clock,
    load: Callable[[], Settings],
    transport: Transport | None,
) -> tuple[Settings, _Running]:
    try:
        fresh = load()
        parse_schedule(fresh)
        fresh.require_site_identity("the daemon builds and mails the site under them")
    except ConfigError as exc:
        log.error("SIGHUP: configuration not reloaded: %s", exc.one_line())
        return settings, running
    if fresh.state_dir != settings.state_dir:
        log.error("SIGHUP: configuration not reloaded: paths.state changed; restart the daemon for that")
        return settings, running
    try:
        if fresh.daemon.serve:
            # The app compiles its templates: a broken one is found while the old server runs on
            # (its templates were compiled at its start, so it does not read the broken file).
            create_app(fresh, clock)
    except PublisherError as exc:
        log.error("SIGHUP: configuration not reloaded: %s; the previous one carries on", exc.one_line())
        return settings, running
    log.info("SIGHUP: reloading the configuration")
    running.stop(reload=True)
    try:
        replacement = _Running(fresh, clock, transport, reload=True)
    except PublisherError as exc:  # what only starting finds, such as a port in use
        log.error("SIGHUP: configuration not reloaded: %s; the previous one carries on", exc.one_line())
        fresh, replacement = settings, _Running(settings, clock, transport, reload=None)
    replacement.start()
    return fresh, replacement
