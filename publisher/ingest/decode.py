"""Bytes to clean text: UTF-8 (with or without BOM), any line ends, no characters XML forbids.

Returns the text and warnings; raises `DecodeProblem` (a `FieldProblem` on the field `file` or
`encoding`) with a one-line reason for what cannot be accepted (not UTF-8, binary, empty).
"""

from __future__ import annotations

import re

from publisher.ingest.fields import FieldProblem

_BOM = b"\xef\xbb\xbf"
# XML 1.0 allows tab, LF, CR and everything from U+0020 except surrogates and U+FFFE/U+FFFF. We also
# drop DEL and the C1 controls: allowed by XML, but never meant in an article and shown as boxes.
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffe\uffff]")


# C0 control bytes that text files do not contain (tab, LF, VT, FF, CR and ESC are left out).
_BINARY_BYTES = frozenset(set(range(0x20)) - {0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x1B})
# bytes.translate(None, delete) keeps only the binary bytes: counting them at C speed.
_NOT_BINARY = bytes(b for b in range(256) if b not in _BINARY_BYTES)


class DecodeProblem(FieldProblem):
    """Why a file's bytes are not an article's text."""


def _describe(char: str) -> str:
    return f"U+{ord(char):04X}"


def decode(data: bytes) -> tuple[str, list[str]]:
    """Return (text with LF line ends, warnings). Byte offsets in messages count from the file's
    first byte (a byte-order mark included), so `cmp`/`xxd` on the file point at the culprit."""
    skip = len(_BOM) if data.startswith(_BOM) else 0
    if not data[skip:].strip():
        raise DecodeProblem("file", "empty")
    nul = data.find(b"\x00", skip)
    if nul != -1:
        raise DecodeProblem("file", f"binary data, not text (NUL byte at byte offset {nul})")
    head = data[skip : skip + 4096]
    controls = len(head.translate(None, _NOT_BINARY))
    if controls * 20 > len(head):  # > 5 %: no text file has that many; images and archives do
        raise DecodeProblem(
            "file", f"binary data, not text ({controls} control bytes in the first {len(head)})"
        )
    try:
        text = data[skip:].decode("utf-8")
    except UnicodeDecodeError as exc:
        where = skip + exc.start
        bad = data[where : where + 1].hex()
        if exc.reason == "unexpected end of data":  # a multi-byte character cut off: half-copied?
            raise DecodeProblem(
                "encoding",
                f"not UTF-8: incomplete character 0x{bad} at byte offset {where}, the end of the file",
            ) from None
        raise DecodeProblem("encoding", f"not UTF-8: invalid byte 0x{bad} at byte offset {where}") from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    warnings: list[str] = []
    found = _FORBIDDEN.findall(text)
    if found:
        if len(found) * 10 > len(text):
            raise DecodeProblem("file", f"binary data, not text ({len(found)} control characters)")
        kinds = sorted(set(found))
        listed = ", ".join(_describe(c) for c in kinds[:5]) + (" …" if len(kinds) > 5 else "")
        warnings.append(f"removed {len(found)} control character{'s' if len(found) != 1 else ''} ({listed})")
        text = _FORBIDDEN.sub("", text)
    return text, warnings
