"""The ASGI application: routes, middleware and error pages, put together by `create_app`.

Routes live under the path of `site.base_url` (usually "/"): `subscribe`, `subscribe.css`,
`confirm/<token>`, `unsubscribe/<token>`, and everything else is a file in feeds/. The app only
reads feeds/ and never writes into it or seeds/; its one store is the state database (subscribers)
and, through the transport, the outbox.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from publisher.clock import Clock
from publisher.config import Settings
from publisher.delivery import transports
from publisher.delivery.transports import Transport
from publisher.server.security import HEADERS as SECURITY_HEADERS
from publisher.server.security import BoundedRequests, Csrf, SecurityHeaders
from publisher.server.static import FeedFiles
from publisher.server.subscribe import Subscriptions
from publisher.server.views import Pages
from publisher.store import keys

log = logging.getLogger("publisher.server")


class FilesFirst:
    """ASGI middleware: a GET or HEAD of a file in feeds/ that is cached and current is answered
    here, before the router, with the headers the file's entry holds (the security headers
    included); anything else, a refusal or a 412 included, goes on to the app."""

    def __init__(self, app: ASGIApp, files: FeedFiles, dynamic: tuple[str, ...]) -> None:
        self.app = app
        self.files = files
        self.dynamic = dynamic

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] in ("GET", "HEAD")
            and not scope["path"].startswith(self.dynamic)
        ):
            found = self.files.locate(scope["path"])
            if isinstance(found, tuple) and found[2] is not None:
                entry = found[2]
                headers = {
                    name.decode("latin-1"): value.decode("latin-1")
                    for name, value in scope["headers"]
                    if name.startswith(b"if-") or name == b"accept-encoding"
                }
                status, use_gzip = self.files.decide(entry, headers)
                if status != 412:
                    head = entry.headers(status, use_gzip, self.files.cache_control)
                    body = entry.payload(use_gzip) if status == 200 and scope["method"] == "GET" else b""
                    await send({"type": "http.response.start", "status": status, "headers": head})
                    await send({"type": "http.response.body", "body": body})
                    return
        await self.app(scope, receive, send)


def create_app(
    settings: Settings,
    clock: Clock,
    transport_factory: Callable[[], Transport] | None = None,
) -> ASGIApp:
    """The whole server for one site. `transport_factory` opens a mail transport per confirmation
    message (default: the one `delivery.transport` names)."""
    settings.require_site_identity("the confirmation mail serve sends names the site and links to it")
    base = urlsplit(settings.site.base_url).path
    pages = Pages(settings, base)
    # Refuses to start when state/secret.key is gone but links signed with it are out (store/keys.py).
    csrf = Csrf(keys.require_at_start(settings), settings.site.base_url)
    factory = transport_factory or (lambda: transports.open_transport(settings))
    subscriptions = Subscriptions(settings, clock, factory, pages, csrf)
    files = FeedFiles(settings.feeds_dir, settings.serve.cache_max_age, base)
    css = pages.stylesheet().encode("utf-8")
    css_etag = f'"{hashlib.sha256(css).hexdigest()[:32]}"'

    async def stylesheet(request: Request) -> Response:
        headers = {"ETag": css_etag, "Cache-Control": f"public, max-age={settings.serve.cache_max_age}"}
        if css_etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        return Response(css, headers=headers, media_type="text/css; charset=utf-8")

    async def feeds(request: Request) -> Response:
        return await files.serve(request)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return pages.error(exc.status_code, dict(exc.headers or {}))

    async def server_error(request: Request, exc: Exception) -> Response:
        log.error("%s %s failed: %s", request.method, request.url.path, exc, exc_info=exc)
        response = pages.error(500)
        # Starlette answers this outside the middleware stack, so SecurityHeaders never sees it.
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    routes = [
        Route(f"{base}subscribe", subscriptions.subscribe, methods=["GET", "POST"]),
        Route(f"{base}subscribe.css", stylesheet, methods=["GET"]),
        Route(f"{base}confirm/{{token}}", subscriptions.confirm, methods=["GET", "POST"]),
        Route(f"{base}unsubscribe/{{token}}", subscriptions.unsubscribe, methods=["GET", "POST"]),
        Route("/{path:path}", feeds, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(
                BoundedRequests,
                limit=settings.serve.max_body_bytes,
                timeout=settings.serve.request_timeout,
            ),
        ],
        exception_handlers={HTTPException: http_error, Exception: server_error},
    )
    # Starlette would answer "/subscribe/" with a redirect built from the Host header; a 404 is safer.
    app.router.redirect_slashes = False
    dynamic = tuple(f"{base}{name}" for name in ("subscribe", "confirm/", "unsubscribe/"))
    return FilesFirst(app, files, dynamic)
