"""Reading the configuration file into `Settings` (publisher/config.py holds the model): TOML,
however hostile, becomes settings or one `ConfigError` line naming the file and the key.

Import `load_settings` from publisher.config, which re-exports it.
"""

from __future__ import annotations

import difflib
import os
import stat
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from publisher import config_rules as rules
from publisher.errors import ConfigError

if TYPE_CHECKING:  # publisher.config imports this module at its end: no import of it at load time
    from publisher.config import Settings

MAX_BYTES = 1 << 20  # a real configuration file is a few KiB
_KINDS = {
    stat.S_IFDIR: "directory",
    stat.S_IFIFO: "FIFO",
    stat.S_IFCHR: "character device",
    stat.S_IFBLK: "block device",
    stat.S_IFSOCK: "socket",
}

# Secrets never sit in the file: a key that looks like one gets a hint to the environment variable.
_SECRETS = {
    "smtp": ("pass", "password_env"),
    "serve": ("secret", "secret_env"),
    "inbound": ("pass", "imap_password_env"),
}


def _secret_hint(loc: tuple[str, ...]) -> str | None:
    if len(loc) != 2 or loc[0] not in _SECRETS:
        return None
    marker, env_key = _SECRETS[loc[0]]
    if marker in loc[1].lower() and loc[1] != env_key:
        return f"secrets come from the environment: set the variable named by {loc[0]}.{env_key}"
    return None


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The settings model that holds the key at `loc` (for 'did you mean …?')."""
    from publisher.config import Settings

    model: type[BaseModel] = Settings
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def _format_error(origin: str, error: Any) -> str:
    loc = tuple(error["loc"])
    where = rules.CONTROL.sub("?", ".".join(str(part) for part in loc))
    message = str(error["msg"]).removeprefix("Value error, ")
    if not where:  # a rule over the whole settings: its message names the key(s)
        return f"{origin}: {message}"
    kind = error["type"]
    if kind == "extra_forbidden":
        message = "unknown key"
        model = _model_at(loc)
        hint = _secret_hint(tuple(str(p) for p in loc))
        if hint is None and model is not None:
            known = [name for name in model.model_fields if name not in ("base_dir", "source")]
            close = difflib.get_close_matches(str(loc[-1]), known, n=1)
            hint = f"did you mean {close[0]}?" if close else None
        if hint:
            message += f" ({hint})"
    elif kind in ("model_type", "dict_type") and len(loc) == 1:
        message = f"must be a table: write [{loc[0]}] and its keys below it"
    elif kind == "path_type":
        message = "must be a path, as text"
    return f"{origin}: {where}: {message}"


def _read(path: Path, origin: str) -> bytes:
    """The file's bytes, if it is a regular file of at most MAX_BYTES. Checked before it is opened
    (opening a device can act on it; a socket cannot be opened), opened without blocking and checked
    again before any read: a FIFO would wait for a writer for ever, /dev/zero never ends."""
    try:
        _check(path.stat(), origin)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ConfigError(f"{origin}: cannot read: {exc.strerror or exc}") from exc
    try:
        _check(os.fstat(fd), origin)  # the file named may have been replaced in between
        with os.fdopen(os.dup(fd), "rb") as stream:
            raw = stream.read(MAX_BYTES + 1)  # the size may change after a stat: bound the read
    except OSError as exc:
        raise ConfigError(f"{origin}: cannot read: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)
    if len(raw) > MAX_BYTES:
        raise ConfigError(_too_big(origin))
    return raw


def _check(info: os.stat_result, origin: str) -> None:
    if not stat.S_ISREG(info.st_mode):
        kind = _KINDS.get(stat.S_IFMT(info.st_mode), "special file")
        raise ConfigError(f"{origin}: not a regular file (a {kind})")
    if info.st_size > MAX_BYTES:
        raise ConfigError(_too_big(origin))


def _too_big(origin: str) -> str:
    return f"{origin}: larger than {MAX_BYTES >> 20} MiB, too large for a configuration file"


def load_settings(path: Path | None = None, *, required: bool = False) -> Settings:
    """Read the settings from `path` (default `./publisher.toml`).

    Without an explicit path and without `publisher.toml` in the current folder, the embedded
    defaults serve (relative paths then resolve against the current folder) unless `required`
    (the commands that write: they must never build an example site into a stray folder). An
    explicit path that does not exist is an error.
    """
    from publisher.config import DEFAULT_CONFIG, DigestSettings, Settings

    explicit = path is not None
    config_path = Path(path) if path is not None else Path(DEFAULT_CONFIG)
    if explicit:
        try:
            config_path = rules.check_path(config_path)  # `--config ~/site/publisher.toml` as well
        except ValueError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    if not config_path.exists():
        if explicit:
            raise ConfigError(f"{config_path}: no such configuration file")
        if required:
            raise ConfigError(
                f"no {DEFAULT_CONFIG} in {Path.cwd()}: run `publisher init` to create one here, "
                "or name one with --config PATH"
            )
        return Settings(base_dir=Path.cwd())
    origin = str(config_path)
    raw = _read(config_path, origin)
    bom = 3 if raw.startswith(b"\xef\xbb\xbf") else 0
    try:
        text = raw[bom:].decode("utf-8")
    except UnicodeDecodeError as exc:  # the offset counts from the file's first byte, BOM included
        raise ConfigError(f"{origin}: not UTF-8 (byte offset {bom + exc.start})") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin}: invalid TOML: {exc}") from exc
    except RecursionError as exc:  # tomllib recurses once per level of nested arrays/tables
        raise ConfigError(f"{origin}: invalid TOML: nested too deeply") from exc
    except ValueError as exc:  # an integer of more than 4,300 digits (Python's int() limit)
        raise ConfigError(f"{origin}: invalid TOML: {str(exc).split(';')[0]}") from exc
    for key in ("base_dir", "source"):
        if key in data:
            raise ConfigError(f"{origin}: {key}: unknown key")
    try:
        settings = Settings(**data, base_dir=config_path.resolve().parent, source=config_path.resolve())
    except RecursionError as exc:
        raise ConfigError(f"{origin}: a value is nested too deeply") from exc
    except ValidationError as exc:
        errors = exc.errors()
        more = len(errors) - 1
        line = _format_error(origin, errors[0])
        if more:
            line += f" (and {more} more problem{'s' if more != 1 else ''})"
        raise ConfigError(line) from exc
    templates = data.get("paths", {}).get("templates") if isinstance(data.get("paths"), dict) else None
    if templates is not None and not settings.paths.templates.is_dir():
        # Only the default folder may be absent: a path set here that is not there is a typo,
        # and the bundled templates would stand in for the operator's own without a word.
        what = "not a folder" if settings.paths.templates.exists() else "no such folder"
        raise ConfigError(f"{origin}: paths.templates: {what}: {settings.paths.templates}")
    if settings.unused_smtp() and "transport" not in settings.delivery.model_fields_set:
        # A server named and the transport left at its default: the operator means to mail, and
        # the default would use digests up on files nobody reads. Saying "outbox" keeps that.
        raise ConfigError(
            f"{origin}: smtp.host is set ({settings.smtp.host}) but delivery.transport is not, and its "
            'default "outbox" mails nothing: set delivery.transport = "smtp" (or "outbox" to write '
            "messages to files on purpose)"
        )
    if settings.digest.subject != DigestSettings.model_fields["subject"].default:  # Jinja2: only if needed
        from publisher.render import template_problem

        problem = template_problem(settings.digest.subject)
        if problem:
            raise ConfigError(f"{origin}: digest.subject: {problem}")
    return settings
