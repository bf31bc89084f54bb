"""The Markdown format: YAML front matter, then a CommonMark body (the only home of markdown-it).

Raw HTML in the body is never passed through: markdown-it runs with `html` off, so `<script>` is
shown as text. Links and images (inline, reference and autolinks alike) keep their target only when
it is relative or uses http, https or mailto; anything else (`javascript:`, `vbscript:`, `data:`,
`file:`) stays visible as the literal Markdown text and never becomes a link. Relative links and
images are made absolute against the site's base URL, because many feed readers and mail clients
ignore `xml:base`.
"""

from __future__ import annotations

import datetime as dt
import re
from datetime import date, datetime, time, tzinfo
from typing import Any
from urllib.parse import urljoin

from markdown_it import MarkdownIt
from markdown_it.token import Token
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from publisher.ingest import frontmatter
from publisher.ingest.fields import FieldProblem, FieldProblems, Fields
from publisher.ingest.text import derive_summary, derive_title, shorten, squash

_IRI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$")
_SCHEME = re.compile(r"^\s*([A-Za-z][A-Za-z0-9+.-]*):")
# A line break, raw or percent-encoded (also %00, which some clients treat as an end of header).
_HEADER_BREAK = re.compile(r"[\r\n\x00]|%0[ad0]", re.IGNORECASE)
SAFE_SCHEMES = frozenset({"http", "https", "mailto"})


class FrontMatter(BaseModel):
    """The keys a Markdown article may set. Anything else is a typo, and an error."""

    # coerce_numbers_to_str: `title: 1984` or `tags: [2025]` mean text, whatever YAML thinks.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, coerce_numbers_to_str=True)

    title: str | None = Field(None, min_length=1, max_length=500)
    date: dt.date | dt.datetime
    author: str | None = Field(None, min_length=1, max_length=200)
    tags: list[str] = Field(default_factory=list, max_length=50)
    summary: str | None = Field(None, max_length=2000)
    draft: bool = False
    id: str | None = Field(None, max_length=500)

    @field_validator("date", mode="before")
    @classmethod
    def _parse_date(cls, value: Any) -> dt.date | dt.datetime:
        if isinstance(value, datetime | date):
            return value
        if not isinstance(value, str):
            raise ValueError(
                "must be a date (2025-02-19) or a date-time with zone (2025-02-19T08:00:00+01:00)"
            )
        text = value.strip()
        try:
            if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
                return date.fromisoformat(text)
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ValueError(f"{text!r} is not a real date or date-time ({exc})") from None
        if moment.tzinfo is None:
            raise ValueError(f"{text!r} has a time but no zone (write e.g. {text}+00:00)")
        return moment

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)  # "tags: 2025"
        if isinstance(value, str):  # "tags: politics, europe" is a common way to write a list
            return [part for part in (p.strip() for p in value.split(",")) if part]
        return value

    @field_validator("tags")
    @classmethod
    def _clean_tags(cls, value: list[str]) -> list[str]:
        seen: dict[str, None] = {}
        for tag in value:
            tag = squash(tag)
            if not tag:
                raise ValueError("a tag cannot be empty")
            seen.setdefault(tag, None)
        return list(seen)

    @field_validator("id")
    @classmethod
    def _absolute_iri(cls, value: str | None) -> str | None:
        if value is not None and not _IRI.match(value):
            raise ValueError("must be an absolute IRI such as tag:example.org,2025:my-story or urn:uuid:…")
        return value


class _SafeMarkdown(MarkdownIt):
    """CommonMark whose links and images may only point at relative, http(s) or mailto targets."""

    def validateLink(self, url: str) -> bool:  # markdown-it's hook, hence its name
        scheme = _SCHEME.match(url)
        if scheme is not None and scheme.group(1).lower() == "mailto" and _HEADER_BREAK.search(url):
            return False  # ?subject=x%0d%0aBcc:… would add headers in a mail client: not a link
        return scheme is None or scheme.group(1).lower() in SAFE_SCHEMES


def _make_renderer() -> MarkdownIt:
    md = _SafeMarkdown("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"])
    return md


_MD = _make_renderer()


def _absolutise(tokens: list[Token], base_url: str) -> None:
    for token in tokens:
        if token.children:
            _absolutise(token.children, base_url)
        for attr in ("href", "src"):
            value = token.attrGet(attr)
            if isinstance(value, str):
                token.attrSet(attr, urljoin(base_url, value))


def _plain_paragraphs(tokens: list[Token]) -> list[str]:
    """The text of each paragraph and heading, without markup: for summaries and text mail."""
    out: list[str] = []
    for index, token in enumerate(tokens):
        if (
            token.type == "inline"
            and index > 0
            and tokens[index - 1].type in ("paragraph_open", "heading_open")
        ):
            text = "".join(
                child.content if child.type in ("text", "code_inline") else " "
                for child in token.children or []
                if child.type in ("text", "code_inline", "softbreak", "hardbreak")
            )
            if squash(text):
                out.append(squash(text))
    return out


def parse(text: str, tz: tzinfo, base_url: str, *, title_max: int, summary_max: int) -> Fields:
    """Split, validate and render one Markdown article."""
    try:
        matter_text, body, _ = frontmatter.split(text)
        data = frontmatter.load(matter_text)
    except frontmatter.FrontMatterProblem as exc:
        raise FieldProblem("front matter", str(exc)) from None
    try:
        meta = FrontMatter.model_validate(data)
    except ValidationError as exc:
        problems = [
            FieldProblem(".".join(str(p) for p in err["loc"]) or "front matter", _message(err))
            for err in exc.errors()
        ]
        raise FieldProblems(problems) from None
    tokens = _MD.parse(body)
    _absolutise(tokens, base_url)
    body_html = _MD.renderer.render(tokens, _MD.options, {}).strip()
    paragraphs = _plain_paragraphs(tokens)
    if not paragraphs and not body_html:
        raise FieldProblem("body", "no text after the front matter")
    moment = (
        meta.date if isinstance(meta.date, datetime) else datetime.combine(meta.date, time(0, 0), tzinfo=tz)
    )
    title = squash(meta.title) if meta.title else derive_title(paragraphs, title_max)
    if not title:
        raise FieldProblem("title", "missing, and there is no paragraph to take one from")
    summary = shorten(meta.summary, summary_max) if meta.summary else derive_summary(paragraphs, summary_max)
    return Fields(
        title=title,
        date=moment,
        summary=summary,
        paragraphs=paragraphs,
        body_html=body_html,
        author=meta.author,
        tags=meta.tags,
        explicit_id=meta.id,
        draft=meta.draft,
    )


def _message(err: Any) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key (allowed: title, date, author, tags, summary, draft, id)"
    if err["type"] == "missing":
        return "missing"
    return str(err["msg"]).removeprefix("Value error, ")
