"""Per-recipient message bytes, built by hand from parts encoded once per digest.

`MessageTemplate` takes a rendered digest (subject, text and HTML bodies holding per-recipient
placeholders) and does once what is the same for everyone: the From, Subject, List-Id and MIME
headers are folded and RFC 2047-encoded with the `email` package's SMTP policy, and both bodies
are quoted-printable encoded in pieces split at the placeholders. `render(recipient)` then only
formats the headers that differ (To, Message-ID, List-Unsubscribe) and encodes the recipient's
own values (unsubscribe URL, name), each as its own quoted-printable piece between soft line
breaks, so every line stays within 76 characters and decoding gives back exactly the substituted
text: per recipient only what differs is encoded, where the email package would redo it all.

Every byte is derived from the digest, the settings and the recipient: the Date is the moment the
digest was enqueued (stored in the ledger), the Message-ID and the MIME boundary are hashes of the
digest id, so a message sent again after a crash is byte-identical to the first copy.
`finalise` is the one place a recipient's message is finished before it leaves.

Nothing from content or a subscriber reaches a header with a CR, LF or other control character:
names and subjects are flattened to one line first, addresses and URLs are checked.
"""

from __future__ import annotations

import binascii
import email
import email.policy
import hashlib
import html
import re
from base64 import b64encode
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.utils import format_datetime
from urllib.parse import quote

from publisher.errors import DeliveryError

# The email package's policy, used only once per digest for the shared headers.
_POLICY = email.policy.SMTP.clone(max_line_length=78)

# An unquoted display name: atext words separated by single spaces (no "." or "=?", which readers
# could take for obsolete syntax or an encoded-word).
_PLAIN_PHRASE = re.compile(r"[A-Za-z0-9!#$%&'*+/^_`{|}~-]+( [A-Za-z0-9!#$%&'*+/^_`{|}~-]+)*")
# What an addr-spec we put in a header may hold: printable ASCII, no spaces, brackets or quotes.
_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+")
# URL characters allowed between angle brackets in List-Unsubscribe (RFC 2369, RFC 3986).
_URL_SAFE = "-._~:/?#[]@!$&'()*+,;=%"
_URL = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")
_ID_SAFE = re.compile(r"[^A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+")
_ENCODED_WORD_BYTES = 45  # 45 bytes -> 60 base64 characters -> a 72-character encoded-word
_SUBJECT_WORD_BYTES = 39  # 52 base64 characters: "Subject: " and the word within 78 characters

SOFT_BREAK = b"=\r\n"


class InvalidRecipient(DeliveryError):
    """An address or link that cannot be put in a header safely: never sent, never retried."""


@dataclass(frozen=True)
class Recipient:
    """What differs per message."""

    email: str
    name: str
    unsubscribe_url: str  # https://… (one-click, POST)
    unsubscribe_mailto: str  # mailto:…


def one_line(value: str) -> str:
    """Any run of white space or control characters (CR, LF, NUL, …) becomes one space."""
    if value.isprintable():  # the common case, checked in C
        return " ".join(value.split())
    cleaned = "".join(ch if ch.isprintable() else " " for ch in value)
    return " ".join(cleaned.split())


def qp(data: str) -> bytes:
    """Quoted-printable (RFC 2045) of UTF-8 text with CRLF line ends and lines of at most 76."""
    encoded = binascii.b2a_qp(data.encode("utf-8"), quotetabs=False, istext=True, header=False)
    return encoded.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def encode_display_name(name: str) -> str:
    """A display name as a header phrase: plain atoms, a quoted string, or RFC 2047 encoded-words
    (folded onto continuation lines) when it is not ASCII."""
    name = one_line(name)
    if not name:
        return ""
    if name.isascii() and "=?" not in name:
        if _PLAIN_PHRASE.fullmatch(name) and len(name) <= 60:
            return name
        if len(name) <= 60:
            return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    encoded = name.encode("utf-8")
    if len(encoded) <= _ENCODED_WORD_BYTES:  # the common case: one encoded-word
        return f"=?utf-8?b?{b64encode(encoded).decode('ascii')}?="
    words = []
    chunk = b""
    for ch in name:
        piece = ch.encode("utf-8")
        if len(chunk) + len(piece) > _ENCODED_WORD_BYTES:
            words.append(chunk)
            chunk = b""
        chunk += piece
    words.append(chunk)
    return "\r\n ".join(f"=?utf-8?b?{b64encode(w).decode('ascii')}?=" for w in words)


def check_address(address: str) -> str:
    if not _ADDRESS.fullmatch(address) or len(address) > 254:
        raise InvalidRecipient(f"{address!r}: not an ASCII address that can go in a header")
    return address


def safe_url(url: str) -> str:
    """The URL, percent-encoding anything that may not stand between angle brackets in a header."""
    if _URL.fullmatch(url):
        return url
    return quote(one_line(url), safe=_URL_SAFE)


def _fold(name: str, value: str) -> bytes:
    """An unstructured header (Subject), folded and encoded by the email package; where that
    loses a space between two encoded-words (which readers must ignore, RFC 2047 section 6.2), the
    whole value as encoded-words of our own, each space kept inside a word."""
    value = one_line(value)
    folded: str = _POLICY.header_factory(name, value).fold(policy=_POLICY)
    parsed = email.message_from_string(folded + "\r\n", policy=email.policy.default)[name]
    if str(parsed) == value:
        return folded.encode("ascii")
    words = []
    chunk = b""
    for ch in value:
        piece = ch.encode("utf-8")
        if len(chunk) + len(piece) > _SUBJECT_WORD_BYTES:
            words.append(chunk)
            chunk = b""
        chunk += piece
    words.append(chunk)
    encoded = "\r\n ".join(f"=?utf-8?b?{b64encode(w).decode('ascii')}?=" for w in words)
    return f"{name}: {encoded}\r\n".encode("ascii")


def _address_header(name: str, display: str, address: str) -> bytes:
    check_address(address)
    value = str(Address(display_name=one_line(display), addr_spec=address))
    folded: str = _POLICY.header_factory(name, value).fold(policy=_POLICY)
    return folded.encode("ascii")


def _body_pieces(body: str, placeholders: Mapping[str, str]) -> list[bytes | str]:
    """The body, QP-encoded, as a list of encoded literal pieces (bytes, each ending at column 0)
    and placeholder roles (str) to fill in per recipient."""
    body = body.replace("\r\n", "\n").replace("\r", "\n")
    if not body.endswith("\n"):
        body += "\n"
    if not placeholders:
        return [qp(body)]
    by_text = {text: role for role, text in placeholders.items()}
    pattern = re.compile("|".join(re.escape(text) for text in sorted(by_text, key=len, reverse=True)))
    pieces: list[bytes | str] = []
    position = 0
    for match in pattern.finditer(body):
        literal = body[position : match.start()]
        if literal:
            encoded = qp(literal)
            # A literal not ending in a line break ends in a soft one, so the next piece starts at
            # column 0 and the 76-character limit holds without knowing what comes next.
            pieces.append(encoded if literal.endswith("\n") else encoded + SOFT_BREAK)
        pieces.append(by_text[match.group(0)])
        position = match.end()
    pieces.append(qp(body[position:]))
    return pieces


def _layout(parts: list[bytes | str]) -> tuple[list[bytes], list[tuple[int, str]]]:
    """Literals with adjacent ones merged, an empty placeholder where each slot goes, and the
    slots as (index, key)."""
    layout: list[bytes] = []
    slots: list[tuple[int, str]] = []
    for part in parts:
        if isinstance(part, str):
            slots.append((len(layout), part))
            layout.append(b"")
        elif layout and (not slots or slots[-1][0] != len(layout) - 1):
            layout[-1] += part
        else:
            layout.append(part)
    return layout, slots


class MessageTemplate:
    """One digest's message, encoded once; `render(recipient)` yields each recipient's bytes."""

    def __init__(
        self,
        *,
        digest_id: str,
        subject: str,
        text: str,
        html_body: str,
        from_name: str,
        from_address: str,
        host: str,
        list_name: str,
        date: datetime,
        reply_to: str | None = None,
        placeholders: Mapping[str, str] | None = None,
        signatures: Callable[[bytes], bytes] | None = None,
        envelope: Callable[[str], str] | None = None,
        one_click: bool = True,
    ) -> None:
        """`placeholders` maps a role ("unsubscribe" for the https URL, "name" for the reader's
        name) to the text standing for it in both bodies. `one_click`: say List-Unsubscribe-Post
        (RFC 8058 allows it only with an https unsubscribe URL). `signatures(message)` gives header
        fields to put in front of each message (DKIM, publisher.delivery.dkim); `envelope(address)`
        the envelope sender of the recipient's message (VERP, publisher.verp)."""
        self.signatures = signatures
        self.envelope = envelope
        self.digest_id = digest_id
        self.host = one_line(host).replace(" ", "")
        self.from_address = check_address(from_address)
        self._id_part = _ID_SAFE.sub("-", digest_id).strip(".-") or "digest"
        boundary = "=_" + hashlib.sha256(digest_id.encode("utf-8")).hexdigest()[:28]
        self.boundary = boundary
        roles = dict(placeholders or {})
        for role in roles:
            if role not in ("unsubscribe", "name"):
                raise ValueError(f"unknown placeholder role {role!r}")
        list_id = f"digest.{self.host}"
        self._head = b"".join(
            [
                _address_header("From", from_name, from_address),
                _address_header("Reply-To", "", reply_to) if reply_to else b"",
                _fold("Subject", subject),
            ]
        )
        self._tail_headers = b"".join(
            [
                f"List-Id: {encode_display_name(list_name)} <{list_id}>\r\n".encode("ascii"),
                b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" if one_click else b"",
                b"MIME-Version: 1.0\r\n",
                f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n'.encode("ascii"),
                b"\r\n",
            ]
        )
        self._date = f"Date: {format_datetime(date)}\r\n".encode("ascii")
        part = (
            '--{b}\r\nContent-Type: {t}; charset="utf-8"\r\n'
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        )
        self._text_head = part.format(b=boundary, t="text/plain").encode("ascii")
        self._html_head = ("\r\n" + part.format(b=boundary, t="text/html")).encode("ascii")
        self._end = f"\r\n--{boundary}--\r\n".encode("ascii")
        self._text = _body_pieces(text, roles)
        self._html = _body_pieces(html_body, roles)
        # Only the roles a body really holds are encoded per recipient.
        self._text_roles = {p for p in self._text if isinstance(p, str)}
        self._html_roles = {p for p in self._html if isinstance(p, str)}
        # The whole message as literals (adjacent ones merged) with slots for what differs:
        # "headers", and "text:<role>" / "html:<role>" for each placeholder. `render` copies the
        # list and fills the slots.
        parts: list[bytes | str] = [self._date + self._head, "headers", self._tail_headers + self._text_head]
        parts.extend(p if isinstance(p, bytes) else "text:" + p for p in self._text)
        parts.append(self._html_head)
        parts.extend(p if isinstance(p, bytes) else "html:" + p for p in self._html)
        parts.append(self._end)
        self._layout, self._slots = _layout(parts)

    def message_id(self, address: str) -> str:
        """Stable for a (digest, recipient): a resend after a crash carries the same id."""
        digest = hashlib.sha256(f"{self.digest_id}\0{address.lower()}".encode()).hexdigest()[:24]
        return f"<{self._id_part}.{digest}@{self.host}>"

    def render(self, recipient: Recipient) -> bytes:
        """The recipient's whole message: the layout with its slots filled, joined."""
        parts = self._layout.copy()
        values = self._values(recipient)
        for index, key in self._slots:
            parts[index] = values[key]
        return b"".join(parts)

    def _values(self, recipient: Recipient) -> dict[str, bytes]:
        """What differs per recipient: its slots' bytes."""
        address = check_address(recipient.email)
        name = one_line(recipient.name)
        display = encode_display_name(name)
        if not display:
            to = f"To: {address}\r\n"
        elif len(display) + len(address) < 70 and "\n" not in display:
            to = f"To: {display} <{address}>\r\n"
        else:
            to = f"To: {display}\r\n <{address}>\r\n"
        https = safe_url(recipient.unsubscribe_url)
        mailto = safe_url(recipient.unsubscribe_mailto)
        plain = {"unsubscribe": https, "name": name}
        values = {
            "headers": (
                f"{to}Message-ID: {self.message_id(address)}\r\n"
                f"List-Unsubscribe: <{mailto}>,\r\n <{https}>\r\n"
            ).encode("ascii")
        }
        for role in self._text_roles:
            values["text:" + role] = qp(plain[role]) + SOFT_BREAK
        for role in self._html_roles:
            values["html:" + role] = qp(html.escape(plain[role])) + SOFT_BREAK
        return values


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message ready to leave: its envelope and its final bytes."""

    sender: str  # the envelope sender (SMTP's MAIL FROM, the outbox's Return-Path)
    recipient: str
    data: bytes


def finalise(template: MessageTemplate, recipient: Recipient, sender: str) -> Outgoing:
    """The one place a recipient's message is finished: the envelope sender chosen and the bytes
    built (the place for any per-message signing or envelope rewriting). Deterministic: the same
    inputs give the same bytes, so a resend after a crash is the same message."""
    data = template.render(recipient)
    if template.signatures is not None:
        data = template.signatures(data) + data
    if template.envelope is not None:
        sender = template.envelope(recipient.email)
    return Outgoing(sender, recipient.email, data)
