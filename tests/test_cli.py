"""The command line's global behaviour: --version, help for every command, -v/-q, usage errors."""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from publisher import __version__
from publisher.cli.main import COMMANDS, build_parser, main
from tests.conftest import NOW, Project
from tests.support.digests import markdown


def run(*argv: str) -> tuple[int, str, str]:
    """main() in this process, without --config: what a person types."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return code, out.getvalue(), err.getvalue()


def test_version() -> None:
    assert run("--version") == (0, f"publisher {__version__}\n", "")


def test_version_of_the_installed_console_script() -> None:
    """The `publisher` script that pip installed (falls back to `python -m publisher`)."""
    script = os.path.join(os.path.dirname(sys.executable), "publisher")
    argv = [script] if os.path.exists(script) else [sys.executable, "-m", "publisher"]
    proc = subprocess.run([*argv, "--version"], capture_output=True, text=True, timeout=60, check=False)
    assert (proc.returncode, proc.stdout) == (0, f"publisher {__version__}\n")


def test_help_lists_every_command_and_the_exit_codes() -> None:
    code, out, _ = run("--help")
    assert code == 0
    for name in COMMANDS:
        assert re.search(rf"^\s+{name}\s+\S", out, re.MULTILINE), f"{name} missing from --help"
    assert "-v, --verbose" in out and "-q, --quiet" in out and "--config PATH" in out
    assert "2 usage or configuration error" in " ".join(out.split())


def test_no_command_prints_help_and_exits_2() -> None:
    code, out, _ = run()
    assert code == 2
    assert out.startswith("usage: publisher")


def test_unknown_command_is_a_usage_error() -> None:
    code, out, err = run("publish")
    assert code == 2
    assert out == ""
    assert err.splitlines()[0].startswith("usage: publisher")
    assert err.splitlines()[-1].startswith("Error: argument COMMAND: invalid choice: 'publish'")


def test_unknown_global_option_is_a_usage_error() -> None:
    code, _, err = run("--colour", "check")
    assert code == 2
    assert err.splitlines()[-1] == "Error: unrecognized arguments: --colour"


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_help(name: str) -> None:
    code, out, err = run(name, "--help")
    assert (code, err) == (0, "")
    assert out.startswith(f"usage: publisher {name}")
    assert "-v, --verbose" in out and "-q, --quiet" in out


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_real_help_text(name: str) -> None:
    """A short help in `publisher --help` and a description of a sentence or more, not a placeholder."""
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    short = {choice.dest: choice.help for choice in sub._choices_actions}[name]  # type: ignore[attr-defined]
    description = sub.choices[name].description  # type: ignore[attr-defined]
    for text in (short, description):
        assert text, f"{name}: no help text"
        assert "not available" not in text.lower() and "todo" not in text.lower(), f"{name}: {text!r}"
    assert len(description.split()) >= 8, f"{name}: description too short: {description!r}"


def test_verbose_and_quiet_together_is_a_usage_error(project: Project) -> None:
    result = project.cli("-v", "-q", "check")
    assert result.code == 2
    assert result.err.splitlines()[-1] == "Error: argument -q/--quiet: not allowed with argument -v/--verbose"
    result = project.cli("check", "-v", "-q")
    assert result.code == 2


def test_verbose_and_quiet_work_before_and_after_the_command(project: Project) -> None:
    project.seed("a.txt", "date 2025-02-19 Story.\n")
    assert project.cli("-q", "check").out == project.cli("check", "-q").out == ""
    verbose = project.cli("-v", "check").out
    assert verbose == project.cli("check", "-v").out
    assert verbose.splitlines()[0].startswith("seeds/a.txt: ok: Story")


def test_quiet_silences_every_summary_when_all_went_well(project: Project, tmp_path: Path) -> None:
    """-q promises warnings and errors only: no command prints its summary or a chatty line then
    (the state of things that `status`, `--report` or `subscribers list` is asked for still prints)."""
    project.seed("one.md", markdown("Talks resume in Geneva", "2025-02-27"))
    later = NOW + timedelta(minutes=1)
    assert project.cli("subscribers", "add", "reader@example.org").code == 0
    for args in (
        ("-q", "build"),
        ("build", "-q"),
        ("-q", "digest", "--preview"),  # nothing new yet: its "nothing to preview" is chatter
        ("-q", "digest", "--to", "editor@example.org", "--backfill", "1"),
        ("digest", "--send", "--backfill", "1", "-q"),
        ("-q", "digest", "--send"),  # nothing new: nothing to say
        (
            "-q",
            "init",
            "--title",
            "T",
            "--base-url",
            "https://t.example/",
            "--author",
            "A",
            "--postal-address",
            "1 Street",
            "--timezone",
            "UTC",
            str(tmp_path / "new-site"),
        ),
    ):
        result = project.cli(*args, now=NOW if "build" in args else later)
        assert (result.code, result.out, result.err) == (0, "", ""), (args, result.err)
    assert len(list((project.state / "outbox" / "new").iterdir())) == 2  # the copy and the digest
    assert (tmp_path / "new-site" / "publisher.toml").is_file()


def test_verbose_does_not_flood_with_library_debug_lines(project: Project) -> None:
    project.seed("a.md", "---\ntitle: T\ndate: 2025-02-19\n---\nBody *text*.\n")
    result = project.cli("-v", "check")
    assert "markdown_it" not in result.err


def test_bad_publisher_now_is_a_configuration_error(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = project.cli("check", now=None)
    assert result.code == 0
    monkeypatch.setenv("PUBLISHER_NOW", "yesterday")
    result = project.cli("check", now=None)
    assert (result.code, result.err) == (
        2,
        "Error: PUBLISHER_NOW: 'yesterday' is not an ISO 8601 date-time\n",
    )
