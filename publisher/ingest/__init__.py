"""Ingest: the door every article comes through. Files in seeds/ in; `Article`s and `Problem`s out.

Nothing here ever writes to seeds/. One bad file never stops the others: each problem becomes a
`Problem` line naming the file and the field. Which files are looked at:
- `.txt` (the plain-text format) and `.md` / `.markdown` (Markdown with YAML front matter);
- sub-folders are read too (a writer may sort by year or desk), except hidden ones;
- hidden files, editor swap/backup/lock files and partial downloads are ignored silently;
- symbolic links are followed only when they lead to a file inside seeds/; others are refused; a
  link to a file that is read under its own name anyway is skipped (with a warning), so one file
  never counts twice;
- anything else that is not a regular file (a FIFO, a socket) is refused without being opened.
"""

from __future__ import annotations

import logging
import operator
import os
import re
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Protocol
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from publisher.config import Settings
from publisher.ingest import plaintext
from publisher.ingest.clean import clean_fields
from publisher.ingest.decode import DecodeProblem, decode
from publisher.ingest.fields import FieldProblem, FieldProblems, Fields
from publisher.ingest.images import Images
from publisher.ingest.text import content_hash, paragraphs_html, story_hash
from publisher.models import Article, Problem, escape_name, is_utf8

TEXT_SUFFIXES = (".txt",)
MARKDOWN_SUFFIXES = (".md", ".markdown")
_SUFFIXES = TEXT_SUFFIXES + MARKDOWN_SUFFIXES
# Pictures beside the articles: read when an article shows them, never reported as stray files.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".svg")
_MAX_DEPTH = 16
log = logging.getLogger("publisher.ingest")
# Editors and downloaders leave these beside real files: vim (.swp, 4913), emacs (#x#, x~), Office
# (~$x), and partial downloads/copies.
_JUNK = re.compile(
    r"(~$|^#.*#$|^~\$|\.(sw[a-p]|tmp|temp|bak|orig|part|partial|crdownload|download|kate-swp)$|^4913$)",
    re.IGNORECASE,
)


class SeedFile(NamedTuple):
    """A candidate article file found by `scan` (a NamedTuple: made 100,000 times per scan)."""

    # Absolute, symlinks resolved. `scan` gives a str: building a Path per file was a third of the
    # cost of scanning 100,000 files.
    path: str | Path
    rel: str  # relative to seeds/, forward slashes: the article's `source`
    size: int
    mtime_ns: int
    via_link: bool = False  # found as a symbolic link (inside seeds/) rather than as the file itself


@dataclass
class IngestResult:
    articles: list[Article] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    invalid: set[str] = field(default_factory=set)  # rel paths present but rejected
    files: int = 0

    @property
    def rejected(self) -> int:
        return len(self.invalid)


class ParseCache(Protocol):
    """Remembers parsed articles by path, size and modification time (see store.cache)."""

    def get(self, seed: SeedFile) -> tuple[Article, list[Problem]] | None: ...

    def put(self, seed: SeedFile, article: Article, warnings: list[Problem]) -> None: ...


def display(settings: Settings, rel: str) -> str:
    """How a file is named in messages: `seeds/x.md`, escaped (`models.escape_name`): a name holding
    a line break or an escape sequence can forge no line and drive no terminal."""
    return escape_name(f"{settings.seeds_dir.name}/{rel}")


def is_ignored(name: str) -> bool:
    """Hidden, temporary and editor files: never articles, never mentioned."""
    if name.startswith("."):
        return True
    if name.lower().endswith(_SUFFIXES):
        # Fast path for the common case: of the junk patterns, only an Office lock file (~$x)
        # can end in an article suffix.
        return name.startswith("~$")
    return bool(_JUNK.search(name))


def is_candidate(name: str) -> bool:
    return not is_ignored(name) and name.lower().endswith(_SUFFIXES)


def is_image(name: str) -> bool:
    """A picture an article may show (publisher/ingest/images.py): not an article, not a stray file."""
    return not is_ignored(name) and name.lower().endswith(IMAGE_SUFFIXES)


def scan(settings: Settings) -> tuple[list[SeedFile], list[Problem]]:
    """Every candidate file under seeds/, sorted by path, and problems with what was refused."""
    root = settings.seeds_dir
    problems: list[Problem] = []
    if not root.is_dir():
        problems.append(Problem(str(root), "folder", "does not exist (paths.seeds)"))
        return [], problems
    real_root = os.path.realpath(root)
    found = sorted(_walk(str(root), real_root, Path(real_root), "", 0, problems, settings), key=_REL)
    # One real file, one article: the file under its own name wins over links to it.
    owner: dict[str | Path, SeedFile] = {}
    # Files under their own names first (the list is already sorted by path, and sort is stable).
    for seed in sorted(found, key=_VIA_LINK) if any(f.via_link for f in found) else found:
        first = owner.setdefault(seed.path, seed)
        if first is not seed:
            problems.append(
                Problem(
                    display(settings, seed.rel),
                    "file",
                    f"symbolic link to {display(settings, first.rel)}, which is read already; ignored",
                    "warning",
                )
            )
    files = sorted(owner.values(), key=_REL)
    return files, problems


_NAME = operator.attrgetter("name")
_REL = operator.attrgetter("rel")
_VIA_LINK = operator.attrgetter("via_link")


def _walk(
    folder: str,
    real_folder: str,
    real_root: Path,
    prefix: str,
    depth: int,
    problems: list[Problem],
    settings: Settings,
) -> Iterator[SeedFile]:
    # `real_folder` is `folder` with its links resolved, computed once per folder: resolving every
    # file's path (an lstat per path component) was most of the cost of scanning a large seeds/.
    label = display(settings, "")
    try:
        entries = sorted(os.scandir(folder), key=_NAME)
    except OSError as exc:
        problems.append(Problem(display(settings, prefix or "."), "folder", f"cannot read: {exc.strerror}"))
        return
    for entry in entries:
        name = entry.name
        if is_ignored(name):
            continue
        rel = f"{prefix}{name}"
        shown = label + rel
        if not name.isascii() and not is_utf8(name):
            # Its bytes are not UTF-8 (os.fsdecode kept them as surrogates): no text can hold the
            # name, not SQLite, a feed or a message. Refused, the other files go on.
            if name.lower().endswith(_SUFFIXES):
                problems.append(Problem(shown, "file", "name is not valid UTF-8; rename it"))
            elif entry.is_dir(follow_symlinks=False):
                problems.append(Problem(shown, "folder", "name is not valid UTF-8; rename it; not read"))
            continue  # another file (an image no article can name): nothing to publish
        is_link = entry.is_symlink()
        try:
            if is_link:
                target = Path(os.path.realpath(entry.path))
                if not target.is_relative_to(real_root):
                    problems.append(Problem(shown, "file", "symbolic link leads outside seeds/; refused"))
                    continue
                if target.is_dir():
                    problems.append(
                        Problem(shown, "folder", "symbolic link to a folder; not followed", "warning")
                    )
                    continue
            if entry.is_dir(follow_symlinks=False):
                if depth >= _MAX_DEPTH:
                    problems.append(Problem(shown, "folder", "nested too deep; not read", "warning"))
                    continue
                yield from _walk(
                    entry.path, f"{real_folder}/{name}", real_root, rel + "/", depth + 1, problems, settings
                )
                continue
            info = entry.stat(follow_symlinks=True)
        except FileNotFoundError:
            if is_link:
                problems.append(Problem(shown, "file", "broken symbolic link; refused"))
            continue  # removed while we looked: nothing to report
        except OSError as exc:
            problems.append(Problem(shown, "file", f"cannot read: {exc.strerror}"))
            continue
        if not name.lower().endswith(_SUFFIXES):
            if name.lower().endswith(IMAGE_SUFFIXES):
                continue  # read by the articles that show it
            problems.append(
                Problem(shown, "file", "not an article file (.txt, .md or .markdown); ignored", "warning")
            )
            continue
        if not stat.S_ISREG(info.st_mode):
            problems.append(Problem(shown, "file", "not a regular file; refused"))
            continue
        real = os.path.realpath(entry.path) if is_link else f"{real_folder}/{name}"
        yield SeedFile(real, rel, info.st_size, info.st_mtime_ns, is_link)


class NotRegularFile(OSError):
    """The path turned into something else (a FIFO, a folder) between `scan` and reading."""


class TooLarge(Exception):
    """The file is larger than ingest.max_bytes (seen by fstat, before reading)."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


def read_limited(seed: SeedFile, limit: int) -> bytes:
    """Read at most limit + 1 bytes, so a file that grows after `scan` is still caught.

    O_NONBLOCK: opening a FIFO that replaced the file since `scan` must not wait for a writer;
    O_NOFOLLOW: nor may a symbolic link swapped in lead outside seeds/. Then fstat: regular files only.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(seed.path, flags)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegularFile(0, "not a regular file")
        if info.st_size > limit:  # grew since scan: refuse it unread, as scan would have
            raise TooLarge(info.st_size)
        chunks: list[bytes] = []
        remaining = limit + 1
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def parse_file(seed: SeedFile, settings: Settings) -> tuple[Article | None, list[Problem]]:
    """Read, decode, parse and validate one file. Never raises for anything in the file."""
    shown = display(settings, seed.rel)
    limit = settings.ingest.max_bytes
    too_large = "too large: {} bytes (limit {}, ingest.max_bytes)"
    if seed.size > limit:  # known from scan's stat: the file is never opened
        return None, [Problem(shown, "file", too_large.format(seed.size, limit))]
    try:
        data = read_limited(seed, limit)
    except TooLarge as exc:
        return None, [Problem(shown, "file", too_large.format(exc.size, limit))]
    except OSError as exc:
        return None, [Problem(shown, "file", f"cannot read: {exc.strerror or exc}")]
    return parse_data(seed, settings, data)


def parse_data(seed: SeedFile, settings: Settings, data: bytes) -> tuple[Article | None, list[Problem]]:
    """`parse_file` after the read: `data` as `read_limited` returned it (the build hashes the bytes
    it parses, so each file is read once)."""
    shown = display(settings, seed.rel)
    limit = settings.ingest.max_bytes
    if len(data) > limit:
        return None, [Problem(shown, "file", f"too large: more than {limit} bytes (ingest.max_bytes)")]
    try:
        text, notes = decode(data)
    except DecodeProblem as exc:
        return None, [Problem(shown, exc.field, exc.message)]
    problems = [Problem(shown, "text", note, "warning") for note in notes]
    tz = ZoneInfo(settings.site.timezone)
    limits = {"title_max": settings.ingest.title_max_chars, "summary_max": settings.ingest.summary_max_chars}
    try:
        if seed.rel.lower().endswith(MARKDOWN_SUFFIXES):
            # Imported on first use: importing markdown-it and PyYAML is a start-up cost that a
            # rebuild with nothing to parse should not pay.
            from publisher.ingest import markdown

            images = Images(
                settings.seeds_dir, seed.rel, settings.ingest.max_image_bytes, display(settings, "")
            )
            fields = markdown.parse(text, tz, settings.site.base_url, images=images, **limits)
            fields.images = [(i.source, i.name, i.sha256) for i in images.found]
            fields.assets = list(dict.fromkeys(images.assets))
            problems.extend(Problem(path, "image", message, "warning") for path, message in images.warnings)
            kind = "markdown"
        else:
            fields = plaintext.parse(text, tz, **limits)
            kind = "text"
    except FieldProblem as exc:
        return None, [*problems, Problem(shown, exc.field, exc.message)]
    except FieldProblems as exc:
        return None, [*problems, *(Problem(shown, p.field, p.message) for p in exc.problems)]
    fields, cleaned = clean_fields(fields)  # once, for every format: no output can differ
    problems.extend(Problem(shown, name, note, "warning") for name, note in cleaned)
    problems.extend(Problem(shown, name, message, "warning") for name, message in fields.warnings)
    try:
        article = _article(seed.rel, kind, fields)
    except ValidationError as exc:
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            problems.append(Problem(shown, loc, str(err["msg"]).removeprefix("Value error, ")))
        return None, problems
    return article, problems


def _article(rel: str, kind: str, fields: Fields) -> Article:
    body_html = fields.body_html if fields.body_html is not None else paragraphs_html(fields.paragraphs)
    return Article.model_validate(
        {
            "source": rel,
            "format": kind,
            "title": fields.title,
            "date": fields.date,
            "author": fields.author,
            "tags": tuple(fields.tags),
            "summary": fields.summary,
            "body_html": body_html,
            "paragraphs": tuple(fields.paragraphs),
            "explicit_id": fields.explicit_id,
            "draft": fields.draft,
            "slug": fields.slug,
            "lastmod": fields.lastmod,
            "images": tuple(fields.images),
            "assets": tuple(fields.assets),
            "story_hash": story_hash(fields.paragraphs or [body_html]),
            "content_hash": content_hash(
                title=fields.title,
                date=fields.date,
                author=fields.author,
                tags=fields.tags,
                summary=fields.summary,
                body_html=body_html,
                lastmod=fields.lastmod,
                # A body picture's name is in body_html already; a cover only shown elsewhere is not.
                cover=next((name for _, name, _ in fields.images[:1] if name not in body_html), None),
            ),
        }
    )


def ingest(settings: Settings, cache: ParseCache | None = None) -> IngestResult:
    """Scan seeds/ and parse every candidate (from the cache when the file is unchanged)."""
    files, problems = scan(settings)
    result = IngestResult(problems=problems, files=len(files))
    for seed in files:
        cached = cache.get(seed) if cache is not None else None
        article: Article | None
        if cached is not None:
            article, warnings = cached
        else:
            try:
                article, warnings = parse_file(seed, settings)
            except Exception as exc:  # a bug of ours must not stop the other files; say so loudly
                log.error("unexpected failure reading %s", escape_name(seed.rel), exc_info=True)
                shown = display(settings, seed.rel)
                message = (
                    f"could not be read: {type(exc).__name__}: {exc} (a bug in publisher: please report)"
                )
                article, warnings = None, [Problem(shown, "file", " ".join(message.split()))]
            if article is not None and cache is not None:
                cache.put(seed, article, warnings)
        result.problems.extend(warnings)
        if article is None:
            result.invalid.add(seed.rel)
        else:
            result.articles.append(article)
    return result


def duplicates(articles: Iterable[Article], settings: Settings) -> list[Problem]:
    """Files whose story text or front-matter `id` repeats an earlier file's (by path): reported,
    not published, as the build's identity sync reports them."""
    first: dict[str, str] = {}
    first_id: dict[str, str] = {}
    problems = []
    for article in sorted(articles, key=lambda a: a.source):
        earlier = first.setdefault(article.story_hash, article.source)
        if earlier != article.source:
            message = f"same story text as {display(settings, earlier)}; not published"
            problems.append(Problem(display(settings, article.source), "body", message))
            continue
        if article.explicit_id is None:
            continue
        owner = first_id.setdefault(article.explicit_id, article.source)
        if owner != article.source:
            message = f"{article.explicit_id} is already used by {display(settings, owner)}"
            problems.append(Problem(display(settings, article.source), "id", message))
    return problems
