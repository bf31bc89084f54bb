"""The digest schedule: cron evaluated in the site's timezone, DST transitions, catch-up after downtime."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from publisher.clock import FixedClock
from publisher.cron import instant, next_slot, parse, previous_slot, slots_between
from publisher.daemon import catchup, record
from publisher.store import db

LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")
PARIS = ZoneInfo("Europe/Paris")
HOUR = timedelta(hours=1)


def runs(expression: str, tz: tzinfo, start: datetime, days: int) -> list[datetime]:
    """Every instant the schedule fires from `start` for `days` days, as a daemon would see them."""
    clock = FixedClock(start)
    cron = parse(expression)
    fired: list[datetime] = []
    while True:
        moment = next_slot(cron, tz, clock.now())
        assert moment is not None
        if moment > start + timedelta(days=days):
            return fired
        clock.moment = moment  # the timer goes off
        fired.append(moment)


# Europe/London: 01:30 does not exist on 2025-03-30 (01:00 GMT -> 02:00 BST) and happens twice on
# 2025-10-26 (02:00 BST -> 01:00 GMT). America/New_York: 02:30 is missing on 2025-03-09 and 01:30
# happens twice on 2025-11-02.
@pytest.mark.parametrize(
    ("tz", "expression", "start", "expected_local"),
    [
        (LONDON, "30 1 * * *", datetime(2025, 3, 28, tzinfo=UTC), "2025-03-30 02:00 BST"),
        (LONDON, "30 1 * * *", datetime(2025, 10, 24, tzinfo=UTC), "2025-10-26 01:30 BST"),
        (NEW_YORK, "30 2 * * *", datetime(2025, 3, 7, tzinfo=UTC), "2025-03-09 03:00 EDT"),
        (NEW_YORK, "30 1 * * *", datetime(2025, 10, 31, tzinfo=UTC), "2025-11-02 01:30 EDT"),
    ],
)
def test_a_daily_schedule_runs_exactly_once_on_each_transition_day(
    tz: ZoneInfo, expression: str, start: datetime, expected_local: str
) -> None:
    """Spring forward: the missing time runs once at the end of the gap; fall back: the first one only."""
    fired = runs(expression, tz, start, days=5)
    per_day = Counter(m.astimezone(tz).date() for m in fired)
    assert set(per_day.values()) == {1}, per_day
    assert len(per_day) == 5
    local = [m.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z") for m in fired]
    assert expected_local in local
    # Other days keep their wall-clock time.
    hour, minute = (int(x) for x in (expression.split()[1], expression.split()[0]))
    others = [
        m.astimezone(tz) for m in fired if m.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z") != expected_local
    ]
    assert all((m.hour, m.minute) == (hour, minute) for m in others)


def test_times_inside_one_gap_are_one_run() -> None:
    """01:15 and 01:45 both fall in London's spring gap: one run at 02:00 BST, not two."""
    fired = runs("15,45 1 * * *", LONDON, datetime(2025, 3, 30, tzinfo=UTC), days=1)
    local = [m.astimezone(LONDON).strftime("%H:%M %Z") for m in fired]
    assert local == ["02:00 BST"]


def test_an_hourly_schedule_over_fall_back_fires_every_real_hour_but_not_twice_per_wall_time() -> None:
    fired = runs("0 * * * *", LONDON, datetime(2025, 10, 25, 23, 30, tzinfo=UTC), days=1)
    walls = [m.astimezone(LONDON).strftime("%H:%M") for m in fired]
    assert len(walls) == len(set(walls)), walls  # 01:00 only once
    assert fired == sorted(fired)


def test_previous_slot_inside_the_repeated_hour() -> None:
    cron = parse("30 1 * * *")
    # 01:45 GMT: the second 01:45 of 2025-10-26; the slot (the first 01:30) is 1 h 15 min earlier.
    at = datetime(2025, 10, 26, 1, 45, tzinfo=UTC)
    assert previous_slot(cron, LONDON, at) == datetime(2025, 10, 26, 0, 30, tzinfo=UTC)
    # 01:15 BST (the first pass): today's slot is still to come.
    assert previous_slot(cron, LONDON, datetime(2025, 10, 26, 0, 15, tzinfo=UTC)) == datetime(
        2025, 10, 25, 0, 30, tzinfo=UTC
    )


def test_instant_of_a_missing_wall_time_is_the_end_of_the_gap() -> None:
    assert instant(datetime(2025, 3, 30, 1, 30), LONDON) == datetime(2025, 3, 30, 1, 0, tzinfo=UTC)


def test_weekdays_count_from_sunday_like_cron() -> None:
    """'0 8 * * 1' is Monday 08:00 in the site's zone (APScheduler's from_crontab would say Tuesday)."""
    slot = next_slot(parse("0 8 * * 1"), PARIS, datetime(2025, 3, 1, 12, tzinfo=UTC))  # a Saturday
    assert slot == datetime(2025, 3, 3, 7, 0, tzinfo=UTC)
    assert parse("0 8 * * 7").weekdays == parse("0 8 * * sun").weekdays == frozenset({0})
    assert parse("0 8 * * mon-fri").weekdays == frozenset({1, 2, 3, 4, 5})


def test_day_of_month_or_day_of_week_when_both_are_given() -> None:
    cron = parse("0 0 13 * 5")  # the 13th, and every Friday
    fired = runs("0 0 13 * 5", UTC, datetime(2025, 6, 1, tzinfo=UTC), days=30)
    days = sorted(m.day for m in fired)
    assert days == [6, 13, 20, 27]  # June 2025: Fridays 6, 13, 20, 27; the 13th is one of them
    assert cron.matches(datetime(2025, 6, 6).date())


def test_steps_ranges_and_macros() -> None:
    assert parse("*/15 * * * *").minutes == (0, 15, 30, 45)
    assert parse("5/20 * * * *").minutes == (5, 25, 45)
    assert parse("0 9-17/4 * * *").hours == (9, 13, 17)
    assert parse("@weekly").expression == "0 0 * * 0"
    assert parse("0 8 1 jan,JUL *").months == frozenset({1, 7})


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("0 8 * *", "'0 8 * *' is not a cron expression: it needs 5 fields"),
        ("61 8 * * *", "minute: 61 is out of range 0-59"),
        ("0 8 * * funday", "day of week: 'funday' is not a number or a name"),
        ("*/0 8 * * *", "minute: '*/0': the step after / must be a positive number"),
        ("0 20-8 * * *", "hour: '20-8': range runs backwards"),
        ("0 0 31 2 *", "'0 0 31 2 *' never fires (no calendar day matches it)"),
    ],
)
def test_bad_expressions_say_what_is_wrong(expression: str, message: str) -> None:
    with pytest.raises(
        ValueError, match="^" + message.replace("*", r"\*").replace("(", r"\(").replace(")", r"\)")
    ):
        parse(expression)


# ----- catch-up -----

DAILY = parse("0 8 * * *")
GRACE = timedelta(hours=6)


def paris(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2025, 3, day, hour, minute, tzinfo=PARIS)


def test_at_start_a_digest_missed_within_the_grace_period_is_sent_once() -> None:
    last = paris(3, 8)  # handled Monday's
    decision = catchup.decide_at_start(DAILY, PARIS, paris(4, 9), last, GRACE)
    assert decision.action == "send"
    assert decision.slot == paris(4, 8)
    assert decision.next_slot == paris(5, 8)


def test_at_start_only_the_latest_of_many_missed_digests_counts() -> None:
    """Down for three days: one digest (the latest slot), never one per missed run."""
    decision = catchup.decide_at_start(DAILY, PARIS, paris(7, 10), paris(3, 8), GRACE)
    assert (decision.action, decision.slot, decision.missed) == ("send", paris(7, 8), 4)
    assert "3 earlier missed ones are not sent" in decision.describe(PARIS)


def test_at_start_a_digest_older_than_the_grace_period_is_skipped_with_a_reason() -> None:
    decision = catchup.decide_at_start(DAILY, PARIS, paris(4, 15), paris(3, 8), GRACE)
    assert (decision.action, decision.slot) == ("skip", paris(4, 8))
    assert decision.describe(PARIS) == (
        "digest due at 2025-03-04T08:00+01:00 is older than the grace period; skipped (1 missed slot); "
        "next at 2025-03-05T08:00+01:00"
    )


def test_at_start_nothing_is_owed_when_the_latest_slot_was_handled() -> None:
    decision = catchup.decide_at_start(DAILY, PARIS, paris(4, 9), paris(4, 8), GRACE)
    assert decision.action == "none"


def test_the_very_first_start_owes_nothing() -> None:
    decision = catchup.decide_at_start(DAILY, PARIS, paris(4, 9), None, GRACE)
    assert (decision.action, decision.slot) == ("baseline", paris(4, 8))


def test_a_late_timer_follows_the_grace_period_and_a_handled_slot_is_done() -> None:
    slot = paris(4, 8)
    assert catchup.decide_at_fire(slot, slot + timedelta(seconds=1), paris(3, 8), GRACE) == "send"
    assert catchup.decide_at_fire(slot, slot + GRACE + timedelta(seconds=1), paris(3, 8), GRACE) == "skip"
    assert catchup.decide_at_fire(slot, slot, slot, GRACE) == "done"


def test_retries_back_off_and_stop_at_the_end_of_the_grace_period() -> None:
    slot = paris(4, 8)
    assert catchup.retry_at(slot, slot, 1, GRACE) == slot + timedelta(minutes=1)
    assert catchup.retry_at(slot, slot, 3, GRACE) == slot + timedelta(minutes=4)
    assert catchup.retry_at(slot, slot, 10, GRACE) == slot + timedelta(minutes=15)
    assert catchup.retry_at(slot, slot + GRACE - timedelta(minutes=1), 2, GRACE) is None


def test_no_double_send_after_a_restart(tmp_path: Path) -> None:
    """The record lives in the database: a restart right after a send owes nothing, however often."""
    conn = db.connect(tmp_path / "state.sqlite3")
    sent: list[datetime] = []

    def start(now: datetime) -> None:
        decision = catchup.decide_at_start(DAILY, PARIS, now, record.last_slot(conn), GRACE)
        if decision.action == "send" and decision.slot is not None:
            sent.append(decision.slot)
        if decision.slot is not None and decision.action != "none":
            record.handle_slot(conn, decision.slot, decision.action, now)

    start(paris(3, 7))  # first start: baseline (Sunday's slot)
    assert sent == []
    start(paris(4, 9))  # down over Monday 08:00, back at 09:00: send it
    start(paris(4, 9, 1))  # crash and restart
    start(paris(4, 12))  # and again
    assert sent == [paris(4, 8)]
    start(paris(5, 8, 30))
    assert sent == [paris(4, 8), paris(5, 8)]
    # A slot handled is never moved backwards by a late writer.
    record.handle_slot(conn, paris(4, 8), "sent", paris(5, 9))
    assert record.last_slot(conn) == paris(5, 8)
    conn.close()


def test_slots_between_counts_distinct_slots() -> None:
    found = slots_between(DAILY, PARIS, paris(1, 0), paris(4, 8), 100)
    assert found == [paris(1, 8), paris(2, 8), paris(3, 8), paris(4, 8)]
    assert len(slots_between(parse("* * * * *"), PARIS, paris(1, 0), paris(4, 0), 10)) == 10


def test_a_changed_schedule_owes_no_slot_before_now() -> None:
    """The record was kept under another schedule: the latest slot of the new one is recorded, not sent."""
    change = "'0 8 * * 1' in Europe/Paris → '0 8 * * *' in Europe/Paris"
    decision = catchup.decide_at_start(DAILY, PARIS, paris(5, 9), paris(3, 8), GRACE, change)
    assert (decision.action, decision.slot, decision.next_slot) == ("changed", paris(5, 8), paris(6, 8))
    assert decision.describe(PARIS) == (
        f"digest schedule changed ({change}): no digest owed for earlier times; "
        "next at 2025-03-06T08:00+01:00"
    )


def test_a_capped_count_of_missed_slots_says_so() -> None:
    """Missed slots are counted up to a limit; the log line says 'or more' rather than a wrong number."""
    every_minute = parse("* * * * *")
    sent = catchup.decide_at_start(every_minute, PARIS, paris(4, 9), paris(3, 8), GRACE)
    assert "(1000 or more earlier missed ones are not sent)" in sent.describe(PARIS)
    skipped = catchup.decide_at_start(
        every_minute, PARIS, paris(4, 9, 0) + timedelta(seconds=30), paris(3, 8), timedelta(seconds=1)
    )
    assert "skipped (1000 or more missed slots)" in skipped.describe(PARIS)
    few = catchup.decide_at_start(every_minute, PARIS, paris(3, 8, 5), paris(3, 8), GRACE)
    assert "(4 earlier missed ones are not sent)" in few.describe(PARIS)
