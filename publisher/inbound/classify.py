"""What a message that came back is: an unsubscribe request, a delivery status notification
(RFC 3464), a complaint (RFC 5965 ARF), or something else. Parsing only: nothing is changed here.

Each finding names what ties it to a subscriber, never the From header:
- an unsubscribe request carries the signed token publisher put in the List-Unsubscribe mailto
  address (`…?subject=unsubscribe%20<token>`): in the Subject, the first line of the body, or the
  address itself (`unsubscribe+<token>@…`);
- a bounce or a complaint carries (a copy of) the original message or its headers, whose
  List-Unsubscribe holds the same token and whose Message-ID names the digest; a report without
  them falls back on the recipient the reporting server names (Final-Recipient, Original-Rcpt-To),
  and only for a Message-ID of ours.
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass, field
from email.message import Message
from email.utils import getaddresses
from typing import Literal

Kind = Literal["unsubscribe", "bounce", "delay", "complaint", "other"]

_TOKEN = r"[A-Za-z0-9_-]{40}"  # noqa: S105 (a pattern) publisher.tokens: 30 bytes, URL-safe base64 without padding
_SUBJECT_TOKEN = re.compile(rf"\bunsubscribe\s+({_TOKEN})(?![A-Za-z0-9_-])", re.IGNORECASE)
_LINK_TOKENS = re.compile(rf"(?:/unsubscribe/|subject=unsubscribe(?:%20|\+| )|\+)({_TOKEN})(?![A-Za-z0-9_-])")
_MESSAGE_ID = re.compile(r"<([^<>@\s]+)\.([0-9a-f]{24})@([^<>\s]+)>")
_STATUS = re.compile(r"^([245])\.\d{1,3}\.\d{1,3}")
_POLICY = email.policy.compat32  # tolerant of the odd headers reports carry


@dataclass
class Finding:
    """One message, understood. `tokens`: candidate unsubscribe tokens (to verify); `addresses`:
    recipients the report names; `digest_hint`: the digest part of a Message-ID of ours."""

    kind: Kind
    detail: str = ""
    tokens: list[str] = field(default_factory=list)
    addresses: list[str] = field(default_factory=list)
    digest_hint: str | None = None
    envelopes: list[str] = field(default_factory=list)  # where the report was sent: VERP addresses


def parse(data: bytes) -> Message:
    return email.message_from_bytes(data, policy=_POLICY)


def classify(data: bytes, unsubscribe_address: str) -> Finding:
    message = parse(data)
    ctype = message.get_content_type()
    report_type = (message.get_param("report-type") or "").__str__().lower()
    if ctype == "multipart/report" and report_type == "feedback-report":
        return _complaint(message)
    if ctype == "multipart/report" and report_type == "delivery-status":
        return _dsn(message)
    if _addressed_to(message, unsubscribe_address):
        return _unsubscribe(message, unsubscribe_address)
    return Finding("other", "not an unsubscribe request, a bounce or a complaint")


# -- unsubscribe requests ---------------------------------------------------------------------


def _addressed_to(message: Message, address: str) -> bool:
    local, _, domain = address.lower().partition("@")
    fields = [
        str(v)
        for name in ("To", "Cc", "Delivered-To", "X-Original-To", "Envelope-To")
        for v in message.get_all(name, [])
    ]
    for _, found in getaddresses(fields):
        got_local, _, got_domain = found.lower().partition("@")
        if got_domain == domain and (got_local == local or got_local.startswith(local + "+")):
            return True
    return False


def _unsubscribe(message: Message, address: str) -> Finding:
    tokens = _SUBJECT_TOKEN.findall(_header(message, "Subject"))
    local = address.lower().partition("@")[0]
    fields = [str(v) for name in ("To", "Delivered-To", "X-Original-To") for v in message.get_all(name, [])]
    for _, found in getaddresses(fields):
        plus = found.partition("@")[0]
        if plus.lower().startswith(local + "+"):
            tokens.append(plus[len(local) + 1 :])
    body = _first_text(message)
    if body is not None:
        first = next((line for line in body.splitlines() if line.strip()), "")
        tokens += _SUBJECT_TOKEN.findall(first)
    return Finding("unsubscribe", "unsubscribe request", tokens=_unique(tokens))


def _first_text(message: Message) -> str | None:
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                return payload.decode(part.get_content_charset() or "utf-8", "replace")
    return None


# -- reports ----------------------------------------------------------------------------------


def _original_headers(message: Message) -> Message | None:
    """The returned original message (message/rfc822) or its headers (text/rfc822-headers)."""
    for part in message.walk():
        ctype = part.get_content_type()
        if ctype in ("message/rfc822", "message/global"):
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                return inner[0]
        if ctype in ("text/rfc822-headers", "text/global-headers"):
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                return email.message_from_bytes(payload.lstrip(b"\r\n"), policy=_POLICY)
    return None


def _tie(finding: Finding, original: Message | None) -> Finding:
    """Tokens and digest from the original's List-Unsubscribe and Message-ID."""
    if original is None:
        return finding
    finding.tokens = _unique(_LINK_TOKENS.findall(_header(original, "List-Unsubscribe")))
    match = _MESSAGE_ID.search(_header(original, "Message-ID"))
    if match:
        finding.digest_hint = match.group(1)
    if not finding.addresses:
        finding.addresses = [a for _, a in getaddresses([_header(original, "To")]) if a]
    return finding


def _blocks(message: Message, ctype: str) -> list[Message]:
    """The header blocks of a message/delivery-status or message/feedback-report part."""
    for part in message.walk():
        if part.get_content_type() != ctype:
            continue
        payload = part.get_payload()
        if isinstance(payload, list):
            return [p for p in payload if isinstance(p, Message)]
        if isinstance(payload, str):  # unparsed: split the blocks ourselves
            text = payload.replace("\r\n", "\n").strip("\n")
            return [email.message_from_string(b + "\n", policy=_POLICY) for b in re.split(r"\n\s*\n", text)]
    return []


def _typed_address(value: str) -> str:
    """`rfc822; bob@example.org` → `bob@example.org`."""
    kind, _, address = value.partition(";")
    address = address if address else kind
    return address.strip().strip("<>").strip()


def _envelopes(message: Message) -> list[str]:
    """The addresses a report was delivered to (a VERP envelope sender of ours among them)."""
    fields = [
        str(v)
        for name in ("Delivered-To", "X-Original-To", "Envelope-To", "To")
        for v in message.get_all(name, [])
    ]
    return _unique([address for _, address in getaddresses(fields) if "+" in address])


def _dsn(message: Message) -> Finding:
    blocks = _blocks(message, "message/delivery-status")
    failed: list[tuple[str, str]] = []
    delayed: list[tuple[str, str]] = []
    for block in blocks[1:]:  # the first block is about the message, the others one recipient each
        recipient = _typed_address(_header(block, "Final-Recipient") or _header(block, "Original-Recipient"))
        action = _header(block, "Action").strip().lower()
        status = _header(block, "Status").strip()
        code = _STATUS.match(status)
        diagnostic = " ".join(_header(block, "Diagnostic-Code").partition(";")[2].split()) or status
        if action == "failed" and (code is None or code.group(1) == "5"):
            failed.append((recipient, f"{status} {diagnostic}".strip()))
        elif action in ("delayed", "failed"):  # a failed with a 4.x.x status is not final
            delayed.append((recipient, f"{status} {diagnostic}".strip()))
    original = _original_headers(message)
    if failed:
        finding = Finding("bounce", failed[0][1], addresses=[a for a, _ in failed if a])
    elif delayed:
        finding = Finding("delay", delayed[0][1], addresses=[a for a, _ in delayed if a])
    else:
        return Finding("other", "a delivery status notification that reports no failure")
    finding.envelopes = _envelopes(message)
    return _tie(finding, original)


def _complaint(message: Message) -> Finding:
    blocks = _blocks(message, "message/feedback-report")
    fields = blocks[0] if blocks else Message()
    feedback = _header(fields, "Feedback-Type").strip().lower() or "abuse"
    recipients = [_typed_address(v) for v in (fields.get_all("Original-Rcpt-To") or [])]
    finding = Finding("complaint", f"complaint ({feedback})", addresses=[r for r in recipients if r])
    return _tie(finding, _original_headers(message))


def _header(message: Message, name: str) -> str:
    value = message.get(name)
    if value is None:
        return ""
    return " ".join(str(value).split())


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
