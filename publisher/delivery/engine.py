"""Sending a digest to its recipients over the send ledger: exactly once each, through any crash.

This module is the delivery stage's face: `send_digest` enqueues a digest's ledger rows once (for
the subscribers active when it was prepared) and hands them to the engine in
publisher.delivery.sender; `template_for` encodes the digest's shared message parts once;
`transports_for` picks the transport (publisher.delivery.transports) and the number of worker
threads. See publisher.delivery.sender for what each server answer does, and docs/delivery.md for
the duplicate window.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Protocol

from publisher import tokens, verp
from publisher.clock import Clock, OffsetClock
from publisher.config import Settings
from publisher.delivery import dkim
from publisher.delivery.message import MessageTemplate, Recipient, finalise
from publisher.delivery.results import Progress, Result, SendReport
from publisher.delivery.sender import LinkMaker, TransportFactory, deliver
from publisher.delivery.transports import Transport, open_transport
from publisher.errors import DeliveryError
from publisher.store import ledger, subscribers

__all__ = [
    "Progress",
    "Result",
    "SendReport",
    "Session",
    "send_copy",
    "send_digest",
    "template_for",
    "token_links",
    "transports_for",
]

log = logging.getLogger("publisher.delivery")


class Digest(Protocol):
    """What delivery needs of a rendered digest (publisher.digest.RenderedDigest has it)."""

    @property
    def digest_id(self) -> str: ...
    @property
    def subject(self) -> str: ...
    @property
    def html(self) -> str: ...
    @property
    def text(self) -> str: ...
    @property
    def placeholders(self) -> Mapping[str, str]: ...
    @property
    def created_at(self) -> datetime | None: ...


def template_for(
    rendered: Digest, settings: Settings, date: datetime, signer: dkim.Signer | None = None
) -> MessageTemplate:
    """Encode a digest's shared parts once, with the sender and list settings. The Date is when
    the digest was recorded (`date` only for one never recorded), so a message sent again after a
    crash is the same bytes, DKIM signature included."""
    one_click = settings.site.base_url.startswith("https://")
    if not one_click:
        log.warning(
            "site.base_url is not https: the digest's List-Unsubscribe-Post (one-click unsubscribe) "
            "is left out, as RFC 8058 requires an https unsubscribe URL"
        )
    return MessageTemplate(
        digest_id=rendered.digest_id,
        subject=rendered.subject,
        text=rendered.text,
        html_body=rendered.html,
        from_name=settings.digest.from_name,
        from_address=settings.digest.from_address,
        reply_to=settings.digest.reply_to,
        host=settings.site.host,
        list_name=settings.site.title,
        date=(rendered.created_at or date).astimezone(UTC),
        placeholders=rendered.placeholders,
        signatures=signer.signatures if signer is not None else None,
        envelope=_verp(rendered.digest_id, settings),
        one_click=one_click,
    )


def _verp(digest_id: str, settings: Settings) -> Callable[[str], str] | None:
    """Per-message envelope senders (`inbound.verp`), so bounces name their digest and reader."""
    if not settings.inbound.verp:
        return None
    return verp.sender_for(tokens.site_secret(settings), digest_id, settings.digest.from_address)


class _Borrowed:
    """A transport lent by the caller: used, never closed here."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def send(self, sender: str, recipients: Sequence[str], message: bytes) -> str:
        return self.transport.send(sender, recipients, message)

    def close(self) -> None:
        pass


def transports_for(settings: Settings, transport: Transport | None) -> tuple[TransportFactory, int]:
    """(factory, workers): the caller's transport on one worker, else one SMTP connection per
    `delivery.concurrency` worker thread, or one outbox writer (local files gain nothing from
    threads)."""
    if transport is not None:
        lent = _Borrowed(transport)
        return (lambda: lent), 1
    workers = settings.delivery.concurrency if settings.delivery.transport == "smtp" else 1
    return (lambda: open_transport(settings)), workers


def send_digest(
    conn: sqlite3.Connection,
    rendered: Digest,
    settings: Settings,
    *,
    links: LinkMaker,
    transports: TransportFactory,
    workers: int,
    clock: Clock,
    progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    signer: dkim.Signer | None = None,
) -> Result:
    """Enqueue the digest for every active subscriber (once: a resumed digest keeps its rows),
    then deliver whatever is still pending."""
    if not ledger.enqueued(conn, rendered.digest_id):
        recipients = [s.id for s in subscribers.active(conn)]
        ledger.enqueue(conn, rendered.digest_id, recipients, clock.now())
        log.debug("digest %s: %d recipients", rendered.digest_id, len(recipients))
    return deliver(
        conn,
        settings.db_path,
        rendered.digest_id,
        template_for(rendered, settings, clock.now(), signer),
        links=links,
        transports=transports,
        workers=workers,
        sender=settings.digest.from_address,
        settings=settings.delivery,
        clock=clock,
        progress=progress,
        should_stop=should_stop,
    )


class Session:
    """One `digest --send` run: the clock, the transports and the report shared by every digest it
    sends (the pipeline decides which digests; this class sends them)."""

    def __init__(
        self,
        settings: Settings,
        now: datetime,
        links: LinkMaker,
        transport: Transport | None = None,
        progress: Callable[[Progress], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        self.settings = settings
        self.clock = OffsetClock(now)  # timestamps move on during a long send
        self.links = links
        self.transports, self.workers = transports_for(settings, transport)
        self.progress = progress
        self.should_stop = should_stop
        self.report = SendReport()
        self.signer = dkim.signer_for(settings)  # a DKIM key that cannot be used stops us before any mail
        self.started = time.monotonic()

    def send(
        self,
        conn: sqlite3.Connection,
        rendered: Digest,
        mark_complete: Callable[[sqlite3.Connection, str, datetime], None],
    ) -> bool:
        """Send one digest; True when it is complete (then `mark_complete` is called) and the
        caller may go on to the next one."""
        result = send_digest(
            conn,
            rendered,
            self.settings,
            links=self.links,
            transports=self.transports,
            workers=self.workers,
            clock=self.clock,
            progress=self.progress,
            should_stop=self.should_stop,
            signer=self.signer,
        )
        self.report.add(result)
        self.report.seconds = time.monotonic() - self.started
        if result.complete:
            mark_complete(conn, rendered.digest_id, self.clock.now())
        return result.complete and not (self.should_stop is not None and self.should_stop())


def send_copy(
    rendered: Digest | None,
    settings: Settings,
    address: str,
    links: tuple[str, str],
    now: datetime,
    transport: Transport | None = None,
) -> str:
    """One message of `rendered` to `address`, outside the ledger; returns the server's reply."""
    if rendered is None:
        raise DeliveryError(
            "no digest to send: no new articles since the last digest",
            hint="--backfill N includes the N latest articles in a first digest",
        )
    template = template_for(rendered, settings, now, dkim.signer_for(settings))
    out = finalise(template, Recipient(address, "", *links), settings.digest.from_address)
    used = transport or open_transport(settings)
    try:
        return used.send(out.sender, [out.recipient], out.data)
    finally:
        if transport is None:
            used.close()


def token_links(site_secret: bytes, https_prefix: str, mailto_prefix: str) -> LinkMaker:
    """A LinkMaker signing each subscriber's unsubscribe token with the site secret read once
    per digest: `https_prefix + token`, `mailto_prefix + token` (the same links as
    `digest.recipient_links`, which reads the secret per call; a test keeps them equal)."""

    def links(subscriber: subscribers.Subscriber) -> tuple[str, str]:
        token = tokens.make_with(site_secret, subscriber.id, subscriber.token_secret, "unsubscribe")
        return https_prefix + token, mailto_prefix + token

    return links
