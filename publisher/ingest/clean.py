"""The one cleaning every text field of every format gets, once, at ingest: whatever a file holds,
no output (page, feed, mail) can differ in what it shows.

- Control characters (C0 but tab and line feed, DEL, C1) are removed. `decode` already removes them
  from a file's bytes; these come back through escapes a format decodes itself (YAML's "\\a", "\\x1b",
  a character reference in Markdown).
- Bidirectional embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069) left open or
  closed without an opening would reorder the text that follows them wherever the field is shown
  (a title in an index, a subject line): in a field where they do not balance, they are all removed.

Each removal is a warning naming the field, which the caller reports with the file.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from publisher.ingest.fields import Fields

_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")
_OPENERS = {"\u202a": "\u202c", "\u202b": "\u202c", "\u202d": "\u202c", "\u202e": "\u202c"}
_OPENERS.update({"\u2066": "\u2069", "\u2067": "\u2069", "\u2068": "\u2069"})


def balanced(text: str) -> bool:
    """Every embedding/override closed by U+202C and every isolate by U+2069, properly nested."""
    stack: list[str] = []
    for char in _BIDI.findall(text):
        if char in _OPENERS:
            stack.append(_OPENERS[char])
        elif not stack or stack.pop() != char:
            return False
    return not stack


def clean_text(text: str) -> tuple[str, list[str]]:
    """`text` without control characters and unbalanced bidi controls; what was removed."""
    notes = []
    found = _CONTROL.findall(text)
    if found:
        kinds = ", ".join(f"U+{ord(c):04X}" for c in sorted(set(found))[:5])
        notes.append(f"removed {len(found)} control character{'s' if len(found) != 1 else ''} ({kinds})")
        text = _CONTROL.sub("", text)
    if _BIDI.search(text) and not balanced(text):
        count = len(_BIDI.findall(text))
        notes.append(f"removed {count} unbalanced bidirectional control{'s' if count != 1 else ''}")
        text = _BIDI.sub("", text)
    return text, notes


def clean_fields(fields: Fields) -> tuple[Fields, list[tuple[str, str]]]:
    """Every text field (and every text in a list field) cleaned; (field, note) for each removal."""
    changes: dict[str, Any] = {}
    notes: list[tuple[str, str]] = []
    for item in dataclasses.fields(fields):
        value = getattr(fields, item.name)
        if isinstance(value, str):
            cleaned, found = clean_text(value)
            notes.extend((item.name, note) for note in found)
            if found:
                changes[item.name] = cleaned
        elif isinstance(value, list | tuple) and any(isinstance(v, str) for v in value):
            parts = []
            for index, part in enumerate(value):
                if isinstance(part, str):
                    part, found = clean_text(part)
                    notes.extend((f"{item.name}.{index}", note) for note in found)
                parts.append(part)
            if parts != list(value):
                changes[item.name] = type(value)(parts)
    return (dataclasses.replace(fields, **changes) if changes else fields), notes
