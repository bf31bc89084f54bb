"""`publisher init [DIR]`: a new site from flags or from answers on a terminal, that builds at once."""

from __future__ import annotations

import contextlib
import io
import os
import pty
import re
import select
import shlex
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import feedparser
import pytest

from publisher.cli.init import QUESTIONS
from publisher.cli.main import main
from publisher.config import Settings
from publisher.config_file import load_settings

FLAGS = {
    "--title": "Harbour Weekly",
    "--base-url": "https://weekly.example.net/news",
    "--author": "The Harbour desk",
    "--language": "en-GB",
    "--timezone": "Europe/London",
    "--from-name": "Harbour Weekly",
    "--from-address": "Letters@Weekly.Example.net",
    "--postal-address": "Harbour Weekly, 2 Quay Street, Northfield",
}
NOW = "2026-03-05T10:00:00+00:00"


def run(*argv: str, stdin: str = "") -> tuple[int, str, str]:
    """main() in this process with a stdin that is not a terminal."""
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdin
    sys.stdin = io.StringIO(stdin)
    os.environ["PUBLISHER_NOW"] = NOW
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(argv))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.stdin = saved
        os.environ.pop("PUBLISHER_NOW", None)
    return code, out.getvalue(), err.getvalue()


def flags(**changes: str | None) -> list[str]:
    argv: list[str] = []
    for flag, value in FLAGS.items():
        value = changes.get(flag.removeprefix("--").replace("-", "_"), value)
        if value is not None:
            argv += [flag, value]
    return argv


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_init_with_flags_writes_a_site_that_builds_at_once(tmp_path: Path) -> None:
    """The folder is created; `publisher build` inside it publishes both example articles."""
    site = tmp_path / "new" / "site"
    code, out, err = run("init", str(site), *flags())
    assert (code, err) == (0, "")
    assert "publisher build" in out
    assert sorted(tree(site)) == [
        ".gitignore",
        "publisher.toml",
        "seeds/2026-03-05_plain-text.txt",
        "seeds/2026-03-05_welcome.md",
        "templates/README.md",
    ]
    assert (site / ".gitignore").read_text().splitlines() == ["/feeds/", "/state/"]
    settings = load_settings(site / "publisher.toml")
    assert settings.site.title == "Harbour Weekly"
    assert settings.site.base_url == "https://weekly.example.net/news/"
    assert settings.site.author == "The Harbour desk"
    assert (settings.site.language, settings.site.timezone) == ("en-GB", "Europe/London")
    assert settings.digest.from_name == "Harbour Weekly"
    assert settings.digest.from_address == "letters@weekly.example.net"
    assert settings.digest.postal_address == "Harbour Weekly, 2 Quay Street, Northfield"
    assert settings.digest.unsubscribe_mailto == "unsubscribe@weekly.example.net"

    code, out, err = run("--config", str(site / "publisher.toml"), "build", "--strict")
    assert (code, err) == (0, ""), out
    assert out.startswith("2 published") and "0 rejected" in out
    parsed = feedparser.parse((site / "feeds" / "atom.xml").read_bytes())
    assert not parsed.bozo
    assert parsed.feed.title == "Harbour Weekly"
    assert sorted(e.title for e in parsed.entries) == [
        "This example article is written in plain text",
        "Welcome to Harbour Weekly",
    ]
    assert all(e.link.startswith("https://weekly.example.net/news/articles/") for e in parsed.entries)


def test_the_settings_file_holds_every_key_of_the_model_with_its_default(tmp_path: Path) -> None:
    """Uncommenting every commented `key = value` line gives exactly the defaults: the file is
    generated from the model, so it cannot drift from it."""
    assert run("init", str(tmp_path), *flags())[0] == 0
    text = (tmp_path / "publisher.toml").read_text(encoding="utf-8")
    uncommented = re.sub(r"(?m)^# (\w+ = (?!\(not set\)).*)$", r"\1", text)
    assert uncommented != text
    (tmp_path / "all.toml").write_text(uncommented, encoding="utf-8")
    loaded = load_settings(tmp_path / "all.toml").model_dump(mode="json")
    chosen = tomllib.loads(text)
    expected = Settings(base_dir=tmp_path).model_dump(mode="json")
    assert set(tomllib.loads(uncommented)) == set(expected)
    for section, keys in expected.items():
        for key, default in keys.items():
            if key in chosen[section]:
                assert loaded[section][key] == chosen[section][key]
            else:
                assert loaded[section][key] == default, f"{section}.{key}"
                if default is None:
                    assert f"# {key} = (not set)" in text


def test_without_a_terminal_a_missing_value_is_one_error_line_naming_the_flag(tmp_path: Path) -> None:
    site = tmp_path / "site"
    code, out, err = run("init", str(site), *flags(postal_address=None, timezone=None))
    assert code == 2 and out == ""
    assert err == (
        "Error: publisher init needs --postal-address (stdin is not a terminal, so it cannot "
        "ask) (give them as flags, or run it on a terminal)\n"
    )
    assert not site.exists()


def test_without_a_terminal_and_no_flags_only_the_values_nothing_can_suggest_are_named(
    tmp_path: Path,
) -> None:
    """--author or --from-address follow from --title and --base-url, so they are not asked for."""
    site = tmp_path / "site"
    code, out, err = run("init", str(site))
    assert code == 2 and out == ""
    assert err.startswith("Error: publisher init needs --title, --base-url, --postal-address (")
    assert not site.exists()


def test_without_a_terminal_the_suggestions_fill_what_was_not_given(tmp_path: Path) -> None:
    """A script gives the three values nothing can suggest; the rest are what a terminal offers."""
    site = tmp_path / "my site"
    given = ["--title", "Quay Notes", "--base-url", "https://quay.example.net/"]
    code, out, err = run("init", str(site), *given, "--postal-address", "1 Quay Street")
    assert code == 0, err
    assert f"Next: cd '{site}' && publisher build" in out  # quoted for the shell
    loaded = load_settings(site / "publisher.toml")
    assert (loaded.site.author, loaded.site.language, loaded.site.timezone) == ("Quay Notes", "en", "UTC")
    assert (loaded.digest.from_name, loaded.digest.from_address) == ("Quay Notes", "news@quay.example.net")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"base_url": "ftp://example.net/"}, "--base-url: must be an absolute http:// or https:// URL"),
        ({"language": "en_GB"}, "--language: 'en_GB' is not a BCP 47 language tag such as en or en-GB"),
        ({"timezone": "Mars/Olympus"}, "--timezone: unknown timezone 'Mars/Olympus'"),
        (
            {"from_address": "Harbour <news@example.net>"},
            "--from-address: 'Harbour <news@example.net>': give one bare address",
        ),
        ({"title": "  "}, "--title: must not be empty"),
    ],
)
def test_a_bad_flag_is_one_error_line_and_nothing_is_written(
    tmp_path: Path, change: dict[str, str], message: str
) -> None:
    site = tmp_path / "site"
    code, out, err = run("init", str(site), *flags(**change))
    assert code == 2 and out == ""
    assert err.startswith(f"Error: {message}") and err.count("\n") == 1
    assert not site.exists()


@pytest.mark.parametrize("existing", ["publisher.toml", "seeds/", "state/", "feeds/", "templates/"])
def test_an_existing_site_is_never_overwritten(tmp_path: Path, existing: str) -> None:
    if existing.endswith("/"):
        (tmp_path / existing).mkdir()
        (tmp_path / existing / "keep.txt").write_text("mine")
    else:
        (tmp_path / existing).write_text('[site]\ntitle = "Mine"\n')
    before = tree(tmp_path)
    code, out, err = run("init", str(tmp_path), *flags())
    assert code == 1 and out == ""
    assert err.startswith(f"Error: {tmp_path} already holds a site ({existing.rstrip('/')} exists); ")
    assert tree(tmp_path) == before


def test_init_in_the_current_folder_keeps_an_existing_gitignore(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A site started inside a repository: its .gitignore gains the two lines it lacked."""
    (tmp_path / ".gitignore").write_text("*.pyc\nstate/")
    (tmp_path / "notes.txt").write_text("unrelated")
    monkeypatch.chdir(tmp_path)
    code, out, _ = run("init", *flags())
    assert code == 0 and out.startswith("Created a site in .:")
    assert (tmp_path / ".gitignore").read_text() == "*.pyc\nstate/\n/feeds/\n"
    assert (tmp_path / "notes.txt").read_text() == "unrelated"
    assert (tmp_path / "publisher.toml").exists()


def test_every_question_has_a_flag_and_a_settings_key() -> None:
    model = Settings().model_dump()
    for question in QUESTIONS:
        assert question.key in model[question.section]
        assert question.flag in FLAGS


def _read_until(fd: int, marker: str, seen: list[str], deadline: float) -> str:
    """What the terminal shows, read until `marker` appears (polled, never a fixed sleep)."""
    while marker not in "".join(seen):
        left = deadline - time.monotonic()
        assert left > 0, f"no {marker!r} on the terminal; it showed: {''.join(seen)!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                seen.append(os.read(fd, 4096).decode("utf-8", "replace"))
            except OSError:  # the child closed the terminal
                break
    text = "".join(seen)
    seen.clear()
    return text


def test_on_a_terminal_init_asks_offers_suggestions_and_asks_again_after_a_bad_answer(
    tmp_path: Path,
) -> None:
    """A real pseudo-terminal: the operator types some answers, accepts suggestions with Enter, and
    a bad address is refused with the reason and asked again."""
    site = tmp_path / "site"
    primary, secondary = pty.openpty()
    env = {**os.environ, "PUBLISHER_NOW": NOW}
    proc = subprocess.Popen(
        [sys.executable, "-m", "publisher", "init", str(site), "--title", "Harbour Weekly"],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        env=env,
        close_fds=True,
    )
    os.close(secondary)
    seen: list[str] = []
    deadline = time.monotonic() + 60
    try:
        _read_until(primary, "served (https://…/): ", seen, deadline)
        os.write(primary, b"weekly.example.net\n")
        assert "must be an absolute http:// or https:// URL; try again." in _read_until(
            primary, "served (https://…/): ", seen, deadline
        )
        os.write(primary, b"https://weekly.example.net/\n")
        assert "[Harbour Weekly]: " in _read_until(primary, "articles [Harbour Weekly]: ", seen, deadline)
        os.write(primary, b"\n")
        _read_until(primary, "Language (BCP 47 tag) [en]: ", seen, deadline)
        os.write(primary, b"\n")
        _read_until(primary, "Timezone (IANA name) [UTC]: ", seen, deadline)
        os.write(primary, b"Europe/Dublin\n")
        _read_until(primary, "Sender name of the digest [Harbour Weekly]: ", seen, deadline)
        os.write(primary, b"\n")
        _read_until(primary, "[news@weekly.example.net]: ", seen, deadline)
        os.write(primary, b"\n")
        _read_until(primary, "(required by law): ", seen, deadline)
        os.write(primary, b"2 Quay Street, Northfield\n")
        assert "Created a site in" in _read_until(primary, "publisher build", seen, deadline)
        assert proc.wait(timeout=60) == 0
    finally:
        os.close(primary)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    settings = load_settings(site / "publisher.toml")
    assert settings.site.author == "Harbour Weekly"
    assert (settings.site.language, settings.site.timezone) == ("en", "Europe/Dublin")
    assert settings.digest.from_address == "news@weekly.example.net"
    assert settings.digest.postal_address == "2 Quay Street, Northfield"


def test_init_is_listed_in_help_and_readme() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert "| `publisher init [DIR]" in readme
    code, out, _ = run("init", "--help")
    assert code == 0 and "--postal-address" in out


def test_with_standard_input_closed_it_takes_the_suggestions(tmp_path: Path) -> None:
    """`<&-` in a script: Python has no sys.stdin at all, which is not a terminal either."""
    site = tmp_path / "site"
    command = (
        f"{shlex.quote(sys.executable)} -m publisher init {shlex.quote(str(site))} --title T "
        "--base-url https://e.example.org/ --postal-address P <&-"
    )
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and (site / "publisher.toml").is_file()
