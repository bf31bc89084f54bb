"""What a subscriber sees in the digest: golden HTML and text parts, plus structural checks that a
wrong golden file cannot hide (table layout, inlined CSS, absolute links, wrapped text, size cap).

Regenerate the golden files with PUBLISHER_REGEN_GOLDEN=1 after a deliberate change, and read the diff.
"""

from __future__ import annotations

import difflib
import email.policy
import os
import re
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path

import pytest

from publisher import digest, urls
from publisher.digest import RenderedDigest
from publisher.digest.compose import encoded_size
from publisher.store import subscribers as store_subscribers
from tests.conftest import NOW, Project
from tests.support.digests import build, connection, markdown

GOLDEN = Path(__file__).parent / "golden" / "digest"
LIVE = NOW - timedelta(days=1)
UNSUBSCRIBE = "https://news.example.org/unsubscribe/AAAAtokenAAAA"
URL_LINE = re.compile(r"^https?://\S+$")

ARTICLES = {
    "cafe.md": markdown(
        "Café culture returns to the Île de la Cité",
        "2025-02-27",
        "Owners of the small cafés along the quays say that the winter was long, but that the "
        "first warm week brought back the regulars, the tourists and the pigeons alike.",
        author="Zoë Ångström",
    ),
    "inject.md": markdown(
        "Breaking\\r\\nBcc: victim@example.org <script>alert(1)</script> & more",
        "2025-02-26",
        "A title that tries to break out of a header and into the page: it must stay text.",
    ),
    "council.md": markdown(
        "Council approves the new tram line after a decade of debate",
        "2025-02-25",
        "The vote was close. " * 30,
    ),
}


def _site(project: Project, articles: dict[str, str] = ARTICLES, extra: str = "") -> None:
    project.configure(
        """
        [digest]
        postal_address = "Test Gazette, 1 Rue de l'Exemple, 75001 Paris"
        """
        + extra
    )
    for name, text in articles.items():
        project.seed(name, text)
    build(project, LIVE)


def _prepare(project: Project, backfill: int = 100) -> RenderedDigest:
    with connection(project.settings().db_path) as conn:
        rendered = digest.prepare_next(conn, project.settings(), NOW, backfill=backfill)
    assert rendered is not None
    return rendered


def _check_golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if os.environ.get("PUBLISHER_REGEN_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
    expected = path.read_text(encoding="utf-8")
    if actual != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True), actual.splitlines(keepends=True), str(path), "actual"
            )
        )
        pytest.fail(f"{name} differs from the golden file (PUBLISHER_REGEN_GOLDEN=1 to accept):\n{diff}")


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.tags.append((tag, found))
        for key in ("href", "src", "action", "background"):
            if found.get(key) is not None:
                self.urls.append(str(found[key]))


def _parse(html: str) -> _Links:
    parser = _Links()
    parser.feed(html)
    return parser


def test_golden_html_and_text(project: Project) -> None:
    """The parts one subscriber gets match the stored golden files."""
    _site(project)
    rendered = _prepare(project)
    html, text = digest.personalise(rendered, UNSUBSCRIBE, "Zoë")
    _check_golden("digest.html", html)
    _check_golden("digest.txt", text)
    _check_golden("subject.txt", rendered.subject + "\n")
    web = project.settings().feeds_dir / "digests" / f"{rendered.digest_id}.html"
    _check_golden("web.html", web.read_text(encoding="utf-8"))


def test_personalise_escapes_values_in_html_only(project: Project) -> None:
    """The reference substitution: HTML-escaped in the HTML part, verbatim in the text part."""
    _site(project)
    rendered = _prepare(project)
    odd = "https://news.example.org/unsubscribe/a&b"
    html, text = digest.personalise(rendered, odd, "Eve")
    assert 'href="https://news.example.org/unsubscribe/a&amp;b"' in html
    assert "\nhttps://news.example.org/unsubscribe/a&b\n" in text
    assert rendered.unsubscribe_placeholder not in html + text


def test_html_survives_mail_clients(project: Project) -> None:
    """One fluid column (100 %, at most 600 px; a fixed 600 px table only for Outlook), CSS inlined,
    media queries and dark rules in a kept <style>, no script or stylesheet, absolute URLs."""
    _site(project)
    rendered = _prepare(project)
    html, _ = digest.personalise(rendered, UNSUBSCRIBE, "")
    # An aria-label may hold "<script>" as text (css-inline does not escape "<" in attributes).
    assert not any(tag in ("script", "link", "iframe") for tag, _ in _parse(html).tags)
    assert "javascript:" not in html.lower()
    kept = re.findall(r'<style data-css-inline="ignore">(.*?)</style>', html, re.S)
    assert len(kept) == 1 and "@media (prefers-color-scheme: dark)" in kept[0] and "[data-ogsc]" in kept[0]
    assert "/*" not in kept[0]  # comments are not mailed
    assert '<meta name="color-scheme" content="light dark">' in html
    parsed = _parse(html)
    tables = [attrs for tag, attrs in parsed.tags if tag == "table"]
    main = [a for a in tables if a.get("class") == "main"]
    assert len(main) == 1 and main[0].get("width") == "100%"
    assert "max-width: 600px" in (main[0].get("style") or "") and "width: 100%" in (
        main[0].get("style") or ""
    )
    assert 'width="600"' not in re.sub(r"<!--\[if mso\]>.*?<!\[endif\]-->", "", html, flags=re.S)
    cells = [attrs for tag, attrs in parsed.tags if tag == "td"]
    assert cells and all(a.get("style") for a in cells[1:]), "every content cell carries inlined style"
    assert all(a.get("style") for tag, a in parsed.tags if tag == "a")
    assert parsed.urls and all(u.startswith("https://") for u in parsed.urls), parsed.urls
    with connection(project.settings().db_path) as conn:
        slugs = [str(r[0]) for r in conn.execute("SELECT slug FROM articles")]
    for slug in slugs:
        assert urls.article_url(project.settings().site, slug) in parsed.urls
    assert UNSUBSCRIBE in parsed.urls and rendered.web_url in parsed.urls
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in html
    assert "Test Gazette, 1 Rue de l'Exemple, 75001 Paris" in html.replace("&#39;", "'")


def test_text_part_is_wrapped_with_numbered_links(project: Project) -> None:
    """Lines ≤ 78 (only a bare URL may be longer), every [n] points at the numbered list."""
    _site(project)
    _, text = digest.personalise(_prepare(project), UNSUBSCRIBE, "")
    for line in text.splitlines():
        assert len(line) <= 78 or URL_LINE.match(line), line
    body, _, listing = text.partition("\nLinks:\n")
    numbers = {int(n) for n in re.findall(r"\[(\d+)\]", body)}
    listed = re.findall(r"^\[(\d+)\](?: (\S+))?$", listing, re.M)
    assert [int(n) for n, _ in listed] == list(range(1, len(listed) + 1))
    assert numbers == {int(n) for n, _ in listed}
    assert "Council approves the new tram line" in text
    assert "<script>alert(1)</script> & more" in text  # text is text: nothing escaped
    assert UNSUBSCRIBE + "\n" in text
    assert "\r" not in text


def test_subject_preheader_and_names_never_carry_line_breaks(project: Project) -> None:
    """A title with CR/LF (or U+2028) in the subject template gives a one-line subject."""
    evil = {
        "evil.md": markdown("Ünïcode \\u2028 news\\r\\nBcc: victim@example.org\\n\\rX-Evil: 1", "2025-02-28")
    }
    _site(project, evil, '\n        subject = "{{ titles[0] }}\\n{{ site.title }} – {{ count }} new"\n')
    rendered = _prepare(project)
    for value in (rendered.subject, rendered.preheader):
        assert not re.search(r"[\r\n\u2028\u2029\x00-\x1f]", value), value
    assert rendered.subject == "Ünïcode news Bcc: victim@example.org X-Evil: 1 Test Gazette – 1 new"
    html, text = digest.personalise(rendered, UNSUBSCRIBE, "Eve\r\nBcc: x@example.org")
    assert "Eve\r\n" not in html + text


def test_default_subject_counts_articles(project: Project) -> None:
    _site(project)
    assert _prepare(project).subject == "Test Gazette: 3 new articles"


def test_subject_is_plain_text_not_html(project: Project) -> None:
    """Ampersands and angle brackets in titles reach the subject as they are, not as entities."""
    _site(project, extra='\n        subject = "{{ count }} & {{ titles[1] }}"\n')
    assert _prepare(project).subject == (
        "3 & Breaking Bcc: victim@example.org <script>alert(1)</script> & more"
    )


def test_placeholders_cannot_come_from_content(project: Project) -> None:
    """An article quoting the placeholder prefix is left alone; only the real placeholder is replaced."""
    sneaky = {
        "sneaky.md": markdown(
            f"Visit {digest.PLACEHOLDER_UNSUBSCRIBE}0123456789abcdef0123456789abcdef",
            "2025-02-28",
            f"Also {digest.PLACEHOLDER_NAME}0123456789abcdef0123456789abcdef here.",
        )
    }
    _site(project, sneaky)
    rendered = _prepare(project)
    assert len(rendered.nonce) == 32
    assert rendered.html.count(rendered.unsubscribe_placeholder) == 1
    assert rendered.text.count(rendered.unsubscribe_placeholder) == 1
    html, text = digest.personalise(rendered, UNSUBSCRIBE, "Anna")
    assert html.count(UNSUBSCRIBE) == 1 and text.count(UNSUBSCRIBE) == 1
    assert f"{digest.PLACEHOLDER_UNSUBSCRIBE}0123456789abcdef0123456789abcdef" in html
    assert rendered.nonce not in html + text
    assert rendered.placeholders == {
        "unsubscribe": rendered.unsubscribe_placeholder,
        "name": rendered.name_placeholder,
    }


def _message_size(rendered: RenderedDigest, html: str, text: str) -> int:
    """The whole message as the email package builds it: headers, both parts quoted-printable."""
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = "Test Gazette <news@news.example.org>"
    message["To"] = "Zoë Ångström <zoe@example.org>"
    message["Subject"] = rendered.subject
    message["Message-ID"] = f"<{rendered.digest_id}.0123456789abcdef01234567@news.example.org>"
    message["List-Id"] = "Test Gazette <digest.news.example.org>"
    message["List-Unsubscribe"] = f"<mailto:unsubscribe@news.example.org?subject=x>, <{UNSUBSCRIBE}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(text, cte="quoted-printable")
    message.add_alternative(html, subtype="html", cte="quoted-printable")
    return len(message.as_bytes())


def test_many_articles_stay_under_the_size_cap_with_an_overflow_list(project: Project) -> None:
    """Too many articles for 100 KB: the first ones in full, the rest by title with links."""
    many = {
        f"a{n:03}.md": markdown(
            f"Story number {n} about ünïcode things", "2025-02-20", f"Story {n}: words go here. " * 18
        )
        for n in range(160)
    }
    _site(project, many)
    rendered = _prepare(project, backfill=1000)
    settings = project.settings()
    html, text = digest.personalise(rendered, UNSUBSCRIBE, "Zoë")
    assert encoded_size(html) + encoded_size(text) <= settings.digest.max_bytes - 3_000
    assert (
        settings.digest.max_bytes - 10_000 < _message_size(rendered, html, text) <= settings.digest.max_bytes
    )
    assert len(rendered.article_ids) == 160
    parsed = _parse(html)
    full = html.count(">Read more</a>")
    assert 10 < full < 160
    assert "Also new (read them in the" in html and "Also new (read them in the web version" in text
    with connection(settings.db_path) as conn:
        slugs = [str(r[0]) for r in conn.execute("SELECT slug FROM articles")]
    for slug in slugs:  # every article is still linked: in full or in the overflow list
        assert urls.article_url(settings.site, slug) in parsed.urls
    for line in text.splitlines():
        assert len(line) <= 78 or URL_LINE.match(line), line
    web = (settings.feeds_dir / "digests" / f"{rendered.digest_id}.html").read_text(encoding="utf-8")
    assert web.count(">Read more</a>") == 160


def test_tiny_cap_counts_what_does_not_fit(project: Project) -> None:
    """With the smallest cap and many articles, even titles are cut: 'and N more' links the web version."""
    many = {
        f"b{n:03}.md": markdown(f"Headline {n} " + "long " * 12, "2025-02-20", f"Story {n}.")
        for n in range(150)
    }
    _site(project, many, "\n        max_bytes = 10000\n")
    rendered = _prepare(project, backfill=1000)
    html, text = digest.personalise(rendered, UNSUBSCRIBE, "")
    assert encoded_size(html) + encoded_size(text) <= 10_000 - 3_000
    assert _message_size(rendered, html, text) <= 10_000
    assert re.search(r">and \d+ more</a>", html)
    assert re.search(r"- and \d+ more \[\d+\]", text)


def test_web_version_and_index_have_no_personal_links(project: Project) -> None:
    _site(project)
    rendered = _prepare(project)
    folder = project.settings().feeds_dir / "digests"
    web = (folder / f"{rendered.digest_id}.html").read_text(encoding="utf-8")
    assert rendered.web_url == f"https://news.example.org/digests/{rendered.digest_id}.html"
    assert "unsubscribe" not in web.lower() and rendered.nonce not in web
    assert "<style" not in web and web.count(">Read more</a>") == 3
    index = (folder / "index.html").read_text(encoding="utf-8")
    assert f'href="{rendered.web_url}"' in index
    assert "Test Gazette: 3 new articles" in index and "3 articles" in index


def test_index_lists_every_digest_newest_first(project: Project) -> None:
    _site(project)
    first = _prepare(project)
    project.seed("later.md", markdown("A later story", "2025-03-02", "Later."))
    build(project, NOW + timedelta(days=1))
    with connection(project.settings().db_path) as conn:
        second = digest.prepare_next(conn, project.settings(), NOW + timedelta(days=2))
        assert second is not None
        digest.write_archive(conn, project.settings())
    index = (project.settings().feeds_dir / "digests" / "index.html").read_text(encoding="utf-8")
    assert index.index(second.web_url) < index.index(first.web_url)
    assert "Test Gazette: 1 new article<" in index and "1 March – 3 March 2025" in index


def test_recipient_links_carry_a_verifiable_token(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    from publisher import tokens

    monkeypatch.setenv("PUBLISHER_SECRET", "a-secret-for-the-digest-tests")
    project.configure("")
    settings = project.settings()
    with connection(settings.db_path) as conn:
        sub, _ = store_subscribers.add(conn, "anna@example.org", "Anna", NOW)
        https, mailto = digest.recipient_links(settings, sub)
        token = https.rsplit("/", 1)[1]
        assert https == f"https://news.example.org/unsubscribe/{token}"
        assert mailto == f"mailto:unsubscribe@news.example.org?subject=unsubscribe%20{token}"
        assert not set(https) & set("&=<>\"' ")
        lookup = lambda i: store_subscribers.token_secret(conn, i)  # noqa: E731
        assert tokens.verify(settings, token, "unsubscribe", datetime.now(UTC), lookup) == sub.id
