"""Before a digest is recorded or sent (`digest --send`, the daemon's send, `digest --to`), its
parts as a reader gets them must each carry the reader's own unsubscribe URL (a link, in the HTML)
and the postal address. An operator's override template that drops one, or alters a per-reader
placeholder so that delivery cannot fill it in, is refused with one line naming the template,
and nothing is recorded or sent (CAN-SPAM, RFC 8058). The server's confirmation and welcome
messages must carry their link the same way."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from publisher import BUNDLED_TEMPLATES, pipeline
from publisher.clock import FixedClock
from publisher.errors import DeliveryError, OutputError
from tests.conftest import NOW, Project
from tests.support.digests import markdown
from tests.test_daemon import Daemon
from tests.test_daemon import daemons as daemons  # the fixture
from tests.test_daemon_digest import JUST_BEFORE

LATER = NOW + timedelta(minutes=1)
HTML = "digest.html.j2"
TEXT = "digest.txt.j2"
LINK = 'a link to the reader\'s unsubscribe URL (<a href="{{ unsubscribe_url }}">)'
URL = "the reader's unsubscribe URL ({{ unsubscribe_url }})"
POSTAL = "the postal address ({{ postal_address }})"
CHANGED = (
    "a per-reader value the template changed with a filter or a slice, which delivery cannot fill in "
    "(write {{ unsubscribe_url }} and {{ subscriber_name }} as they are)"
)
END = (
    "; refusing to record or send a digest without them (put it back in the override, or delete the "
    "override to use the bundled template)"
)


def bundled(name: str) -> str:
    return (BUNDLED_TEMPLATES / name).read_text(encoding="utf-8")


def replaced(name: str, old: str, new: str) -> str:
    text = bundled(name)
    assert old in text, old
    return text.replace(old, new)


# (template, its override's text, what the refusal says is missing)
BROKEN = {
    "html-no-unsubscribe-link": (
        HTML,
        replaced(HTML, '<a href="{{ unsubscribe_url }}">Unsubscribe</a> · ', ""),
        [LINK],
    ),
    "html-url-as-text-only": (
        HTML,
        replaced(
            HTML, '<a href="{{ unsubscribe_url }}">Unsubscribe</a>', "Unsubscribe: {{ unsubscribe_url }}"
        ),
        [LINK],
    ),
    "html-no-postal-address": (HTML, replaced(HTML, "<p>{{ postal_address }}</p>", ""), [POSTAL]),
    "html-url-filtered": (
        HTML,
        replaced(HTML, 'href="{{ unsubscribe_url }}"', 'href="{{ unsubscribe_url|upper }}"'),
        [LINK, CHANGED],
    ),
    "html-name-filtered": (
        HTML,
        replaced(HTML, '<td class="footer">', '<td class="footer">Dear {{ subscriber_name|title }},'),
        [CHANGED],
    ),
    "text-no-unsubscribe": (TEXT, replaced(TEXT, "{{ unsubscribe_url }}\n", ""), [URL]),
    "text-url-cut": (
        TEXT,
        replaced(TEXT, "{{ unsubscribe_url }}\n", "{{ unsubscribe_url[:40] }}\n"),
        [URL],
    ),
    "text-no-postal-address": (TEXT, replaced(TEXT, "{{ postal_address }}\n", ""), [POSTAL]),
}


def message(page: Path, name: str, missing: list[str]) -> str:
    part = "HTML" if name == HTML else "text"
    return f"template {page}: the digest's {part} part lacks {' and '.join(missing)}{END}"


@pytest.fixture
def site(project: Project) -> Project:
    project.seed("one.md", markdown("Talks resume in Geneva", "2025-02-27"))
    assert project.cli("build").code == 0
    assert project.cli("subscribers", "add", "ana@example.com").code == 0
    return project


def override(project: Project, name: str, text: str) -> Path:
    folder = project.root / "templates"
    folder.mkdir(exist_ok=True)
    page = folder / name
    page.write_text(text, encoding="utf-8")
    return page


def digests_recorded(project: Project) -> int:
    conn = sqlite3.connect(project.settings().db_path)
    try:
        return int(conn.execute("SELECT count(*) FROM digests").fetchone()[0])
    finally:
        conn.close()


def sent(project: Project) -> list[Path]:
    return sorted((project.state / "outbox").rglob("*")) if (project.state / "outbox").exists() else []


@pytest.mark.parametrize("case", list(BROKEN))
def test_send_refuses_a_template_that_drops_what_every_digest_carries(site: Project, case: str) -> None:
    name, text, missing = BROKEN[case]
    page = override(site, name, text)
    result = site.cli("digest", "--send", "--backfill", "1", now=LATER)
    assert (result.code, result.err) == (1, f"Error: {message(page, name, missing)}\n")
    assert digests_recorded(site) == 0 and not [p for p in sent(site) if p.is_file()]
    assert not (site.feeds / "digests").exists() or not list((site.feeds / "digests").glob("d-*.html"))
    test_copy = site.cli("digest", "--to", "editor@example.org", "--backfill", "1", now=LATER)
    assert (test_copy.code, test_copy.err) == (1, f"Error: {message(page, name, missing)}\n")
    assert not [p for p in sent(site) if p.is_file()]
    # The preview still renders (to find what is wrong), and says it.
    preview = site.cli("digest", "--preview", "--backfill", "1", now=LATER)
    assert preview.code == 0 and message(page, name, missing).split(";")[0] in preview.err
    page.unlink()
    again = site.cli("digest", "--send", "--backfill", "1", now=LATER)
    assert again.code == 0 and "outbox/ 1, failed 0" in again.out, again.err


def test_both_parts_broken_names_both_templates(site: Project) -> None:
    html = override(site, HTML, BROKEN["html-no-postal-address"][1])
    text = override(site, TEXT, BROKEN["text-no-unsubscribe"][1])
    result = site.cli("digest", "--send", "--backfill", "1", now=LATER)
    assert result.code == 1 and result.err.count("\n") == 1
    assert (
        f"template {html}: the digest's HTML part lacks {POSTAL}; template {text}: the digest's text"
        in result.err
    )


def test_the_daemons_send_refuses_too(site: Project) -> None:
    """The daemon's digest job calls pipeline.digest_send: the same refusal, nothing recorded."""
    page = override(site, TEXT, BROKEN["text-no-postal-address"][1])
    with pytest.raises(DeliveryError) as info:
        pipeline.digest_send(site.settings(), LATER, backfill=1)
    assert info.value.one_line() == message(page, TEXT, [POSTAL])
    assert digests_recorded(site) == 0


def test_the_daemon_logs_the_refusal_and_sends_nothing(
    project: Project, daemons: Callable[..., Daemon]
) -> None:
    """`publisher run` at the digest's slot: one line in the log, nothing recorded, nothing sent,
    and the daemon keeps running."""
    project.configure('[daemon]\nsettle = 0.1\n\n[digest]\nschedule = "0 8 * * 1"\nbackfill = 10\n')
    project.seed("one.txt", "date 2025-03-01 The first story of the week.\n")
    assert project.cli("subscribers", "add", "reader@example.org", now=JUST_BEFORE).code == 0
    page = override(project, TEXT, BROKEN["text-no-postal-address"][1])
    daemon = daemons(now=JUST_BEFORE)
    daemon.wait_log(f"ERROR daemon: digest failed: {message(page, TEXT, [POSTAL])}")
    assert "Traceback" not in daemon.log
    assert daemon.stop() == 0
    assert digests_recorded(project) == 0 and not [p for p in sent(project) if p.is_file()]


def test_an_override_that_keeps_them_in_its_own_words_is_sent(site: Project) -> None:
    override(
        site,
        HTML,
        replaced(HTML, ">Unsubscribe</a>", ">Stop these emails</a>").replace(
            "<p>{{ postal_address }}</p>", "<address>Write to us: {{ postal_address }}</address>"
        ),
    )
    override(site, TEXT, replaced(TEXT, "Unsubscribe with one click:", "To stop these emails:"))
    result = site.cli("digest", "--send", "--backfill", "1", now=LATER)
    assert result.code == 0 and "outbox/ 1, failed 0" in result.out, result.err


# --- the server's two messages ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "old", "config", "missing"),
    [
        ("confirm_email.txt.j2", "{{ link }}", "", "its confirmation link ({{ link }})"),
        (
            "welcome_email.txt.j2",
            "{{ unsubscribe }}",
            "[serve]\nwelcome = true\n",
            "the reader's unsubscribe URL ({{ unsubscribe }})",
        ),
    ],
)
def test_serve_refuses_a_message_template_without_its_link(
    site: Project, name: str, old: str, config: str, missing: str
) -> None:
    from publisher.server import create_app

    if config:
        site.configure(config)
    page = override(site, name, replaced(name, old, "(the link)"))
    with pytest.raises(OutputError) as info:
        create_app(site.settings(), FixedClock(NOW))
    assert info.value.one_line() == (
        f"template {page}: the message lacks {missing}, so it cannot do its job "
        "(put it back in the override, or delete the override to use the bundled template)"
    )
    page.write_text(replaced(name, old, "Here: " + old[:-3] + "|trim }}"), encoding="utf-8")
    create_app(site.settings(), FixedClock(NOW))  # kept, in the operator's own words: starts


def test_a_long_postal_address_wrapped_in_the_text_part_is_found(site: Project) -> None:
    """The text part wraps the address at 78 columns, breaking a word longer than a line."""
    site.configure(
        '[digest]\npostal_address = "Test Gazette, ' + "Harbourside" * 9 + ' Road 1, 75001 Paris"\n'
    )
    result = site.cli("digest", "--send", "--backfill", "1", now=LATER)
    assert result.code == 0 and "outbox/ 1, failed 0" in result.out, result.err


@pytest.mark.parametrize(
    "layout",
    [
        "<p>{{ postal_address|replace(', ', '<br>'|safe) }}</p>",
        "<p>{% for line in postal_address.split(', ') %}{{ line }}<br>{% endfor %}</p>",
    ],
)
def test_a_postal_address_laid_out_over_lines_is_found(site: Project, layout: str) -> None:
    """docs/digest.md promises any layout: its commas turned into line breaks still count."""
    override(site, HTML, replaced(HTML, "<p>{{ postal_address }}</p>", layout))
    result = site.cli("digest", "--send", "--backfill", "1", now=LATER)
    assert result.code == 0 and "outbox/ 1, failed 0" in result.out, result.err
