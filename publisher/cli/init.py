"""`publisher init [DIR]`: start a new site (settings file, example articles, folders) in one command.

The values only the operator can decide (title, address, author, language, timezone, sender, postal
address) are asked on a terminal or given as flags; every other key is written commented out with its
default, generated from the settings model so the file never drifts from what publisher accepts.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from publisher.addresses import normalise_address
from publisher.config import DEFAULT_CONFIG, DigestSettings, SiteSettings, check_value, sections
from publisher.errors import ConfigError, PublisherError, SubscriberError

if TYPE_CHECKING:
    from publisher.cli.main import Context


@dataclass(frozen=True)
class Question:
    """One value the operator must decide: where it goes, its flag, and how it is asked."""

    section: str
    key: str
    prompt: str
    # None: nothing to suggest, so a script must give it; otherwise derived from the answers so far.
    suggest: Callable[[dict[str, str]], str | None] | None = None

    @property
    def flag(self) -> str:
        return "--" + self.key.replace("_", "-")


def _host(answers: dict[str, str]) -> str | None:
    base_url = answers.get("base_url")
    return SiteSettings(base_url=base_url).host if base_url else None


QUESTIONS = (
    Question("site", "title", "Site title"),
    Question("site", "base_url", "Address where feeds/ will be served (https://…/)"),
    Question("site", "author", "Default author of the articles", lambda a: a.get("title")),
    Question("site", "language", "Language (BCP 47 tag)", lambda a: "en"),
    Question("site", "timezone", "Timezone (IANA name)", lambda a: "UTC"),
    Question("digest", "from_name", "Sender name of the digest", lambda a: a.get("title")),
    Question(
        "digest",
        "from_address",
        "Sender address of the digest",
        lambda a: f"news@{host}" if (host := _host(a)) else None,
    ),
    Question("digest", "postal_address", "Postal address for the digest's footer (required by law)"),
)

# What `init` writes; any one of these already present means a site (or something else) is there.
SITE_PATHS = (DEFAULT_CONFIG, "seeds", "templates", "feeds", "state")
GITIGNORE_LINES = ("/feeds/", "/state/")


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "init",
        help="create a new site: publisher.toml, example articles, seeds/ and templates/",
        description="Create a new site in DIR (default: the current folder): publisher.toml with the "
        "values given as flags or asked on a terminal and every other key commented out with its "
        "default, an example article in each input format in seeds/, an empty templates/ override "
        "folder and a .gitignore for feeds/ and state/. Refuses when DIR already holds a site. "
        "Without a terminal, values not given take the suggested default (shown when asked), and "
        "--title, --base-url and --postal-address must be given. Exit status: 0 created, 1 DIR "
        "already holds a site or cannot be written, 2 a missing or invalid value.",
    )
    parser.add_argument("dir", nargs="?", type=Path, default=Path(), metavar="DIR", help="site folder")
    for question in QUESTIONS:
        parser.add_argument(question.flag, dest=question.key, metavar="TEXT", help=question.prompt)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    target: Path = args.dir
    _refuse_existing(target)
    answers = _collect({q.key: getattr(args, q.key) for q in QUESTIONS})
    today = ctx.clock.now().astimezone(SiteSettings(timezone=answers["timezone"]).tz).date()
    files = site_files(answers, today)
    _write(target, files)
    shown = "." if target == Path() else str(target)
    if ctx.verbosity < 0:  # -q
        return 0
    print(f"Created a site in {shown}: {', '.join(sorted({f.split('/')[0] for f in files}))}.")
    where = "" if target == Path() else f"cd {shlex.quote(shown)} && "
    print(f"Next: {where}publisher build  (then open feeds/index.html, or run publisher serve)")
    return 0


# --- asking -----------------------------------------------------------------------------------------


def _check(question: Question, value: str) -> str:
    """The value as it will be written, or ConfigError naming the flag and the problem."""
    value = value.strip()
    if not value:
        raise ConfigError(f"{question.flag}: must not be empty")
    try:
        if question.key == "from_address":
            value = normalise_address(value)
        checked = str(check_value(question.section, question.key, value))
    except SubscriberError as exc:
        raise ConfigError(f"{question.flag}: {exc.message}") from exc
    except ConfigError as exc:
        message = exc.message.removeprefix(f"{question.section}.{question.key}: ")
        raise ConfigError(f"{question.flag}: {message}") from exc
    return checked


def _collect(given: dict[str, str | None]) -> dict[str, str]:
    """Every answer: flags first; the rest asked on a terminal, or one error line without one."""
    answers: dict[str, str] = {}
    for question in QUESTIONS:
        value = given[question.key]
        if value is not None:
            answers[question.key] = _check(question, value)
    missing = [q for q in QUESTIONS if q.key not in answers]
    if missing and not (sys.stdin is not None and sys.stdin.isatty()):  # None: stdin closed
        # A script gives what it must; the rest takes what a terminal would have suggested.
        # Only values with no suggestion at all are named: the others follow from those.
        needed = [q.flag for q in missing if q.suggest is None]
        if needed:
            raise ConfigError(
                f"publisher init needs {', '.join(needed)} (stdin is not a terminal, so it cannot ask)",
                hint="give them as flags, or run it on a terminal",
            )
        for question in missing:
            if question.suggest and (suggestion := question.suggest(answers)) is not None:
                answers[question.key] = _check(question, suggestion)
        return answers
    for question in missing:
        answers[question.key] = _ask(question, answers)
    return answers


def _ask(question: Question, answers: dict[str, str]) -> str:
    suggestion = question.suggest(answers) if question.suggest else None
    prompt = f"{question.prompt}" + (f" [{suggestion}]" if suggestion else "") + ": "
    while True:
        try:
            reply = input(prompt).strip()
        except EOFError:
            print(file=sys.stderr)
            raise ConfigError(f"{question.flag}: no answer given; nothing was written") from None
        if not reply and suggestion:
            reply = suggestion
        try:
            return _check(question, reply)
        except ConfigError as exc:
            print(f"  {exc.message.removeprefix(question.flag + ': ')}; try again.", file=sys.stderr)


# --- what is written --------------------------------------------------------------------------------


def site_files(answers: dict[str, str], today: date) -> dict[str, str]:
    """Relative path -> text of every file of a new site ('x/' marks an empty folder)."""
    title = answers["title"]
    return {
        DEFAULT_CONFIG: settings_file(answers),
        f"seeds/{today.isoformat()}_welcome.md": _EXAMPLE_MD.format(title=title, date=today.isoformat()),
        f"seeds/{today.isoformat()}_plain-text.txt": _EXAMPLE_TXT.format(date=today.isoformat()),
        "templates/README.md": _TEMPLATES_README,
        ".gitignore": "".join(f"{line}\n" for line in GITIGNORE_LINES),
    }


def settings_file(answers: dict[str, str]) -> str:
    """publisher.toml: the operator's values set, every other key of the model commented out with
    its default and description."""
    lines = [
        f"# {answers['title']}: settings for publisher (written by `publisher init`).",
        "# Keys left commented out keep the default shown; uncomment a line to change it. Unknown keys",
        "# are errors. Secrets never go here: smtp.password_env and serve.secret_env name the",
        "# environment variables that hold them. Every key is described in publisher's README",
        "# (Configuration, Reference).",
    ]
    chosen = {(q.section, q.key): answers[q.key] for q in QUESTIONS}
    host = _host(answers)
    if host and "unsubscribe_mailto" in DigestSettings.model_fields:
        domain = normalise_address(answers["from_address"]).split("@")[1]
        chosen["digest", "unsubscribe_mailto"] = f"unsubscribe@{domain}"
    for section, model in sections().items():
        lines += ["", f"[{section}]"]  # every table present, so uncommenting a key is enough
        if model.__doc__:
            lines.append(f"# {' '.join(model.__doc__.split())}")
        for key, info in model.model_fields.items():
            if info.description:
                lines.append(f"# {info.description}")
            if (section, key) in chosen:
                lines.append(f"{key} = {toml_value(chosen[section, key])}")
            elif info.default is None:
                lines.append(f"# {key} = (not set)")
            else:
                lines.append(f"# {key} = {toml_value(info.default)}")
    return "\n".join(lines) + "\n"


def toml_value(value: Any) -> str:
    """A default as TOML: strings and paths quoted (JSON escapes are valid TOML), numbers, booleans,
    arrays."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Path):
        return json.dumps(value.as_posix(), ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)


def _refuse_existing(target: Path) -> None:
    if target.exists() and not target.is_dir():
        raise PublisherError(f"{target}: exists and is not a folder")
    present = [name for name in SITE_PATHS if (target / name).exists()]
    if present:
        where = "this folder" if target == Path() else str(target)
        raise PublisherError(
            f"{where} already holds a site ({present[0]} exists); nothing was changed",
            hint="publisher init only starts a new site in an empty or new folder",
        )


def _write(target: Path, files: dict[str, str]) -> None:
    """Create every file (never replacing one); on any failure remove what was created."""
    created: list[Path] = []
    try:
        if not target.exists():
            target.mkdir(parents=True)
            created.append(target)
        for name in ("seeds", "templates"):
            (target / name).mkdir()
            created.append(target / name)
        for rel, text in files.items():
            path = target / rel
            if rel == ".gitignore" and path.exists():
                _extend_gitignore(path)
                continue
            with path.open("x", encoding="utf-8") as handle:
                created.append(path)
                handle.write(text)
    except OSError:
        for path in reversed(created):
            if path.is_dir():
                path.rmdir()
            else:
                path.unlink(missing_ok=True)
        raise


def _extend_gitignore(path: Path) -> None:
    """An existing .gitignore (a site started in a repository) gets the lines it lacks, appended."""
    text = path.read_text(encoding="utf-8")
    have = {line.strip() for line in text.splitlines()}
    lacking = [line for line in GITIGNORE_LINES if not have & _spellings(line.strip("/"))]
    if lacking:
        with path.open("a", encoding="utf-8") as handle:
            handle.write(("" if text.endswith("\n") or not text else "\n") + "\n".join(lacking) + "\n")


def _spellings(name: str) -> set[str]:
    """The ways a .gitignore can already exclude the folder `name` at its top."""
    return {name, f"{name}/", f"/{name}", f"/{name}/"}


_EXAMPLE_MD = """\
---
title: Welcome to {title}
date: {date}
tags: [example]
summary: An example article in Markdown with YAML front matter; replace it with your own.
---
This is an example article written in **Markdown**. The lines between the two `---` marks are its
front matter: `date` is required, and `title`, `author`, `tags`, `summary`, `draft` and `id` are
optional.

Drop your own `.md` files into `seeds/`, then run `publisher build` to publish them into `feeds/`.
Delete this file when you no longer need it.
"""

_EXAMPLE_TXT = """\
date {date} This example article is written in plain text. Its first line starts with the date, and \
the rest of that line is the first paragraph.

Paragraphs are separated by blank lines. The title is taken from the first sentence and the summary \
from the opening paragraph.

Write your own `.txt` files in the same shape into seeds/, and delete this one.
"""

_TEMPLATES_README = """\
# templates/: this site's own templates

publisher looks here first, file by file; any template not found here comes from the set bundled
inside publisher. To change how the site or the digest looks, copy the one file you want to change
from the bundled set (`python -c "import publisher; print(publisher.BUNDLED_TEMPLATES)"` prints
where it is) into this folder and edit it. An empty folder means the bundled design, unchanged.
"""
