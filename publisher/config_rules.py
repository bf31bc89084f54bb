"""The value rules of the settings model (publisher/config.py) that are more than a type or a
bound: text without control characters, addresses, environment variable names, cron syntax. Each
raises ValueError with a one-line reason, which config_file.py reports with the file and the key."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from publisher.models import escape_name, is_utf8

# A line break in a setting would end up in a mail header or a page. A template may span lines
# (its output is made one line); other control characters no.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_IN_TEMPLATE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_TEMPLATES = frozenset({"subject"})
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_Model = TypeVar("_Model", bound=BaseModel)


def check_text(value: Any, field: str | None) -> Any:
    """Any text setting: no control characters (no line breaks except in a template)."""
    if not isinstance(value, str):
        return value
    template = field in _TEMPLATES
    if (_CONTROL_IN_TEMPLATE if template else CONTROL).search(value):
        raise ValueError(f"must not hold control characters{'' if template else ' or line breaks'}")
    return value


def check_address(value: str) -> str:
    """One bare address, by the rules subscribers' addresses follow (kept as written)."""
    from publisher.addresses import normalise_address
    from publisher.errors import SubscriberError

    try:
        normalise_address(value)
    except SubscriberError as exc:
        raise ValueError(str(exc)) from None
    return value


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine: localhost, 127.0.0.0/8 or ::1 (no name is looked up)."""
    import ipaddress

    name = host.strip().rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False


def check_env_name(value: str) -> str:
    if not _ENV_NAME.match(value):
        raise ValueError(f"{value!r} is not an environment variable name (letters, digits, _)")
    return value


def check_cron(value: str) -> str:
    """Five-field cron, parsed by the very code the daemon schedules with (pure functions)."""
    from publisher import cron

    cron.parse(value)
    return value


def check_path(value: Path) -> Path:
    """Any path setting: no control characters (a NUL cannot name a file), and `~` or `~user`
    expanded now, so an unknown user is an error naming the key rather than a crash at first use."""
    text = str(value)
    if CONTROL.search(text):
        raise ValueError("must not hold control characters or line breaks")
    if not text.startswith("~"):
        return value
    try:
        return value.expanduser()
    except (RuntimeError, KeyError, OSError):  # pathlib: "Could not determine home directory."
        head = value.parts[0]
        why = f"there is no user {head[1:]!r}" if head != "~" else "the home folder is unknown (HOME unset)"
        raise ValueError(f"cannot expand {head}: {why}") from None


def resolve_paths(section: _Model, base: Path, name: str) -> _Model:
    """`section` with each path setting absolute against `base` (the configuration file's folder).
    The reason names the key itself: the caller validates the whole settings, not one key."""
    update: dict[str, Path] = {}
    for key, value in section:
        if isinstance(value, Path):
            try:
                update[key] = (base / value).resolve()
            except (RuntimeError, OSError) as exc:  # a symbolic link loop (RuntimeError before 3.13)
                why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "symbolic link loop"
                raise ValueError(f"{name}.{key}: cannot resolve {value}: {why}") from None
            if not is_utf8(str(update[key])):  # its real name (through links) is stored and shown
                shown = escape_name(str(update[key]))
                raise ValueError(f"{name}.{key}: {shown} is not a valid UTF-8 name; rename it")
    return section.model_copy(update=update)


# Folders that must stay apart (compared resolved, symbolic links followed): publisher writes
# and deletes in feeds/ and serves it publicly, reads every article-named file under seeds/ and
# never touches it, and keeps the database, the token secret and mail in state/. One inside
# another would publish the secret key, rewrite writers' files or read previews as articles.
_APART = (("seeds", "feeds"), ("seeds", "state"), ("feeds", "state"))
# Secrets and managed folders that must not sit in feeds/ (served to anyone, written by builds);
# templates may hold feeds/ (a site folder as templates) but not sit in it or be it: a build's
# style.css and atom.xsl would replace the operator's.
_NOT_IN_FEEDS = (
    ("paths", "templates"),
    ("dkim", "private_key_path"),
    ("dkim", "ed25519_private_key_path"),
    ("inbound", "maildir"),
)


def _within(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def check_folders_apart(sections: dict[str, BaseModel]) -> None:
    """ValueError naming both keys when two of paths.seeds, feeds and state coincide or nest, or a
    secret or the templates folder lies in paths.feeds. The paths are resolved (resolve_paths)."""
    folders: dict[str, Path] = {key: getattr(sections["paths"], key) for key in ("seeds", "feeds", "state")}
    for one, two in _APART:
        if folders[one] == folders[two]:
            raise ValueError(
                f"paths.{one} and paths.{two} are the same folder ({folders[one]}): use separate folders"
            )
        for inner, outer in ((one, two), (two, one)):
            if _within(folders[inner], folders[outer]):
                raise ValueError(
                    f"paths.{inner} ({folders[inner]}) is inside paths.{outer} ({folders[outer]}): "
                    "use separate folders, neither inside the other"
                )
    feeds = folders["feeds"]
    for section, key in _NOT_IN_FEEDS:
        value = getattr(sections[section], key)
        if value is not None and _within(value, feeds):
            where = "the same folder as" if value == feeds else "inside"
            raise ValueError(
                f"{section}.{key} ({value}) is {where} paths.feeds ({feeds}), which is served to anyone "
                "and rewritten by every build: move it out"
            )
