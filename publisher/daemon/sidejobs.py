"""The daemon's jobs besides builds and the digest: WebSub pings after a build, retried with
backoff, and, when `[inbound]` is configured, a pass over the mailbox every `inbound.interval`.

They run on the daemon's one worker thread like every job (scheduled through its `at`), so they
never race a build or a digest.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from publisher import pipeline
from publisher.clock import Clock
from publisher.config import Settings
from publisher.errors import PublisherError

log = logging.getLogger("publisher.daemon")

At = Callable[..., str]  # (moment or None, function, kind, *args) -> job id


class SideJobs:
    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        at: At,
        cancel: Callable[[str | None], None],
        outcome: Callable[[str, bool, str], None],
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.at = at
        self.cancel = cancel
        self.outcome = outcome
        self._ping_job: str | None = None

    # ----- WebSub -----

    def after_build(self, written: list[str]) -> None:
        """Ping the hubs for the feeds a build changed (and any ping now due again)."""
        if not self.settings.websub.hubs:
            return
        self._ping(written)

    def _ping(self, written: list[str]) -> None:
        try:
            report = pipeline.websub_ping(self.settings, self.clock.now(), written)
        except PublisherError as exc:  # a database problem: say it; the next build tries again
            log.error("WebSub pings not sent: %s", exc.one_line())
            return
        if report is None:
            return
        self.cancel(self._ping_job)
        self._ping_job = None
        if report.retry_at is not None:
            self._ping_job = self.at(report.retry_at, self._retry, "websub")

    def _retry(self) -> None:
        self._ping_job = None
        self._ping([])

    # ----- inbound mail -----

    def start(self) -> None:
        """The first inbound pass (now), when `[inbound]` is configured; each plans the next."""
        if self.settings.inbound.configured:
            self.at(None, self._inbound, "inbound")

    def _inbound(self) -> None:
        try:
            reports = pipeline.inbound_pass(self.settings, self.clock.now())
        except PublisherError as exc:
            self.outcome("inbound", False, exc.one_line())
        except Exception as exc:  # a bug must not end the daemon's inbound passes
            log.debug("inbound failed", exc_info=True)
            self.outcome("inbound", False, f"{type(exc).__name__}: {exc}")
        else:
            summary = "; ".join(r.summary() for r in reports)
            if any(r.handled or r.unmatched for r in reports):
                log.info("inbound: %s", summary)
            self.outcome("inbound", True, summary)
        later = self.clock.now() + timedelta(seconds=self.settings.inbound.interval)
        self.at(later, self._inbound, "inbound")
