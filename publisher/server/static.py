"""Serving feeds/ over HTTP: safe paths, content types, validators, conditional requests and gzip.

A URL path is checked lexically first (no empty, dot or hidden segments, no NUL, backslash or
control characters), then resolved with symlinks followed and required to stay inside feeds/; every
refusal is a 404 that says nothing about what exists. Each file is read once per version (device,
inode, mtime, change time, size) into an in-memory cache holding its strong ETag (a content hash), its
Last-Modified date and its gzip form, so a 304 costs one `stat` and a dictionary look-up. Which
answer a request's headers call for is publisher.server.conditional's to say.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import stat
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path, PurePath

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from publisher.server.conditional import accepts_gzip, precondition
from publisher.server.security import FEED_CSP
from publisher.server.security import HEADERS as SECURITY_HEADERS

# Files above this size are streamed from disk (with ranges) instead of being held in memory.
MAX_CACHED_FILE = 4 * 1024 * 1024
# Total bytes (bodies + gzip forms) the cache may hold before the least recently used go.
CACHE_BYTES = 64 * 1024 * 1024
# Below this size gzip saves too little to be worth a header and a CPU cycle.
MIN_GZIP = 256

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".xsl": "text/xsl; charset=utf-8",
    ".xslt": "text/xsl; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".json": "application/json",
    ".xml": "application/xml",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
}
# Documents a browser may render through atom.xsl: they get FEED_CSP instead of the default.
_STYLED = ("application/atom+xml", "application/rss+xml", "application/xml", "text/xsl")
_COMPRESSIBLE = ("text/", "application/json", "application/xml", "+xml", "+json", "image/svg+xml")


def content_type(name: str, head: bytes) -> str:
    """The media type of a file in feeds/, from its name and, for XML and JSON, its first bytes."""
    suffix = PurePath(name).suffix.lower()
    kind = _TYPES.get(suffix, "application/octet-stream")
    if suffix == ".xml":
        # Archive documents (RFC 5005) have their own names; the root element tells Atom from RSS.
        if b"<feed" in head:
            return "application/atom+xml; charset=utf-8"
        if b"<rss" in head:
            return "application/rss+xml; charset=utf-8"
        if b"<xsl:stylesheet" in head or b"<xsl:transform" in head:
            return "text/xsl; charset=utf-8"
    if suffix == ".json" and b"jsonfeed.org/version" in head:
        return "application/feed+json"
    return kind


def _compressible(kind: str) -> bool:
    base = kind.split(";", 1)[0]
    return any(base.startswith(p) or base.endswith(p) for p in _COMPRESSIBLE)


# NUL and other control characters, DEL, backslashes (a path separator elsewhere), hidden names.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f\\]|/\.")


def safe_segments(url_path: str) -> list[str] | None:
    """The path's segments when it may name something inside feeds/, else None.

    `url_path` is already percent-decoded (so `%2e%2e` arrives as `..`). A trailing slash yields a
    final empty segment, meaning "the index of this folder".
    """
    if not url_path.startswith("/") or "//" in url_path or _UNSAFE.search(url_path):
        return None
    return url_path[1:].split("/")


@dataclass(frozen=True)
class Entry:
    """One version of one file, ready to send."""

    version: Version
    content_type: str
    etag: str
    gzip_etag: str | None
    last_modified: str
    mtime: int
    body: bytes
    gzipped: bytes | None
    extra: tuple[tuple[str, str], ...] = ()  # Vary and CSP, decided once per file
    # Response headers per (status, gzip), built on first use.
    heads: dict[tuple[int, bool], list[tuple[bytes, bytes]]] = field(default_factory=dict, compare=False)

    @property
    def size(self) -> int:
        return len(self.body) + len(self.gzipped or b"")

    def payload(self, use_gzip: bool) -> bytes:
        """The bytes a 200 sends: the gzip form when asked for and there is one."""
        return self.gzipped if use_gzip and self.gzipped is not None else self.body

    def headers(self, status: int, use_gzip: bool, cache_control: str) -> list[tuple[bytes, bytes]]:
        """The headers of a 200 or 304 for this file: validators, caching, type, length (not on a
        304, RFC 9110 section 15.4.5) and the security headers (the file's own CSP wins)."""
        key = (status, use_gzip)
        found = self.heads.get(key)
        if found is not None:
            return found
        items = [
            ("etag", self.gzip_etag if use_gzip and self.gzip_etag else self.etag),
            ("last-modified", self.last_modified),
            ("cache-control", cache_control),
            *((name.lower(), value) for name, value in self.extra),
        ]
        if status == 200:
            length = str(len(self.payload(use_gzip)))
            items += [("content-type", self.content_type), ("content-length", length)]
            if use_gzip:
                items.append(("content-encoding", "gzip"))
        present = {name for name, _ in items}
        items += [(name, value) for name, value in SECURITY_HEADERS.items() if name not in present]
        raw = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in items]
        self.heads[key] = raw
        return raw


# Which version of a file a cached entry holds. The change time too: a file rewritten in place
# with the same size and its mtime put back (`cp -p`, `rsync --inplace -t`) keeps the rest.
Version = tuple[int, int, int, int, int]


def _version(st: os.stat_result) -> Version:
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)


def load_entry(path: str, st: os.stat_result) -> Entry:
    """Read a file and compute what its responses need (runs in a worker thread). The entry's
    version is the one of what was read: if the file changed since `st` (replaced, or written to
    while being read), it differs from `st`'s, and `FeedFiles.load` serves the entry uncached."""
    with Path(path).open("rb") as handle:
        body = handle.read(MAX_CACHED_FILE + 1)
        st = os.fstat(handle.fileno())
    kind = content_type(path, body[:512])
    digest = hashlib.sha256(body).hexdigest()[:32]
    gzipped = None
    if _compressible(kind) and len(body) >= MIN_GZIP:
        packed = gzip.compress(body, compresslevel=6, mtime=0)
        gzipped = packed if len(packed) < len(body) else None
    extra: list[tuple[str, str]] = []
    if _compressible(kind):
        extra.append(("Vary", "Accept-Encoding"))
    if kind.startswith(_STYLED):
        extra.append(("Content-Security-Policy", FEED_CSP))
    return Entry(
        extra=tuple(extra),
        version=_version(st),
        content_type=kind,
        etag=f'"{digest}"',
        gzip_etag=f'"{digest}-gzip"' if gzipped is not None else None,
        last_modified=formatdate(int(st.st_mtime), usegmt=True),
        mtime=int(st.st_mtime),
        body=body,
        gzipped=gzipped,
    )


class FeedFiles:
    """The static half of the server: everything under feeds/, read-only."""

    def __init__(self, root: Path, max_age: int, base_path: str = "/") -> None:
        self.root = root
        self.base_path = base_path
        self.cache_control = f"public, max-age={max_age}"
        self._cache: OrderedDict[str, Entry] = OrderedDict()
        self._cached_bytes = 0

    def inside(self, candidate: str) -> bool:
        """Whether `candidate`, symlinks followed, is feeds/ or lies inside it."""
        root = os.path.realpath(self.root)
        real = os.path.realpath(candidate)
        return real == root or real.startswith(root + os.sep)

    def locate(self, url_path: str) -> tuple[str, os.stat_result, Entry | None] | str | None:
        """What a URL path (under the site's base path) names: (file path, stat, its cached entry
        when still current), a redirect target for a folder asked for without its slash (the
        base path included: "/news" for a site at "/news/"), or None (404).

        The hot path is one `stat`: a cached entry is reused only for the very same file version
        (device, inode, mtime, change time, size), which was checked to lie inside feeds/ when it was loaded.
        Anything else has its real path (symlinks followed) checked again.
        """
        if not url_path.startswith(self.base_path):
            if url_path + "/" == self.base_path:  # the site's own path without its slash
                return url_path.rsplit("/", 1)[-1] + "/"  # relative, as for any folder
            return None
        segments = safe_segments("/" + url_path[len(self.base_path) :])
        if segments is None:
            return None
        # Plain strings and os.path here: this runs for every request, 304s included.
        candidate = os.path.join(self.root, *segments)  # noqa: PTH118
        if segments[-1] == "":
            candidate += "index.html"
        try:
            st = os.stat(candidate)  # noqa: PTH116
        except (OSError, ValueError):
            return None
        if stat.S_ISREG(st.st_mode):
            cached = self._cache.get(candidate)
            if cached is not None and cached.version == _version(st):
                self._cache.move_to_end(candidate)
                return candidate, st, cached
        elif not stat.S_ISDIR(st.st_mode):
            return None
        if not self.inside(candidate):
            return None
        if stat.S_ISDIR(st.st_mode):
            # Relative, so it can never point at another host.
            return segments[-1] + "/"
        return candidate, st, None

    async def load(self, path: str, st: os.stat_result) -> Entry | None:
        """Read and cache this version of the file; None when it is too big to hold in memory."""
        if st.st_size > MAX_CACHED_FILE:
            return None
        entry = await run_in_threadpool(load_entry, path, st)
        if entry.version != _version(st) or len(entry.body) > MAX_CACHED_FILE:
            return entry  # changed while being read: serve it, cache the next read
        old = self._cache.pop(path, None)
        if old is not None:
            self._cached_bytes -= old.size
        self._cache[path] = entry
        self._cached_bytes += entry.size
        while self._cached_bytes > CACHE_BYTES and len(self._cache) > 1:
            _, dropped = self._cache.popitem(last=False)
            self._cached_bytes -= dropped.size
        return entry

    async def serve(self, request: Request) -> Response:
        """GET or HEAD of a file (the router refuses other methods with 405)."""
        # The decoded path as the server received it (request.url would re-parse a decoded "?").
        found = self.locate(request.scope["path"])
        if found is None:
            raise HTTPException(404)
        if isinstance(found, str):
            return Response(status_code=301, headers={"Location": found, "Cache-Control": "no-cache"})
        real, st, entry = found
        headers = {k: v for k, v in request.headers.items() if k.startswith("if-") or k == "accept-encoding"}
        if entry is None:
            entry = await self.load(real, st)
            if entry is None:
                return self._large(real, st, headers)
        status, use_gzip = self.decide(entry, headers)
        if status == 412:
            raise HTTPException(412)
        response = Response(status_code=status)
        response.raw_headers = list(entry.headers(status, use_gzip, self.cache_control))
        if status == 200 and request.method != "HEAD":
            # HEAD: the same headers as GET (Content-Length included), no body.
            response.body = entry.payload(use_gzip)
        return response

    def decide(self, entry: Entry, headers: Mapping[str, str]) -> tuple[int, bool]:
        """(200, 304 or 412; whether the answer is the gzip form) for a request's headers."""
        use_gzip = entry.gzipped is not None and accepts_gzip(headers.get("accept-encoding"))
        etag = entry.gzip_etag if use_gzip and entry.gzip_etag else entry.etag
        return precondition(headers, etag, entry.mtime) or 200, use_gzip

    def _large(self, real: str, st: os.stat_result, headers: dict[str, str]) -> Response:
        with Path(real).open("rb") as handle:
            head = handle.read(512)
        version = "-".join(str(part) for part in _version(st))
        etag = f'"{hashlib.sha256(version.encode()).hexdigest()[:32]}"'
        common = {
            "ETag": etag,
            "Last-Modified": formatdate(int(st.st_mtime), usegmt=True),
            "Cache-Control": self.cache_control,
        }
        status = precondition(headers, etag, int(st.st_mtime))
        if status == 304:
            return Response(status_code=304, headers=common)
        if status == 412:
            raise HTTPException(412)
        return FileResponse(real, headers=common, media_type=content_type(real, head), stat_result=st)
