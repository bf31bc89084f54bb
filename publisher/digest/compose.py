"""Rendering one digest: the HTML part (CSS inlined, size-capped), the text part, the web version
and the web versions' stylesheet.

The only module that imports css_inline. Everything here works from `Content` (plain values the
templates need) and never touches the database or the clock. Per-recipient values are not known
here: the mail parts hold placeholder strings (see `Placeholders`) that are substituted later.
"""

from __future__ import annotations

import binascii
import re
import textwrap
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import css_inline

from publisher.render import Templates

HTML_TEMPLATE = "digest.html.j2"
TEXT_TEMPLATE = "digest.txt.j2"
WIDTH = 78
# Room left in `digest.max_bytes` for the headers, the MIME scaffolding and what personalisation
# adds (an unsubscribe URL longer than its placeholder, a name): far more than they take.
HEADER_RESERVE = 3_000

# The design's rules go into style attributes and leave their <style> element; the element marked
# data-css-inline="ignore" (media queries, dark mode, Outlook.com's [data-ogsc]) stays as it is, for
# the clients that honour a <style> element.
_INLINER = css_inline.CSSInliner(
    inline_style_tags=True,
    keep_style_tags=True,
    remove_inlined_selectors=True,
    keep_link_tags=False,
    load_remote_stylesheets=False,
)
# The stylesheet the web versions link (feeds/digests/digest.css), made of these templates.
DESIGN_CSS = "digest.css"  # inlined in the mail
ADAPT_CSS = "digest_adapt.css"  # a <style> element kept in the mail
STYLESHEET = "digest.css"
STYLESHEET_PARTS = (DESIGN_CSS, ADAPT_CSS, "digest_archive.css")


@dataclass(frozen=True, slots=True)
class Picture:
    """An article's picture as the digest shows it: absolute URL, the writer's alt text, and a
    size no wider than the column (mail programs that ignore CSS use the attributes)."""

    url: str
    alt: str
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class Item:
    """One article as the digest shows it (all text plain, all URLs absolute)."""

    title: str
    url: str
    date: str
    author: str
    summary: str
    picture: Picture | None = None


@dataclass(frozen=True, slots=True)
class Content:
    """Everything a digest shows, in order."""

    lang: str
    site_title: str
    site_url: str
    subject: str
    preheader: str
    period_label: str
    items: tuple[Item, ...]
    web_url: str
    reason: str
    web_reason: str
    postal_address: str


@dataclass(frozen=True, slots=True)
class Placeholders:
    """Strings standing for per-recipient values in the mail parts."""

    unsubscribe: str
    name: str


@dataclass(frozen=True, slots=True)
class Parts:
    html: str
    text: str
    shown: int  # articles shown in full; the rest are listed by title (or counted)


def one_line(text: str, limit: int | None = None) -> str:
    """No control characters, no line breaks, single spaces; cut at a word with … past `limit`."""
    cleaned = "".join(" " if unicodedata.category(ch)[0] in "CZ" else ch for ch in text)
    flat = " ".join(cleaned.split())
    if limit is not None and len(flat) > limit:
        cut = flat[: limit - 1]
        flat = (cut.rsplit(" ", 1)[0] if " " in cut else cut).rstrip(" ,;:.-") + "…"
    return flat


def encoded_size(text: str) -> int:
    """Size of `text` as a quoted-printable body part with CRLF line ends, as the mailer sends it."""
    return len(binascii.b2a_qp(text.encode("utf-8"))) + text.count("\n")


def render_mail(templates: Templates, content: Content, ph: Placeholders, max_bytes: int) -> Parts:
    """Both mail parts, with as many articles in full as fit in `max_bytes` (the rest by title)."""
    budget = max_bytes - HEADER_RESERVE
    total = len(content.items)

    def attempt(shown: int, listed: int) -> Parts:
        parts = Parts(
            html=_mail_html(templates, content, ph, shown, listed),
            text=_text(templates, content, ph.unsubscribe, ph.name, shown, listed),
            shown=shown,
        )
        return parts

    def fits(parts: Parts) -> bool:
        return encoded_size(parts.html) + encoded_size(parts.text) <= budget

    whole = attempt(total, 0)
    if fits(whole):
        return whole
    # Most articles in full with every other one listed by title; binary search, as each try
    # costs one render and one inlining.
    best = _largest(lambda k: fits(attempt(k, total - k)), 0, total - 1)
    if best is not None:
        return attempt(best, total - best)
    # Even the titles alone are too many: list as many as fit, count the rest.
    listed = _largest(lambda m: fits(attempt(0, m)), 0, total)
    return attempt(0, listed or 0)


def _largest(ok: Any, low: int, high: int) -> int | None:
    """The largest n in [low, high] with ok(n), assuming ok is monotone (true, then false)."""
    if high < low or not ok(low):
        return None
    while low < high:
        mid = (low + high + 1) // 2
        if ok(mid):
            low = mid
        else:
            high = mid - 1
    return low


def render_web(templates: Templates, content: Content) -> str:
    """The web version: every article in full, no personal links, no style attribute (it links
    `STYLESHEET`, beside it in feeds/digests/, so it looks as designed under a strict CSP)."""
    ctx = _html_context(content, len(content.items), 0)
    ctx.update(
        web=True,
        stylesheet=STYLESHEET,
        design_css=None,
        adapt_css=None,
        unsubscribe_url=None,
        subscriber_name=None,
        reason=content.web_reason,
    )
    return templates.render(HTML_TEMPLATE, **ctx)


def stylesheet(templates: Templates) -> str:
    """feeds/digests/digest.css: the digest's design, its narrow-screen and dark rules, the index's."""
    return "\n".join(templates.render(name).strip("\n") for name in STYLESHEET_PARTS) + "\n"


def _html_context(content: Content, shown: int, listed: int) -> dict[str, Any]:
    rest = content.items[shown:]
    return {
        "lang": content.lang,
        "subject": content.subject,
        "preheader": content.preheader,
        "site": {"title": content.site_title, "url": content.site_url},
        "period_label": content.period_label,
        "articles": content.items[:shown],
        "overflow": rest[:listed],
        "overflow_more": len(rest) - len(rest[:listed]),
        "web_url": content.web_url,
        "postal_address": content.postal_address,
        "reason": content.reason,
    }


def _mail_html(templates: Templates, content: Content, ph: Placeholders, shown: int, listed: int) -> str:
    ctx = _html_context(content, shown, listed)
    ctx.update(
        web=False,
        stylesheet=None,
        design_css=_mail_css(templates, DESIGN_CSS),
        adapt_css=_mail_css(templates, ADAPT_CSS),
        unsubscribe_url=ph.unsubscribe,
        subscriber_name=ph.name,
    )
    return _inline(templates.render(HTML_TEMPLATE, **ctx))


@lru_cache(maxsize=64)
def _css_text(templates: Templates, name: str) -> str:
    # Comments and runs of whitespace cost bytes in every message and say nothing to a mail client.
    text = re.sub(r"/\*.*?\*/", "", templates.render(name), flags=re.S)
    return re.sub(r"\s+", " ", text).strip()


def _mail_css(templates: Templates, name: str) -> Any:
    return templates.markup(_css_text(templates, name))  # our own CSS, for a <style> element


def _inline(html: str) -> str:
    inlined: str = _INLINER.inline(html)
    # css-inline re-serialises the document; keep line ends plain LF (the mailer makes them CRLF).
    return inlined.replace("\r\n", "\n")


@lru_cache(maxsize=8192)  # the size cap re-renders the same blocks several times
def wrap(text: str, indent: str = "", first: str | None = None) -> str:
    """Wrap prose to 78 columns; words longer than a line are broken (they are never our URLs)."""
    wrapper = textwrap.TextWrapper(
        width=WIDTH,
        initial_indent=indent if first is None else first,
        subsequent_indent=indent,
        break_on_hyphens=False,
    )
    return "\n".join(wrapper.wrap(text)) or (indent if first is None else first).rstrip()


class _Links:
    """The numbered link list of the text part: each URL once, on its own line."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    def ref(self, url: str) -> int:
        if url not in self.urls:
            self.urls.append(url)
        return self.urls.index(url) + 1

    def lines(self) -> list[str]:
        out = []
        for n, url in enumerate(self.urls, start=1):
            label = f"[{n}] "
            # A URL is never split: when it does not fit beside its number, it gets its own line.
            out.append(label + url if len(label) + len(url) <= WIDTH else f"[{n}]\n{url}")
        return out


def _text(
    templates: Templates,
    content: Content,
    unsubscribe_url: str | None,
    name: str | None,
    shown: int,
    listed: int,
) -> str:
    links = _Links()
    articles = []
    for n, item in enumerate(content.items[:shown], start=1):
        marker = f"{n}. "
        articles.append(
            {
                "heading": wrap(item.title, " " * len(marker), first=marker),
                "meta": wrap(f"{item.date} · {item.author}", "   "),
                "summary": wrap(item.summary, "   "),
                "ref": links.ref(item.url),
            }
        )
    rest = content.items[shown:]
    overflow = [
        {"heading": wrap(f"{item.title} [{links.ref(item.url)}]", "  ", first="- ")} for item in rest[:listed]
    ]
    web_ref = links.ref(content.web_url)
    text = templates.render(
        TEXT_TEMPLATE,
        site={"title": wrap(content.site_title), "url": content.site_url},
        period_label=wrap(content.period_label),
        subscriber_name=name,
        articles=articles,
        overflow=overflow,
        overflow_more=len(rest) - len(overflow),
        overflow_ref=web_ref,
        web_ref=web_ref,
        reason=wrap(content.reason),
        unsubscribe_url=unsubscribe_url,
        postal_address=wrap(content.postal_address),
        links=links.lines(),
    )
    # Blank lines from optional blocks collapse to one; no trailing spaces.
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n") + "\n"
