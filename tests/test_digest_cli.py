"""`publisher digest`: its options, messages and exit codes, as a person meets them."""

from __future__ import annotations

import io
import re
from datetime import timedelta

from publisher.cli.digest import ProgressBar
from publisher.delivery.engine import Progress
from publisher.lock import state_lock
from tests.conftest import NOW, Project
from tests.support.digests import markdown

LATER = NOW + timedelta(minutes=1)


def with_articles(project: Project) -> None:
    project.seed("one.md", markdown("Talks resume in Geneva", "2025-02-27"))
    assert project.cli("build").code == 0


def test_one_action_is_required_and_they_exclude_each_other(project: Project) -> None:
    none = project.cli("digest")
    assert none.code == 2 and "one of the arguments --preview --send --to --report is required" in none.err
    both = project.cli("digest", "--send", "--preview")
    assert both.code == 2 and "not allowed with argument" in both.err
    negative = project.cli("digest", "--send", "--backfill", "-1")
    assert negative.code == 2 and "--backfill: must be 0 or more" in negative.err


def test_preview_prints_the_files_and_changes_nothing(project: Project) -> None:
    """--preview writes the next digest's parts under state/preview/ and records no digest."""
    with_articles(project)
    result = project.cli("digest", "--preview", "--backfill", "3", now=LATER)
    assert result.code == 0, result.err
    paths = result.out.split()
    assert [p.rsplit("/", 1)[-1] for p in paths] == ["next-digest.html", "next-digest.txt"]
    assert "Talks resume in Geneva" in (project.state / "preview" / "next-digest.txt").read_text()
    assert project.cli("subscribers", "add", "ana@example.com").code == 0
    sent = project.cli("digest", "--send", "--backfill", "3", now=LATER)
    assert "outbox/ 1, failed 0, skipped 0" in sent.out  # the preview took nothing away


def test_the_previews_view_in_browser_link_opens_a_file_that_exists(project: Project) -> None:
    """A preview is never sent, so no web version is written for it: its link opens the preview."""
    with_articles(project)
    assert project.cli("digest", "--preview", "--backfill", "3", now=LATER).code == 0
    folder = project.state / "preview"
    html = (folder / "next-digest.html").read_text()
    links = re.findall(r'href="([^"]+)"', html)
    relative = [link for link in links if "://" not in link and not link.startswith("mailto:")]
    assert relative == ["next-digest.html"]
    assert all((folder / link).is_file() for link in relative)
    assert not any("/digests/" in link for link in links)
    assert "next-digest.html" in (folder / "next-digest.txt").read_text()


def test_send_without_new_articles_says_so(project: Project) -> None:
    """The first run without backfill sends nothing, and says how to include the back catalogue;
    once a digest has gone out, the hint is not repeated."""
    with_articles(project)
    result = project.cli("digest", "--send", now=LATER)  # first run, no backfill: baseline only
    assert result.code == 0
    assert result.out == (
        "No new articles since the last digest: nothing to send.\n"
        "The first digest starts from now and does not mail the back catalogue; "
        "--backfill N includes the N latest articles in it.\n"
    )
    assert project.cli("subscribers", "add", "ana@example.com").code == 0
    assert "outbox/ 1," in project.cli("digest", "--send", "--backfill", "1", now=LATER).out
    again = project.cli("digest", "--send", now=LATER)
    assert again.out == "No new articles since the last digest: nothing to send.\n"


def test_summary_line_names_the_digest_and_the_counts(project: Project) -> None:
    with_articles(project)
    for who in ("ana@example.com", "bo@example.com"):
        assert project.cli("subscribers", "add", who).code == 0
    result = project.cli("digest", "--send", "--backfill", "1", now=LATER)
    assert result.code == 0, result.err
    line = result.out.strip()
    assert (
        line.startswith("Digest d-")
        and ": written to state/outbox/ 2, failed 0, skipped 0 in " in line
        and line.endswith(" s (transport = outbox: nothing was mailed)")
    )


def test_send_refuses_while_another_process_holds_the_lock(project: Project) -> None:
    with_articles(project)
    with state_lock(project.settings(), purpose="publisher run"):
        result = project.cli("digest", "--send", "--backfill", "1", now=LATER)
    assert result.code == 3
    assert "Error: " in result.err and "in use by another publisher process" in result.err


def test_progress_bar_draws_one_line_and_ends_it() -> None:
    stream = io.StringIO()
    bar = ProgressBar(stream, width=10)
    bar.update(Progress("d-1", total=4, sent=1, failed=1, deferred=1))
    bar.update(Progress("d-1", total=4, sent=3, failed=1))
    bar.finish()
    text = stream.getvalue()
    assert text.startswith("\r[#####·····] 2/4 sent 1 failed 1 retried 1")
    assert "\r[##########] 4/4 sent 3 failed 1" in text
    assert text.endswith("\n") and text.count("\n") == 1


def test_help_documents_every_option(project: Project) -> None:
    result = project.cli("digest", "--help")
    assert result.code == 0
    for option in ("--preview", "--send", "--to ADDRESS", "--backfill N", "Exit status"):
        assert option in result.out


def test_the_outbox_transport_says_messages_were_written_not_mailed(project: Project) -> None:
    """With delivery.transport at its default, "outbox", nothing is mailed: --send, --to and status
    say the messages were written to state/outbox/, and an [smtp] host that goes unused is warned of."""
    # Chosen on purpose: left unset beside an [smtp] host, the configuration is refused (test_config.py).
    project.configure('[delivery]\ntransport = "outbox"\n\n[smtp]\nhost = "mail.example.org"\n')
    with_articles(project)
    assert project.cli("subscribers", "add", "ana@example.com").code == 0
    warning = 'smtp.host is set (mail.example.org) but delivery.transport = "outbox": nothing is mailed'
    sent = project.cli("digest", "--send", "--backfill", "3", now=LATER)
    assert sent.code == 0, sent.err
    summary = sent.out.splitlines()[0]
    assert re.fullmatch(
        r"Digest d-\S+: written to state/outbox/ 1, failed 0, skipped 0 in \d+\.\d s "
        r"\(transport = outbox: nothing was mailed\)",
        summary,
    ), summary
    assert "sent" not in summary and sent.err.count(warning) == 1
    assert len(list((project.state / "outbox" / "new").iterdir())) == 1

    copy = project.cli("digest", "--to", "editor@example.net", now=LATER)
    assert copy.code == 0, copy.err
    assert copy.out.startswith("Wrote a test copy of the latest digest")
    assert " for editor@example.net to state/outbox/new/" in copy.out
    assert copy.out.rstrip().endswith("(transport = outbox: nothing was mailed)")
    assert copy.err.count(warning) == 1

    status = project.cli("status", now=LATER)
    line = next(x for x in status.out.splitlines() if x.startswith("Last send:"))
    assert line.endswith(": 1 written to state/outbox/ (transport = outbox: nothing was mailed)"), line


def test_an_smtp_transport_still_says_sent(project: Project) -> None:
    """No warning and the plain wording once delivery.transport = "smtp" (the server refuses here)."""
    project.configure('[delivery]\ntransport = "smtp"\n\n[smtp]\nhost = "127.0.0.1"\nport = 9\ntimeout = 1\n')
    with_articles(project)
    copy = project.cli("digest", "--to", "editor@example.net", now=LATER)
    assert "smtp.host is set" not in copy.err and "outbox" not in copy.out + copy.err
