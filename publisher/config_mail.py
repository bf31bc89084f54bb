"""Settings sections for mail that leaves signed and comes back, and for feed hubs: `[dkim]`,
`[websub]` and `[inbound]` (part of the one settings model in publisher.config, which includes them).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from publisher import config_rules as rules
from publisher.config_base import Section as _Section

DNS_NAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)*$"
)


class DkimSettings(_Section):
    """DKIM signing of every digest and confirmation email (docs/dkim.md). Off without a domain."""

    domain: str | None = Field(
        None, description="Signing domain (d=), e.g. news.example.org; unset: no DKIM."
    )
    selector: str = Field("publisher", description="Selector (s=) the RSA key is published under.")
    private_key_path: Path | None = Field(
        None,
        strict=False,
        description="File holding the RSA private key (PEM); the key is never in this file.",
    )
    ed25519_selector: str = Field(
        "publisher-ed25519", description="Selector the Ed25519 key is published under."
    )
    ed25519_private_key_path: Path | None = Field(
        None,
        strict=False,
        description="File holding an Ed25519 private key: messages then carry both signatures.",
    )

    @field_validator("domain", "selector", "ed25519_selector")
    @classmethod
    def _dns_name(cls, value: str | None) -> str | None:
        if value is not None and not DNS_NAME.match(value):
            raise ValueError(f"{value!r} is not a DNS name")
        return value

    @model_validator(mode="after")
    def _has_key(self) -> DkimSettings:
        if self.domain and self.private_key_path is None and self.ed25519_private_key_path is None:
            raise ValueError(
                "domain is set but no key is: set private_key_path (and/or ed25519_private_key_path)"
            )
        return self


class WebsubSettings(_Section):
    """WebSub: hubs told of every feed change (docs/websub.md)."""

    hubs: list[str] = Field(
        [],  # pydantic copies it for each instance
        description="Hub URLs the feeds advertise and each build that changes a feed pings.",
    )
    timeout: float = Field(5.0, gt=0, le=60, description="Seconds a hub has to answer a ping.")
    retry_backoff: float = Field(
        30.0,
        gt=0,
        description="Seconds before a failed ping is tried again; doubles each time (1 h at most).",
    )

    @field_validator("hubs")
    @classmethod
    def _hub_urls(cls, value: list[str]) -> list[str]:
        for hub in value:
            parts = urlsplit(hub)
            if parts.scheme not in ("http", "https") or not parts.hostname or parts.fragment:
                raise ValueError(f"{hub!r} is not an absolute http:// or https:// URL")
        if len(set(value)) != len(value):
            raise ValueError("a hub is listed twice")
        return value


class InboundSettings(_Section):
    """`publisher inbound`: the mailbox unsubscribe requests, bounces and complaints come back to
    (docs/inbound.md). Off unless maildir or imap_host is set."""

    maildir: Path | None = Field(
        None, strict=False, description="Maildir folder to read (relative to this file)."
    )
    imap_host: str | None = Field(
        None, description="IMAP server (TLS) to read instead of, or besides, a Maildir."
    )
    imap_port: int = Field(993, ge=1, le=65535, description="IMAP port (implicit TLS).")
    imap_user: str | None = Field(None, description="IMAP login name.")
    imap_password_env: str = Field(
        "PUBLISHER_IMAP_PASSWORD", description="Environment variable holding the IMAP password."
    )
    imap_folder: str = Field("INBOX", description="IMAP folder to read.")
    imap_move_to: str | None = Field(
        None, description="IMAP folder handled messages are moved to (unset: flag only)."
    )
    timeout: float = Field(30.0, gt=0, description="Seconds before a silent IMAP server is given up on.")
    verp: bool = Field(
        False, description="Envelope senders name digest and reader (from_address+TAG@): needs + addressing."
    )
    interval: float = Field(300.0, ge=1, description="Seconds between passes in `publisher run`.")

    @field_validator("imap_password_env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        return rules.check_env_name(value)

    @model_validator(mode="after")
    def _imap_login(self) -> InboundSettings:
        if self.imap_host and not self.imap_user:
            raise ValueError("imap_host is set but imap_user is not")
        return self

    @property
    def configured(self) -> bool:
        return self.maildir is not None or bool(self.imap_host)

    @property
    def imap_password(self) -> str | None:
        return os.environ.get(self.imap_password_env)
