"""The clock, passed in to everything below the CLI and the daemon; never reached for.

`SystemClock` is the real one. `FixedClock` serves tests. The CLI also honours the environment
variable PUBLISHER_NOW (an ISO 8601 date-time with zone) so whole-process tests can pin the time.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Protocol

from publisher.errors import ConfigError


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that stands still until told to move."""

    def __init__(self, moment: datetime) -> None:
        if moment.tzinfo is None:
            raise ValueError("FixedClock needs an aware datetime")
        self.moment = moment

    def now(self) -> datetime:
        return self.moment

    def advance(self, delta: timedelta) -> None:
        self.moment += delta


class OffsetClock:
    """Real time, shifted so that it started at a given moment (keeps running, unlike FixedClock)."""

    def __init__(self, start: datetime) -> None:
        self.offset = start - datetime.now(UTC)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


def from_environment() -> Clock:
    value = os.environ.get("PUBLISHER_NOW")
    if not value:
        return SystemClock()
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ConfigError(f"PUBLISHER_NOW: {value!r} is not an ISO 8601 date-time") from exc
    if moment.tzinfo is None:
        raise ConfigError("PUBLISHER_NOW: needs a timezone, e.g. 2025-02-19T08:00:00+00:00")
    return OffsetClock(moment)
