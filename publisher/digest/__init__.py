"""The email digest's content: which articles, rendered once per digest, recorded, archived on the web.

- `prepare_next` selects the articles that went live since the previous cut-off (see `select`),
  renders the HTML and text parts once, and records the digest with its articles, cut-off and exact
  bytes in one transaction; then writes its web version to feeds/digests/. `render_preview` does the
  same rendering and records nothing.
- The mail parts hold per-recipient placeholders (`RenderedDigest.placeholders`): delivery fills
  them per message (`personalise` is the reference). Each placeholder carries a random per-digest
  nonce, checked absent from every article string, so no content can produce one.
- `load`, `unfinished`, `mark_complete` serve a send that resumes after a crash.
"""

from __future__ import annotations

import dataclasses
import html as html_lib
import logging
import secrets
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from publisher import tokens, urls
from publisher.config import Settings
from publisher.digest import compose, content, guard, select, web_archive
from publisher.errors import ConfigError, DeliveryError
from publisher.models import Published
from publisher.output import write_atomic
from publisher.render import Templates
from publisher.store import digests as store_digests
from publisher.store.db import transaction
from publisher.store.subscribers import Subscriber

# Per-recipient placeholders are these prefixes followed by the digest's nonce (32 hex digits).
# Neither needs escaping in HTML or survives any change by the CSS inliner.
PLACEHOLDER_UNSUBSCRIBE = "https://publisher.invalid/unsubscribe/"
PLACEHOLDER_NAME = "publisher-subscriber-name-"
UNSUBSCRIBE_PATH = "unsubscribe/"

log = logging.getLogger("publisher.digest")

__all__ = [
    "PLACEHOLDER_NAME",
    "PLACEHOLDER_UNSUBSCRIBE",
    "PREVIEW_HTML",
    "RenderedDigest",
    "check_sendable",
    "load",
    "mark_complete",
    "personalise",
    "prepare_next",
    "recipient_links",
    "render_preview",
    "render_proof",
    "unfinished",
    "write_archive",
    "write_proof_page",
]


@dataclass(frozen=True)
class RenderedDigest:
    digest_id: str
    subject: str
    preheader: str
    html: str  # with placeholders
    text: str  # with placeholders
    web_url: str
    article_ids: tuple[str, ...]
    period_start: datetime | None
    period_end: datetime
    nonce: str = ""
    web_html: str = ""
    created_at: datetime | None = None  # when recorded: every message's Date (a resend matches)

    @property
    def unsubscribe_placeholder(self) -> str:
        return PLACEHOLDER_UNSUBSCRIBE + self.nonce

    @property
    def name_placeholder(self) -> str:
        return PLACEHOLDER_NAME + self.nonce

    @property
    def placeholders(self) -> Mapping[str, str]:
        """Role → placeholder text, as `message.MessageTemplate(placeholders=…)` takes them."""
        return {"unsubscribe": self.unsubscribe_placeholder, "name": self.name_placeholder}


def check_sendable(settings: Settings) -> None:
    """Refuse (ConfigError naming the key) what must be set before any digest reaches a subscriber.

    The sender and the unsubscribe address follow [site] unless set, so [site] must be the
    operator's own: its built-in values are an example's (its name in From, links to its host). A
    postal address cannot be guessed, and a commercial mailing without one breaks the law in many
    places (CAN-SPAM, the EU).
    """
    settings.require_site_identity("a digest's sender, links and unsubscribe address come from [site]")
    if not settings.digest.postal_address.strip():
        raise ConfigError(
            "digest.postal_address: not set; every digest's footer gives the sender's postal "
            "address, so set it in [digest] before sending"
        )


def _nonce(strings: Sequence[str]) -> str:
    while True:
        nonce = secrets.token_hex(16)
        # 128 random bits drawn after the content exists: a collision is beyond unlikely, and
        # checked all the same, so the placeholder cannot come from an article.
        if not any(nonce in s for s in strings):
            return nonce


def _render(
    conn: sqlite3.Connection,
    settings: Settings,
    plan: select.Plan,
    load: select.Loader | None,
    *,
    web_path: str | None = None,
    web_url: str | None = None,
    strict: bool = True,
) -> RenderedDigest | None:
    """The digest of `plan`, rendered; DeliveryError (a warning unless `strict`) when its parts
    lack what every digest must carry (see `guard`)."""
    loader = load or select.load
    found = loader(conn, settings, plan.article_ids)
    published: list[Published] = content.order([found[i] for i in plan.article_ids if i in found])
    if not published:
        return None
    ids = tuple(p.id for p in published)
    digest_id = content.make_id(plan.period_end, ids)
    templates = Templates(settings)
    data = content.build(settings, templates, digest_id, plan.period_start, plan.period_end, published)
    if web_path is not None:
        web_url = urls.absolute(settings.site, web_path)
    if web_url is not None:
        data = dataclasses.replace(data, web_url=web_url)
    strings = [data.subject, data.preheader, data.site_title, data.postal_address]
    for item in data.items:
        strings.extend((item.title, item.author, item.summary, item.url))
        if item.picture is not None:
            strings.extend((item.picture.url, item.picture.alt))
    nonce = _nonce(strings)
    ph = compose.Placeholders(unsubscribe=PLACEHOLDER_UNSUBSCRIBE + nonce, name=PLACEHOLDER_NAME + nonce)
    parts = compose.render_mail(templates, data, ph, settings.digest.max_bytes)
    rendered = RenderedDigest(
        digest_id=digest_id,
        subject=data.subject,
        preheader=data.preheader,
        html=parts.html,
        text=parts.text,
        web_url=data.web_url,
        article_ids=ids,
        period_start=plan.period_start,
        period_end=plan.period_end,
        nonce=nonce,
        web_html=compose.render_web(templates, data),
    )
    # The parts as a sample reader gets them, before anything is recorded or sent.
    sample_url = unsubscribe_url(settings, guard.SAMPLE_TOKEN)
    html, text = personalise(rendered, sample_url, guard.SAMPLE_NAME)
    problem = guard.problem(templates, html, text, sample_url, data.postal_address, nonce)
    if problem and strict:
        raise DeliveryError(problem, hint=guard.HINT)
    if problem:
        log.warning("%s", problem)
    return rendered


def render_preview(
    conn: sqlite3.Connection,
    settings: Settings,
    now: datetime,
    backfill: int | None = None,
    *,
    load: select.Loader | None = None,
) -> RenderedDigest | None:
    """The digest `prepare_next` would make now, rendered but recorded nowhere; None when none.
    Its "view in your browser" link opens the preview's own HTML file (`PREVIEW_HTML`, beside it):
    the web version a send writes does not exist for a digest that is never sent."""
    plan = select.plan(conn, settings, now, backfill)
    if not plan.article_ids:
        return None
    return _render(conn, settings, plan, load, web_url=PREVIEW_HTML, strict=False)


PREVIEW_HTML = "next-digest.html"  # the name --preview gives the HTML part, in state/preview/


# A test copy of a digest that is not recorded (the next one, or a sample) links its "view in your
# browser" here: one page, overwritten by each test, never listed in the archive.
TEST_PAGE = f"{content.FOLDER}/test-copy.html"
TEST_SAMPLE = 5  # articles in a sample test copy when no digest exists at all


def render_proof(conn: sqlite3.Connection, settings: Settings, now: datetime, backfill: int | None) -> Proof:
    """What `digest --to` sends: the next digest when there is one; otherwise the most recent
    digest sent; otherwise a sample of the latest articles. The subject is marked as a test, and
    an unrecorded digest's web link points at `TEST_PAGE` (written by `write_proof_page`)."""
    plan = select.plan(conn, settings, now, backfill)
    kind, rendered = "next", None
    if plan.article_ids:
        rendered = _render(conn, settings, plan, None, web_path=TEST_PAGE)
    if rendered is None:
        newest = store_digests.summaries(conn)[:1]
        kind, rendered = "latest", load(conn, newest[0].id) if newest else None
    if rendered is None:
        sample = select.sample(conn, now, TEST_SAMPLE)
        kind, rendered = "sample", _render(conn, settings, sample, None, web_path=TEST_PAGE)
    if rendered is None:
        raise DeliveryError("no digest to send: nothing is published yet", hint="run `publisher build` first")
    subject = compose.one_line(f"[Test] {rendered.subject}", content.SUBJECT_MAX)
    return Proof(kind, dataclasses.replace(rendered, subject=subject))


@dataclass(frozen=True)
class Proof:
    """A test copy of a digest (a proof, in printers' words) and which digest it is."""

    kind: str  # "next" (the digest that would go out now), "latest" (sent before) or "sample"
    digest: RenderedDigest

    @property
    def recorded(self) -> bool:
        return self.kind == "latest"


def write_proof_page(settings: Settings, copy: Proof) -> Path | None:
    """Put the web version of an unrecorded test copy at `TEST_PAGE` (a recorded digest's page is
    already in place). Fails with OutputError, so no test mail goes out with a dead link."""
    if copy.recorded:
        return None
    target = settings.feeds_dir / TEST_PAGE
    web_archive.write_stylesheet(settings)
    write_atomic(target, copy.digest.web_html.encode("utf-8"))
    return target


def prepare_next(
    conn: sqlite3.Connection,
    settings: Settings,
    now: datetime,
    *,
    backfill: int | None = None,
    load: select.Loader | None = None,
) -> RenderedDigest | None:
    """Select, render and record the next digest, then write its web version. None when there is
    nothing new (a first run with backfill 0 records its baseline cut-off and returns None).

    `backfill` counts only before the very first digest: it overrides `digest.backfill`.
    Raises ConfigError, recording nothing, while a key `check_sendable` needs is missing.
    """
    check_sendable(settings)
    with transaction(conn):
        # Planned and recorded under one write lock, so two runs cannot both take the same articles.
        plan = select.plan(conn, settings, now, backfill)
        if plan.sets_baseline:
            store_digests.set_baseline(conn, now)
            return None
        if not plan.article_ids:
            return None
        rendered = _render(conn, settings, plan, load)
        if rendered is None:
            return None
        # The mail links to its web version: that page is in place before the digest is recorded,
        # and a digest whose page cannot be written is not recorded (OutputError: the run fails).
        web_archive.write_page(settings, rendered.digest_id, rendered.web_html)
        store_digests.record(
            conn,
            digest_id=rendered.digest_id,
            now=now,
            period_start=rendered.period_start,
            period_end=rendered.period_end,
            subject=rendered.subject,
            preheader=rendered.preheader,
            html=rendered.html,
            text=rendered.text,
            web_html=rendered.web_html,
            web_url=rendered.web_url,
            nonce=rendered.nonce,
            article_ids=rendered.article_ids,
        )
        rendered = replace(rendered, created_at=now)
    # The index of digests: a failure here fails the run too (the digest stays recorded, and the
    # next `digest --send` sends it).
    web_archive.write(conn, settings, [rendered.digest_id])
    return rendered


def load(conn: sqlite3.Connection, digest_id: str) -> RenderedDigest:
    """A recorded digest with exactly the bytes it was recorded with."""
    row = store_digests.get(conn, digest_id)
    if row is None:
        raise DeliveryError(f"digest {digest_id}: not recorded in the state database")
    return RenderedDigest(
        digest_id=row.id,
        subject=row.subject,
        preheader=row.preheader,
        html=row.html,
        text=row.text,
        web_url=row.web_url,
        article_ids=row.article_ids,
        period_start=row.period_start,
        period_end=row.period_end,
        nonce=row.nonce,
        web_html=row.web_html,
        created_at=row.created_at,
    )


def unfinished(conn: sqlite3.Connection) -> list[str]:
    """Digests recorded but not yet marked complete, oldest first."""
    return store_digests.unfinished(conn)


def mark_complete(conn: sqlite3.Connection, digest_id: str, now: datetime) -> None:
    """Delivery has finished with this digest (joins the caller's transaction when one is open)."""
    if conn.in_transaction:
        store_digests.mark_complete(conn, digest_id, now)
    else:
        with transaction(conn):
            store_digests.mark_complete(conn, digest_id, now)


def write_archive(conn: sqlite3.Connection, settings: Settings) -> list[tuple[Path, bool]]:
    """Rewrite every digest's web version, their stylesheet and the index (e.g. after feeds/ was
    cleared): each path with whether its bytes changed."""
    return web_archive.write_changes(conn, settings)


def personalise(rendered: RenderedDigest, unsubscribe_url: str, name: str) -> tuple[str, str]:
    """(html, text) for one recipient: the reference for delivery's faster byte-level equivalent.

    The unsubscribe URL and the name (flattened to one line) are HTML-escaped in the HTML part and
    inserted as they are in the text part.
    """
    flat = compose.one_line(name)
    url = compose.one_line(unsubscribe_url)
    html = rendered.html.replace(rendered.unsubscribe_placeholder, html_lib.escape(url)).replace(
        rendered.name_placeholder, html_lib.escape(flat)
    )
    text = rendered.text.replace(rendered.unsubscribe_placeholder, url).replace(
        rendered.name_placeholder, flat
    )
    return html, text


def unsubscribe_url(settings: Settings, token: str) -> str:
    """`<base_url>unsubscribe/<token>`: the one-click (POST) endpoint `publisher serve` answers."""
    return urls.absolute(settings.site, UNSUBSCRIBE_PATH + token)


def recipient_links(settings: Settings, subscriber: Subscriber) -> tuple[str, str]:
    """(https unsubscribe URL, mailto unsubscribe URI) for one subscriber, both carrying the same
    signed token (purpose "unsubscribe", no expiry)."""
    token = tokens.make(settings, subscriber.id, subscriber.token_secret, "unsubscribe")
    mailto = f"mailto:{settings.digest.unsubscribe_mailto}?subject=unsubscribe%20{token}"
    return unsubscribe_url(settings, token), mailto
