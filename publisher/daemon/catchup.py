"""When the digest goes out: pure decisions from the schedule, the clock and the state database's record.

The record is the last slot *handled* (sent, or deliberately skipped), kept in the database by
`publisher.daemon.record`, never in the scheduler's memory, so a restart neither forgets a digest
nor sends one twice:

- at start, only the most recent slot counts: it is sent once when it is overdue by no more than
  the grace period, and skipped (with a log line) when older; earlier missed slots are never sent;
- a slot whose timer fires late (the machine slept) follows the same rule;
- a slot already handled is never handled again;
- on the very first start (no record) nothing is owed: the record starts at the latest slot;
- a schedule or timezone other than the one the record was kept under (changed by SIGHUP or
  while the daemon was stopped) is a new start too: slots before now that only the new schedule
  has are not owed; its first digest is its next slot.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Literal

from publisher.cron import Cron, next_slot, previous_slot, slots_between

# Retries of a failed digest: 1 min, 2 min, 4 min … at most 15 min apart, within the grace period.
RETRY_FIRST = timedelta(minutes=1)
RETRY_MAX = timedelta(minutes=15)
_COUNT_LIMIT = 1000  # missed slots are counted for the log line only; stop counting there

Action = Literal["send", "skip", "baseline", "changed", "none"]


@dataclass(frozen=True)
class StartDecision:
    """What to do about the digest when the daemon starts."""

    action: Action  # send or skip `slot`; baseline, changed: record `slot`, not sent; none: nothing owed
    slot: datetime | None  # the most recent slot at or before now, when something is to be recorded
    missed: int  # slots since the last one handled, `slot` included, counted up to _COUNT_LIMIT + 1
    next_slot: datetime | None  # the first slot after now
    change: str = ""  # for "changed": "old → new" schedule, for the log line

    def describe(self, tz: tzinfo) -> str:
        """One log line saying what was decided and why."""

        def show(moment: datetime | None) -> str:
            return "never" if moment is None else moment.astimezone(tz).isoformat(timespec="minutes")

        def many(count: int) -> str:  # counting stopped past _COUNT_LIMIT
            return f"{_COUNT_LIMIT} or more" if self.missed > _COUNT_LIMIT else str(count)

        when = show(self.slot)
        if self.action == "send":
            more = f" ({many(self.missed - 1)} earlier missed ones are not sent)" if self.missed > 1 else ""
            return f"digest due at {when} was missed; sending it now, within the grace period{more}"
        if self.action == "skip":
            return (
                f"digest due at {when} is older than the grace period; skipped "
                f"({many(self.missed)} missed slot{'s' if self.missed != 1 else ''}); "
                f"next at {show(self.next_slot)}"
            )
        if self.action == "baseline":
            return f"first start: no digest owed; next at {show(self.next_slot)}"
        if self.action == "changed":
            return (
                f"digest schedule changed ({self.change}): no digest owed for earlier times; "
                f"next at {show(self.next_slot)}"
            )
        return f"no digest owed; next at {show(self.next_slot)}"


def decide_at_start(
    cron: Cron,
    tz: tzinfo,
    now: datetime,
    last_handled: datetime | None,
    grace: timedelta,
    change: str = "",
) -> StartDecision:
    """Decide at start-up, from the record of the last slot handled, whether a digest is owed.

    `change` ("old → new") says the record was kept under another schedule or timezone.
    """
    due = previous_slot(cron, tz, now)
    following = next_slot(cron, tz, now)
    if change and last_handled is not None:
        newer = due is not None and due > last_handled
        return StartDecision("changed", due if newer else None, 0, following, change)
    if due is None:
        return StartDecision("none", None, 0, following)
    if last_handled is None:
        return StartDecision("baseline", due, 0, following)
    if due <= last_handled:
        return StartDecision("none", None, 0, following)
    missed = len(slots_between(cron, tz, last_handled, due, _COUNT_LIMIT + 1))
    action: Action = "send" if now - due <= grace else "skip"
    return StartDecision(action, due, max(missed, 1), following)


FireAction = Literal["send", "skip", "done"]


def decide_at_fire(
    slot: datetime, now: datetime, last_handled: datetime | None, grace: timedelta
) -> FireAction:
    """When the timer for `slot` goes off (perhaps late): send, skip as too late, or done already."""
    if last_handled is not None and last_handled >= slot:
        return "done"
    return "send" if now - slot <= grace else "skip"


def retry_at(slot: datetime, now: datetime, failures: int, grace: timedelta) -> datetime | None:
    """When to try a failed digest again (`failures` so far, ≥ 1), or None when past the grace period."""
    delay = min(RETRY_FIRST * (2 ** max(failures - 1, 0)), RETRY_MAX)
    moment = now + delay
    return moment if moment - slot <= grace else None


def plan_after(cron: Cron, tz: tzinfo, slot: datetime | None, now: datetime) -> datetime | None:
    """The slot to wait for next, once `slot` (or nothing) has been handled at `now`."""
    return next_slot(cron, tz, max(slot, now) if slot is not None else now)
