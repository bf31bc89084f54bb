"""What a send did: a digest's progress while it is sent, one digest's result, and the report over
every digest one `digest --send` touched (the CLI's summary line)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Progress:
    """Where one digest's sending stands; handed to the progress callback after each answer
    (from a sender thread, one call at a time)."""

    digest_id: str
    total: int
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    bounced: int = 0
    deferred: int = 0

    @property
    def done(self) -> int:
        return self.sent + self.failed + self.skipped


@dataclass
class Result:
    """What one `deliver()` call did, and what the ledger holds for the digest at its end."""

    digest_id: str
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    bounced: int = 0
    retries: int = 0
    pending: int = 0  # left for a later run (stopped, or the server was unreachable)
    stopped: bool = False

    @property
    def complete(self) -> bool:
        return self.pending == 0


@dataclass
class SendReport:
    """What `pipeline.digest_send` did over every digest it touched (the CLI's summary line)."""

    digests: list[str] = field(default_factory=list)
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    bounced: int = 0
    pending: int = 0  # left for the next run (stopped before the end)
    stopped: bool = False
    seconds: float = 0.0

    def add(self, result: Result) -> None:
        self.digests.append(result.digest_id)
        self.sent += result.sent
        self.failed += result.failed
        self.skipped += result.skipped
        self.bounced += result.bounced
        self.pending += result.pending
        self.stopped = self.stopped or result.stopped
