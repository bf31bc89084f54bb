"""Text helpers shared by both formats: paragraphs, page furniture, titles, summaries, hashes."""

from __future__ import annotations

import hashlib
import html
import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from datetime import datetime

# A sentence ends at . ! or ? (maybe inside a closing quote or bracket) before a space and a capital,
# a digit or an opening quote. "U.S. and" is not an end: a lower-case word follows.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'”’)\]]?(?=\s+[\"'“‘(\[]?[A-Z0-9À-Ý])")
_ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "st", "jr", "sr", "gen", "gov", "sen", "rep", "prof", "u.s", "u.k"}
# Words a scanned title should not end on when it is cut short.
_DANGLING = {
    "a", "an", "the", "and", "or", "but", "of", "to", "in", "on", "at", "by", "for", "with", "from",
    "as", "that", "which", "who", "is", "are", "was", "were", "be", "its", "their", "his", "her",
}  # fmt: skip


def squash(text: str) -> str:
    """NFC, one space between words, no leading or trailing space."""
    # str.split() splits on exactly the Unicode white space that \s matches, at C speed; most text
    # is already NFC, which is_normalized() tells without building a copy.
    if not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    return " ".join(text.split())


def split_paragraphs(text: str) -> list[str]:
    """Blank-line separated blocks, each squashed to one line; empty blocks dropped."""
    blocks = re.split(r"\n[ \t]*\n", text)
    return [p for p in (squash(b) for b in blocks) if p]


def is_furniture(paragraph: str) -> bool:
    """An all-capitals line: a cross-link or promotion from the source site, not story text."""
    if not paragraph.isupper():  # C speed: false as soon as there is any lower-case letter
        return False
    letters = [c for c in paragraph if c.isalpha()]
    return len(letters) >= 8 and not any(c.islower() for c in letters)


def lead_sentence(paragraph: str) -> str:
    """The first sentence of a paragraph (looked for in its first 1,000 characters only: a title
    needs no more, and an endless run of "Mr. Mr. …" must not cost quadratic time)."""
    paragraph = paragraph[:1000]
    for match in _SENTENCE_END.finditer(paragraph):
        candidate = paragraph[max(0, match.end() - 40) : match.end()]
        last_word = candidate.rstrip("\"'”’)]").rstrip(".!?").rsplit(" ", 1)[-1].lower()
        if last_word in _ABBREVIATIONS or (len(last_word) == 1 and last_word.isalpha()):
            continue  # "Dr. Smith", "J. Smith"
        return paragraph[: match.end()].strip()
    return paragraph.strip()


def shorten(text: str, limit: int) -> str:
    """Cut at a word boundary to at most `limit` characters (ellipsis included).

    It reads like a headline cut short, not a broken one. In order of preference it stops:
    at a clause break (a comma, dash, colon or semicolon) late enough to keep most of the room;
    else not in the middle of a name ("… against letting Russian…" becomes "… against letting…");
    never on a bare number whose unit was cut off ("by 2.9…"), nor on a little word like "the".
    """
    text = squash(text)
    if len(text) <= limit:
        return text
    room = limit - 1  # one character for the ellipsis
    all_words = text.split(" ")
    # text[: room + 1] ends in a space exactly when the cut falls between two words; otherwise its
    # last piece is a word cut in half (or one that does not fit): drop it either way.
    words = text[: room + 1].split(" ")[:-1]
    if not words:  # one enormous word
        return text[:room] + "…"
    floor = limit // 2  # never give up more than half the room to read well
    clause = _last_clause_break(words, int(limit * 0.6))
    if clause is not None:
        words = words[:clause]
    else:
        following = all_words[len(words)] if len(words) < len(all_words) else ""
        if _capitalised(words[-1]) and _capitalised(following):
            kept = list(words)
            while len(kept) > 1 and _capitalised(kept[-1]):
                kept.pop()
            if len(" ".join(kept)) >= floor:
                words = kept
    while len(words) > 3 and (
        words[-1].lower().strip(",;:—–-") in _DANGLING
        or (any(c.isdigit() for c in words[-1]) and len(" ".join(words[:-1])) >= floor)
    ):
        words.pop()
    return " ".join(words).rstrip(",;:—–- ") + "…"


def _last_clause_break(words: list[str], earliest: int) -> int | None:
    """How many words to keep to stop at the last clause break at or after `earliest` characters."""
    for count in range(len(words), 0, -1):
        length = len(" ".join(words[:count]))
        if length < earliest:
            return None
        if words[count - 1].endswith((",", ";", ":")) or (count < len(words) and words[count] in ("–", "—")):
            return count
    return None


def _capitalised(word: str) -> bool:
    """A word inside a name or title ("President", "Vladimir", "U.S."), opening quotes ignored."""
    core = word.lstrip("\"'“‘([")
    return bool(core) and core[0].isupper()


def derive_title(paragraphs: Sequence[str], limit: int) -> str:
    """The lead sentence of the first paragraph, without its final full stop, shortened if long."""
    if not paragraphs:
        return ""
    sentence = lead_sentence(paragraphs[0])
    if sentence.endswith(".") and not sentence.endswith(".."):
        sentence = sentence[:-1]
    return shorten(sentence, limit)


def derive_summary(paragraphs: Sequence[str], limit: int) -> str:
    """The opening paragraphs, whole, as many as fit in `limit`; the first one shortened if it alone
    is too long. Short wire-style paragraphs thus still give a summary with some substance."""
    if not paragraphs:
        return ""
    summary = squash(paragraphs[0])
    if len(summary) > limit:
        return shorten(summary, limit)
    for paragraph in paragraphs[1:]:
        candidate = f"{summary} {squash(paragraph)}"
        if len(candidate) > limit:
            break
        summary = candidate
    return summary


def paragraphs_html(paragraphs: Iterable[str]) -> str:
    """Plain text paragraphs as HTML: everything escaped, so no markup is ever live."""
    return "\n".join(f"<p>{html.escape(p, quote=False)}</p>" for p in paragraphs)


def story_hash(paragraphs: Iterable[str]) -> str:
    """Identifies the story text whatever its file name, line ends, spacing or letter case.

    The parsers hand over paragraphs already squashed (one space between words, NFC), so only the
    case is folded here, once for the whole text.
    """
    normal = "\n\n".join(paragraphs).casefold()
    return hashlib.sha256(normal.encode("utf-8")).hexdigest()


def content_hash(
    *,
    title: str,
    date: datetime,
    author: str | None,
    tags: Sequence[str],
    summary: str,
    body_html: str,
    lastmod: datetime | None = None,
    cover: str | None = None,
) -> str:
    """Changes when anything a reader sees changes, and only then. `cover`: the name of a picture
    shown outside the body (the front matter's `image`: Open Graph card, digest)."""
    fields: list[object] = [title, date.isoformat(), author, list(tags), summary, body_html]
    if lastmod is not None:  # appended only when set: existing articles keep their hash
        fields.append(lastmod.isoformat())
    if cover is not None:
        fields.append({"cover": cover})
    payload = json.dumps(fields, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def summary_after_title(title: str, summary: str) -> str:
    """The summary to show under `title`, without repeating it.

    A derived title is the summary's own lead sentence (maybe cut with "…"): shown together they
    say it twice. When the summary starts with the title's text, what follows is shown instead:
    after a whole sentence, the next one; after a cut title, "…" and the rest of the sentence.
    Empty when nothing follows (a one-sentence story: the title says it all).
    """
    cut = title.endswith("…")
    head = title[:-1].rstrip() if cut else title
    if not head or not summary.startswith(head):
        return summary
    rest = summary[len(head) :]
    if rest and not cut and rest[0].isalnum():
        return summary  # the title is only the start of a word or name here: not a repeat
    rest = rest.lstrip(" .!?\"'”’)]…,;:—–-")
    if not rest:
        return ""
    return f"…{rest}" if cut else rest
