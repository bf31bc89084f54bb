"""The mail that comes back: unsubscribe requests to the List-Unsubscribe mailto address, delivery
status notifications (RFC 3464) and complaints (RFC 5965), read from a Maildir or an IMAP folder.

`handle(conn, settings, now, mailbox)` makes one pass over a mailbox: each unseen message is
classified (publisher.inbound.classify), tied to a subscriber by the signed token publisher put in
its links (never by From), and acted on in one transaction that also records it as handled:
- an unsubscribe request or a complaint unsubscribes the subscriber at once;
- a permanent failure counts toward `delivery.bounce_after` (once per digest and subscriber, however
  many reports of it come: reports of `bounce_after` digests bounce the subscriber); a temporary
  one (delayed, 4.x.x) is only recorded;
- anything else, and a report that names nobody of ours, is left where it is, untouched, and counted.
Only after the commit is the message marked in the mailbox (Maildir: cur/ with the Seen flag;
IMAP: flags, optionally a folder); a message whose bytes were handled before is only marked, so a
pass interrupted between the two, or run twice, changes nothing twice.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from publisher import tokens, verp
from publisher.config import Settings
from publisher.errors import ConfigError
from publisher.inbound.classify import Finding, classify
from publisher.store import digests as store_digests
from publisher.store import inbound as store
from publisher.store import keys, subscribers
from publisher.store.db import transaction

log = logging.getLogger("publisher.inbound")


class Mailbox(Protocol):
    name: str

    def messages(self) -> Iterator[tuple[str, bytes]]: ...
    def mark_handled(self, key: str) -> None: ...
    def close(self) -> None: ...


@dataclass
class Report:
    """What one pass over one mailbox did."""

    source: str
    unsubscribed: int = 0  # requests and complaints that unsubscribed someone (or found them out)
    complaints: int = 0
    bounces: int = 0  # permanent failures counted
    bounced: int = 0  # subscribers who reached delivery.bounce_after with this pass
    delays: int = 0
    unmatched: int = 0  # reports or requests tied to nobody: left in place
    others: int = 0  # not ours to handle: left in place
    already: int = 0  # handled by an earlier pass (only marked now)

    @property
    def handled(self) -> int:
        return self.unsubscribed + self.bounces + self.delays + self.complaints + self.already

    def summary(self) -> str:
        parts = [
            f"{self.unsubscribed} unsubscribed",
            f"{self.complaints} complaint{'s' if self.complaints != 1 else ''}",
            f"{self.bounces} bounce{'s' if self.bounces != 1 else ''}",
        ]
        if self.bounced:
            parts.append(f"{self.bounced} subscriber{'s' if self.bounced != 1 else ''} now bounced")
        parts += [f"{self.delays} delayed", f"{self.unmatched} unmatched", f"{self.others} left alone"]
        if self.already:
            parts.append(f"{self.already} handled before")
        return f"{self.source}: " + ", ".join(parts)


def mailboxes(settings: Settings) -> list[Mailbox]:
    """The mailboxes `[inbound]` names: the Maildir (checked now) first, then the IMAP folder."""
    config = settings.inbound
    if not config.configured:
        raise ConfigError("nothing to read: set inbound.maildir or inbound.imap_host (see docs/inbound.md)")
    found: list[Mailbox] = []
    if config.maildir is not None:
        from publisher.inbound.maildir import Maildir

        folder = Maildir((settings.base_dir / config.maildir.expanduser()).resolve())
        folder.check()
        found.append(folder)
    if config.imap_host:
        from publisher.inbound.imap import ImapFolder

        found.append(ImapFolder(config))
    return found


def handle(conn: sqlite3.Connection, settings: Settings, now: datetime, mailbox: Mailbox) -> Report:
    report = Report(mailbox.name)
    keys.require(settings, conn)  # a lost secret.key is refused, not replaced: links are checked with it
    for key, data in mailbox.messages():
        fingerprint = hashlib.sha256(data).hexdigest()
        if store.handled(conn, fingerprint):
            mailbox.mark_handled(key)
            report.already += 1
            continue
        finding = classify(data, settings.digest.unsubscribe_mailto)
        if finding.kind == "other":
            report.others += 1
            continue
        subscriber = _subscriber(conn, settings, finding, now)
        if subscriber is None:
            report.unmatched += 1
            log.info("%s: %s %s: names no subscriber of ours; left in place", mailbox.name, finding.kind, key)
            continue
        with transaction(conn):
            _act(conn, settings, now, finding, subscriber, report)
            digest_id = _digest(conn, finding)
            store.record(conn, fingerprint, finding.kind, subscriber.id, digest_id, finding.detail, now)
        mailbox.mark_handled(key)
    return report


def _subscriber(
    conn: sqlite3.Connection, settings: Settings, finding: Finding, now: datetime
) -> subscribers.Subscriber | None:
    """Whom the finding concerns: by a valid token first; for a report about a message of ours
    (its Message-ID names a digest we sent) without one, by the recipient the report names."""
    for token in finding.tokens:
        try:
            ident = tokens.verify(
                settings, token, "unsubscribe", now, lambda i: subscribers.token_secret(conn, i)
            )
        except tokens.TokenError:
            continue
        found = subscribers.get(conn, ident)
        if found is not None:
            return found
    by_verp = _verp(conn, settings, finding)
    if by_verp is not None:
        return by_verp
    if finding.kind in ("bounce", "delay", "complaint") and _digest(conn, finding) is not None:
        for address in finding.addresses:
            found = subscribers.by_email(conn, address.lower())
            if found is not None:
                return found
    return None


def _verp(conn: sqlite3.Connection, settings: Settings, finding: Finding) -> subscribers.Subscriber | None:
    """The subscriber a report sent to a VERP envelope sender of ours names (publisher.verp): the
    tag must have been made for that digest and a recipient the report names. Sets the digest."""
    tags = [found for found in (verp.parse(a) for a in finding.envelopes) if found is not None]
    if not tags or not finding.addresses:
        return None
    secret = tokens.site_secret(settings)
    digest_ids = [s.id for s in store_digests.summaries(conn)]
    for key, tag in tags:
        for digest_id in (d for d in digest_ids if verp.digest_key(d) == key):
            for address in finding.addresses:
                if verp.matches(secret, digest_id, address, tag):
                    found = subscribers.by_email(conn, address.lower())
                    if found is not None:
                        finding.digest_hint = digest_id
                        return found
    return None


def _digest(conn: sqlite3.Connection, finding: Finding) -> str | None:
    hint = finding.digest_hint
    if hint is None or store_digests.get(conn, hint) is None:
        return None
    return hint


def _act(
    conn: sqlite3.Connection,
    settings: Settings,
    now: datetime,
    finding: Finding,
    subscriber: subscribers.Subscriber,
    report: Report,
) -> None:
    address = subscriber.email
    if finding.kind in ("unsubscribe", "complaint"):
        if finding.kind == "complaint":
            report.complaints += 1
        if subscriber.status in ("active", "pending"):
            subscribers.set_status(conn, subscriber.id, "unsubscribed", now)
            report.unsubscribed += 1
            log.info("%s unsubscribed (%s)", address, finding.detail)
        return
    if finding.kind == "delay":
        report.delays += 1
        log.info("%s: delivery delayed: %s", address, finding.detail)
        return
    digest_id = _digest(conn, finding) or "(unknown digest)"
    if not store.first_bounce(conn, subscriber.id, digest_id, now):
        log.info("%s: another report of the failure of %s", address, digest_id)
        return
    report.bounces += 1
    log.info("%s: permanent failure of %s: %s", address, digest_id, finding.detail)
    threshold = settings.delivery.bounce_after
    bounced = subscribers.record_permanent_failure(conn, subscriber.id, now, threshold)
    # A relay that accepts every message resets the sender's count of failures in a row at each
    # digest, so reports that come back later are also counted per digest here.
    if (
        not bounced
        and subscriber.status == "active"
        and store.failed_digests(conn, subscriber.id) >= threshold
    ):
        bounced = subscribers.set_status(conn, subscriber.id, "bounced", now)
    if bounced and subscriber.status == "active":
        report.bounced += 1
        log.warning("%s bounced: permanent failures of %d digests", address, threshold)
