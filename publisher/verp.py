"""VERP (variable envelope return path): each digest message's envelope sender names its digest
and carries a tag only publisher can make, so a bounce that comes back without the original
message is still tied to the subscriber and the digest.

    news+<digest key>.<tag>@news.example.org

The digest key is the first 8 hex digits of SHA-256(digest id); the tag is HMAC-SHA256 of the
digest id and the recipient's address under the site secret, 16 bytes in lower-case base32 (26
characters). The local part stays far within SMTP's 64 characters. The mail server must deliver
`news+anything@` to `news@` (Postfix: `recipient_delimiter = +`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable

_LABEL = b"publisher-verp-v1|"
_PATTERN = re.compile(r"^([^+@\s]+)\+([0-9a-f]{8})\.([a-z2-7]{26})@([^@\s]+)$", re.IGNORECASE)


def digest_key(digest_id: str) -> str:
    return hashlib.sha256(digest_id.encode("utf-8")).hexdigest()[:8]


def _tag(secret: bytes, digest_id: str, address: str) -> str:
    mac = hmac.new(secret, _LABEL + f"{digest_id}\0{address.lower()}".encode(), hashlib.sha256).digest()
    return base64.b32encode(mac[:16]).decode("ascii").rstrip("=").lower()


def sender_for(secret: bytes, digest_id: str, base: str) -> Callable[[str], str]:
    """The envelope sender of each recipient's message of `digest_id`, from the `base` address."""
    local, _, domain = base.partition("@")
    key = digest_key(digest_id)
    return lambda address: f"{local}+{key}.{_tag(secret, digest_id, address)}@{domain}"


def parse(address: str) -> tuple[str, str] | None:
    """(digest key, tag) of a VERP address of ours, else None."""
    match = _PATTERN.match(address.strip().strip("<>"))
    if match is None:
        return None
    return match.group(2).lower(), match.group(3).lower()


def matches(secret: bytes, digest_id: str, address: str, tag: str) -> bool:
    """True when `tag` is the one made for (digest, address)."""
    return hmac.compare_digest(_tag(secret, digest_id, address), tag)
