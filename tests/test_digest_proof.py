"""`digest --to ADDRESS`: a test of the mail path that always has something to send, says it is a
test, and whose "view in your browser" link leads to a page that is really there."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

from tests.conftest import NOW, Project
from tests.support.digests import markdown

LATER = NOW + timedelta(minutes=1)
BASE = "https://news.example.org/"


def _outbox(project: Project) -> list[EmailMessage]:
    folder = project.state / "outbox" / "new"
    files = sorted(folder.iterdir(), key=lambda p: p.stat().st_mtime_ns) if folder.exists() else []
    return [
        email.message_from_bytes(p.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
        for p in files
    ]


def _web_link(message: EmailMessage) -> Path:
    """The digest page the HTML part links to, as a path under feeds/."""
    body = message.get_body(("html",))
    assert body is not None
    links = set(re.findall(r'href="' + re.escape(BASE) + r'(digests/[^"]+\.html)"', body.get_content()))
    pages = {link for link in links if link != "digests/index.html"}
    assert len(pages) == 1, links
    return Path(pages.pop())


def _articles(project: Project, *titles: str) -> None:
    for n, title in enumerate(titles):
        project.seed(f"a{n}.md", markdown(title, f"2025-02-{10 + n:02d}", f"The story of {title}."))
    assert project.cli("build").code == 0


def test_with_new_articles_it_sends_the_next_digest_marked_as_a_test_with_a_working_link(
    project: Project,
) -> None:
    _articles(project, "Harbour reopens", "Council budget")
    result = project.cli("digest", "--to", "Editor@Example.NET", "--backfill", "5", now=LATER)
    assert result.code == 0, result.err
    assert result.out.startswith(
        "Wrote a test copy of the next digest (2 articles) for Editor@Example.NET to state/outbox/new/"
    )
    [message] = _outbox(project)
    assert str(message["Subject"]).startswith("[Test] ")
    page = project.feeds / _web_link(message)
    assert page.name == "test-copy.html" and "Harbour reopens" in page.read_text(encoding="utf-8")
    # Nothing recorded: the real digest still goes out, at its own address, and the archive
    # index does not list the test page.
    assert project.cli("digest", "--send", "--backfill", "5", now=LATER).code == 0
    assert "test-copy" not in (project.feeds / "digests" / "index.html").read_text(encoding="utf-8")


def test_with_nothing_new_it_sends_the_latest_digest_whose_page_is_in_place(project: Project) -> None:
    _articles(project, "Harbour reopens")
    assert project.cli("subscribers", "add", "ana@example.com").code == 0
    assert project.cli("digest", "--send", "--backfill", "1", now=LATER).code == 0
    sent = _outbox(project)[0]
    result = project.cli("digest", "--to", "editor@example.net", now=LATER + timedelta(minutes=1))
    assert result.code == 0, result.err
    digest_id = _web_link(sent).stem
    assert f"of the latest digest, {digest_id}" in result.out
    test = _outbox(project)[-1]
    assert str(test["Subject"]) == f"[Test] {sent['Subject']}"
    assert _web_link(test) == _web_link(sent)
    assert (project.feeds / _web_link(test)).is_file()


def test_before_any_digest_it_sends_a_sample_of_the_latest_articles(project: Project) -> None:
    """A first run without backfill has nothing new to send; the test still shows something."""
    _articles(project, *(f"Story {n}" for n in range(7)))
    assert project.cli("digest", "--send", now=LATER).code == 0  # baseline only, nothing sent
    result = project.cli("digest", "--to", "editor@example.net", now=LATER)
    assert result.code == 0, result.err
    assert "of a sample of the 5 latest articles" in result.out
    [message] = _outbox(project)
    page = project.feeds / _web_link(message)
    text = page.read_text(encoding="utf-8")
    assert "Story 6" in text and "Story 2" in text and "Story 1" not in text


def test_with_nothing_published_it_is_one_error_line(project: Project) -> None:
    assert project.cli("build").code == 0
    result = project.cli("digest", "--to", "editor@example.net", now=LATER)
    assert result.code == 1
    assert result.err == "Error: no digest to send: nothing is published yet (run `publisher build` first)\n"
    assert _outbox(project) == []


def test_no_test_goes_out_when_its_page_cannot_be_written(project: Project) -> None:
    """A dead link is a failed test: the page is written first, and a failure sends nothing."""
    _articles(project, "Harbour reopens")
    (project.feeds / "digests").mkdir(exist_ok=True)
    (project.feeds / "digests" / "test-copy.html").mkdir()  # a folder where the page must go
    result = project.cli("digest", "--to", "editor@example.net", "--backfill", "1", now=LATER)
    assert result.code == 1 and result.err.startswith("Error: ") and "test-copy.html" in result.err
    assert _outbox(project) == []
