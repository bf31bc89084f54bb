"""What a format parser hands back before the Article model validates it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


class FieldProblem(Exception):
    """A problem with one field of one file; the file is rejected."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class FieldProblems(Exception):
    """Several field problems found at once (every one is reported)."""

    def __init__(self, problems: list[FieldProblem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


@dataclass
class Fields:
    title: str
    date: datetime
    summary: str
    paragraphs: list[str]
    body_html: str | None = None  # None: built from paragraphs by escaping them
    author: str | None = None
    tags: list[str] = field(default_factory=list)
    explicit_id: str | None = None
    draft: bool = False
    slug: str | None = None  # the page address the writer asked for (front matter `slug`)
    lastmod: datetime | None = None  # when the writer last changed it (front matter `lastmod`)
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (field, message): file accepted
    images: list[tuple[str, str, str]] = field(default_factory=list)  # (source, name in feeds/, sha256)
    assets: list[tuple[str, int, int]] = field(default_factory=list)  # (source, size, mtime_ns) seen
