"""Cron expressions (five fields) evaluated in a timezone, correct across daylight-saving changes.

We evaluate the schedule ourselves instead of using APScheduler's CronTrigger (APScheduler still
runs the job, see daemon/scheduler.py), for two reasons its tracker shows:

- `CronTrigger.from_crontab` numbers weekdays from Monday, cron from Sunday, so `0 8 * * 0` would
  run on Mondays: https://github.com/agronholm/apscheduler/issues/455 (closed as a duplicate; 3.x
  keeps the Monday-first numbering);
- its behaviour at daylight-saving changes is not defined and has broken more than once:
  https://github.com/agronholm/apscheduler/issues/120 (open since 2016: "well-defined behaviour
  around DST thresholds"), https://github.com/agronholm/apscheduler/issues/1021 (3.11.0 returns the
  same fire time forever inside the repeated hour; fixed by pull requests 1079 and 1094, after
  3.11.0, which this project's pin allows).

The rules here are those of Vixie cron, made exact:

- a schedule names local wall-clock times ("slots"); each slot is one instant;
- a wall time that occurs twice (clocks go back) is the first occurrence only;
- a wall time that does not exist (clocks go forward) is the first moment after the gap, so a
  daily 01:30 in Europe/London runs at 02:00 BST on the spring-forward day: once, never zero times;
- several slots falling in the same gap are one run;
- when both day-of-month and day-of-week are restricted, a day matching either counts (cron's rule).

Pure functions of (expression, timezone, instant): no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo

_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTHS = {m: i for i, m in enumerate(_MONTH_NAMES, start=1)}
_DAYS = {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# (name, lowest, highest, names) of the five fields, in order.
_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)
# Far enough for any schedule that fires at all ("0 0 29 2 *" waits at most 8 years).
_HORIZON_DAYS = 366 * 9


@dataclass(frozen=True)
class Cron:
    """A parsed five-field cron expression."""

    expression: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday … 6 = Saturday
    any_day: bool  # day-of-month field was "*"
    any_weekday: bool  # day-of-week field was "*"

    def matches(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        in_month = day.day in self.days
        in_week = (day.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return in_month and in_week
        return in_month or in_week


def parse(expression: str) -> Cron:
    """Parse `expression`; raise ValueError with a one-line reason when it is not valid cron."""
    text = " ".join(expression.split())
    text = _MACROS.get(text.lower(), text)
    parts = text.split(" ")
    if len(parts) != 5:
        raise ValueError(
            f"{expression!r} is not a cron expression: it needs 5 fields "
            "(minute hour day-of-month month day-of-week), e.g. '0 8 * * 1'"
        )
    values = [
        _field(part, name, low, high, names)
        for part, (name, low, high, names) in zip(parts, _FIELDS, strict=True)
    ]
    weekdays = frozenset(d % 7 for d in values[4])  # 7 is Sunday too
    cron = Cron(
        expression=text,
        minutes=tuple(sorted(values[0])),
        hours=tuple(sorted(values[1])),
        days=frozenset(values[2]),
        months=frozenset(values[3]),
        weekdays=weekdays,
        any_day=parts[2] == "*",
        any_weekday=parts[4] == "*",
    )
    # "0 0 31 2 *" names no real day: say so now rather than wait forever.
    if next_slot(cron, UTC, datetime(2000, 1, 1, tzinfo=UTC)) is None:
        raise ValueError(f"{expression!r} never fires (no calendar day matches it)")
    return cron


def _field(text: str, name: str, low: int, high: int, names: dict[str, int]) -> set[int]:
    found: set[int] = set()
    for item in text.split(","):
        base, _, step_text = item.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValueError(f"{name}: {item!r}: the step after / must be a positive number")
            step = int(step_text)
        if base == "*":
            first, last = low, high
        elif "-" in base:
            a, _, b = base.partition("-")
            first, last = _value(a, name, low, high, names), _value(b, name, low, high, names)
            if first > last:
                raise ValueError(f"{name}: {item!r}: range runs backwards")
        else:
            first = _value(base, name, low, high, names)
            # "5/15" means from 5 to the end in steps of 15, as in Vixie cron.
            last = high if step_text else first
        found.update(range(first, last + 1, step))
    return found


def _value(text: str, name: str, low: int, high: int, names: dict[str, int]) -> int:
    key = text.lower()
    if key in names:
        return names[key]
    if not text.isdigit():
        raise ValueError(f"{name}: {text!r} is not a number" + (" or a name" if names else ""))
    number = int(text)
    if not low <= number <= high:
        raise ValueError(f"{name}: {number} is out of range {low}-{high}")
    return number


def instant(wall: datetime, tz: tzinfo) -> datetime:
    """The one moment (UTC) a local wall time stands for, by the rules in the module docstring."""
    first = wall.replace(tzinfo=tz, fold=0)
    if first.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == wall:
        return first.astimezone(UTC)
    # In a gap: the first wall-clock minute that exists after it.
    probe = wall.replace(second=0, microsecond=0)
    for _ in range(2 * 24 * 60):
        probe += timedelta(minutes=1)
        aware = probe.replace(tzinfo=tz, fold=0)
        if aware.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == probe:
            return aware.astimezone(UTC)
    raise ValueError(f"{wall} in {tz}: no valid time within two days")  # no real zone does this


def _walls(cron: Cron, start: date, step: int) -> Iterator[datetime]:
    """Wall times of the schedule day by day from `start`, forwards (step 1) or backwards (-1)."""
    for offset in range(_HORIZON_DAYS):
        day = start + timedelta(days=offset * step)
        if not cron.matches(day):
            continue
        times = [(h, m) for h in cron.hours for m in cron.minutes]
        for h, m in times if step > 0 else reversed(times):
            yield datetime(day.year, day.month, day.day, h, m)


def next_slot(cron: Cron, tz: tzinfo, after: datetime) -> datetime | None:
    """The first slot strictly after `after` (UTC), or None when the schedule never fires."""
    floor = after.astimezone(tz).replace(tzinfo=None, fold=0, second=0, microsecond=0)
    # Slot instants never decrease as wall times increase, so the first one past `after` is it.
    for wall in _walls(cron, floor.date(), 1):
        if wall >= floor:
            moment = instant(wall, tz)
            if moment > after:
                return moment
    return None


def previous_slot(cron: Cron, tz: tzinfo, at: datetime) -> datetime | None:
    """The last slot at or before `at` (UTC), or None when there is none within the horizon."""
    # Start a day late: during the repeated hour, later wall times map to earlier instants.
    start = at.astimezone(tz).date() + timedelta(days=1)
    for wall in _walls(cron, start, -1):
        moment = instant(wall, tz)
        if moment <= at:
            return moment
    return None


def slots_between(cron: Cron, tz: tzinfo, after: datetime, until: datetime, limit: int) -> list[datetime]:
    """Distinct slots in (after, until], at most `limit` of them (for counting missed runs)."""
    found: list[datetime] = []
    cursor = after
    while len(found) < limit:
        moment = next_slot(cron, tz, cursor)
        if moment is None or moment > until:
            break
        found.append(moment)
        cursor = moment
    return found
