"""Configuration: one typed settings model (config_file.py reads and checks the TOML file into it).

Precedence is defaults < config file < environment (secrets only) < command-line flags (applied by
the CLI with `Settings.model_copy`). Unknown keys are errors, relative paths resolve against the
folder of the config file, and every problem is reported as one line naming the key.
"""

from __future__ import annotations

import contextlib
import os
import re
from datetime import tzinfo
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from publisher import config_rules as rules
from publisher.config_base import Section as _Section
from publisher.config_mail import DkimSettings, InboundSettings, WebsubSettings
from publisher.errors import ConfigError

DEFAULT_CONFIG = "publisher.toml"

# BCP 47 in the shape feeds and HTML need: "en", "en-GB", "pt-BR", "zh-Hant-TW"; never "en_US".
_BCP47 = re.compile(
    r"^[A-Za-z]{2,3}(-[A-Za-z]{4})?(-([A-Za-z]{2}|[0-9]{3}))?(-([A-Za-z0-9]{5,8}|[0-9][A-Za-z0-9]{3}))*$"
)


def _punycode(host: str) -> str:
    """': write xn--…' for an internationalised host name, or nothing when it has no such form."""
    try:
        return f": write {host.encode('idna').decode('ascii')}"
    except UnicodeError:
        return ""


class SiteSettings(_Section):
    """Who publishes, where, and in which language and timezone."""

    title: str = Field(
        "Example News", min_length=1, description="The site's name, used in feeds, pages, mail."
    )
    base_url: str = Field(
        "https://news.example.org/",
        description="Absolute http(s) URL where feeds/ is served; feeds, mail, canonical links use it.",
    )
    author: str = Field("", description="Default author of every article (default: the site's title).")
    language: str = Field("en", description="BCP 47 language tag, e.g. en or en-GB.")
    timezone: str = Field("UTC", description="IANA timezone: dates without a time are midnight here.")
    description: str = Field("", description="One sentence about the site, for feeds and pages.")

    @field_validator("title", "author")
    @classmethod
    def _not_blank(cls, value: str, info: ValidationInfo) -> str:
        # "   " would put an empty name on every feed, page and message; a blank author follows title.
        if not value.strip() and info.field_name == "title":
            raise ValueError("must not be blank")
        return value.strip()

    @field_validator("base_url")
    @classmethod
    def _absolute_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an absolute http:// or https:// URL")
        if parts.query or parts.fragment:
            raise ValueError("must not have a query or fragment")
        if "@" in parts.netloc:  # a user name or password would be mailed to every reader
            raise ValueError("must not hold a user name or password")
        # It is written into pages, feeds and mail headers unescaped by some readers: no spaces,
        # quotes, angle brackets or other characters a URL must percent-encode.
        if not parts.hostname.isascii():
            raise ValueError(f"the host must be in ASCII, as punycode{_punycode(parts.hostname)}")
        if bad := sorted(set(re.findall(r"[^A-Za-z0-9._~:/?#\[\]@!$&'()*+,;=%-]|['()]", value.strip()))):
            raise ValueError(f"must not contain {' '.join(repr(c) for c in bad)} (percent-encode it)")
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number in range
        path = parts.path if parts.path.endswith("/") else parts.path + "/"
        return f"{parts.scheme}://{parts.netloc}{path}"

    @field_validator("language")
    @classmethod
    def _bcp47(cls, value: str) -> str:
        if not _BCP47.match(value):
            hint = f" (did you mean {value.replace('_', '-')}?)" if "_" in value else ""
            raise ValueError(f"{value!r} is not a BCP 47 language tag such as en or en-GB{hint}")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r} (use an IANA name such as Europe/Paris)") from None
        return value

    @property
    def tz(self) -> tzinfo:
        return ZoneInfo(self.timezone)

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).hostname or "localhost"


class PathSettings(_Section):
    """Where articles come from, where output goes, and where state lives."""

    seeds: Path = Field(
        Path("seeds"), strict=False, description="Folder of incoming article files (never modified)."
    )
    feeds: Path = Field(
        Path("feeds"), strict=False, description="Folder the feeds and pages are written into."
    )
    state: Path = Field(
        Path("state"), strict=False, description="Folder holding the SQLite database, lock and outbox."
    )
    templates: Path = Field(
        Path("templates"),
        strict=False,
        description="Folder of Jinja2 templates; files missing there come from the bundled set. "
        "Set here, it must exist (only the default may be absent).",
    )


class IngestSettings(_Section):
    """Limits applied to each file in seeds/."""

    # 256 KB is some 40,000 words, far beyond any article; it also bounds the time the Markdown
    # parser can be made to spend on one hostile file (its worst case grows with the input).
    max_bytes: int = Field(
        262_144,
        ge=1,
        le=1 << 30,
        description="Files larger than this (in bytes) are rejected without being read.",
    )
    title_max_chars: int = Field(
        90, ge=20, le=10_000, description="Derived titles are shortened to this length."
    )
    summary_max_chars: int = Field(
        300, ge=40, le=100_000, description="Derived summaries are shortened to this."
    )
    max_image_bytes: int = Field(
        5_242_880,
        ge=1,
        le=1 << 30,
        description="Images beside an article larger than this (bytes) are not shown.",
    )


class FeedSettings(_Section):
    """What the feeds and pages hold."""

    entries: int = Field(50, ge=1, le=10_000, description="Entries in atom.xml, rss.xml and feed.json.")
    archive_size: int = Field(50, ge=1, le=10_000, description="Entries per RFC 5005 archive document.")
    index_entries: int = Field(30, ge=1, le=100_000, description="Articles listed on index.html.")

    @model_validator(mode="after")
    def _archives_fit(self) -> FeedSettings:
        # An archive larger than the feed window would make one archive document the size of many
        # feeds for a reader to fetch; the default follows `entries`.
        if self.archive_size > self.entries:
            if "archive_size" in self.model_fields_set:
                raise ValueError(
                    f"archive_size ({self.archive_size}) must not exceed entries ({self.entries})"
                )
            object.__setattr__(self, "archive_size", self.entries)  # only the default: follow entries
        return self


class DigestSettings(_Section):
    """The email digest: its schedule, its look and its sender."""

    schedule: str = Field("0 8 * * 1", description="Cron expression (site timezone) for the digest.")
    grace_period: float = Field(
        6 * 3600,
        ge=0,
        le=366 * 86400,
        description="Seconds after a missed digest time in which it is still sent.",
    )
    subject: str = Field(
        "{{ site.title }}: {{ count }} new article{{ 's' if count != 1 else '' }}",
        description="Jinja2 template for the subject line.",
    )
    from_name: str = Field("", description="Display name in From (default: site.title).")
    from_address: str = Field("", description="Address in From (default: news@ and base_url's host).")
    reply_to: str | None = Field(None, description="Optional Reply-To address.")
    unsubscribe_mailto: str = Field("", description="mailto: List-Unsubscribe (default: unsubscribe@host).")
    postal_address: str = Field("", description="Footer postal address; required before a digest is sent.")
    backfill: int = Field(
        0, ge=0, le=1_000_000, description="Articles the very first digest includes (0: none)."
    )
    max_bytes: int = Field(
        100_000, ge=10_000, le=100_000_000, description="Whole-message size cap (Gmail clips ~102 KB)."
    )

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        return rules.check_cron(value)

    @field_validator("from_name")
    @classmethod
    def _trimmed(cls, value: str) -> str:
        return value.strip()  # blank: follows site.title

    @field_validator("from_address", "reply_to", "unsubscribe_mailto")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        return value if not value else rules.check_address(value)  # "": derived from [site]


class DeliverySettings(_Section):
    """How digests leave the machine."""

    transport: Literal["outbox", "smtp"] = Field("outbox", description="outbox: files in state/, not mailed.")
    concurrency: int = Field(4, ge=1, le=64, description="Concurrent SMTP connections.")
    rate_limit: float = Field(0, ge=0, le=1_000_000, description="Messages per second at most (0: no limit).")
    max_attempts: int = Field(
        5, ge=1, le=1_000, description="Attempts per message before it is marked failed."
    )
    retry_backoff: float = Field(
        2.0, ge=0, le=86_400, description="Seconds before the first retry; doubles each time."
    )
    bounce_after: int = Field(
        3, ge=1, le=1_000, description="Permanent failures before a subscriber is bounced."
    )
    outbox_keep_days: int = Field(
        30, ge=0, le=36_500, description="Days sent messages and previews stay in state/ (0: for ever)."
    )


class SmtpSettings(_Section):
    """The SMTP server used when delivery.transport is smtp."""

    host: str = Field("127.0.0.1", description="SMTP server host.")
    port: int = Field(25, ge=1, le=65535, description="SMTP server port.")
    security: Literal["none", "starttls", "tls"] = Field("none", description="Transport security.")
    username: str | None = Field(
        None,
        description="Login name (password from the environment); needs TLS unless host is loopback.",
    )
    password_env: str = Field(
        "PUBLISHER_SMTP_PASSWORD", description="Environment variable holding the SMTP password."
    )
    timeout: float = Field(30.0, gt=0, le=3_600, description="Seconds before a silent server is given up on.")

    @field_validator("password_env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        return rules.check_env_name(value)

    @field_validator("username")
    @classmethod
    def _login_in_the_clear(cls, value: str | None, info: ValidationInfo) -> str | None:
        # AUTH PLAIN/LOGIN over a plain connection sends the password as readable as the mail;
        # only a server on this machine keeps it off the network.
        host, security = info.data.get("host"), info.data.get("security")
        if value is not None and security == "none" and host is not None and not rules.is_loopback(host):
            raise ValueError(
                f"a login with security = 'none' would send the password to {host} in clear text: "
                "set smtp.security to 'starttls' or 'tls' (or leave username unset)"
            )
        return value

    @property
    def password(self) -> str | None:
        return os.environ.get(self.password_env)


class DaemonSettings(_Section):
    """`publisher run`: watching and scheduling."""

    watch: Literal["events", "poll"] = Field("events", description="Filesystem events or polling.")
    poll_interval: float = Field(1.0, gt=0, le=3_600, description="Seconds between polls when watch = poll.")
    settle: float = Field(
        0.3, ge=0, le=3_600, description="A file must be unchanged this long before it is read."
    )
    serve: bool = Field(False, description="Also serve feeds/ over HTTP inside `publisher run`.")


class ServeSettings(_Section):
    """`publisher serve`: HTTP for feeds/, subscribe and unsubscribe."""

    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(8080, ge=1, le=65535, description="Port to listen on.")
    secret_env: str = Field(
        "PUBLISHER_SECRET", description="Environment variable holding the token-signing secret."
    )
    cache_max_age: int = Field(
        300, ge=0, le=31_536_000, description="Cache-Control max-age (seconds) for files in feeds/."
    )
    max_body_bytes: int = Field(
        16_384, ge=256, le=10_000_000, description="Larger request bodies are refused with 413."
    )
    request_timeout: float = Field(
        15,
        ge=1,
        le=3600,
        description="Seconds a client has to send a whole request; slower connections are closed.",
    )
    confirm_hours: float = Field(
        48, gt=0, le=24 * 366, description="Hours a subscription confirmation link works."
    )
    welcome: bool = Field(
        False,
        description="Send a welcome message (template welcome_email.txt.j2) once a subscriber confirms.",
    )
    rate_ip_per_minute: float = Field(
        10, gt=0, le=1_000_000, description="Form and token requests per client IP per minute (sustained)."
    )
    rate_ip_burst: int = Field(
        20, ge=1, le=1_000_000, description="Form and token requests per client IP at once."
    )
    rate_address_per_hour: float = Field(
        3, gt=0, le=1_000_000, description="Subscription requests per email address per hour (sustained)."
    )
    rate_address_burst: int = Field(
        3, ge=1, le=1_000_000, description="Subscription requests per address at once."
    )

    @field_validator("secret_env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        return rules.check_env_name(value)


# Said beside every count of messages the outbox transport wrote: files, not mail.
NOT_MAILED = "transport = outbox: nothing was mailed"


class Settings(BaseModel):
    """Everything publisher can be told. `base_dir` is the folder relative paths resolve against."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    site: SiteSettings = SiteSettings()
    paths: PathSettings = PathSettings()
    ingest: IngestSettings = IngestSettings()
    feed: FeedSettings = FeedSettings()
    digest: DigestSettings = DigestSettings()
    delivery: DeliverySettings = DeliverySettings()
    smtp: SmtpSettings = SmtpSettings()
    daemon: DaemonSettings = DaemonSettings()
    serve: ServeSettings = ServeSettings()
    dkim: DkimSettings = DkimSettings()
    websub: WebsubSettings = WebsubSettings()
    inbound: InboundSettings = InboundSettings()
    base_dir: Annotated[Path, Field(exclude=True)] = Path()
    source: Annotated[Path | None, Field(exclude=True)] = None

    @model_validator(mode="after")
    def _resolve_paths(self) -> Settings:
        base = self.base_dir.resolve()
        for name in ("paths", "dkim", "inbound"):  # every section with a path setting
            object.__setattr__(self, name, rules.resolve_paths(getattr(self, name), base, name))
        object.__setattr__(self, "base_dir", base)
        rules.check_folders_apart({"paths": self.paths, "dkim": self.dkim, "inbound": self.inbound})
        return self

    @model_validator(mode="after")
    def _derive_digest_sender(self) -> Settings:
        # Unset sender keys ("") follow [site], so no example value ever reaches a subscriber.
        at = "@" + (self.site.host if ":" not in self.site.host else "localhost")  # not an IPv6 literal
        own = dict(from_name=self.site.title, from_address="news" + at, unsubscribe_mailto="unsubscribe" + at)
        fill = {key: value for key, value in own.items() if not getattr(self.digest, key).strip()}
        object.__setattr__(self, "digest", self.digest.model_copy(update=fill))
        if not self.site.author:  # unset: the site's own name, never an example byline
            object.__setattr__(self, "site", self.site.model_copy(update={"author": self.site.title}))
        return self

    @property
    def seeds_dir(self) -> Path:
        return self.paths.seeds

    @property
    def feeds_dir(self) -> Path:
        return self.paths.feeds

    @property
    def state_dir(self) -> Path:
        return self.paths.state

    @property
    def db_path(self) -> Path:
        return self.paths.state / "publisher.sqlite3"

    @property
    def secret(self) -> str | None:
        """The token-signing secret from the environment, or None (then one is kept in state/)."""
        return os.environ.get(self.serve.secret_env) or None

    @property
    def outbox_shown(self) -> str:
        """Where the outbox transport writes, as the operator knows it (`state/outbox/`)."""
        folder = self.state_dir / "outbox"
        with contextlib.suppress(ValueError):
            folder = folder.relative_to(self.base_dir)
        return f"{folder.as_posix()}/"

    def unused_smtp(self) -> str | None:
        """A warning when `[smtp]` names a server but delivery.transport leaves it unused."""
        if self.delivery.transport == "outbox" and "host" in self.smtp.model_fields_set:
            return (
                f'smtp.host is set ({self.smtp.host}) but delivery.transport = "outbox": nothing is '
                f'mailed, messages are written to {self.outbox_shown}; set delivery.transport = "smtp"'
            )
        return None

    def require_site_identity(self, why: str) -> None:
        """ConfigError unless the file set `site.title` and `site.base_url`: the built-in values are
        an example site's (its name, links to its host); `why` says what would carry them."""
        if unset := [f"site.{key}" for key in ("title", "base_url") if key not in self.site.model_fields_set]:
            raise ConfigError(
                f"{' and '.join(unset)}: not set; {why}, so set them in [site] (the built-in values "
                "are an example's)"
            )


def sections() -> dict[str, type[BaseModel]]:
    """Each `[section]` a settings file can hold, with its model (for generated files and docs)."""
    found: dict[str, type[BaseModel]] = {}
    for name, field in Settings.model_fields.items():
        model = field.annotation
        if isinstance(model, type) and issubclass(model, BaseModel):
            found[name] = model
    return found


def check_value(section: str, key: str, value: object) -> Any:
    """`value` as the settings would hold it at `section.key`, or ConfigError saying why not."""
    try:
        checked = sections()[section](**{key: value})
    except ValidationError as exc:
        error = exc.errors()[0]
        raise ConfigError(f"{section}.{key}: {str(error['msg']).removeprefix('Value error, ')}") from exc
    return getattr(checked, key)
