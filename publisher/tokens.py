"""Signed per-subscriber tokens for the unsubscribe and confirm links.

A token is URL-safe base64 without padding (only `A-Z a-z 0-9 - _`, so it needs no escaping in a
URL path, in HTML or in a header) of 30 bytes:

    version (1) | purpose (1) | subscriber id (8, big-endian) | expiry (4, Unix seconds, 0 = never)
    | HMAC-SHA256 tag truncated to 16 bytes

The tag's key is HMAC-SHA256(site secret, "publisher-token-v1|" + the subscriber's token_secret),
so a token is only valid while both the site secret and that subscriber's token secret are unchanged:
rotating `subscribers.token_secret` voids every link already sent to that one person.

The site secret comes from the environment variable named by `serve.secret_env` (default
PUBLISHER_SECRET, at least 16 characters); without it, 32 random bytes are generated once into
`state/secret.key` (mode 0600) and reused from then on.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import secrets
import struct
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

from publisher.config import Settings
from publisher.errors import ConfigError, StateError, SubscriberError

PURPOSES: dict[str, int] = {"unsubscribe": 1, "confirm": 2}
SECRET_FILE = "secret.key"  # noqa: S105 - a file name, not a password
_VERSION = 1
_PAYLOAD = struct.Struct(">BBQI")
_TAG_BYTES = 16
_TOKEN_BYTES = _PAYLOAD.size + _TAG_BYTES
_TOKEN_CHARS = 40  # 30 bytes in base64 without padding
_KEY_LABEL = b"publisher-token-v1|"
_MIN_ENV_SECRET = 16


class TokenError(SubscriberError):
    """A token that is malformed, forged, for another purpose, expired, or for nobody we know."""


def site_secret(settings: Settings) -> bytes:
    """The site-wide signing secret: from the environment, else state/secret.key (made once)."""
    return _secret(settings.secret, str(settings.state_dir / SECRET_FILE), settings.serve.secret_env)


@lru_cache(maxsize=8)
def _secret(env_value: str | None, path: str, env_name: str) -> bytes:
    if env_value is not None:
        if len(env_value) < _MIN_ENV_SECRET:
            raise ConfigError(f"{env_name}: the token secret must be at least {_MIN_ENV_SECRET} characters")
        return env_value.encode("utf-8")
    return _file_secret(Path(path))


def _file_secret(path: Path) -> bytes:
    try:
        existing = path.read_bytes()
    except FileNotFoundError:
        existing = None
    except OSError as exc:
        raise StateError(f"{path}: cannot read the token secret: {exc.strerror or exc}") from exc
    if existing is None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, secrets.token_hex(32).encode("ascii") + b"\n")
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                # link() refuses to replace: when two processes race, the first secret wins.
                os.link(tmp, path)
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
            existing = path.read_bytes()
        except OSError as exc:
            raise StateError(f"{path}: cannot create the token secret: {exc.strerror or exc}") from exc
    value = existing.strip()
    if len(value) < 32:
        raise StateError(
            f"{path}: the token secret is too short or empty", hint="delete it to make a new one"
        )
    return value


def forget_cached() -> None:
    """Read the secret afresh at its next use (`--new-secret-key` in this process)."""
    _secret.cache_clear()


def _key(site: bytes, token_secret: str) -> bytes:
    return hmac.digest(site, _KEY_LABEL + token_secret.encode("utf-8"), "sha256")


def _tag(key: bytes, payload: bytes) -> bytes:
    return hmac.digest(key, payload, "sha256")[:_TAG_BYTES]


def _purpose_code(purpose: str) -> int:
    try:
        return PURPOSES[purpose]
    except KeyError:
        raise ValueError(f"unknown token purpose {purpose!r}") from None


def make(
    settings: Settings,
    subscriber_id: int,
    token_secret: str,
    purpose: str,
    expires: datetime | None = None,
) -> str:
    """A token for one subscriber and one purpose, valid until `expires` (None: until revoked)."""
    return make_with(site_secret(settings), subscriber_id, token_secret, purpose, expires)


def make_with(
    site: bytes, subscriber_id: int, token_secret: str, purpose: str, expires: datetime | None = None
) -> str:
    """`make` with the site secret already in hand (one read per digest, not per recipient)."""
    if not 0 < subscriber_id < 2**63:
        raise ValueError("subscriber id out of range")
    stamp = 0 if expires is None else int(expires.astimezone(UTC).timestamp())
    if not 0 <= stamp < 2**32:
        raise ValueError("expiry out of range")
    payload = _PAYLOAD.pack(_VERSION, _purpose_code(purpose), subscriber_id, stamp)
    raw = payload + _tag(_key(site, token_secret), payload)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def verify(
    settings: Settings,
    token: str,
    purpose: str,
    now: datetime,
    lookup: Callable[[int], str | None],
) -> int:
    """The subscriber id a valid token names, else TokenError.

    `lookup(subscriber_id)` returns that subscriber's token_secret, or None when there is no such
    subscriber. The tag is compared in constant time; garbage of any shape is a TokenError.
    """
    expected = _purpose_code(purpose)
    if not isinstance(token, str) or len(token) != _TOKEN_CHARS or not token.isascii():
        raise TokenError("invalid token")
    try:
        raw = base64.urlsafe_b64decode(token + "==")
    except (binascii.Error, ValueError):
        raise TokenError("invalid token") from None
    # Only the canonical spelling is accepted: no second token for the same bytes.
    if len(raw) != _TOKEN_BYTES or base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != token:
        raise TokenError("invalid token")
    payload, tag = raw[: _PAYLOAD.size], raw[_PAYLOAD.size :]
    version, code, subscriber_id, stamp = _PAYLOAD.unpack(payload)
    if version != _VERSION or code != expected:
        raise TokenError("invalid token")
    token_secret = lookup(subscriber_id) if subscriber_id > 0 else None
    # Compute a tag even for unknown subscribers so timing does not tell them apart.
    key = _key(site_secret(settings), token_secret if token_secret is not None else "\0unknown")
    if not hmac.compare_digest(_tag(key, payload), tag) or token_secret is None:
        raise TokenError("invalid token")
    if stamp and now.timestamp() >= stamp:
        raise TokenError("expired token")
    return int(subscriber_id)


def expiry(token: str) -> datetime | None:
    """The expiry written into a token that `verify` accepted (None: a token that never expires)."""
    raw = base64.urlsafe_b64decode(token + "==")
    stamp = _PAYLOAD.unpack(raw[: _PAYLOAD.size])[3]
    return datetime.fromtimestamp(stamp, UTC) if stamp else None
