"""The digest under `publisher run`: sent at its slot, never twice across restarts, caught up after
downtime inside the grace period and skipped outside it. The clock is pinned with PUBLISHER_NOW; the
outbox Maildir in state/ receives the messages."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from tests.conftest import Project
from tests.test_daemon import Daemon
from tests.test_daemon import daemons as daemons  # the fixture

PARIS = ZoneInfo("Europe/Paris")
# Monday 2025-03-03, three seconds before the 08:00 digest.
JUST_BEFORE = datetime(2025, 3, 3, 7, 59, 57, tzinfo=PARIS).astimezone(UTC)


def outbox(project: Project) -> list[str]:
    folder = project.state / "outbox" / "new"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_the_digest_goes_out_at_its_time_once_and_restarts_respect_the_record(
    project: Project, daemons: Callable[..., Daemon]
) -> None:
    project.configure(
        """
        [daemon]
        settle = 0.1

        [digest]
        schedule = "0 8 * * 1"
        grace_period = 3600
        backfill = 10

        [delivery]
        transport = "outbox"

        [smtp]
        host = "mail.example.org"
        """
    )
    project.seed("one.txt", "date 2025-03-01 The first story of the week.\n")
    assert project.cli("subscribers", "add", "reader@example.org", now=JUST_BEFORE).code == 0

    daemon = daemons(now=JUST_BEFORE)
    daemon.wait_log(
        'smtp.host is set (mail.example.org) but delivery.transport = "outbox": nothing is mailed'
    )
    daemon.wait_log("first start: no digest owed; next at 2025-03-03T08:00+01:00")
    daemon.wait_for("the digest", lambda: len(outbox(project)) == 1)
    daemon.wait_log("digest: 1 written to state/outbox/ (digest")
    assert daemon.stop() == 0

    # Restart half a minute later: the 08:00 slot is in the record, nothing is sent again.
    again = daemons(now=JUST_BEFORE + timedelta(seconds=33))
    again.wait_log("no digest owed; next at 2025-03-10T08:00+01:00")
    assert again.stop() == 0
    assert len(outbox(project)) == 1

    # Down over the next Monday's slot, back 30 minutes later (inside the hour of grace): sent once.
    project.seed("two.txt", "date 2025-03-08 The second story of the week.\n")
    late = daemons(now=datetime(2025, 3, 10, 8, 30, tzinfo=PARIS).astimezone(UTC))
    late.wait_log("digest due at 2025-03-10T08:00+01:00 was missed; sending it now")
    late.wait_for("the catch-up digest", lambda: len(outbox(project)) == 2)
    late.wait_log("digest: 1 written to state/outbox/ (digest")
    assert late.stop() == 0

    # Down for two weeks: the last missed slot is older than the grace period; nothing is sent.
    project.seed("three.txt", "date 2025-03-20 The third story.\n")
    away = daemons(now=datetime(2025, 3, 24, 12, 0, tzinfo=PARIS).astimezone(UTC))
    away.wait_log(
        "digest due at 2025-03-24T08:00+01:00 is older than the grace period; skipped (2 missed slots); "
        "next at 2025-03-31T08:00+02:00"  # summer time by then
    )
    assert away.stop() == 0
    assert len(outbox(project)) == 2
    status = project.cli("status", "--json", now=datetime(2025, 3, 24, 12, 1, tzinfo=UTC))
    assert json.loads(status.out)["last_slot_outcome"] == "skipped"


def test_the_daemon_logs_who_did_not_get_the_digest_and_why(
    project: Project, daemons: Callable[..., Daemon]
) -> None:
    """A real SMTP server refuses one recipient for good: the daemon's log names them with the
    server's answer, as `digest --send` does."""
    from tests.support.smtp import Behaviour, SmtpServer

    refuse = Behaviour(rcpt=lambda rcpt, n: "550 5.1.1 no such user" if rcpt.startswith("gone") else None)
    with SmtpServer(refuse) as server:
        project.configure(
            f"""
            [daemon]
            settle = 0.1

            [digest]
            schedule = "0 8 * * 1"
            backfill = 10

            [delivery]
            transport = "smtp"

            [smtp]
            host = "127.0.0.1"
            port = {server.port}
            timeout = 2.0
            """
        )
        project.seed("one.txt", "date 2025-03-01 The first story of the week.\n")
        for who in ("reader@example.org", "gone@example.org"):
            assert project.cli("subscribers", "add", who, now=JUST_BEFORE).code == 0
        daemon = daemons(now=JUST_BEFORE)
        daemon.wait_log("digest: not delivered: gone@example.org: failed: 550 5.1.1 no such user")
        assert daemon.stop() == 0
        assert server.by_recipient() == {"reader@example.org": 1}


def test_a_schedule_changed_by_sighup_starts_from_the_reload_not_from_a_slot_before_it(
    project: Project, daemons: Callable[..., Daemon]
) -> None:
    """A new `digest.schedule` (or timezone) is a new baseline: its first digest is its next slot
    after the reload, never a catch-up of a slot that only exists under the new schedule."""
    project.configure(
        """
        [daemon]
        settle = 0.1

        [digest]
        schedule = "0 8 * * 1"
        backfill = 10
        """
    )
    project.seed("one.txt", "date 2025-03-01 The first story of the week.\n")
    wednesday = datetime(2025, 3, 5, 7, 19, tzinfo=PARIS).astimezone(UTC)
    assert project.cli("subscribers", "add", "reader@example.org", now=wednesday).code == 0
    daemon = daemons(now=wednesday)
    daemon.wait_log("first start: no digest owed; next at 2025-03-10T08:00+01:00")
    project.config_path.write_text(
        project.config_path.read_text().replace('"0 8 * * 1"', '"0 7 * * *"'), encoding="utf-8"
    )
    daemon.proc.send_signal(signal.SIGHUP)
    daemon.wait_log("SIGHUP: reloading the configuration")

    def after_reload() -> str:
        return daemon.log.split("SIGHUP: reloading the configuration")[-1]

    daemon.wait_for("the digest decision after the reload", lambda: "digest" in after_reload())
    assert "digest due at 2025-03-05T07:00+01:00 was missed" not in daemon.log
    daemon.wait_log(
        "digest schedule changed ('0 8 * * 1' in Europe/Paris → '0 7 * * *' in Europe/Paris): "
        "no digest owed for earlier times; next at 2025-03-06T07:00+01:00"
    )
    assert daemon.stop() == 0
    assert outbox(project) == []

    # A restart under the same (new) schedule later that morning owes nothing either.
    again = daemons(now=wednesday + timedelta(hours=1))
    again.wait_log("no digest owed; next at 2025-03-06T07:00+01:00")
    assert again.stop() == 0
    assert outbox(project) == []
