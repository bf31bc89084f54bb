"""Jinja2 templates (the only home of Jinja2): autoescape on, undefined variables are errors.

Templates come from the operator's `paths.templates` folder, file by file, and otherwise from the
set bundled inside the package (`publisher/templates/`, shipped as package data). Everything a
configuration supplies renders in Jinja2's immutable sandbox: a template (a file in the templates
folder, or `digest.subject`) can format the values it is given, never reach Python internals
(`cycler.__init__.__globals__…`) or change the objects it sees.

A template file that is not UTF-8 is named with the offset of its first bad byte. Whatever goes
wrong while a template is loaded or rendered (a syntax error, an undefined value, a
missing include, templates that extend each other, a range the sandbox refuses, `{{ 1/0 }}`)
becomes one `OutputError` here, naming the template the failure is in, its line and the cause:
callers never see a Jinja2 or Python exception.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Collection
from pathlib import Path
from types import TracebackType
from typing import Any

import jinja2
import jinja2.meta
import markupsafe
from jinja2.exceptions import SecurityError
from jinja2.filters import do_format
from jinja2.sandbox import ImmutableSandboxedEnvironment

from publisher import BUNDLED_TEMPLATES
from publisher.config import Settings
from publisher.errors import OutputError, PublisherError

BUNDLED = BUNDLED_TEMPLATES
_STRING = "<template>"  # Jinja2's file name for a template given as text
# The values `digest.subject` is rendered with (publisher/digest/content.py gives them).
SUBJECT_VARIABLES = ("site", "count", "titles", "period")


_MAX_BUILT = 1_000_000  # characters, items or bits one `*` or `**` may build; a page needs far fewer


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with Jinja2's documented operator hook bounding what one `*` or `**`
    builds (as the sandbox bounds `range`): `"a" * 10**10` or `9 ** 10**9` would take the memory or
    the CPU for ever instead of failing."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters["format"] = _bounded_format  # the filter spelling of `%`

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "%":
            _check_widths(left)
        elif operator == "*":
            for sequence, times in ((left, right), (right, left)):
                sized = isinstance(sequence, str | list | tuple) and isinstance(times, int)
                if sized and len(sequence) * times > _MAX_BUILT:
                    raise SecurityError(f"a repetition longer than {_MAX_BUILT:,} is not allowed")
        elif isinstance(left, int) and isinstance(right, int) and left.bit_length() * right > _MAX_BUILT:
            raise SecurityError(f"a power of more than {_MAX_BUILT:,} bits is not allowed")
        return super().call_binop(context, operator, left, right)


# A printf width or precision: `"%999999999d" % 1` builds a gigabyte from one character.
_PRINTF = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d*)(?:\.(\*|\d*))?")


def _check_widths(template: Any) -> None:
    if isinstance(template, str):
        for match in _PRINTF.finditer(template):
            for number in match.groups():
                if number == "*" or (number and int(number) > _MAX_BUILT):
                    raise SecurityError(f"a % width or precision over {_MAX_BUILT:,} is not allowed")


def _bounded_format(value: Any, *args: Any, **kwargs: Any) -> str:
    _check_widths(str(value))
    return do_format(value, *args, **kwargs)


class _Loader(jinja2.FileSystemLoader):
    """Jinja2's file loader, with a file that is not UTF-8 named as one line (Jinja2 raises the
    codec's error, which names neither the file nor where in it the bad byte is)."""

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        try:
            return super().get_source(environment, template)
        except UnicodeDecodeError:
            for folder in self.searchpath:
                path = Path(folder, template)
                if path.is_file():
                    raise OutputError(f"template {path}: {_not_utf8(path)}") from None
            raise


def _not_utf8(path: Path) -> str:
    """Where the first byte that is not UTF-8 is, counted from the start of the file (the codec's
    own offset counts from the chunk Python's reader was decoding)."""
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        where = f"0x{data[exc.start]:02x} at byte offset {exc.start}"
        if exc.reason == "unexpected end of data":
            return f"not UTF-8: incomplete character {where}, the end of the file"
        return f"not UTF-8: invalid byte {where}"
    return "not UTF-8"  # rewritten since: the next run reads it again


class Templates:
    """One Jinja2 environment per run; templates are compiled once and reused."""

    def __init__(self, settings: Settings) -> None:
        folders = [str(settings.paths.templates)]
        if settings.paths.templates != BUNDLED:
            folders.append(str(BUNDLED))
        self._folders = tuple(folder.rstrip(os.sep) + os.sep for folder in folders)
        self.env = _Sandbox(
            loader=_Loader(folders),
            autoescape=jinja2.select_autoescape(
                enabled_extensions=("html", "xml", "html.j2", "xml.j2", "xsl", "xsl.j2"),
                default_for_string=True,
            ),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
            auto_reload=False,
        )

    def render(self, name: str, **context: Any) -> str:
        """The template file `name` (operator's folder first, then the bundled set) rendered."""
        return self._run(name, lambda: self.env.get_template(name).render(**context))

    def load(self, name: str) -> None:
        """Read and compile the template file `name` now (OutputError as `render` gives it), so a
        long-running process refuses a broken template at start rather than on each request."""

        def compile_only() -> str:
            self.env.get_template(name)
            return ""

        self._run(name, compile_only)

    def origin(self, name: str) -> str:
        """The file the template `name` is read from: the operator's override or the bundled one."""
        return self._run(name, lambda: self.env.get_template(name).filename or name)

    def render_string(self, source: str, origin: str = "digest.subject", **context: Any) -> str:
        """Render a template given as text; `origin` names it in errors (the setting it comes from)."""
        return self._run(origin, lambda: self.env.from_string(source).render(**context))

    def markup(self, html: str) -> Any:
        """Mark HTML that publisher built itself (escaped text, rendered Markdown) as safe."""
        return markupsafe.Markup(html)  # noqa: S704 - only HTML publisher built itself

    def _run(self, name: str, render: Callable[[], str]) -> str:
        try:
            return render()
        except PublisherError:
            raise
        except Exception as exc:  # every failure inside a template is the operator's to fix
            raise OutputError(self._describe(name, exc)) from exc

    def _describe(self, name: str, exc: Exception) -> str:
        where: str | None
        line: int | None
        if isinstance(exc, jinja2.TemplateSyntaxError):
            where, line = exc.filename or name, exc.lineno
        else:
            where, line = self._innermost(exc.__traceback__)
        if where is None:  # no template code ran: `name` itself could not be found or loaded
            if isinstance(exc, jinja2.TemplateNotFound) and exc.name == name:
                return f"template {name} not found"
            where = name
        elif where == _STRING:
            where = name
        place = f"template {where}" + (f", line {line}" if line else "")
        return f"{place}: {_cause(exc)}"

    def _innermost(self, tb: TracebackType | None) -> tuple[str | None, int | None]:
        """The template file and line the failure happened in: the last frame of template code
        (Jinja2 rewrites its frames to carry the template's file name and line)."""
        found: tuple[str | None, int | None] = (None, None)
        while tb is not None:
            filename = tb.tb_frame.f_code.co_filename
            if filename == _STRING or filename.startswith(self._folders):
                found = (filename, tb.tb_lineno)
            tb = tb.tb_next
        return found


def template_problem(source: str, variables: Collection[str] = SUBJECT_VARIABLES) -> str | None:
    """Why `source` cannot be a template over `variables` (a syntax error, a name it is not given),
    or None. For a template in the configuration file, checked when the file is read; what only
    rendering finds (`{{ 1/0 }}`) is still one `OutputError` then."""
    env = _Sandbox()  # its bounds matter here too: compiling folds constant expressions
    try:
        parsed = env.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        return f"line {exc.lineno}: {exc.message}"
    except RecursionError:
        return "nested too deeply"
    unknown = sorted(jinja2.meta.find_undeclared_variables(parsed) - set(variables) - set(env.globals))
    if unknown:
        return f"unknown variable {unknown[0]!r} (a subject can use {', '.join(variables)})"
    return None


def _cause(exc: Exception) -> str:
    """The reason, in words for the operator."""
    if isinstance(exc, jinja2.TemplatesNotFound):
        return str(exc.message)
    if isinstance(exc, jinja2.TemplateNotFound):
        return f"template {exc.name} not found"
    if isinstance(exc, SecurityError):
        return f"refused by the sandbox: {exc}"
    if isinstance(exc, jinja2.TemplateError):
        return str(exc.message or exc)
    if isinstance(exc, RecursionError):
        return "recursion too deep: templates that extend or include each other, or a macro calling itself"
    if isinstance(exc, MemoryError):
        return "out of memory"
    return f"{exc} ({type(exc).__name__})" if str(exc) else type(exc).__name__
