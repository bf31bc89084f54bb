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
import difflib
import re
import unicodedata
from datetime import date, datetime, time, tzinfo
from typing import Any
from urllib.parse import urljoin

from markdown_it import MarkdownIt
from markdown_it.token import Token
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from publisher.ingest import frontmatter
from publisher.ingest.fields import FieldProblem, FieldProblems, Fields
from publisher.ingest.images import Images
from publisher.ingest.text import derive_summary, derive_title, shorten, squash

_IRI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$")
_SLUG_CHARS = re.compile(r"[A-Za-z0-9]")
_SCHEME = re.compile(r"^\s*([A-Za-z][A-Za-z0-9+.-]*):")
# A line break, raw or percent-encoded (also %00, which some clients treat as an end of header).
_HEADER_BREAK = re.compile(r"[\r\n\x00]|%0[ad0]", re.IGNORECASE)
SAFE_SCHEMES = frozenset({"http", "https", "mailto"})


class FrontMatter(BaseModel):
    """The keys a Markdown article may set. Anything else is a typo, and an error (except the
    Hugo/Jekyll keys in `frontmatter.FOREIGN`, dropped with a warning before this model sees them).

    Hugo and Jekyll keys with a meaning here: `slug` (the page address), `description` (the
    summary, when `summary` is not set), `categories` (more tags), `lastmod` (when it was last
    changed: the `updated` time), `published: false` (a draft), `image` (a picture beside the
    article: the page's Open Graph and Twitter card image).
    """

    # coerce_numbers_to_str: `title: 1984` or `tags: [2025]` mean text, whatever YAML thinks.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, coerce_numbers_to_str=True)

    title: str | None = Field(None, min_length=1, max_length=500)
    date: dt.date | dt.datetime
    author: str | None = Field(None, min_length=1, max_length=200)
    tags: list[str] = Field(default_factory=list, max_length=50)
    summary: str | None = Field(None, max_length=2000)
    draft: bool = False
    id: str | None = Field(None, max_length=500)
    slug: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=2000)
    categories: list[str] = Field(default_factory=list, max_length=50)
    lastmod: dt.date | dt.datetime | None = None
    published: bool = True
    image: str | None = Field(None, min_length=1, max_length=1000)

    @field_validator("date", "lastmod", mode="before")
    @classmethod
    def _parse_date(cls, value: Any) -> dt.date | dt.datetime | None:
        if value is None:
            return None
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
            # Python words an offset of a day or more in terms of its own timedelta objects.
            reason = "a zone offset lies between -23:59 and +23:59" if "offset" in str(exc) else exc
            raise ValueError(f"{text!r} is not a real date or date-time ({reason})") from None
        if moment.tzinfo is None:
            raise ValueError(f"{text!r} has a time but no zone (write e.g. {text}+00:00)")
        return moment

    @field_validator("tags", "categories", mode="before")
    @classmethod
    def _tags(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)  # "tags: 2025"
        if isinstance(value, str):  # "tags: politics, europe" is a common way to write a list
            return [part for part in (p.strip() for p in value.split(",")) if part]
        return value

    @field_validator("tags", "categories")
    @classmethod
    def _clean_tags(cls, value: list[str]) -> list[str]:
        seen: dict[str, None] = {}
        for tag in value:
            tag = squash(tag)
            if not tag:
                raise ValueError("a tag cannot be empty")
            seen.setdefault(tag, None)
        return list(seen)

    @field_validator("slug")
    @classmethod
    def _slug(cls, value: str | None) -> str | None:
        # The store turns it into an address (ASCII, lower case, hyphens): it must leave something.
        if value is not None and not _SLUG_CHARS.search(unicodedata.normalize("NFKD", value)):
            raise ValueError("must contain a letter or digit from a to z or 0 to 9, e.g. harbour-reopens")
        return value

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


# Images wider than this get a width attribute this wide (and a height in proportion): mail
# clients that ignore CSS (Outlook) still keep the digest's 600 px column.
MAX_IMAGE_WIDTH = 600


def _local_images(tokens: list[Token], images: Images) -> None:
    """Resolve each relative image against seeds/ (publisher/ingest/images.py): an accepted one
    points at its content-addressed name with its size; a refused one becomes its alt text."""
    for token in tokens:
        if token.children:
            _local_images(token.children, images)
        src = token.attrGet("src")
        if token.type != "image" or not isinstance(src, str) or _SCHEME.match(src) or src[:1] in "/#":
            continue
        found = images.resolve(src) if src else None
        if found is None:
            alt = "".join(child.content for child in token.children or [])
            token.type, token.tag, token.attrs, token.children, token.content = "text", "", {}, None, alt
            continue
        width = min(found.width, MAX_IMAGE_WIDTH)
        token.attrSet("src", found.name)
        token.attrSet("width", str(width))
        token.attrSet("height", str(max(1, round(found.height * width / found.width))))


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


def parse(
    text: str, tz: tzinfo, base_url: str, *, title_max: int, summary_max: int, images: Images | None = None
) -> Fields:
    """Split, validate and render one Markdown article (`images`: resolves images beside it)."""
    try:
        matter_text, body, _ = frontmatter.split(text)
        data, dropped = frontmatter.drop_foreign(frontmatter.load(matter_text))
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
    cover_note = None
    if meta.image is not None and (images is None or _SCHEME.match(meta.image) or meta.image[:1] in "/#"):
        cover_note = ("image", "ignored: only a picture beside the article in seeds/ can be its image")
    elif meta.image is not None and images is not None:
        images.resolve(meta.image)  # first found: the page's Open Graph image (warns when refused)
    if images is not None:
        _local_images(tokens, images)
    _absolutise(tokens, base_url)
    body_html = _MD.renderer.render(tokens, _MD.options, {}).strip()
    paragraphs = _plain_paragraphs(tokens)
    if not paragraphs and not body_html:
        raise FieldProblem("body", "no text after the front matter")
    moment = _moment(meta.date, tz)
    title = squash(meta.title) if meta.title else derive_title(paragraphs, title_max)
    if not title:
        raise FieldProblem("title", "missing, and there is no paragraph to take one from")
    warnings = [(key, IGNORED) for key in dropped]
    if cover_note is not None:
        warnings.append(cover_note)
    if meta.summary and meta.description:
        warnings.append(("description", "ignored: summary is set"))
    given = meta.summary or meta.description
    summary = shorten(given, summary_max) if given else derive_summary(paragraphs, summary_max)
    return Fields(
        title=title,
        date=moment,
        summary=summary,
        paragraphs=paragraphs,
        body_html=body_html,
        author=meta.author,
        tags=list(dict.fromkeys([*meta.tags, *meta.categories])),
        explicit_id=meta.id,
        draft=meta.draft or not meta.published,
        slug=meta.slug,
        lastmod=None if meta.lastmod is None else max(moment, _moment(meta.lastmod, tz)),
        warnings=warnings,
    )


IGNORED = "ignored: a Hugo or Jekyll key that means nothing to publisher"
# Keys that decide *when* a generator publishes: dropping them could publish too early.
_NOT_SUPPORTED = {
    "publishdate": "not supported: publisher publishes at `date`; put the publication time there",
    "expirydate": "not supported: publisher never unpublishes by date; remove the key",
}
ALLOWED = tuple(FrontMatter.model_fields)


def _moment(value: dt.date | dt.datetime, tz: tzinfo) -> datetime:
    """A date alone is midnight in the site's timezone."""
    return value if isinstance(value, datetime) else datetime.combine(value, time(0, 0), tzinfo=tz)


def _message(err: Any) -> str:
    if err["type"] == "extra_forbidden":
        key = str(err["loc"][-1]) if err["loc"] else ""
        if key.lower() in _NOT_SUPPORTED:
            return _NOT_SUPPORTED[key.lower()]
        close = difflib.get_close_matches(key.lower(), ALLOWED, n=1, cutoff=0.75)
        if close:
            return f"unknown key (did you mean {close[0]}?)"
        return f"unknown key (allowed: {', '.join(ALLOWED)})"
    if err["type"] == "missing":
        return "missing"
    return str(err["msg"]).removeprefix("Value error, ")
