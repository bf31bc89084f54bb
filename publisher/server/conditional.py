"""Conditional requests and content coding for the files under feeds/: RFC 9110's preconditions
(section 13: If-Match, If-Unmodified-Since, If-None-Match, If-Modified-Since, in the spec's order)
and whether Accept-Encoding allows gzip.
"""

from __future__ import annotations

from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from functools import lru_cache


@lru_cache(maxsize=256)
def accepts_gzip(header: str | None) -> bool:
    """Whether Accept-Encoding allows gzip (an explicit q=0 refuses it; `*` counts)."""
    if not header:
        return False
    star: float | None = None
    for item in header.split(","):
        coding, _, params = item.strip().partition(";")
        quality = 1.0
        params = params.strip().replace(" ", "")
        if params.startswith("q="):
            try:
                quality = float(params[2:])
            except ValueError:
                quality = 0.0
        name = coding.strip().lower()
        if name in ("gzip", "x-gzip"):
            return quality > 0
        if name == "*":
            star = quality
    return star is not None and star > 0


def _etag_list(header: str) -> list[str]:
    return [tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()]


def _http_date(header: str) -> int | None:
    try:
        moment = parsedate_to_datetime(header)
    except (TypeError, ValueError, IndexError, OverflowError):  # a year like 99999999999999999999
        return None
    if moment is None or moment.tzinfo is None:
        return None
    return int(moment.timestamp())


def precondition(headers: Mapping[str, str], etag: str, mtime: int) -> int | None:
    """RFC 9110 section 13.2.2: 412, 304 or None (send the representation), in the spec's order."""
    if_match = headers.get("if-match")
    if if_match is not None:
        # Strong comparison: a weak validator never matches If-Match.
        tags = [t.strip() for t in if_match.split(",")]
        if "*" not in tags and etag not in tags:
            return 412
    else:
        unmodified = headers.get("if-unmodified-since")
        if unmodified is not None:
            since = _http_date(unmodified)
            if since is not None and mtime > since:
                return 412
    none_match = headers.get("if-none-match")
    if none_match is not None:
        tags = _etag_list(none_match)
        if "*" in tags or etag.removeprefix("W/") in tags:
            return 304
        return None
    modified = headers.get("if-modified-since")
    if modified is not None:
        since = _http_date(modified)
        if since is not None and mtime <= since:
            return 304
    return None
