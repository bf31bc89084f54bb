"""Subscribe (double opt-in), confirm, and unsubscribe (RFC 8058 one-click) over HTTP.

- `GET /subscribe` shows the form; `POST /subscribe` takes an address and always answers with the
  same "check your inbox" page, whether the address is new, pending, active or gone (no
  enumeration). A new, pending or unsubscribed address is sent a confirmation link, after the
  response, so timing does not tell either; an active or bounced one is sent nothing.
- `GET /confirm/<token>` shows a button; only its `POST` subscribes (mail scanners GET every link).
- `POST /unsubscribe/<token>` with `List-Unsubscribe=One-Click` unsubscribes at once, without
  cookies, CSRF token or redirect; `GET` shows a button doing the same through a CSRF-checked form.
- Every bad, forged, expired or foreign token gets the same plain 400 page.
- Rate limits: every subscribe POST and every failed token spends from the client IP's bucket
  (valid tokens never do: a mail provider posts one-click unsubscribes for many people from few
  IPs); each address has its own bucket of confirmation requests. Both answer 429 + Retry-After.
"""

from __future__ import annotations

import email.parser
import email.policy
import logging
import sqlite3
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from publisher import digest, tokens
from publisher.addresses import normalise_address
from publisher.clock import Clock
from publisher.config import Settings
from publisher.delivery import dkim
from publisher.delivery.transports import Transport
from publisher.errors import PublisherError, SubscriberError
from publisher.server.ratelimit import RateLimiter
from publisher.server.security import CSRF_FIELD, Csrf
from publisher.server.views import Pages
from publisher.store import db
from publisher.store import subscribers as store

log = logging.getLogger("publisher.server")

MAX_FIELDS = 20
ONE_CLICK = ("List-Unsubscribe", "One-Click")


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def read_form(request: Request) -> dict[str, str]:
    """The posted fields (first value of each), from urlencoded or multipart/form-data bodies.

    RFC 8058 lets mail providers post either form, so both are read; the body is already bounded by
    BoundedRequests. Anything unreadable is simply an empty form.
    """
    body = await request.body()
    kind = request.headers.get("content-type", "")
    media = kind.split(";", 1)[0].strip().lower()
    pairs: list[tuple[str, str]] = []
    try:
        if media == "application/x-www-form-urlencoded":
            text = body.decode("utf-8")
            pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FIELDS, strict_parsing=False)
        elif media == "multipart/form-data":
            pairs = _multipart(kind, body)
    except (UnicodeDecodeError, ValueError):
        return {}
    form: dict[str, str] = {}
    for name, value in pairs[:MAX_FIELDS]:
        form.setdefault(name, value)
    return form


def _multipart(content_type: str, body: bytes) -> list[tuple[str, str]]:
    # The email package parses MIME multipart bodies; no extra dependency for two tiny fields.
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        return []
    pairs = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            pairs.append((name, payload.decode("utf-8")))
    return pairs


class Subscriptions:
    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        transport_factory: Callable[[], Transport],
        pages: Pages,
        csrf: Csrf,
    ) -> None:
        serve = settings.serve
        self.settings = settings
        self.clock = clock
        self.transport_factory = transport_factory
        self.pages = pages
        self.csrf = csrf
        # Loaded at start: a DKIM key that cannot be used stops the server, not each confirmation.
        self.signer = dkim.signer_for(settings)
        self.per_ip = RateLimiter(serve.rate_ip_per_minute / 60, serve.rate_ip_burst)
        self.per_address = RateLimiter(serve.rate_address_per_hour / 3600, serve.rate_address_burst)

    # -- helpers -------------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        return db.connect(self.settings.db_path)

    def _too_many(self, wait: int) -> HTTPException:
        return HTTPException(429, headers={"Retry-After": str(wait)})

    def _form_page(self, request: Request, name: str, status: int = 200, **ctx: Any) -> Response:
        cookie, field = self.csrf.issue(self.clock.now())
        response = self.pages.render(name, status, csrf=field, **ctx)
        self.csrf.set_cookie(response, cookie, request)
        return response

    def _subscriber_for(self, token: str, purpose: str) -> store.Subscriber | None:
        """Runs in a worker thread: the subscriber a token names, or None for any kind of bad token."""
        conn = self._connect()
        try:
            ident = tokens.verify(
                self.settings, token, purpose, self.clock.now(), lambda i: store.token_secret(conn, i)
            )
            found = store.get(conn, ident)
            if found is not None and purpose == "confirm" and self._outdated(found, token):
                return None
            return found
        except SubscriberError:
            return None
        finally:
            conn.close()

    def _outdated(self, subscriber: store.Subscriber, token: str) -> bool:
        """A confirmation link sent before the subscriber last unsubscribed: using it would undo
        their unsubscribing (they can subscribe again, which sends a new link)."""
        expires = tokens.expiry(token)
        if subscriber.status != "unsubscribed" or expires is None or subscriber.updated_at is None:
            return False
        issued = expires - timedelta(hours=self.settings.serve.confirm_hours)
        return subscriber.updated_at >= issued

    async def _token_subscriber(self, request: Request, purpose: str) -> store.Subscriber:
        ip = _client(request)
        now = self.clock.now().timestamp()
        if wait := self.per_ip.wait(ip, now):
            raise self._too_many(wait)
        found = await run_in_threadpool(self._subscriber_for, request.path_params["token"], purpose)
        if found is None:
            self.per_ip.take(ip, now)
            raise HTTPException(400)
        return found

    # -- subscribe -----------------------------------------------------------------------------

    async def subscribe(self, request: Request) -> Response:
        if request.method != "POST":
            return self._form_page(request, "subscribe.html.j2", email="", problem="")
        now = self.clock.now()
        if wait := self.per_ip.take(_client(request), now.timestamp()):
            raise self._too_many(wait)
        form = await read_form(request)
        if not self.csrf.check(request, form, now, static_form=True):
            raise HTTPException(403)
        given = form.get("email", "")[:320]
        try:
            address = normalise_address(given)
        except SubscriberError:
            problem = "Please give one email address, such as anna@example.org."
            return self._form_page(request, "subscribe.html.j2", 400, email=given, problem=problem)
        if wait := self.per_address.take(address, now.timestamp()):
            raise self._too_many(wait)
        to_confirm = await run_in_threadpool(self._register, address, now)
        task = None if to_confirm is None else BackgroundTask(self._send_confirmation, to_confirm, now)
        response = self.pages.render("subscribe_sent.html.j2", email=address)
        response.background = task
        return response

    def _register(self, address: str, now: datetime) -> store.Subscriber | None:
        """Record the request; the subscriber to send a confirmation to, or None."""
        conn = self._connect()
        try:
            with db.transaction(conn):
                known = store.by_email(conn, address)
                if known is None:
                    known, _ = store.add(conn, address, "", now, status="pending")
                    log.info("subscribe: %s is new, pending confirmation", address)
                    return known
            if known.status in ("pending", "unsubscribed"):
                # Status changes only when the owner of the mailbox confirms.
                log.info("subscribe: %s is %s, confirmation sent again", address, known.status)
                return known
            log.info("subscribe: %s is already %s, nothing sent", address, known.status)
            return None
        finally:
            conn.close()

    def _send_confirmation(self, subscriber: store.Subscriber, now: datetime) -> None:
        """After the response: make the signed link, build the message and hand it to the transport."""
        expires = now + timedelta(hours=self.settings.serve.confirm_hours)
        try:
            token = tokens.make(self.settings, subscriber.id, subscriber.token_secret, "confirm", expires)
            link = f"{self.settings.site.base_url}confirm/{token}"
            self._deliver(
                subscriber.email, self.pages.confirmation_email(subscriber.email, link, now, expires)
            )
        except PublisherError as exc:
            log.warning("subscribe: confirmation to %s not sent: %s", subscriber.email, exc.one_line())
            return
        log.info("subscribe: confirmation sent to %s", subscriber.email)

    def _send_welcome(self, subscriber: store.Subscriber, now: datetime) -> None:
        """After the confirmation page went out: the welcome message, when the operator wants one."""
        try:
            links = digest.recipient_links(self.settings, subscriber)
            self._deliver(subscriber.email, self.pages.welcome_email(subscriber.email, links, now))
        except PublisherError as exc:
            log.warning("confirm: welcome to %s not sent: %s", subscriber.email, exc.one_line())
            return
        log.info("confirm: welcome sent to %s", subscriber.email)

    def _deliver(self, address: str, message: bytes) -> None:
        if self.signer is not None:
            message = self.signer.sign(message)
        transport = self.transport_factory()
        try:
            transport.send(self.settings.digest.from_address, [address], message)
        finally:
            transport.close()

    # -- confirm -------------------------------------------------------------------------------

    async def confirm(self, request: Request) -> Response:
        subscriber = await self._token_subscriber(request, "confirm")
        if request.method != "POST":
            return self._form_page(request, "confirm.html.j2", email=subscriber.email)
        form = await read_form(request)
        if not self.csrf.check(request, form, self.clock.now(), static_form=False):
            raise HTTPException(403)
        joined = await run_in_threadpool(self._activate, subscriber.email)
        response = self.pages.render("confirm_done.html.j2", email=subscriber.email)
        if joined is not None and self.settings.serve.welcome:
            response.background = BackgroundTask(self._send_welcome, joined, self.clock.now())
        return response

    def _activate(self, address: str) -> store.Subscriber | None:
        """Make the address active; the subscriber when this made them active, None when they
        were already (a second click on the link sends no second welcome)."""
        conn = self._connect()
        try:
            # add() with status active resets the bounce count; unchanged when already active.
            subscriber, outcome = store.add(conn, address, "", self.clock.now(), status="active")
            log.info(
                "confirm: %s %s", address, "subscribed" if outcome != "unchanged" else "was already active"
            )
        finally:
            conn.close()
        return subscriber if outcome != "unchanged" else None

    # -- unsubscribe ---------------------------------------------------------------------------

    async def unsubscribe(self, request: Request) -> Response:
        if request.method != "POST":
            subscriber = await self._token_subscriber(request, "unsubscribe")
            return self._form_page(request, "unsubscribe.html.j2", email=subscriber.email)
        form = await read_form(request)
        one_click = form.get(ONE_CLICK[0]) == ONE_CLICK[1] and CSRF_FIELD not in form
        if not one_click and not self.csrf.check(request, form, self.clock.now(), static_form=False):
            raise HTTPException(403)
        subscriber = await self._token_subscriber(request, "unsubscribe")
        await run_in_threadpool(self._deactivate, subscriber)
        return self.pages.render("unsubscribe_done.html.j2", email=subscriber.email)

    def _deactivate(self, subscriber: store.Subscriber) -> None:
        conn = self._connect()
        try:
            with db.transaction(conn):
                current = store.get(conn, subscriber.id)
                if current is None or current.status == "unsubscribed":
                    return
                store.set_status(conn, subscriber.id, "unsubscribed", self.clock.now())
            log.info("unsubscribe: %s unsubscribed (was %s)", subscriber.email, current.status)
        finally:
            conn.close()
