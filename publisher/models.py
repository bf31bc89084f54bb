"""The types every stage shares: `Article` (what ingest validated), `Published` (an article with its
permanent identity from the store) and `Problem` (one line about one file).

After ingest, code receives these objects, never raw dicts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with one file: `seeds/x.md: date: day is out of range for month`."""

    path: str
    field: str
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        prefix = "warning: " if self.severity == "warning" else ""
        field = f"{self.field}: " if self.field else ""
        return f"{prefix}{self.path}: {field}{self.message}"


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
