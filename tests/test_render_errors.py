"""Whatever is wrong in an operator's template (a file in the templates folder, or
`digest.subject`) is one `Error: template …` line naming the template it is in, its line and the
cause, never a traceback: in `build`, in `digest --preview/--send/--to`, and in the daemon's log
(which keeps running). publisher/render.py is the one place that turns such failures into
`OutputError`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from publisher.errors import OutputError
from publisher.render import Templates
from tests.conftest import NOW, Project
from tests.test_daemon import Daemon, feed_titles, story
from tests.test_daemon import daemons as daemons  # the fixture

LATER = NOW + timedelta(minutes=1)
RECURSION = "recursion too deep: templates that extend or include each other, or a macro calling itself"
RANGE = "Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000). (OverflowError)"

# (template source, cause): each once gave a traceback or named the wrong template.
BAD = [
    ('{% extends "bad.html" %}', RECURSION),
    ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", RECURSION),
    ("{% for i in range(10**6) %}{% endfor %}", RANGE),
    ("{{ range(10**7)|list }}", RANGE),
    ("{{ 1/0 }}", "division by zero (ZeroDivisionError)"),
    ('{{ "x"|format(1) }}', "not all arguments converted during string formatting (TypeError)"),
    ("{{ nope }}", "'nope' is undefined"),
    ("{% if %}", "Expected an expression, got 'end of statement block'"),
    ('{% include "missing.html" %}', "template missing.html not found"),
    (
        "{{ ''.__class__.__mro__ }}",
        "refused by the sandbox: access to attribute '__class__' of 'str' object is unsafe.",
    ),
    # Bounded like range: with 10**10 and 10**9 these would build 10 GB or run for hours.
    ('{{ "a" * 10**7 }}', "refused by the sandbox: a repetition longer than 1,000,000 is not allowed"),
    (
        "{% set n = 10**6 %}{{ 10 ** n }}",
        "refused by the sandbox: a power of more than 1,000,000 bits is not allowed",
    ),
    # A printf width builds as much: by the operator and by the format filter.
    (
        '{{ "%999999999d" % 1 }}',
        "refused by the sandbox: a % width or precision over 1,000,000 is not allowed",
    ),
    (
        '{{ "%.9999999f"|format(1) }}',
        "refused by the sandbox: a % width or precision over 1,000,000 is not allowed",
    ),
]


def folder(project: Project) -> Path:
    path = project.root / "templates"
    path.mkdir(exist_ok=True)
    return path


def error(templates: Templates, name: str) -> str:
    with pytest.raises(OutputError) as info:
        templates.render(name, site={"title": "T"})
    line = info.value.one_line()
    assert "\n" not in line
    return line


@pytest.mark.parametrize(("source", "cause"), BAD)
def test_a_bad_template_file_is_one_error_naming_it(project: Project, source: str, cause: str) -> None:
    bad = folder(project) / "bad.html"
    bad.write_text("<p>\n" + source + "\n", encoding="utf-8")
    assert error(Templates(project.settings()), "bad.html") == f"template {bad}, line 2: {cause}"


@pytest.mark.parametrize(("source", "cause"), BAD)
def test_a_bad_subject_is_one_error_naming_the_setting(project: Project, source: str, cause: str) -> None:
    with pytest.raises(OutputError) as info:
        Templates(project.settings()).render_string(source.replace("bad.html", "missing.html"), count=1)
    expected = cause.replace("template bad.html", "template missing.html")
    if "extends" in source:  # the subject extends a template that does not exist
        expected = "template missing.html not found"
    assert info.value.one_line() == f"template digest.subject, line 1: {expected}"


def test_templates_that_extend_each_other(project: Project) -> None:
    (folder(project) / "a.html").write_text('{% extends "b.html" %}', encoding="utf-8")
    (folder(project) / "b.html").write_text('\n{% extends "a.html" %}', encoding="utf-8")
    message = error(Templates(project.settings()), "a.html")
    assert message.startswith(f"template {folder(project)}/") and message.endswith(RECURSION)


def test_a_missing_include_names_the_template_that_includes_it(project: Project) -> None:
    """The message named the top template ("template page.html not found"), not the include."""
    (folder(project) / "page.html").write_text('<p>\n{% include "part.html" %}', encoding="utf-8")
    (folder(project) / "part.html").write_text('\n\n{% include "missing.html" %}', encoding="utf-8")
    assert error(Templates(project.settings()), "page.html") == (
        f"template {folder(project) / 'part.html'}, line 3: template missing.html not found"
    )


def test_a_syntax_error_in_an_included_template_names_it(project: Project) -> None:
    (folder(project) / "page.html").write_text('{% include "part.html" %}', encoding="utf-8")
    (folder(project) / "part.html").write_text("\n{% for %}", encoding="utf-8")
    assert error(Templates(project.settings()), "page.html") == (
        f"template {folder(project) / 'part.html'}, line 2: "
        "Expected an expression, got 'end of statement block'"
    )


def test_a_template_that_is_not_there_is_named(project: Project) -> None:
    assert error(Templates(project.settings()), "nowhere.html") == "template nowhere.html not found"


# --- through the commands ---------------------------------------------------------------------


def with_article(project: Project) -> None:
    project.seed("a.txt", "date 2025-02-20 The harbour reopened on Monday after the storm.\n")


@pytest.mark.parametrize(("source", "cause"), BAD)
def test_build_with_a_bad_override_is_one_line_and_exit_1(project: Project, source: str, cause: str) -> None:
    with_article(project)
    page = folder(project) / "article.html.j2"
    page.write_text(source.replace("bad.html", "article.html.j2"), encoding="utf-8")
    result = project.cli("build")
    assert result.code == 1
    assert result.err == f"Error: template {page}, line 1: {cause}\n"
    page.unlink()
    assert project.cli("build").code == 0  # fixed: the next build publishes


@pytest.mark.parametrize("action", [["--preview"], ["--send"], ["--to", "test@example.org"]])
@pytest.mark.parametrize(("source", "cause"), [BAD[0], BAD[2], BAD[4], BAD[5], BAD[8]])
def test_digest_with_a_bad_subject_is_one_line_and_exit_1(
    project: Project, action: list[str], source: str, cause: str
) -> None:
    with_article(project)
    assert project.cli("build").code == 0
    assert project.cli("subscribers", "add", "ana@example.com").code == 0
    project.configure(f"[digest]\nsubject = '{source.replace('bad.html', 'missing.html')}'\n")
    result = project.cli("digest", *action, "--backfill", "1", now=LATER)
    expected = "template missing.html not found" if "extends" in source else cause
    assert (result.code, result.err) == (1, f"Error: template digest.subject, line 1: {expected}\n")
    assert not list((project.state / "outbox").rglob("*.eml"))  # nothing left the machine


@pytest.mark.parametrize(
    ("source", "cause"),
    [
        ("{{ nope }}", "unknown variable 'nope' (a subject can use site, count, titles, period)"),
        ("{% if %}", "line 1: Expected an expression, got 'end of statement block'"),
        ("{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}", "nested too deeply"),
    ],
)
def test_a_subject_that_cannot_render_is_refused_when_the_file_is_read(
    project: Project, source: str, cause: str
) -> None:
    """What parsing alone finds is a configuration error (exit 2), in every command, before any work."""
    project.configure(f"[digest]\nsubject = '{source}'\n")
    for argv in (["check"], ["build"], ["digest", "--preview"]):
        result = project.cli(*argv)
        assert (result.code, result.err) == (2, f"Error: {project.config_path}: digest.subject: {cause}\n")
    assert not project.state.exists()


def test_every_value_a_subject_can_use_is_given(project: Project) -> None:
    """The load check and the digest agree on the subject's variables (render.SUBJECT_VARIABLES)."""
    with_article(project)
    assert project.cli("build").code == 0
    project.configure(
        "[digest]\nsubject = '{{ site.title }}/{{ site.url }}/{{ site.author }}/{{ count }}/"
        '{{ titles|join(",") }}/{{ period }}/{{ range(2)|list|length }}\'\n'
    )
    result = project.cli("digest", "--preview", "--backfill", "1", now=LATER)
    assert result.code == 0, result.err
    preview = (project.state / "preview" / "next-digest.html").read_text(encoding="utf-8")
    assert "<title>Test Gazette/https://news.example.org//Test Desk/1/The harbour reopened" in preview


@pytest.mark.parametrize("action", [["--preview"], ["--send"], ["--to", "test@example.org"]])
def test_digest_with_a_bad_override_is_one_line_and_nothing_is_lost(
    project: Project, action: list[str]
) -> None:
    with_article(project)
    assert project.cli("build").code == 0
    assert project.cli("subscribers", "add", "ana@example.com").code == 0
    page = folder(project) / "digest.html.j2"
    page.write_text('{% extends "digest.html.j2" %}', encoding="utf-8")
    result = project.cli("digest", *action, "--backfill", "1", now=LATER)
    assert (result.code, result.err) == (1, f"Error: template {page}, line 1: {RECURSION}\n")
    page.unlink()
    again = project.cli("digest", *action, "--backfill", "1", now=LATER)
    assert again.code == 0, again.err
    if action == ["--send"]:
        assert "outbox/ 1, failed 0" in again.out  # the failed run recorded nothing as sent


def test_the_daemon_logs_one_line_and_keeps_running(project: Project, daemons: Callable[..., Daemon]) -> None:
    project.configure("[daemon]\nsettle = 0.1\n")
    page = folder(project) / "article.html.j2"
    page.write_text('{% extends "article.html.j2" %}', encoding="utf-8")
    project.seed("one.txt", story("Story one"))
    daemon = daemons()
    daemon.wait_log("ERROR daemon: build failed:")
    failure = next(line for line in daemon.log.splitlines() if "build failed" in line)
    assert failure.endswith(f"build failed: template {page}, line 1: {RECURSION}")
    assert "Traceback" not in daemon.log
    page.unlink()
    project.seed("two.txt", story("Story two"))
    daemon.wait_for("recovery", lambda: {"Story one", "Story two"} <= set(feed_titles(project)))
    assert daemon.stop() == 0


@pytest.mark.timeout(30)
def test_a_huge_constant_in_the_subject_is_not_built_when_the_file_is_read(project: Project) -> None:
    """Checking digest.subject at load compiled it outside the bounded sandbox, and compiling
    folds constants: "x" * 10**10 was built there (10 GB) before any bound applied."""
    project.configure("[digest]\nsubject = \"{{ 'x' * 10**10 }}{{ '%999999999d' % 1 }}\"\n")
    settings = project.settings()
    with pytest.raises(OutputError) as info:
        Templates(settings).render_string(settings.digest.subject, count=1)
    assert "refused by the sandbox" in info.value.one_line()


# --- a template file that is not UTF-8 ----------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "cause"),
    [
        (b"<p>caf\xe9</p>\n", "not UTF-8: invalid byte 0xe9 at byte offset 6"),
        (b"\xff\xfe<\x00p\x00>\x00", "not UTF-8: invalid byte 0xff at byte offset 0"),
        (
            b"<p>ok</p>\n\xe2\x82",
            "not UTF-8: incomplete character 0xe2 at byte offset 10, the end of the file",
        ),
    ],
)
def test_a_template_that_is_not_utf8_is_one_line_naming_the_byte(
    project: Project, data: bytes, cause: str
) -> None:
    bad = folder(project) / "bad.html"
    bad.write_bytes(data)
    assert error(Templates(project.settings()), "bad.html") == f"template {bad}: {cause}"


def test_a_base_template_that_is_not_utf8_is_the_one_named(project: Project) -> None:
    """The message named article.html.j2, the page extending the broken base.html.j2."""
    with_article(project)
    base = folder(project) / "base.html.j2"
    base.write_bytes(b"<!DOCTYPE html>\n" + b"x" * 9000 + b"\xc3(")  # past the reader's first chunk
    result = project.cli("build")
    assert (result.code, result.err) == (
        1,
        f"Error: template {base}: not UTF-8: invalid byte 0xc3 at byte offset 9016\n",
    )
    assert not project.feeds.exists() or not list(project.feeds.rglob("*.html"))


@pytest.mark.parametrize("action", [["--preview"], ["--send"], ["--to", "test@example.org"]])
def test_a_digest_template_that_is_not_utf8_is_one_line(project: Project, action: list[str]) -> None:
    with_article(project)
    assert project.cli("build").code == 0
    assert project.cli("subscribers", "add", "ana@example.com").code == 0
    page = folder(project) / "digest.txt.j2"
    page.write_bytes(b"{{ site.title }}\n\x80\n")
    result = project.cli("digest", *action, "--backfill", "1", now=LATER)
    assert (result.code, result.err) == (
        1,
        f"Error: template {page}: not UTF-8: invalid byte 0x80 at byte offset 17\n",
    )
    assert not list((project.state / "outbox").rglob("*.eml"))


@pytest.mark.parametrize("name", ["error.html.j2", "_serve_layout.html.j2", "confirm_email.txt.j2"])
def test_serve_refuses_to_start_with_a_broken_server_template(project: Project, name: str) -> None:
    """Each request failed with a 500 (and a traceback in the log); now the start is refused."""
    from publisher.clock import FixedClock
    from publisher.server import create_app

    with_article(project)
    assert project.cli("build").code == 0
    page = folder(project) / name
    page.write_bytes(b"<p>\xc3(</p>\n")
    with pytest.raises(OutputError) as info:
        create_app(project.settings(), FixedClock(NOW))
    assert info.value.one_line() == f"template {page}: not UTF-8: invalid byte 0xc3 at byte offset 3"
    page.write_text("<p>{% if %}</p>\n", encoding="utf-8")
    with pytest.raises(OutputError) as info:
        create_app(project.settings(), FixedClock(NOW))
    assert info.value.one_line() == (
        f"template {page}, line 1: Expected an expression, got 'end of statement block'"
    )
