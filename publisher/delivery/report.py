"""Who got a digest and who did not, and why: one digest's send ledger read back for people.

Each ledger row becomes one `Line` with an outcome an operator can act on:

- `sent`: the server accepted the message;
- `failed`: refused for good (a 5xx), with the server's answer;
- `bounced`: refused for good, and the subscriber is now marked bounced (no more digests);
- `deferred`: a temporary failure (4xx, a dropped or refused connection); retried on the next run;
- `pending`: not tried yet; `sending`: in flight, or left so by a run that was killed;
- `skipped`: the subscriber unsubscribed or bounced before their turn; nothing was sent.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from publisher.store import digests, ledger

OUTCOMES = ("sent", "failed", "bounced", "deferred", "pending", "sending", "skipped")
# The outcomes an operator has to look at: the recipient did not get the digest (yet).
PROBLEMS = ("failed", "bounced", "deferred")


@dataclass(frozen=True, slots=True)
class Line:
    email: str
    outcome: str
    attempts: int
    reply: str  # the server's last answer, or why nothing was sent
    retry_at: datetime | None  # for deferred and pending rows

    def summary(self) -> str:
        """`bob@example.org: failed: 550 5.1.1 no such user`."""
        return f"{self.email}: {self.outcome}: {self.reply or 'no answer recorded'}"

    def as_json(self) -> dict[str, Any]:
        return {
            "email": self.email,
            "outcome": self.outcome,
            "attempts": self.attempts,
            "reply": self.reply,
            "retry_at": self.retry_at.isoformat() if self.retry_at else None,
        }


@dataclass
class DigestReport:
    digest_id: str
    subject: str
    created_at: datetime | None
    lines: list[Line] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        found = dict.fromkeys(OUTCOMES, 0)
        for line in self.lines:
            found[line.outcome] += 1
        return found

    @property
    def problems(self) -> list[Line]:
        """Recipients who did not get it: permanent failures and bounces first, then deferrals."""
        order = {outcome: n for n, outcome in enumerate(PROBLEMS)}
        chosen = [line for line in self.lines if line.outcome in order]
        return sorted(chosen, key=lambda line: order[line.outcome])

    def problem_lines(self, limit: int | None) -> list[str]:
        """`address: outcome: the server's answer` per recipient who did not get the digest, the
        first `limit` of them (all when None), then how many more there are."""
        problems = self.problems
        shown = problems if limit is None else problems[:limit]
        lines = [line.summary() for line in shown]
        if len(problems) > len(shown):
            more = len(problems) - len(shown)
            lines.append(f"… and {more} more (publisher digest --report {self.digest_id})")
        return lines

    def as_json(self) -> dict[str, Any]:
        return {
            "digest": self.digest_id,
            "subject": self.subject,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "counts": self.counts,
            "recipients": [line.as_json() for line in self.lines],
        }


def _outcome(entry: ledger.Entry) -> str:
    if entry.status == "failed":
        return "bounced" if entry.subscriber_status == "bounced" else "failed"
    if entry.status == "pending":
        # A pending row with an answer on record was tried and deferred; the others wait their turn.
        return "deferred" if entry.reply else "pending"
    return entry.status


def latest_id(conn: sqlite3.Connection) -> str | None:
    """The digest most recently handed to delivery, or None before the first."""
    found = ledger.digest_ids(conn)
    return found[0] if found else None


def build(conn: sqlite3.Connection, digest_id: str) -> DigestReport | None:
    """The report of one digest, or None when no digest of that id was ever sent."""
    if not ledger.enqueued(conn, digest_id):
        return None
    row = digests.get(conn, digest_id)
    report = DigestReport(
        digest_id=digest_id,
        subject=row.subject if row is not None else "",
        created_at=row.created_at if row is not None else None,
    )
    for entry in ledger.entries(conn, digest_id):
        outcome = _outcome(entry)
        waiting = outcome in ("deferred", "pending")
        report.lines.append(
            Line(entry.email, outcome, entry.attempts, entry.reply, entry.retry_at if waiting else None)
        )
    return report
