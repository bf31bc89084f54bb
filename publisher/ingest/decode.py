"""Bytes to clean text: UTF-8 (with or without BOM), any line ends, no characters XML forbids.

Returns the text and warnings; raises `DecodeProblem` with a one-line reason for what cannot be
accepted (not UTF-8, binary, empty).
"""

from __future__ import annotations

import re

_BOM = b"\xef\xbb\xbf"
# XML 1.0 allows tab, LF, CR and everything from U+0020 except surrogates and U+FFFE/U+FFFF. We also
# drop DEL and the C1 controls: allowed by XML, but never meant in an article and shown as boxes.
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffe\uffff]")


class DecodeProblem(Exception):
    """Why a file's bytes are not an article's text."""


def _describe(char: str) -> str:
    return f"U+{ord(char):04X}"


def decode(data: bytes) -> tuple[str, list[str]]:
    """Return (text with LF line ends, warnings)."""
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    if not data.strip():
        raise DecodeProblem("empty file")
    nul = data.find(b"\x00")
    if nul != -1:
        raise DecodeProblem(f"binary data, not text (NUL byte at offset {nul})")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = data[exc.start : exc.start + 1].hex()
        raise DecodeProblem(f"not UTF-8: invalid byte 0x{bad} at byte offset {exc.start}") from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    warnings: list[str] = []
    found = _FORBIDDEN.findall(text)
    if found:
        if len(found) * 10 > len(text):
            raise DecodeProblem(f"binary data, not text ({len(found)} control characters)")
        kinds = sorted(set(found))
        listed = ", ".join(_describe(c) for c in kinds[:5]) + (" …" if len(kinds) > 5 else "")
        warnings.append(f"removed {len(found)} control character{'s' if len(found) != 1 else ''} ({listed})")
        text = _FORBIDDEN.sub("", text)
    return text, warnings
