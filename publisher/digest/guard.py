"""What every digest must carry before it is recorded or sent, checked on the mail parts as a
reader gets them, since the templates may be the operator's overrides: in the HTML part a link
to the reader's own one-click unsubscribe URL, in the text part that URL, and in both the postal
address (CAN-SPAM asks for both in every commercial mailing; RFC 8058's link must be the
reader's own).

The parts are checked personalised with a sample reader, so a template that drops
`unsubscribe_url`, or changes a per-reader placeholder so that delivery can no longer find and
replace it (`|upper`, `|truncate`, `|urlencode`, `|title` on `subscriber_name`), is caught: the
reader's URL is then missing, or what is left of the placeholder's nonce shows.
"""

from __future__ import annotations

from html.parser import HTMLParser

from publisher.digest import compose
from publisher.render import Templates

# The sample reader's unsubscribe token (not a secret): its URL differs from any real one.
SAMPLE_TOKEN = "digest-check"  # noqa: S105
SAMPLE_NAME = "Sam Reader"
HINT = "put it back in the override, or delete the override to use the bundled template"

_LINK = 'a link to the reader\'s unsubscribe URL (<a href="{{ unsubscribe_url }}">)'
_URL = "the reader's unsubscribe URL ({{ unsubscribe_url }})"
_POSTAL = "the postal address ({{ postal_address }})"
_CHANGED = (
    "a per-reader value the template changed with a filter or a slice, which delivery cannot fill in "
    "(write {{ unsubscribe_url }} and {{ subscriber_name }} as they are)"
)


class _Reader(HTMLParser):
    """The link targets and the text of an HTML document (entities decoded)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs.update(value.strip() for name, value in attrs if name == "href" and value)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _flat(text: str) -> str:
    """Only the letters and digits: the text part wraps the address at 78 columns (inside a long
    word too), and an override may lay it out over lines, its commas turned into <br>."""
    return "".join(ch for ch in text if ch.isalnum())


def _changed(part: str, nonce: str) -> bool:
    """Whether any of a placeholder's nonce survives (in any case): the placeholder was altered."""
    lowered = part.lower()
    return bool(nonce) and any(piece in lowered for piece in (nonce, nonce[:8], nonce[-8:]))


def html_missing(html: str, url: str, postal: str, nonce: str) -> list[str]:
    reader = _Reader()
    reader.feed(html)
    reader.close()
    missing = [] if url in reader.hrefs else [_LINK]
    if postal and _flat(postal) not in _flat("".join(reader.text)):
        missing.append(_POSTAL)
    return missing + ([_CHANGED] if _changed(html, nonce) else [])


def text_missing(text: str, url: str, postal: str, nonce: str) -> list[str]:
    missing = [] if url in text else [_URL]
    if postal and _flat(postal) not in _flat(text):
        missing.append(_POSTAL)
    return missing + ([_CHANGED] if _changed(text, nonce) else [])


def problem(templates: Templates, html: str, text: str, url: str, postal: str, nonce: str) -> str | None:
    """One line naming each template whose part lacks what it must carry, or None.

    `html` and `text` are the parts personalised for a sample reader whose unsubscribe URL is
    `url`; `postal` is the address the footer must show (empty: not checked, as for a preview)."""
    found = []
    for name, part, missing in (
        (compose.HTML_TEMPLATE, "HTML", html_missing(html, url, postal, nonce)),
        (compose.TEXT_TEMPLATE, "text", text_missing(text, url, postal, nonce)),
    ):
        if missing:
            found.append(
                f"template {templates.origin(name)}: the digest's {part} part lacks {' and '.join(missing)}"
            )
    if not found:
        return None
    return "; ".join(found) + "; refusing to record or send a digest without them"
