"""`publisher serve`: the HTTP server for feeds/, subscribing and unsubscribing (the only home of
Starlette and Hypercorn). `create_app(settings, clock, transport_factory)` builds the ASGI app;
`run(settings, clock, host, port)` serves it with Hypercorn until interrupted."""

from __future__ import annotations

from publisher.server.app import create_app
from publisher.server.runner import Background, ServeError, run

__all__ = ["Background", "ServeError", "create_app", "run"]
