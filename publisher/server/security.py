"""Request safety: response headers (CSP and friends), bounded requests, and CSRF checks.

CSRF, decided as follows (docs/serve.md explains it to operators):

- Pages the server renders (`/subscribe`, `/confirm/<token>`, `/unsubscribe/<token>`) carry a signed
  double-submit token: a random nonce in an HttpOnly SameSite=Strict cookie, and in a hidden field
  `nonce.issued.HMAC(key, nonce|issued)`. A POST passes when the field's signature is good, it is
  younger than two hours, and its nonce equals the cookie's.
- The subscribe form included in the static `index.html` cannot carry a token, so a POST without
  one passes only when the browser says it came from this very site: an `Origin` header equal to the
  site's origin (from `site.base_url`) or to the Host the request was sent to, and no
  `Sec-Fetch-Site` other than same-origin. Browsers send `Origin` with every form POST and a page
  cannot forge it; a tool that sends neither token nor Origin is refused.
- The cookie is `Secure` when the request came over https or was addressed to the https site's
  host name; over plain HTTP elsewhere (a LAN address) it is not, or browsers would drop it. A
  POST with a token but no cookie at all (the browser kept none) passes on the same Origin check
  as the static form.
- Whatever the token, a POST whose `Origin` names another site, or that a browser marks
  cross-site, is refused.
- RFC 8058 one-click unsubscribing is not a form and needs no CSRF check: the signed token in its
  URL is the whole authority, and mail providers post it without cookies.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
from datetime import datetime
from urllib.parse import urlsplit

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSRF_COOKIE = "publisher_csrf"
CSRF_FIELD = "csrf"
CSRF_MAX_AGE = 2 * 3600
MAX_URL = 2048

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
# Atom and RSS documents carry <?xml-stylesheet href="atom.xsl"?>: browsers load an XSLT
# stylesheet under script-src (only same-origin files served as text/xsl qualify; nosniff keeps
# anything else from running as script), and the page it produces has an inline <style>.
FEED_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    # Token URLs must never leak to another site through Referer. Not "no-referrer": with it,
    # browsers send `Origin: null` on form posts, and the Origin check needs the real origin.
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
}


class SecurityHeaders:
    """ASGI middleware: every response gets the headers above (unless the route set its own)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.raw = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in HEADERS.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                # Raw tuples, not MutableHeaders: this runs for every response, 304s included.
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers.extend(item for item in self.raw if item[0] not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


class BoundedRequests:
    """ASGI middleware: URLs over 2048 bytes get 414, bodies over `limit` bytes get 413, bodies
    not received within `timeout` seconds of the request's head get 408.

    A declared Content-Length over the limit is refused before anything is read; a chunked body is
    counted as it arrives and refused as soon as it passes the limit. (The head itself has the same
    time limit, enforced by the server: publisher.server.runner.)
    """

    def __init__(self, app: ASGIApp, limit: int, timeout: float) -> None:
        self.app = app
        self.limit = limit
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if (
            len(scope.get("raw_path") or scope["path"].encode()) + len(scope.get("query_string", b""))
            > MAX_URL
        ):
            await _plain(414, "URI too long\n")(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await _plain(400, "Bad request\n")(scope, receive, send)
                return
            if int(declared) > self.limit:
                await _plain(413, "Request body too large\n")(scope, receive, send)
                return
        seen = 0
        deadline = asyncio.get_running_loop().time() + self.timeout

        async def counted() -> Message:
            nonlocal seen
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise HTTPException(408, "Request body too slow") from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise HTTPException(413, "Request body too large")
            return message

        await self.app(scope, counted, send)


def _plain(status: int, text: str) -> Response:
    return Response(text, status, media_type="text/plain; charset=utf-8", headers={"Connection": "close"})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class Csrf:
    """Signed double-submit tokens, plus the Origin / Sec-Fetch-Site checks described above."""

    def __init__(self, site_secret: bytes, base_url: str) -> None:
        self.key = hmac.new(site_secret, b"publisher-csrf-v1", hashlib.sha256).digest()
        parts = urlsplit(base_url)
        self.site_origin = f"{parts.scheme}://{parts.netloc}".lower()
        # The https site's own host name: a request addressed to it came through TLS (a proxy in
        # front, which may talk plain HTTP to us).
        self.secure_host = parts.netloc.lower() if parts.scheme == "https" else None

    def secure(self, request: Request) -> bool:
        """Whether the cookie may be `Secure`: the request came over https, or was addressed to the
        https site's host. Over plain HTTP elsewhere (a LAN address, a test) browsers drop a
        Secure cookie, and every form would fail."""
        host = request.headers.get("host", "").lower()
        return request.url.scheme == "https" or (self.secure_host is not None and host == self.secure_host)

    def _sign(self, nonce: str, issued: int) -> str:
        return _b64(hmac.new(self.key, f"{nonce}|{issued}".encode(), hashlib.sha256).digest()[:18])

    def issue(self, now: datetime) -> tuple[str, str]:
        """A fresh (cookie value, form field value) pair."""
        nonce = secrets.token_urlsafe(18)
        issued = int(now.timestamp())
        return nonce, f"{nonce}.{issued}.{self._sign(nonce, issued)}"

    def set_cookie(self, response: Response, cookie: str, request: Request) -> None:
        response.set_cookie(
            CSRF_COOKIE,
            cookie,
            max_age=CSRF_MAX_AGE,
            path="/",
            secure=self.secure(request),
            httponly=True,
            samesite="strict",
        )

    def token_valid(self, cookie: str | None, field: str | None, now: datetime) -> bool:
        if not cookie or not field or field.count(".") != 2:
            return False
        nonce, issued_text, signature = field.split(".")
        if not issued_text.isdigit() or not hmac.compare_digest(nonce.encode(), cookie.encode()):
            return False
        issued = int(issued_text)
        if not 0 <= now.timestamp() - issued <= CSRF_MAX_AGE:
            return False
        return hmac.compare_digest(self._sign(nonce, issued).encode(), signature.encode())

    def same_site(self, request: Request) -> bool | None:
        """True: the browser says this request came from this site; False: from another; None: silent."""
        fetch_site = request.headers.get("sec-fetch-site")
        if fetch_site is not None and fetch_site not in ("same-origin", "none"):
            return False
        origin = request.headers.get("origin")
        if origin is None:
            return None
        origin = origin.strip().lower()
        host = request.headers.get("host", "").lower()
        if origin == self.site_origin:
            return True
        parts = urlsplit(origin)
        return bool(host) and parts.scheme in ("http", "https") and parts.netloc == host and not parts.path

    def check(self, request: Request, form: dict[str, str], now: datetime, *, static_form: bool) -> bool:
        """Whether a form POST passes: see the module docstring. `static_form` allows the tokenless
        post from the static index.html (subscribe only)."""
        verdict = self.same_site(request)
        if verdict is False:
            return False
        field = form.get(CSRF_FIELD)
        if field is None and static_form:
            return verdict is True
        cookie = request.cookies.get(CSRF_COOKIE)
        if cookie is None and field is not None:
            # The browser kept no cookie (a Secure one over plain HTTP behind a proxy that hides
            # the scheme, or cookies off): its Origin header alone vouches, as for the static form.
            return verdict is True
        return self.token_valid(cookie, field, now)
