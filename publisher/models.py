"""The types every stage shares: `Article` (what ingest validated), `Published` (an article with its
permanent identity from the store) and `Problem` (one line about one file).

After ingest, code receives these objects, never raw dicts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

Severity = Literal["error", "warning"]

# What a file name (or a key from a file) must not bring into a message: control characters (a line
# break forges a log line, ESC drives the terminal), Unicode line separators and bidirectional
# overrides (they reorder what is shown), and lone surrogates (the bytes of a name that is not UTF-8).
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(match: re.Match[str]) -> str:
    if (short := _SHORT.get(match.group())) is not None:
        return short
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8, as os.fsdecode keeps it: show the byte
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape_name(text: str) -> str:
    """`text` safe to print on one line: control characters, line separators, bidi overrides and
    surrogates written as Python escapes (`a\\nb.txt`, `caf\\xe9.txt` for a name in Latin-1);
    every other character, é included, unchanged."""
    return _UNPRINTABLE.sub(_escaped, text)


def is_utf8(name: str) -> bool:
    """Whether `name` can be written as UTF-8: a file name whose bytes are not (os.fsdecode keeps
    them as lone surrogates) fits no text, not SQLite, a feed or a message."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with one file: `seeds/x.md: date: day is out of range for month`.

    Always one printable line: the file name, the field (a key from the file) and the message are
    escaped (`escape_name`) when made, so neither a name nor a key can forge a line or a colour."""

    path: str
    field: str
    message: str
    severity: Severity = "error"

    def __post_init__(self) -> None:
        for name in ("path", "field", "message"):
            object.__setattr__(self, name, escape_name(getattr(self, name)))

    def __str__(self) -> str:
        prefix = "warning: " if self.severity == "warning" else ""
        field = f"{self.field}: " if self.field else ""
        return f"{prefix}{self.path}: {field}{self.message}"


def grouped(problems: Sequence[Problem], *, least: int = 3, examples: int = 2) -> list[str]:
    """Problems as lines for people: one per problem, except that the same problem (field, message
    and severity) in `least` files or more is said once, where it first occurs:
    `warning: aliases: ignored: … — 5,000 files, e.g. seeds/a.md, seeds/b.md`.
    A migrated corpus of 5,000 files with the same foreign key gives one line, not 5,000."""
    paths: dict[tuple[str, str, str], dict[str, None]] = {}
    for problem in problems:
        paths.setdefault((problem.field, problem.message, problem.severity), {})[problem.path] = None
    lines: list[str] = []
    said: set[tuple[str, str, str]] = set()
    for problem in problems:
        key = (problem.field, problem.message, problem.severity)
        if len(paths[key]) < least:
            lines.append(str(problem))
        elif key not in said:
            said.add(key)
            files = list(paths[key])
            prefix = "warning: " if problem.severity == "warning" else ""
            field = f"{problem.field}: " if problem.field else ""
            shown = ", ".join(files[:examples])
            many = len(files) > examples
            where = f"{len(files):,} files, e.g. {shown}" if many else f"{len(files)} files: {shown}"
            lines.append(f"{prefix}{field}{problem.message} — {where}")
    return lines


class Article(BaseModel):
    """One validated article, as read from one file in seeds/.

    `body_html` is safe HTML built by publisher (text is escaped, Markdown is rendered without raw
    HTML); `paragraphs` is the same body as plain-text paragraphs, for text mail and summaries.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = Field(description="Path relative to seeds/, with forward slashes.")
    format: Literal["text", "markdown"]
    title: str = Field(min_length=1)
    date: AwareDatetime
    author: str | None = None
    tags: tuple[str, ...] = ()
    summary: str
    body_html: str
    paragraphs: tuple[str, ...]
    explicit_id: str | None = None
    draft: bool = False
    slug: str | None = Field(None, description="The page address the writer asked for (front matter).")
    lastmod: AwareDatetime | None = Field(None, description="When the writer says it last changed.")
    images: tuple[tuple[str, str, str], ...] = Field(
        (), description="Images in the body: (path in seeds/, name under feeds/, sha256 of the bytes)."
    )
    assets: tuple[tuple[str, int, int], ...] = Field(
        (), description="Files beside it that it uses, with the size and mtime seen: a change re-reads it."
    )
    story_hash: str = Field(description="sha256 of the normalised story text: finds duplicates, renames.")
    content_hash: str = Field(description="sha256 of everything a reader sees: moves `updated`.")


@dataclass(frozen=True, slots=True)
class Identity:
    """What the store remembers of an article across builds."""

    id: str
    slug: str
    seq: int
    first_seen: datetime
    updated: datetime


@dataclass(frozen=True, slots=True)
class Published:
    """An article with its permanent identity: what feeds, pages and digests are made from."""

    article: Article
    identity: Identity

    @property
    def id(self) -> str:
        return self.identity.id

    @property
    def published(self) -> datetime:
        return self.article.date

    @property
    def updated(self) -> datetime:
        return self.identity.updated
