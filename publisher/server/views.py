"""The server's HTML pages and its two emails (confirmation, welcome), rendered from templates.

Every page gets `site`, `base` (the URL path the site lives under, e.g. "/") and `title`; pages
with a form also get `csrf` (the hidden field's value). Responses are never cached.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP, Policy
from email.utils import format_datetime
from typing import Any

from starlette.responses import HTMLResponse, Response

from publisher.config import Settings
from publisher.errors import OutputError
from publisher.render import Templates

NO_STORE = {"Cache-Control": "no-store"}
# Header lines up to RFC 5322's limit of 998 characters, so a long URL stays as it is.
_LONG_LINES = SMTP.clone(max_line_length=998)

ERRORS: dict[int, tuple[str, str]] = {
    400: ("This link is not valid", "The link may be mistyped, incomplete or too old."),
    403: (
        "This form has expired",
        "Please go back, reload the page and send the form again. (Cookies must be enabled.)",
    ),
    404: ("Not found", "There is nothing at this address."),
    405: ("Method not allowed", "This address does not accept that kind of request."),
    408: ("Too slow", "The request took too long to arrive. Please try again."),
    412: ("Precondition failed", "The page has changed since your copy."),
    413: ("Request too large", "What was sent is larger than this server accepts."),
    414: ("Address too long", "The address asked for is longer than this server accepts."),
    429: ("Too many requests", "Please wait a little and try again."),
    500: ("Something went wrong", "The server could not complete the request. Please try later."),
}


# Every template the server renders, read and compiled at start: a broken override (not UTF-8, a
# syntax error) stops `publisher serve` with one line instead of failing each request with a 500.
TEMPLATES = (
    "_serve_layout.html.j2",
    "subscribe.html.j2",
    "subscribe_sent.html.j2",
    "confirm.html.j2",
    "confirm_done.html.j2",
    "unsubscribe.html.j2",
    "unsubscribe_done.html.j2",
    "error.html.j2",
    "subscribe.css.j2",
    "confirm_email.txt.j2",
)


class Pages:
    def __init__(self, settings: Settings, base: str) -> None:
        self.settings = settings
        self.base = base
        self.templates = Templates(settings)
        for name in TEMPLATES + (("welcome_email.txt.j2",) if settings.serve.welcome else ()):
            self.templates.load(name)
        self._check_messages()

    def _check_messages(self) -> None:
        """Refuse (OutputError) a confirmation or welcome template that drops its link: rendered
        for a sample reader at start, so a subscriber never gets a message that cannot confirm, or
        a welcome without the one-click unsubscribe its List-Unsubscribe header promises."""
        now = datetime(2000, 1, 1, tzinfo=UTC)
        link = f"{self.settings.site.base_url}confirm/publisher-check"
        checks = [("confirm_email.txt.j2", link, "its confirmation link ({{ link }})")]
        if self.settings.serve.welcome:
            checks.append(
                (
                    "welcome_email.txt.j2",
                    f"{self.settings.site.base_url}unsubscribe/publisher-check",
                    "the reader's unsubscribe URL ({{ unsubscribe }})",
                )
            )
        for name, url, what in checks:
            text = self.templates.render(
                name,
                site=self.settings.site,
                address="reader@example.org",
                link=url,
                expires=now,
                unsubscribe=url,
                schedule=self.settings.digest.schedule,
            )
            if url not in text:
                where = self.templates.origin(name)
                raise OutputError(
                    f"template {where}: the message lacks {what}, so it cannot do its job",
                    hint="put it back in the override, or delete the override to use the bundled template",
                )

    def render(
        self, name: str, status: int = 200, headers: dict[str, str] | None = None, **ctx: Any
    ) -> Response:
        html = self.templates.render(name, site=self.settings.site, base=self.base, **ctx)
        return HTMLResponse(html, status, headers={**NO_STORE, **(headers or {})})

    def error(self, status: int, headers: dict[str, str] | None = None) -> Response:
        title, message = ERRORS.get(status, ("Error", "The request could not be completed."))
        return self.render("error.html.j2", status, headers, title=title, message=message, code=status)

    def stylesheet(self) -> str:
        return self.templates.render("subscribe.css.j2", site=self.settings.site)

    def confirmation_email(self, address: str, link: str, now: datetime, expires: datetime) -> bytes:
        """The one message double opt-in needs: plain text, the link, and who asked for it."""
        site = self.settings.site
        text = self.templates.render(
            "confirm_email.txt.j2", site=site, link=link, address=address, expires=expires
        )
        message = self._email("confirm", address, f"Confirm your subscription to {site.title}", now)
        message.set_content(text, charset="utf-8")
        return message.as_bytes()

    def welcome_email(self, address: str, unsubscribe: tuple[str, str], now: datetime) -> bytes:
        """Sent once a subscriber confirms (when `serve.welcome` is on): the operator's text from
        welcome_email.txt.j2, with the same one-click unsubscribe as every digest (RFC 8058)."""
        site = self.settings.site
        https, mailto = unsubscribe
        text = self.templates.render(
            "welcome_email.txt.j2",
            site=site,
            address=address,
            unsubscribe=https,
            schedule=self.settings.digest.schedule,
        )
        # RFC 2369 links are one unbreakable word each: a policy folding at 78 columns would
        # encode them (RFC 2047), which no mail program reads as a link.
        message = self._email("welcome", address, f"Welcome to {site.title}", now, policy=_LONG_LINES)
        message["List-Unsubscribe"] = f"<{https}>, <{mailto}>"
        if https.startswith("https://"):  # RFC 8058: one-click only with an https URL
            message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        message.set_content(text, charset="utf-8")
        return message.as_bytes()

    def _email(
        self, kind: str, address: str, subject: str, now: datetime, policy: Policy = SMTP
    ) -> EmailMessage:
        digest = self.settings.digest
        message = EmailMessage(policy=policy)
        message["From"] = Address(display_name=digest.from_name, addr_spec=digest.from_address)
        message["To"] = Address(addr_spec=address)
        message["Subject"] = subject
        message["Date"] = format_datetime(now)
        message["Message-ID"] = f"<{kind}.{secrets.token_hex(12)}@{self.settings.site.host}>"
        # RFC 3834: an automatic message; vacation responders must not answer it.
        message["Auto-Submitted"] = "auto-generated"
        if digest.reply_to:
            message["Reply-To"] = digest.reply_to
        return message
