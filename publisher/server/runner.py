"""Running the app under Hypercorn: in the foreground (`publisher serve`) or in a thread (`publisher run`).

Hypercorn is used through its public API only (`hypercorn.asyncio.serve` and its `Config`). It was
chosen for one setting: its keep-alive timeout also runs on a connection that has not finished
sending a request head, whether it sent nothing or a few bytes at a time, so `serve.request_timeout`
closes slow and incomplete clients (docs/serve.md, "Slow clients").

The listening socket is bound here, before Hypercorn starts, so "address already in use" becomes
one `Error:` line, and port 0 (any free port) can be reported back; Hypercorn gets a duplicate of
it (`fd://`), which it closes when it stops. `X-Forwarded-For` is believed only from the addresses
in the environment variable FORWARDED_ALLOW_IPS (default 127.0.0.1, a proxy on this machine),
which is what the per-IP rate limit then sees as the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import resource
import signal
import socket
import threading
from collections.abc import Callable
from urllib.parse import urlsplit

from hypercorn.asyncio import serve
from hypercorn.config import Config
from starlette.types import ASGIApp, Receive, Scope, Send

from publisher.clock import Clock
from publisher.config import Settings
from publisher.delivery.transports import Transport
from publisher.errors import PublisherError
from publisher.server.app import create_app

log = logging.getLogger("publisher.server")

# The most a request's line and headers may take together (nginx's default total is 32 KiB too);
# past it Hypercorn answers 431 and closes the connection.
MAX_HEAD = 32 * 1024
# Connections waiting to be accepted.
BACKLOG = 1024
# Open files wanted: every connection is one; thousands of idle clients must not exhaust them
# before request_timeout closes them.
WANTED_FILES = 65536


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
        # Accepted connections inherit it: an answer's last segment must not wait for the
        # client's delayed ACK (Hypercorn sets it only on sockets it creates itself).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sock


def url_of(sock: socket.socket, settings: Settings | None = None) -> str:
    """Where the site is served on this socket: the path of `site.base_url` (the routes live
    under it, see server/app.py) on the address listened on; on all addresses (0.0.0.0, ::), on
    this machine's loopback address, since a browser cannot open http://0.0.0.0/."""
    host, port = sock.getsockname()[:2]
    if _everywhere(host):
        host = "::1" if ":" in host else "127.0.0.1"
    shown = f"[{host}]" if ":" in host else host
    path = urlsplit(settings.site.base_url).path if settings is not None else "/"
    return f"http://{shown}:{port}{path}"


def announce(sock: socket.socket, settings: Settings | None = None) -> str:
    """`url_of`, and when the socket listens on all addresses, a note saying so."""
    host = sock.getsockname()[0]
    note = (
        f" (listening on all addresses, {host}: other machines use this one's name)"
        if _everywhere(host)
        else ""
    )
    return url_of(sock, settings) + note


def _everywhere(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_unspecified
    except ValueError:
        return False


def raise_file_limit() -> None:
    """Raise this process's soft limit on open files towards the hard one (the headroom for idle
    connections); never lower it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = WANTED_FILES if hard == resource.RLIM_INFINITY else min(WANTED_FILES, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


class TrustedProxy:
    """ASGI middleware: the client is the last address in `X-Forwarded-For` when the peer is a
    trusted proxy; anyone else could forge the header to escape the per-IP rate limit."""

    def __init__(self, app: ASGIApp, trusted: frozenset[str]) -> None:
        self.app = app
        self.trusted = trusted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if scope["type"] == "http" and client and client[0] in self.trusted:
            forwarded = [value for name, value in scope["headers"] if name == b"x-forwarded-for"]
            if forwarded:
                last = b",".join(forwarded).decode("latin-1").rsplit(",", 1)[-1].strip()
                if last:
                    scope = {**scope, "client": (last, 0)}
        await self.app(scope, receive, send)


def _trusted() -> frozenset[str]:
    listed = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
    return frozenset(item.strip() for item in listed.split(",") if item.strip())


def _config(settings: Settings) -> Config:
    config = Config()
    config.backlog = BACKLOG
    # Closes a connection whose request head is not complete this long after it opened (or after
    # the previous answer on it), and idle keep-alive connections.
    config.keep_alive_timeout = settings.serve.request_timeout
    config.h11_max_incomplete_size = MAX_HEAD
    config.include_server_header = False
    config.graceful_timeout = 5
    config.errorlog = logging.getLogger("hypercorn.error")  # quiet unless -vv (publisher.logs)
    config.accesslog = None
    return config


class Server:
    """The app and Hypercorn for one site, run until `stop()` or, in the main thread, a signal."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        sock: socket.socket,
        transport_factory: Callable[[], Transport] | None = None,
    ) -> None:
        self.app = TrustedProxy(create_app(settings, clock, transport_factory), _trusted())
        self.config = _config(settings)
        self.sock = sock
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopping: asyncio.Event | None = None
        self.ready = threading.Event()

    def run(self) -> None:
        raise_file_limit()
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(self._serve())

    async def _serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.stopping = asyncio.Event()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.loop.add_signal_handler(sig, self._signalled, sig)
        self.ready.set()
        # Hypercorn closes the socket it is given when it stops; ours stays with its owner.
        self.config.bind = [f"fd://{os.dup(self.sock.fileno())}"]
        await serve(self.app, self.config, shutdown_trigger=self.stopping.wait)  # type: ignore[arg-type]

    def _signalled(self, signum: int) -> None:
        log.info("stopped by signal %d", signum)
        assert self.stopping is not None
        self.stopping.set()

    def stop(self) -> None:
        """Stop gracefully (from any thread): open requests get up to 5 s to finish."""
        if self.ready.wait(10) and self.loop is not None and self.stopping is not None:
            with contextlib.suppress(RuntimeError):  # the loop has ended already
                self.loop.call_soon_threadsafe(self.stopping.set)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop  # optional: a faster event loop where it installs
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def check_feeds(settings: Settings) -> None:
    """Refuse to serve a feeds folder that is not there: every request would be a 404 (a site
    never built, or `paths.feeds` pointing at the wrong place)."""
    feeds = settings.feeds_dir
    if not feeds.exists():
        raise ServeError(
            f"{feeds}: the feeds folder does not exist, so there is nothing to serve",
            hint="run `publisher build` first, or fix paths.feeds",
        )
    if not feeds.is_dir():
        raise ServeError(f"{feeds}: the feeds folder is not a folder", hint="fix paths.feeds")


def run(
    settings: Settings,
    clock: Clock,
    host: str,
    port: int,
    transport_factory: Callable[[], Transport] | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM (a clean stop). `on_ready(url)` is called once the socket listens."""
    sock = bind(host, port)
    try:
        server = Server(settings, clock, sock, transport_factory)
        check_feeds(settings)
        if on_ready is not None:
            on_ready(announce(sock, settings))
        server.run()
    finally:
        sock.close()


class Background:
    """The server in a daemon thread, for `publisher run` (daemon.serve = true)."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        host: str,
        port: int,
        transport_factory: Callable[[], Transport] | None = None,
    ) -> None:
        self.sock = bind(host, port)
        try:
            self.url = url_of(self.sock, settings)
            self.shown = announce(self.sock, settings)
            self.server = Server(settings, clock, self.sock, transport_factory)
        except BaseException:
            self.sock.close()  # a server that cannot start (broken template) frees its port
            raise
        self.thread = threading.Thread(target=self.server.run, name="publisher-serve", daemon=True)

    def start(self) -> str:
        self.thread.start()
        log.info("serving on %s", self.shown)
        return self.url

    def stop(self, timeout: float = 10.0) -> None:
        if self.thread.is_alive():
            self.server.stop()
            self.thread.join(timeout)
        with contextlib.suppress(OSError):
            self.sock.close()
