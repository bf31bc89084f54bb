"""Running the app under uvicorn: in the foreground (`publisher serve`) or in a thread (`publisher run`).

The listening socket is bound here, before uvicorn starts, so "address already in use" becomes one
`Error:` line instead of uvicorn's exit, and port 0 (any free port) can be reported back. uvicorn
trusts X-Forwarded-For only from a proxy on 127.0.0.1 (its default, or FORWARDED_ALLOW_IPS), which
is what the per-IP rate limit then sees as the client.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import threading
from collections.abc import Callable
from types import FrameType

import uvicorn

from publisher.clock import Clock
from publisher.config import Settings
from publisher.delivery.mailer import Transport
from publisher.errors import PublisherError
from publisher.server.app import create_app
from publisher.server.front import protocol_for

log = logging.getLogger("publisher.server")


class ServeError(PublisherError):
    """The server could not start (the address is taken, not ours, or not an address)."""


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: any free port)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.set_inheritable(True)
    return sock


def _server(
    settings: Settings, clock: Clock, transport_factory: Callable[[], Transport] | None, fast: bool = True
) -> uvicorn.Server:
    app = create_app(settings, clock, transport_factory)
    config = uvicorn.Config(
        app,
        # GETs of cached files in feeds/ are answered in the protocol itself (server/front.py, fast.py).
        http=protocol_for(app.state.feed_files, app.state.dynamic_paths) if fast else "httptools",
        log_config=None,  # publisher.logs has set up logging already
        server_header=False,
        proxy_headers=True,
        lifespan="off",
        timeout_graceful_shutdown=5,
    )
    return uvicorn.Server(config)


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def run(
    settings: Settings,
    clock: Clock,
    host: str,
    port: int,
    transport_factory: Callable[[], Transport] | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM. `on_ready(url)` is called once the socket listens."""
    sock = bind(host, port)
    # uvicorn stops gracefully on SIGINT/SIGTERM, then re-raises the signal to the handler that was
    # in place before it started; a quiet one makes a requested stop a clean exit (status 0).
    main = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.signal(sig, _stopped) for sig in (signal.SIGINT, signal.SIGTERM)} if main else {}
    try:
        server = _server(settings, clock, transport_factory)
        if on_ready is not None:
            on_ready(url_of(sock))
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()


def _stopped(signum: int, frame: FrameType | None) -> None:
    log.info("stopped by signal %d", signum)


class Background:
    """The server in a daemon thread, for `publisher run` (daemon.serve = true)."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        host: str,
        port: int,
        transport_factory: Callable[[], Transport] | None = None,
        fast: bool = True,
    ) -> None:
        self.sock = bind(host, port)
        self.url = url_of(self.sock)
        self.server = _server(settings, clock, transport_factory, fast)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, name="publisher-serve", daemon=True
        )

    def start(self) -> str:
        self.thread.start()
        log.info("serving on %s", self.url)
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)
        with contextlib.suppress(OSError):
            self.sock.close()
