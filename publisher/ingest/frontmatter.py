"""YAML front matter: split it off a Markdown file and load it safely (the only home of PyYAML).

Safety, all checked before anything is built: a size cap (8 KB: real front matter is a few
hundred bytes, and PyYAML's pure-Python scanner is slow on large flow collections), a nesting cap,
and no aliases at all (a "billion laughs" file is refused at its first `*alias`, before anything
expands); then `safe_load` semantics. libyaml's C parser is used when PyYAML has it.

Timestamps are left as strings so that the Pydantic model, not YAML, decides what a date is (and
can say why `2025-02-30` is wrong). Only `true` and `false` are booleans (YAML 1.2): a title such
as `No` or `On` stays text; `draft: yes` still works, because the model accepts "yes" for a boolean.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

MAX_FRONT_MATTER = 8 * 1024
MAX_DEPTH = 16
_OPEN = re.compile(r"\A---[ \t]*\n")
_CLOSE = re.compile(r"^(?:---|\.\.\.)[ \t]*$", re.MULTILINE)
# Line numbers in messages are the file's: the front matter starts on line 2, after '---'.
_FIRST_LINE = 2
_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class FrontMatterProblem(Exception):
    """The front matter is missing, too large, not YAML, or not a mapping."""


class _Loader(_Base):  # type: ignore[misc]
    """SafeLoader (C or Python) without implicit timestamps and with YAML 1.2 booleans."""


_DROPPED = {"tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:bool"}
_Loader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag not in _DROPPED]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def split(text: str) -> tuple[str, str, int]:
    """Return (front matter, body, line number where the body starts)."""
    opening = _OPEN.match(text)
    if opening is None:
        raise FrontMatterProblem("missing: a Markdown article starts with a '---' line")
    closing = _CLOSE.search(text, opening.end())
    if closing is None:
        raise FrontMatterProblem("not closed: no '---' line after the front matter")
    matter = text[opening.end() : closing.start()]
    if len(matter) > MAX_FRONT_MATTER:
        raise FrontMatterProblem(f"larger than {MAX_FRONT_MATTER // 1024} KB")
    body = text[closing.end() :].lstrip("\n")
    return matter, body, text.count("\n", 0, closing.end()) + 2


def _flow_depth(matter: str) -> int:
    """Deepest nesting of [ and { (a linear pre-check: the YAML scanner is quadratic in it)."""
    depth = deepest = 0
    for char in matter:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}" and depth:
            depth -= 1
    return deepest


def _screen(matter: str) -> None:
    """Walk the YAML events (no objects built): refuse aliases and deep nesting."""
    depth = 0
    for event in yaml.parse(matter, Loader=_Base):
        if isinstance(event, yaml.AliasEvent):
            where = f" (line {event.start_mark.line + _FIRST_LINE})" if event.start_mark else ""
            raise FrontMatterProblem(f"YAML aliases are not allowed{where}")
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise FrontMatterProblem("not valid YAML: nested too deeply")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def load(matter: str) -> dict[str, Any]:
    if _flow_depth(matter) > MAX_DEPTH:
        raise FrontMatterProblem("not valid YAML: nested too deeply")
    try:
        _screen(matter)
        data = yaml.load(matter, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader subclass
    except FrontMatterProblem:
        raise
    except yaml.MarkedYAMLError as exc:
        where = f" (line {exc.problem_mark.line + _FIRST_LINE})" if exc.problem_mark else ""
        problem = " ".join(str(exc.problem or exc.context).split())
        raise FrontMatterProblem(f"not valid YAML: {problem}{where}") from None
    except RecursionError:
        raise FrontMatterProblem("not valid YAML: nested too deeply") from None
    except (yaml.YAMLError, ValueError) as exc:
        raise FrontMatterProblem(f"not valid YAML: {' '.join(str(exc).split())}") from None
    if data is None:
        raise FrontMatterProblem("empty: at least title and date are needed")
    if not isinstance(data, dict):
        raise FrontMatterProblem(f"must be a mapping of keys to values, not a {type(data).__name__}")
    for key in data:
        if not isinstance(key, str):
            raise FrontMatterProblem(f"key {key!r} is not text")
    return data


# Keys Hugo and Jekyll write that mean nothing to publisher (layouts, menus, redirects, the
# generator's own URL scheme): a migrated file is accepted and each such key is reported once as a
# warning. Matched whatever the case (Hugo's keys are case-insensitive). Keys whose meaning we do
# have (slug, description, categories, lastmod, published, image) are read by the model instead, and keys
# whose loss would change *when* something is published (publishDate, expiryDate) stay errors.
FOREIGN = frozenset(
    {
        "aliases", "build", "cascade", "comments", "cover", "excerpt_separator", "featured_image",
        "headless", "images", "iscjklanguage", "keywords", "layout", "linktitle", "markup",
        "menu", "menus", "outputs", "permalink", "redirect_from", "redirect_to", "resources",
        "series", "sitemap", "thumbnail", "toc", "translationkey", "type", "url", "weight",
    }
)  # fmt: skip


def drop_foreign(data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """`data` without the keys in FOREIGN, and those keys (as written) in file order."""
    kept: dict[str, Any] = {}
    dropped: list[str] = []
    for key, value in data.items():
        if key.lower() in FOREIGN:
            dropped.append(key)
        else:
            kept[key] = value
    return kept, dropped
