"""Hostile configuration files: whatever a publisher.toml holds, loading it gives settings or one
`ConfigError` line naming the file (and the key), exit 2, and never a traceback or a value that
fails later (issue 11, points 1, 6 and 7)."""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from publisher.cli.main import main
from publisher.config import Settings, sections
from publisher.config_file import load_settings
from publisher.errors import ConfigError

FUZZ = settings(
    max_examples=150,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def error_of(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    line = info.value.one_line()
    assert "\n" not in line and "\r" not in line
    return str(info.value)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "publisher.toml"
    path.write_text(text, encoding="utf-8", newline="")
    return path


def test_deeply_nested_toml_is_one_line(tmp_path: Path) -> None:
    """900 levels of nested arrays once crashed the loader with RecursionError."""
    path = write(tmp_path, "a = " + "[" * 900 + "]" * 900 + "\n")
    assert error_of(path) == f"{path}: invalid TOML: nested too deeply"


def test_a_number_of_5000_digits_is_one_line(tmp_path: Path) -> None:
    """int() refuses more than 4,300 digits with a ValueError that tomllib let through: a traceback."""
    path = write(tmp_path, "[feed]\nentries = 1" + "0" * 5000 + "\n")
    assert error_of(path) == (
        f"{path}: invalid TOML: Exceeds the limit (4300 digits) for integer string conversion: "
        "value has 5001 digits"
    )


def test_deeply_nested_toml_through_the_cli_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "[site]\ntitle = " + "[" * 900 + "]" * 900 + "\n")
    assert main(["--config", str(path), "check"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"Error: {path}: ") and err.count("\n") == 1


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[smtp]\ntimeout = inf\n", "smtp.timeout: Input should be a finite number"),
        ("[smtp]\ntimeout = nan\n", "smtp.timeout: Input should be a finite number"),
        ("[smtp]\ntimeout = 1e300\n", "smtp.timeout: Input should be less than or equal to 3600"),
        ("[delivery]\nretry_backoff = -inf\n", "delivery.retry_backoff: Input should be a finite number"),
        ("[daemon]\nserve = 'yes'\n", "daemon.serve: Input should be a valid boolean"),
        ("[daemon]\nserve = 1\n", "daemon.serve: Input should be a valid boolean"),
        ("[smtp]\nport = '25'\n", "smtp.port: Input should be a valid integer"),
        ("[smtp]\nport = true\n", "smtp.port: Input should be a valid integer"),
        ("[feed]\nentries = 5.0\n", "feed.entries: Input should be a valid integer"),
        ("[site]\ntitle = 3\n", "site.title: Input should be a valid string"),
        ("[site]\ntitle = 2024-01-01\n", "site.title: Input should be a valid string"),
        ("[paths]\nseeds = 3\n", "paths.seeds: must be a path, as text"),
        (
            "[digest]\nschedule = '61 25 * * 9'\n",
            "digest.schedule: minute: 61 is out of range 0-59",
        ),
        ("[digest]\nschedule = 'every monday'\n", "digest.schedule: 'every monday' is not a cron expression"),
        (
            '[digest]\nfrom_address = "news@example.org\\r\\nBcc: all@example.org"\n',
            "digest.from_address: must not hold control characters or line breaks",
        ),
        ("[digest]\nreply_to = 'not an address'\n", "digest.reply_to: 'not an address'"),
        ("[digest]\nunsubscribe_mailto = 'a@b'\n", "digest.unsubscribe_mailto: 'a@b'"),
        ('[digest]\nsubject = "Hi\\u001bBcc: x@y.z"\n', "digest.subject: must not hold control characters"),
        ('[site]\ntitle = "News\\u0007"\n', "site.title: must not hold control characters or line breaks"),
        ("[smtp]\npassword_env = 'A B'\n", "smtp.password_env: 'A B' is not an environment variable name"),
        ("[serve]\nsecret_env = ''\n", "serve.secret_env: '' is not an environment variable name"),
    ],
)
def test_values_that_would_fail_later_are_refused_at_load(tmp_path: Path, toml: str, message: str) -> None:
    path = write(tmp_path, toml)
    assert error_of(path).startswith(f"{path}: {message}")


def test_crlf_line_ends_in_the_file_are_fine(tmp_path: Path) -> None:
    path = write(tmp_path, "[site]\r\ntitle = 'Gazette'\r\n")
    assert load_settings(path).site.title == "Gazette"


def test_a_key_with_control_characters_is_shown_without_them(tmp_path: Path) -> None:
    path = write(tmp_path, '[site]\n"ti\\u001b[2Jtle" = 1\n')
    message = error_of(path)
    assert "\x1b" not in message and message.startswith(f"{path}: site.ti?[2Jtle: unknown key")


# --- path keys (issue 11, point 6) --------------------------------------------------------------

PATH_KEYS = [
    ("paths", "seeds"),
    ("paths", "feeds"),
    ("paths", "state"),
    ("paths", "templates"),
    ("dkim", "private_key_path"),
    ("dkim", "ed25519_private_key_path"),
    ("inbound", "maildir"),
]


@pytest.mark.parametrize(("section", "key"), PATH_KEYS)
def test_a_path_for_an_unknown_user_names_the_key(tmp_path: Path, section: str, key: str) -> None:
    """`~nosuchuser/x` made Path.expanduser raise RuntimeError: a traceback from every command."""
    path = write(tmp_path, f'[{section}]\n{key} = "~nosuchuser-publisher/x"\n')
    assert error_of(path) == (
        f"{path}: {section}.{key}: cannot expand ~nosuchuser-publisher: "
        "there is no user 'nosuchuser-publisher'"
    )


@pytest.mark.parametrize(("section", "key"), PATH_KEYS)
def test_a_path_through_a_symlink_loop_names_the_key(tmp_path: Path, section: str, key: str) -> None:
    (tmp_path / "loop").symlink_to("loop")
    path = write(tmp_path, f'[{section}]\n{key} = "loop/x"\n')
    assert error_of(path) == f"{path}: {section}.{key}: cannot resolve loop/x: symbolic link loop"


@pytest.mark.parametrize("value", ["a\\u0000b", "a\\nb", "a\\u001bb"])
def test_a_path_with_control_characters_names_the_key(tmp_path: Path, value: str) -> None:
    path = write(tmp_path, f'[paths]\nseeds = "{value}"\n')
    assert error_of(path) == f"{path}: paths.seeds: must not hold control characters or line breaks"


def test_a_path_under_the_home_folder_is_expanded_at_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    path = write(tmp_path, '[paths]\nseeds = "~/seeds"\n[inbound]\nmaildir = "~/Maildir"\n')
    loaded = load_settings(path)
    assert loaded.paths.seeds == tmp_path / "home" / "seeds"
    assert loaded.inbound.maildir == tmp_path / "home" / "Maildir"


def test_a_path_for_an_unknown_user_through_the_cli_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, '[paths]\nseeds = "~nosuchuser-publisher/seeds"\n')
    for argv in (["build"], ["check"], ["digest", "--preview"], ["status"]):
        assert main(["--config", str(path), *argv]) == 2
        err = capsys.readouterr().err
        assert (
            err == f"Error: {path}: paths.seeds: cannot expand ~nosuchuser-publisher: there is no user "
            "'nosuchuser-publisher'\n"
        )


def test_config_option_for_an_unknown_user_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", "~nosuchuser-publisher/publisher.toml", "build"]) == 2
    assert capsys.readouterr().err == (
        "Error: ~nosuchuser-publisher/publisher.toml: cannot expand ~nosuchuser-publisher: "
        "there is no user 'nosuchuser-publisher'\n"
    )


def test_config_option_expands_the_home_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    write(tmp_path, '[site]\ntitle = "Home Gazette"\n')
    assert load_settings(Path("~/publisher.toml")).site.title == "Home Gazette"


# --- the file itself (issue 11, point 6) ---------------------------------------------------------


def cli_process(*argv: str) -> subprocess.CompletedProcess[str]:
    """`python -m publisher ARGV` in a child with a timeout: a regression that blocks or reads for
    ever fails the test instead of hanging (or filling the memory of) the suite."""
    try:
        return subprocess.run(
            [sys.executable, "-m", "publisher", *argv],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"publisher {' '.join(argv)} did not finish in 60 s")


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    """Reading a FIFO waits for a writer for ever: the loader hung."""
    fifo = tmp_path / "publisher.toml"
    os.mkfifo(fifo)
    result = cli_process("--config", str(fifo), "build")
    assert (result.returncode, result.stderr) == (2, f"Error: {fifo}: not a regular file (a FIFO)\n")


@pytest.mark.parametrize(
    ("target", "kind"),
    [("/dev/zero", "a character device"), ("/dev/null", "a character device"), ("", "a directory")],
)
def test_a_config_that_is_not_a_regular_file_is_refused(tmp_path: Path, target: str, kind: str) -> None:
    """/dev/zero was read for ever; a directory gave "Is a directory" only after opening it."""
    path = Path(target) if target else tmp_path
    result = cli_process("--config", str(path), "check")
    assert (result.returncode, result.stderr) == (2, f"Error: {path}: not a regular file ({kind})\n")


def test_a_socket_is_refused_as_such(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A socket cannot be opened: the error said "No such device or address"."""
    path = tmp_path / "publisher.toml"
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(path))
        assert main(["--config", str(path), "check"]) == 2
    assert capsys.readouterr().err == f"Error: {path}: not a regular file (a socket)\n"


def test_a_config_over_one_mib_is_refused_unread(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "publisher.toml"
    path.write_bytes(b"# " + b"x" * (1 << 20) + b"\n")
    assert main(["--config", str(path), "check"]) == 2
    assert (
        capsys.readouterr().err == f"Error: {path}: larger than 1 MiB, too large for a configuration file\n"
    )
    path.write_bytes(b"#" * ((1 << 20) - 1) + b"\n")  # exactly 1 MiB still loads
    assert load_settings(path).site.title == "Example News"


def test_a_symlink_to_a_config_file_is_followed(tmp_path: Path) -> None:
    real = write(tmp_path, '[site]\ntitle = "Linked"\n')
    link = tmp_path / "link.toml"
    link.symlink_to(real)
    assert load_settings(link).site.title == "Linked"


# --- no configuration file ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["build"],
        ["digest", "--send"],
        ["subscribers", "list"],
        ["subscribers", "add", "a@example.org"],
        ["run"],
        ["serve"],
    ],
)
def test_a_command_that_writes_refuses_without_a_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    """No publisher.toml here and no --config: nothing is built, no state folder appears."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "seeds").mkdir()
    (tmp_path / "seeds" / "a.txt").write_text("date 2025-01-01 A lead paragraph for a test.\n")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"Error: no publisher.toml in {tmp_path}")
    assert "publisher init" in err and "--config" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seeds"]


def test_check_still_works_without_a_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """check only reads, so the defaults may serve it; it writes nothing."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "seeds").mkdir()
    (tmp_path / "seeds" / "a.txt").write_text("date 2025-01-01 A lead paragraph for a test.\n")
    assert main(["check"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seeds"]


@pytest.mark.parametrize("command", ["check", "status"])
def test_a_folder_that_is_no_site_points_at_init(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    """check and status read with the defaults, but with no seeds/ either there is nothing to read."""
    monkeypatch.chdir(tmp_path)
    assert main([command]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"Error: no publisher.toml and no seeds/ in {tmp_path}: this folder is not a site; run "
        "`publisher init` to start one, or name one with --config PATH\n"
    )
    assert list(tmp_path.iterdir()) == []


# --- fuzzing -----------------------------------------------------------------------------------

SECTIONS = list(sections())
KEYS = sorted({name for section in SECTIONS for name in type(getattr(Settings(), section)).model_fields})
OWN_KEYS = {section: sorted(type(getattr(Settings(), section)).model_fields) for section in SECTIONS}


class Raw(str):
    """TOML text written as it is: values Python cannot hand to the writer below (a 5,000-digit
    number) or that are hostile by their size or depth."""


_HUGE = st.one_of(
    st.integers(1, 6000).map(lambda n: Raw("1" + "0" * n)),  # int() refuses more than 4,300 digits
    st.integers(1, 6000).map(lambda n: Raw("-0." + "0" * n + "1")),
    st.integers(1, 2000).map(lambda n: Raw("[" * n + "]" * n)),
    st.integers(1, 2000).map(lambda n: Raw("{a = " * n + "1" + "}" * n)),
    st.integers(1, 200_000).map(lambda n: Raw('"' + "x" * n + '"')),
)
_PATHS = st.one_of(
    st.sampled_from(["~nosuchuser-publisher/x", "~", "~/x", "~root/x", "~/../..", "loop/x", "a\x00b"]),
    st.text(max_size=12).map(lambda text: "~" + text),
)

_SCALARS = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=40),
    st.sampled_from(["yes", "0 8 * * 1", "61 25 * * 9", "a@b.example", "x\r\ny", "../..", "1e999"]),
    st.datetimes(),
    _PATHS,
    _HUGE,
)
_VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=3), max_leaves=8)


def _toml_value(value: object) -> str:
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, str):
        escaped = (ch if ch.isprintable() and ch not in '"\\' else f"\\u{ord(ch):04x}" for ch in value)
        return '"' + "".join(escaped) + '"'
    return value.isoformat()  # type: ignore[attr-defined]


@st.composite
def config_files(draw: st.DrawFn) -> bytes:
    """Mostly well-formed TOML with hostile values, sometimes raw bytes."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=200))
    lines = []
    for section in draw(st.lists(st.sampled_from([*SECTIONS, "nope"]), max_size=4, unique=True)):
        lines.append(f"[{section}]")
        own = OWN_KEYS.get(section, KEYS)
        for key in draw(st.lists(st.sampled_from(own) | st.sampled_from(KEYS), max_size=4, unique=True)):
            lines.append(f"{key} = {_toml_value(draw(_VALUES))}")
    if draw(st.booleans()):
        depth = draw(st.integers(1, 2000))
        lines.insert(0, "deep = " + "[" * depth + "]" * depth)
    return "\n".join(lines).encode("utf-8")


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "loop").symlink_to("loop")
        yield Path(tmp)


@FUZZ
@given(data=config_files())
def test_any_config_file_loads_or_is_one_line(folder: Path, data: bytes) -> None:
    """Either settings whose every value is usable, or one line naming the file."""
    path = folder / "publisher.toml"
    path.write_bytes(data)
    try:
        loaded = load_settings(path)
    except ConfigError as exc:
        line = exc.one_line()
        assert line.startswith(f"{path}: ") and "\n" not in line
        assert exc.exit_code == 2
        return
    for section in SECTIONS:
        for value in getattr(loaded, section).model_dump().values():
            if isinstance(value, float):
                assert math.isfinite(value)
            if isinstance(value, str):
                assert "\r" not in value and "\n" not in value
            if isinstance(value, Path):  # expanded and resolved at load: no surprise at first use
                assert value.is_absolute() and "~" not in value.parts[0]
    from publisher import cron

    cron.parse(loaded.digest.schedule)
