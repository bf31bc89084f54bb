"""Per-recipient message bytes: valid MIME that Python's email package parses without defects,
the headers the issue lists, placeholders filled per recipient, no header injection, a golden .eml."""

from __future__ import annotations

import email
import email.policy
import itertools
import os
import re
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from publisher.delivery.message import InvalidRecipient, MessageTemplate, Recipient, one_line

GOLDEN = Path(__file__).parent / "golden" / "eml"
DATE = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
UNSUB = "\x00UNSUBSCRIBE\x00"
NAME = "\x00NAME\x00"

TEXT = f"""Hello {NAME},

Test Gazette: 2 new articles

1. Zelenskyy meets allies in Kyiv
   https://news.example.org/articles/zelenskyy.html

Why you get this: you subscribed to Test Gazette.
Unsubscribe: {UNSUB}
"""
HTML = (
    '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
    '<meta name="color-scheme" content="light dark"></head><body style="margin:0">'
    + "".join(
        f'<table role="presentation" width="600"><tr><td style="font-family:Georgia,serif;color:#222">'
        f'<a href="https://news.example.org/articles/a{i}.html">Article «{i}» — café</a></td></tr></table>'
        for i in range(40)
    )
    + f'<p>Hi {NAME}</p><p><a href="{UNSUB}" style="color:#555">Unsubscribe</a></p></body></html>'
)


def template(subject: str = "Test Gazette: 2 new articles", **overrides: object) -> MessageTemplate:
    options: dict[str, object] = {
        "digest_id": "2025-03-01-7f3a",
        "subject": subject,
        "text": TEXT,
        "html_body": HTML,
        "from_name": "Test Gazette",
        "from_address": "news@news.example.org",
        "host": "news.example.org",
        "list_name": "Test Gazette",
        "date": DATE,
        "placeholders": {"unsubscribe": UNSUB, "name": NAME},
    }
    options.update(overrides)
    return MessageTemplate(**options)  # type: ignore[arg-type]


def recipient(email_address: str = "ana@example.com", name: str = "Ana") -> Recipient:
    token = "AbC-123_xyz.signature"
    return Recipient(
        email_address,
        name,
        f"https://news.example.org/unsubscribe?t={token}&s=1",
        f"mailto:unsubscribe@news.example.org?subject=unsubscribe%20{token}",
    )


def parse(data: bytes) -> EmailMessage:
    """Parse with the default policy and fail on any defect, in the message, a part or a header."""
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    for part in message.walk():
        assert part.defects == [], part.defects
        for key in part:
            assert part[key].defects == (), (key, part[key].defects)
    return message


def content(part: EmailMessage | None) -> str:
    """A text part's decoded content with CRLF line ends (as on the wire) read as LF."""
    assert part is not None
    text = part.get_content()
    assert isinstance(text, str)
    return text.replace("\r\n", "\n")


def long_lines(data: bytes, limit: int = 998) -> list[bytes]:
    """Lines over `limit` octets; under 998, lines holding a link are let be (a URL cannot fold)."""
    lines = [line for line in data.split(b"\r\n") if len(line) > limit]
    if limit >= 998:
        return lines
    return [line for line in lines if b"://" not in line and b"mailto:" not in line]


def test_message_is_multipart_alternative_text_first_html_last_utf8() -> None:
    """The structure the issue asks for, and both bodies decode to the substituted text."""
    message = parse(template().render(recipient()))
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in parts)
    assert all(p["Content-Transfer-Encoding"] == "quoted-printable" for p in parts)
    link = "https://news.example.org/unsubscribe?t=AbC-123_xyz.signature&s=1"
    assert content(parts[0]) == TEXT.replace(NAME, "Ana").replace(UNSUB, link)
    assert content(parts[1]) == HTML.replace(NAME, "Ana").replace(UNSUB, link.replace("&", "&amp;")) + "\n"


def test_headers_have_the_required_formats() -> None:
    """Date, From with display name, To, Subject, Message-ID on the site's domain, List-Id,
    List-Unsubscribe with both links in angle brackets, one-click, MIME-Version."""
    data = template().render(recipient())
    message = parse(data)
    assert message["Date"].datetime == DATE
    assert message["From"].addresses[0].display_name == "Test Gazette"
    assert message["From"].addresses[0].addr_spec == "news@news.example.org"
    assert str(message["To"]) == "Ana <ana@example.com>"
    assert message["Subject"] == "Test Gazette: 2 new articles"
    assert re.fullmatch(r"<2025-03-01-7f3a\.[0-9a-f]{24}@news\.example\.org>", message["Message-ID"])
    assert message["List-Id"] == "Test Gazette <digest.news.example.org>"
    assert re.fullmatch(
        r"<mailto:unsubscribe@news\.example\.org\?subject=unsubscribe%20[^>]+>, "
        r"<https://news\.example\.org/unsubscribe\?t=[^>]+>",
        " ".join(message["List-Unsubscribe"].split()),
    )
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["MIME-Version"] == "1.0"
    assert not long_lines(data, 78)


def test_message_id_is_stable_per_digest_and_recipient() -> None:
    """A resend after a crash carries the same Message-ID; other recipients and digests differ."""
    t = template()
    first = parse(t.render(recipient()))["Message-ID"]
    assert parse(template().render(recipient()))["Message-ID"] == first
    assert parse(t.render(recipient("bo@example.com")))["Message-ID"] != first
    assert parse(template(digest_id="2025-03-08-0000").render(recipient()))["Message-ID"] != first


@pytest.mark.parametrize(
    ("subject", "name"),
    [
        ("Tägliche Übersicht: 3 neue Artikel — «café»", "Zoë Ñandú-García"),
        ("日本語のニュース: 記事が3件あります" * 3, "山田 太郎"),
        ("Plain ASCII but very long " * 12, 'O\'Brien, "Pat" (editor)'),
        ("Emoji 📰 news", "🙂" * 40),
    ],
)
def test_non_ascii_subjects_and_names_are_encoded_and_round_trip(subject: str, name: str) -> None:
    """RFC 2047 encoded-words when needed; the parser gives back exactly the original text."""
    data = template(subject=subject).render(recipient(name=name))
    head = data.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()
    message = parse(data)
    assert message["Subject"] == " ".join(subject.split())
    assert same_name(message["To"].addresses[0].display_name, name)
    assert message["To"].addresses[0].addr_spec == "ana@example.com"
    assert not long_lines(data, 78)


@pytest.mark.parametrize(
    "evil",
    [
        "Eve\r\nBcc: victim@example.net",
        "Eve\nBcc: victim@example.net",
        "Eve\rBcc: victim@example.net",
        "Eve\r\n\r\n<html>injected body",
        "Eve\x00\x0b\x0c\u2028Bcc: victim@example.net",
    ],
)
def test_header_injection_in_names_and_subjects_is_neutralised(evil: str) -> None:
    """CR, LF and other control characters from a name or a title never start a header line."""
    data = template(subject=evil, from_name=evil, list_name=evil).render(recipient(name=evil))
    head = data.split(b"\r\n\r\n", 1)[0]
    assert not re.search(rb"^(Bcc|<html>)", head, re.MULTILINE | re.IGNORECASE)
    message = parse(data)
    assert message["Bcc"] is None
    assert "\n" not in message["Subject"] and "\r" not in message["Subject"]
    assert message["To"].addresses[0].addr_spec == "ana@example.com"
    assert same_name(message["To"].addresses[0].display_name, evil)
    assert len(list(message.iter_parts())) == 2


def test_addresses_and_links_that_cannot_go_in_a_header_are_refused_or_escaped() -> None:
    """A bad address is an InvalidRecipient (never sent); a link with spaces or brackets is escaped."""
    bad_addresses = ("ana@example.com\r\nBcc: x@y.z", "<ana@example.com>", "a b@x.org", "josé@example.com")
    for bad in bad_addresses:
        with pytest.raises(InvalidRecipient):
            template().render(recipient(bad))
    odd = Recipient("ana@example.com", "Ana", "https://x.example/u?t=a b>\r\nBcc: x", "mailto:u@x.example")
    message = parse(template().render(odd))
    assert message["Bcc"] is None
    assert "<https://x.example/u?t=a%20b%3E%20Bcc:%20x>" in " ".join(message["List-Unsubscribe"].split())


def test_no_line_exceeds_998_octets_even_with_one_huge_html_line() -> None:
    """Inlined HTML is often one line of tens of KB: quoted-printable keeps every line ≤ 76."""
    huge = "<p>" + "word " * 20_000 + f'<a href="{UNSUB}">x</a>' + "é" * 5000 + "</p>"
    long_url = "https://news.example.org/unsubscribe?t=" + "A" * 300
    who = Recipient("ana@example.com", "Ana", long_url, "mailto:u@news.example.org")
    data = template(html_body=huge).render(who)
    assert not long_lines(data, 998)
    body = data.split(b"\r\n\r\n", 1)[1]
    assert not long_lines(body, 76)
    assert content(parse(data).get_body(("html",))) == huge.replace(UNSUB, long_url) + "\n"


def test_placeholders_at_the_edges_and_side_by_side() -> None:
    """Substitution is exact wherever a placeholder stands: start, end, adjacent, after spaces."""
    text = f"{UNSUB}{NAME} \t{UNSUB}\n.\n{NAME}"
    message = parse(template(text=text).render(recipient(name="Zoë")))
    link = recipient().unsubscribe_url
    assert content(message.get_body(("plain",))) == f"{link}Zoë \t{link}\n.\nZoë\n"


@settings(max_examples=60, deadline=None)
@given(
    name=st.text(max_size=80),
    subject=st.text(min_size=1, max_size=200),
)
def test_any_name_and_subject_parse_without_defects(name: str, subject: str) -> None:
    """Whatever a subscriber types as a name or an author as a title, the message stays valid."""
    data = template(subject=subject).render(recipient(name=name))
    message = parse(data)
    assert message["To"].addresses[0].addr_spec == "ana@example.com"
    assert same_name(message["To"].addresses[0].display_name, name)
    assert message["Subject"] == one_line(subject)
    assert not long_lines(data, 998)


def same_name(parsed: str, expected: str) -> bool:
    """Exact, except that Python's parser puts a space between the encoded-words of a long name
    (RFC 2047 says readers drop white space between adjacent encoded-words; Python's own
    generator folds the same way), so for those the visible characters are compared."""
    expected = one_line(expected)
    if expected.isascii() or len(expected.encode()) <= 45:
        return parsed == expected
    return "".join(parsed.split()) == "".join(expected.split())


def scrub(data: bytes) -> bytes:
    """Volatile headers out: Date, Message-ID and the MIME boundary."""
    text = data.decode("ascii")
    boundary = re.search(r'boundary="([^"]+)"', text)
    assert boundary is not None
    text = text.replace(boundary.group(1), "BOUNDARY")
    text = re.sub(r"(?m)^Date: .*$", "Date: DATE", text)
    text = re.sub(r"(?m)^Message-ID: .*$", "Message-ID: MESSAGE-ID", text)
    return text.encode("ascii")


def check_golden(name: str, data: bytes) -> None:
    """Compare with tests/golden/eml/NAME; PUBLISHER_REGEN_GOLDEN=1 rewrites it."""
    path = GOLDEN / name
    scrubbed = scrub(data)
    if os.environ.get("PUBLISHER_REGEN_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(scrubbed)
    assert path.exists(), f"{path} missing: run with PUBLISHER_REGEN_GOLDEN=1"
    expected = path.read_bytes()
    if scrubbed != expected:
        import difflib

        diff = "\n".join(
            difflib.unified_diff(
                expected.decode().splitlines(), scrubbed.decode().splitlines(), "golden", "now", lineterm=""
            )
        )
        pytest.fail(f"{name} differs from the golden file:\n{diff[:4000]}")


def test_golden_eml() -> None:
    """The whole message a subscriber receives, byte for byte (volatile headers scrubbed)."""
    data = template(subject="Test Gazette: 2 new articles — café").render(recipient(name="Zoë O'Brien"))
    parse(data)
    check_golden("message.eml", data)


def test_a_space_between_two_encoded_words_survives() -> None:
    """The email package's folding can put a space between two encoded-words, where readers drop
    it (RFC 2047 section 6.2): such a subject is encoded so the space stays (found by hypothesis)."""
    subject = "0000 0000000000000000¡¡¡¡¡¡¡¡¡ࠀ ¡"
    data = template(subject=subject).render(recipient())
    assert parse(data)["Subject"] == subject
    head = data.split(b"\r\n\r\n", 1)[0].decode("ascii")
    folded = head.split("\r\nSubject: ", 1)[1].split("\r\n")
    lines = ["Subject: " + folded[0], *itertools.takewhile(lambda line: line.startswith(" "), folded[1:])]
    assert len(lines) > 1 and all(len(line) <= 78 for line in lines)
