"""Signed per-subscriber tokens: round trip, purpose, expiry, tampering, the site secret."""

from __future__ import annotations

import base64
import os
import stat
from datetime import UTC, datetime, timedelta

import pytest

from publisher import tokens
from publisher.errors import ConfigError, StateError
from publisher.tokens import TokenError
from tests.conftest import NOW, Project

SECRETS = {7: "secret-of-seven", 8: "secret-of-eight"}


def lookup(subscriber_id: int) -> str | None:
    return SECRETS.get(subscriber_id)


@pytest.fixture(autouse=True)
def no_env_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PUBLISHER_SECRET", raising=False)
    tokens._secret.cache_clear()


def test_round_trip_gives_back_the_subscriber(project: Project) -> None:
    """A token made for a subscriber verifies to that subscriber's id."""
    settings = project.settings()
    token = tokens.make(settings, 7, SECRETS[7], "unsubscribe")
    assert tokens.verify(settings, token, "unsubscribe", NOW, lookup) == 7


def test_token_is_url_path_safe(project: Project) -> None:
    """Only URL-safe base64 letters: no '=', '&', '+', '/' that would need escaping."""
    settings = project.settings()
    for sid in (1, 7, 2**40):
        token = tokens.make(settings, sid, "x" * 40, "unsubscribe", NOW + timedelta(days=3))
        assert len(token) == 40
        assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_wrong_purpose_is_rejected(project: Project) -> None:
    """A confirm token cannot unsubscribe and vice versa."""
    settings = project.settings()
    token = tokens.make(settings, 7, SECRETS[7], "confirm")
    with pytest.raises(TokenError, match="invalid token"):
        tokens.verify(settings, token, "unsubscribe", NOW, lookup)


def test_expired_token_is_rejected(project: Project) -> None:
    """A token is good until its expiry and not a second after."""
    settings = project.settings()
    token = tokens.make(settings, 7, SECRETS[7], "confirm", NOW + timedelta(hours=1))
    assert tokens.verify(settings, token, "confirm", NOW + timedelta(minutes=59), lookup) == 7
    with pytest.raises(TokenError, match="expired token"):
        tokens.verify(settings, token, "confirm", NOW + timedelta(hours=1), lookup)


def test_every_single_bit_flip_is_rejected(project: Project) -> None:
    """Tampering with any bit of payload or tag fails verification."""
    settings = project.settings()
    token = tokens.make(settings, 7, SECRETS[7], "unsubscribe")
    raw = base64.urlsafe_b64decode(token + "==")
    for index in range(len(raw)):
        for bit in range(8):
            forged = bytearray(raw)
            forged[index] ^= 1 << bit
            text = base64.urlsafe_b64encode(bytes(forged)).rstrip(b"=").decode()
            with pytest.raises(TokenError):
                tokens.verify(settings, text, "unsubscribe", NOW, lookup)


def test_token_for_one_subscriber_does_not_open_another(project: Project) -> None:
    """Changing the id inside the token to another subscriber's fails (tag no longer matches)."""
    settings = project.settings()
    token = tokens.make(settings, 7, SECRETS[7], "unsubscribe")
    raw = bytearray(base64.urlsafe_b64decode(token + "=="))
    raw[9] = 8  # the low byte of the subscriber id
    forged = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    with pytest.raises(TokenError):
        tokens.verify(settings, forged, "unsubscribe", NOW, lookup)


def test_rotated_subscriber_secret_voids_old_tokens(project: Project) -> None:
    settings = project.settings()
    token = tokens.make(settings, 7, SECRETS[7], "unsubscribe")
    with pytest.raises(TokenError):
        tokens.verify(settings, token, "unsubscribe", NOW, lambda i: "rotated")


def test_unknown_subscriber_is_rejected(project: Project) -> None:
    settings = project.settings()
    token = tokens.make(settings, 99, "whatever", "unsubscribe")
    with pytest.raises(TokenError, match="invalid token"):
        tokens.verify(settings, token, "unsubscribe", NOW, lookup)


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "x",
        "a" * 40,
        "a" * 39 + "=",
        "é" * 40,
        "../../etc/passwd",
        "A" * 4000,
        "AAAA.BBBB",
        " " * 40,
        "\n" * 40,
    ],
)
def test_garbage_is_rejected_cleanly(project: Project, garbage: str) -> None:
    """Anything at all becomes a TokenError, never another exception."""
    settings = project.settings()
    with pytest.raises(TokenError):
        tokens.verify(settings, garbage, "unsubscribe", NOW, lookup)


def test_non_canonical_base64_spelling_is_rejected(project: Project) -> None:
    """The last character's unused bits must be zero: one token, one spelling."""
    settings = project.settings()
    token = tokens.make(settings, 7, SECRETS[7], "unsubscribe")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(token[-1])
    variants = [token[:-1] + alphabet[(last & ~0b1111) | low] for low in range(16)]
    accepted = [v for v in variants if _accepts(project, v)]
    assert accepted == [token]


def _accepts(project: Project, token: str) -> bool:
    try:
        tokens.verify(project.settings(), token, "unsubscribe", NOW, lookup)
    except TokenError:
        return False
    return True


def test_secret_file_is_made_once_with_mode_0600(project: Project) -> None:
    """Without PUBLISHER_SECRET, state/secret.key is created once, private, and reused."""
    settings = project.settings()
    token = tokens.make(settings, 7, SECRETS[7], "unsubscribe")
    path = settings.state_dir / "secret.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    content = path.read_bytes()
    tokens._secret.cache_clear()
    assert tokens.make(settings, 7, SECRETS[7], "unsubscribe") == token
    assert path.read_bytes() == content
    assert [p.name for p in settings.state_dir.iterdir()] == ["secret.key"]


def test_environment_secret_wins_and_changes_tokens(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = project.settings()
    from_file = tokens.make(settings, 7, SECRETS[7], "unsubscribe")
    monkeypatch.setenv("PUBLISHER_SECRET", "a-long-enough-environment-secret")
    from_env = tokens.make(settings, 7, SECRETS[7], "unsubscribe")
    assert from_env != from_file
    assert tokens.verify(settings, from_env, "unsubscribe", NOW, lookup) == 7
    with pytest.raises(TokenError):
        tokens.verify(settings, from_file, "unsubscribe", NOW, lookup)


def test_short_environment_secret_is_a_config_error(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUBLISHER_SECRET", "short")
    with pytest.raises(
        ConfigError, match="PUBLISHER_SECRET: the token secret must be at least 16 characters"
    ):
        tokens.make(project.settings(), 7, SECRETS[7], "unsubscribe")


def test_empty_secret_file_is_reported(project: Project) -> None:
    settings = project.settings()
    settings.state_dir.mkdir(parents=True)
    (settings.state_dir / "secret.key").write_bytes(b"")
    os.chmod(settings.state_dir / "secret.key", 0o600)
    with pytest.raises(StateError, match=r"secret\.key: the token secret is too short or empty"):
        tokens.make(settings, 7, SECRETS[7], "unsubscribe")


# Tokens made by an earlier release (its own HMAC code) for a fixed site secret: links already in
# subscribers' mailboxes must keep working whatever computes the HMAC now.
SITE = b"a-site-secret-of-at-least-sixteen-chars"
EARLIER = [
    ((7, "secret-of-seven", "unsubscribe", None), "AQEAAAAAAAAABwAAAAB8I5RVJWCV6LIRozLFMY5S"),
    (
        (2**40 + 3, "Zm9vYmFy-token-secret", "confirm", datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)),
        "AQIAAAEAAAAAA3DdVSUupTMIz_wR-02iJ9fSqQD9",
    ),
]


@pytest.mark.parametrize(("made", "token"), EARLIER)
def test_tokens_made_by_an_earlier_release_still_verify(
    project: Project, monkeypatch: pytest.MonkeyPatch, made: tuple[int, str, str, datetime | None], token: str
) -> None:
    """Same bytes for the same inputs (the format is unchanged), and the old token verifies."""
    subscriber_id, token_secret, purpose, expires = made
    assert tokens.make_with(SITE, subscriber_id, token_secret, purpose, expires) == token
    monkeypatch.setenv("PUBLISHER_SECRET", SITE.decode())
    tokens._secret.cache_clear()
    got = tokens.verify(project.settings(), token, purpose, NOW, {subscriber_id: token_secret}.get)
    assert got == subscriber_id
    assert tokens.expiry(token) == expires
