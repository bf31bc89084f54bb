"""Addresses and display names as publisher accepts them: pure rules, shared by the subscriber
commands, the server, the settings checks and `publisher init`.

An address is accepted only as one bare `local@domain` (no display name, no comments, no quoted
local part, no control characters), ASCII local part in RFC 5322 dot-atom form, and a domain of at
least two labels. It is normalised to lower case with the domain in IDNA (punycode) form, so
`Anna@Bücher.Example` is kept as `anna@xn--bcher-kva.example`. Limits: local part 64, domain 253,
label 63, whole address 254 characters. A name is trimmed, its runs of white space (line breaks
included) become single spaces, and it may not hold other control characters or exceed 64
characters: nothing a subscriber gives can put a line break into a mail header.
"""

from __future__ import annotations

import re
import unicodedata

from publisher.errors import SubscriberError

NAME_MAX = 64
_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def normalise_address(text: str) -> str:
    """The canonical form of one bare address, or SubscriberError saying what is wrong."""
    if not isinstance(text, str):
        raise SubscriberError("address: not text")
    value = text.strip()
    shown = _shown(value)
    if not value:
        raise SubscriberError("address: empty")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in value):
        raise SubscriberError(f"{shown}: control characters or line breaks are not allowed")
    if any(ch in value for ch in ' \t<>,;"()[]\\'):
        raise SubscriberError(f"{shown}: give one bare address such as anna@example.org (no name, no list)")
    if value.count("@") != 1:
        raise SubscriberError(f"{shown}: an address has exactly one @")
    local, domain = value.split("@")
    if not local or not domain:
        raise SubscriberError(f"{shown}: an address is local-part@domain")
    if not local.isascii():
        raise SubscriberError(f"{shown}: non-ASCII characters before the @ are not supported")
    if len(local) > 64:
        raise SubscriberError(f"{shown}: the part before the @ is longer than 64 characters")
    if not _LOCAL.match(local):
        raise SubscriberError(f"{shown}: the part before the @ is not a valid address")
    ascii_domain = _domain(domain, shown)
    address = f"{local.lower()}@{ascii_domain}"
    if len(address) > 254:
        raise SubscriberError(f"{shown}: longer than 254 characters")
    return address


def _domain(domain: str, shown: str) -> str:
    domain = unicodedata.normalize("NFC", domain).rstrip(".")
    try:
        ascii_domain = domain.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise SubscriberError(f"{shown}: the domain is not a valid domain name") from None
    labels = ascii_domain.split(".")
    if len(ascii_domain) > 253:
        raise SubscriberError(f"{shown}: the domain is longer than 253 characters")
    if len(labels) < 2:
        raise SubscriberError(f"{shown}: the domain needs a dot, as in example.org")
    if not all(_LABEL.match(label) for label in labels) or labels[-1].isdigit():
        raise SubscriberError(f"{shown}: the domain is not a valid domain name")
    return ascii_domain


def clean_name(text: str | None) -> str:
    """A display name safe for headers and mail: single spaces, no control characters, ≤ 64."""
    if text is None:
        return ""
    name = " ".join(unicodedata.normalize("NFC", text).split())
    if any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in name):
        raise SubscriberError(f"name {_shown(name)}: control characters are not allowed")
    if len(name) > NAME_MAX:
        raise SubscriberError(f"name {_shown(name)}: longer than {NAME_MAX} characters")
    return name


def _shown(value: str) -> str:
    # Quote what we refuse without letting it break the line it is reported on.
    text = value if len(value) <= 80 else value[:77] + "..."
    return repr(text)
