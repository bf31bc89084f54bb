"""Housekeeping: outbox messages and digest previews older than delivery.outbox_keep_days go; the
send ledger, recent files and anything outside those folders stay."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from tests.conftest import NOW, Project
from tests.support.digests import markdown

LATER = NOW + timedelta(minutes=1)


def _aged(path: Path, days: float, size: int = 1000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    moment = (NOW - timedelta(days=days)).timestamp()
    os.utime(path, (moment, moment))
    return path


def _site(project: Project) -> None:
    project.seed("one.md", markdown("Talks resume in Geneva", "2025-02-27"))
    assert project.cli("build").code == 0
    assert project.cli("subscribers", "add", "ana@example.com").code == 0


def test_a_send_prunes_old_outbox_messages_and_previews_and_keeps_the_rest(project: Project) -> None:
    _site(project)
    outbox = project.state / "outbox"
    old = [_aged(outbox / "new" / "old-new", 31), _aged(outbox / "cur" / "old-cur:2,S", 45)]
    old += [_aged(outbox / "tmp" / "crashed", 40), _aged(project.state / "preview" / "next-digest.html", 60)]
    kept = [_aged(outbox / "new" / "recent", 29), _aged(outbox / "cur" / "recent:2,S", 1)]
    elsewhere = _aged(project.state / "notes.txt", 400)  # not ours to prune
    result = project.cli("digest", "--send", "--backfill", "1", now=LATER)
    assert result.code == 0, result.err
    assert [p for p in old if p.exists()] == []
    assert all(p.exists() for p in kept) and elsewhere.exists()
    # The message just sent is there, and the ledger still says who got what.
    assert len(list((outbox / "new").iterdir())) == 2
    assert "1 sent" in project.cli("digest", "--report", now=LATER).out


def test_zero_days_keeps_everything(project: Project) -> None:
    project.configure("[delivery]\noutbox_keep_days = 0\n")
    _site(project)
    ancient = _aged(project.state / "outbox" / "cur" / "ancient:2,S", 3650)
    assert project.cli("digest", "--send", "--backfill", "1", now=LATER).code == 0
    assert ancient.exists()


def test_a_message_that_cannot_be_removed_is_a_warning_not_a_failed_send(project: Project) -> None:
    """Pruning is not the work the operator asked for: the send still reports what it did."""
    _site(project)
    stuck = project.state / "outbox" / "cur" / "stuck"
    stuck.mkdir(parents=True)  # a folder is not a message: left alone
    _aged(project.state / "outbox" / "cur" / "old", 90)
    os.chmod(project.state / "outbox" / "cur", 0o500)
    try:
        result = project.cli("digest", "--send", "--backfill", "1", now=LATER)
    finally:
        os.chmod(project.state / "outbox" / "cur", 0o700)
    assert result.code == 0 and "outbox/ 1," in result.out
    if os.geteuid() != 0:  # root may remove it all the same
        assert "housekeeping: " in result.err and "cannot be removed" in result.err
    assert stuck.is_dir()


def test_the_setting_is_validated(project: Project) -> None:
    project.configure("[delivery]\noutbox_keep_days = -1\n")
    result = project.cli("status")
    assert result.code == 2 and "outbox_keep_days" in result.err
