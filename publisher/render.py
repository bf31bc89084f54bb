"""Jinja2 templates (the only home of Jinja2): autoescape on, undefined variables are errors.

Templates come from the operator's `paths.templates` folder, file by file, and otherwise from the
set bundled inside the package (`publisher/templates/`, shipped as package data). Everything a
configuration supplies renders in Jinja2's immutable sandbox: a template (a file in the templates
folder, or `digest.subject`) can format the values it is given, never reach Python internals
(`cycler.__init__.__globals__…`) or change the objects it sees.
"""

from __future__ import annotations

from typing import Any

import jinja2
import markupsafe
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from publisher import BUNDLED_TEMPLATES
from publisher.config import Settings
from publisher.errors import OutputError

BUNDLED = BUNDLED_TEMPLATES


class Templates:
    """One Jinja2 environment per run; templates are compiled once and reused."""

    def __init__(self, settings: Settings) -> None:
        folders = [str(settings.paths.templates)]
        if settings.paths.templates != BUNDLED:
            folders.append(str(BUNDLED))
        self.env = ImmutableSandboxedEnvironment(
            loader=jinja2.FileSystemLoader(folders),
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
        try:
            return self.env.get_template(name).render(**context)
        except jinja2.TemplateNotFound as exc:
            raise OutputError(f"template {name} not found") from exc
        except jinja2.UndefinedError as exc:
            raise OutputError(f"template {name}: {exc.message}") from exc
        except jinja2.TemplateSyntaxError as exc:
            raise OutputError(f"template {exc.filename or name}, line {exc.lineno}: {exc.message}") from exc
        except SecurityError as exc:
            raise OutputError(f"template {name}: refused by the sandbox: {exc}") from exc

    def render_string(self, source: str, **context: Any) -> str:
        """Render a template given as text (e.g. the digest subject from the settings)."""
        try:
            return self.env.from_string(source).render(**context)
        except SecurityError as exc:
            raise OutputError(f"template {source!r}: refused by the sandbox: {exc}") from exc
        except jinja2.TemplateError as exc:
            raise OutputError(f"template {source!r}: {exc}") from exc

    def markup(self, html: str) -> Any:
        """Mark HTML that publisher built itself (escaped text, rendered Markdown) as safe."""
        return markupsafe.Markup(html)  # noqa: S704 - only HTML publisher built itself
