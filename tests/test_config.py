"""Configuration: defaults, the TOML file, paths, secrets from the environment, one-line errors, and
README.md listing every key (regenerate with PUBLISHER_REGENERATE_DOCS=1)."""

from __future__ import annotations

import os
import re
import types
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from publisher.config import Settings
from publisher.config_file import load_settings
from publisher.errors import ConfigError
from tests.conftest import Project

DOCS = Path(__file__).resolve().parents[1] / "README.md"


def write(folder: Path, text: str, name: str = "publisher.toml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    return str(info.value)


# --- defaults and the file ----------------------------------------------------------------------


def test_defaults_without_a_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.source is None
    assert settings.base_dir == tmp_path.resolve()
    assert settings.seeds_dir == tmp_path.resolve() / "seeds"
    assert settings.feeds_dir == tmp_path.resolve() / "feeds"
    assert settings.state_dir == tmp_path.resolve() / "state"
    assert settings.db_path == tmp_path.resolve() / "state" / "publisher.sqlite3"
    assert settings.site.timezone == "UTC"
    assert settings.site.language == "en"
    assert settings.site.base_url == "https://news.example.org/"
    assert settings.ingest.max_bytes == 262_144
    assert settings.ingest.title_max_chars == 90


def test_publisher_toml_in_the_current_folder_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, '[site]\ntitle = "Harbour Gazette"\n')
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.site.title == "Harbour Gazette"
    assert settings.source == tmp_path.resolve() / "publisher.toml"


def test_an_empty_file_means_defaults(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ""))
    assert settings.site == Settings().site


def test_explicit_config_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    assert error_of(tmp_path / "nope.toml") == f"{tmp_path / 'nope.toml'}: no such configuration file"


def test_config_that_is_a_folder_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "dir.toml").mkdir()
    assert error_of(tmp_path / "dir.toml") == f"{tmp_path / 'dir.toml'}: not a regular file (a directory)"


def test_bad_toml_is_one_line_with_the_place(tmp_path: Path) -> None:
    path = write(tmp_path, '[site]\ntitle = "unclosed\n')
    message = error_of(path)
    assert message.startswith(f"{path}: invalid TOML: ")
    assert "(at line 2, column " in message
    assert "\n" not in message


def test_config_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "publisher.toml"
    path.write_bytes('[site]\ntitle = "Café"\n'.encode("latin-1"))
    assert error_of(path) == f"{path}: not UTF-8 (byte offset 19)"
    path.write_bytes(b"\xef\xbb\xbf" + '[site]\ntitle = "Café"\n'.encode("latin-1"))
    assert error_of(path) == f"{path}: not UTF-8 (byte offset 22)"


def test_config_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    path = tmp_path / "publisher.toml"
    path.write_bytes(b'\xef\xbb\xbf[site]\ntitle = "BOM"\n')
    assert load_settings(path).site.title == "BOM"


# --- unknown keys and bad values: one line naming the key --------------------------------------


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("colour = 1\n", "colour: unknown key"),
        ("sit = 1\n", "sit: unknown key (did you mean site?)"),
        ("[site]\ntitel = 'x'\n", "site.titel: unknown key (did you mean title?)"),
        ("[paths]\nseed = 'x'\n", "paths.seed: unknown key (did you mean seeds?)"),
        ("[feed]\nzzz = 1\n", "feed.zzz: unknown key"),
        ("base_dir = '/'\n", "base_dir: unknown key"),
        (
            "[smtp]\npassword = 'hunter2'\n",
            "smtp.password: unknown key (secrets come from the environment: set the variable named by "
            "smtp.password_env)",
        ),
        (
            "[serve]\nsecret = 'abc'\n",
            "serve.secret: unknown key (secrets come from the environment: set the variable named by "
            "serve.secret_env)",
        ),
    ],
)
def test_unknown_keys_are_errors_naming_the_key(tmp_path: Path, toml: str, message: str) -> None:
    path = write(tmp_path, toml)
    assert error_of(path) == f"{path}: {message}"


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            "[site]\nbase_url = 'ftp://example.org/'\n",
            "site.base_url: must be an absolute http:// or https:// URL",
        ),
        ("[site]\nbase_url = '/news/'\n", "site.base_url: must be an absolute http:// or https:// URL"),
        ("[site]\nbase_url = 'https://x.org/?a=1'\n", "site.base_url: must not have a query or fragment"),
        (
            "[site]\nbase_url = 'https://me:pw@x.org/'\n",
            "site.base_url: must not hold a user name or password",
        ),
        (
            "[site]\nbase_url = 'https://x.org/a b/'\n",
            "site.base_url: must not contain ' ' (percent-encode it)",
        ),
        (
            "[site]\nbase_url = 'https://x.org/\"><b>'\n",
            "site.base_url: must not contain '\"' '<' '>' (percent-encode it)",
        ),
        ("[site]\nbase_url = 'https://x.org:99999/'\n", "site.base_url: Port out of range 0-65535"),
        (
            "[site]\nbase_url = 'https://bücher.example/'\n",
            "site.base_url: the host must be in ASCII, as punycode: write xn--bcher-kva.example",
        ),
        (
            "[site]\nlanguage = 'en_US'\n",
            "site.language: 'en_US' is not a BCP 47 language tag such as en or en-GB (did you mean en-US?)",
        ),
        (
            "[site]\nlanguage = 'english'\n",
            "site.language: 'english' is not a BCP 47 language tag such as en or en-GB",
        ),
        (
            "[site]\ntimezone = 'Mars/Olympus'\n",
            "site.timezone: unknown timezone 'Mars/Olympus' (use an IANA name such as Europe/Paris)",
        ),
        (
            "[site]\ntimezone = '../../etc/passwd'\n",
            "site.timezone: unknown timezone '../../etc/passwd' (use an IANA name such as Europe/Paris)",
        ),
        ("[site]\ntitle = ''\n", "site.title: String should have at least 1 character"),
        ("[site]\ntitle = '   '\n", "site.title: must not be blank"),
        ("site = 'x'\n", "site: must be a table: write [site] and its keys below it"),
        ("[paths]\nseeds = 3\n", "paths.seeds: must be a path, as text"),
        ("[ingest]\nmax_bytes = 0\n", "ingest.max_bytes: Input should be greater than or equal to 1"),
        (
            "[ingest]\nmax_bytes = 'big'\n",
            "ingest.max_bytes: Input should be a valid integer",
        ),
        ("[delivery]\ntransport = 'pigeon'\n", "delivery.transport: Input should be 'outbox' or 'smtp'"),
        (
            "[site]\nlanguage = 'en_GB'\ntimezone = 'Nowhere'\n",
            "site.language: 'en_GB' is not a BCP 47 language tag such as en or en-GB (did you mean en-GB?) "
            "(and 1 more problem)",
        ),
    ],
)
def test_bad_values_are_one_line_naming_the_key(tmp_path: Path, toml: str, message: str) -> None:
    path = write(tmp_path, toml)
    assert error_of(path) == f"{path}: {message}"


@pytest.mark.parametrize("tag", ["en", "en-GB", "pt-BR", "zh-Hant-TW", "es-419", "de-CH-1996"])
def test_good_language_tags(tmp_path: Path, tag: str) -> None:
    assert load_settings(write(tmp_path, f"[site]\nlanguage = '{tag}'\n")).site.language == tag


def test_base_url_gets_a_trailing_slash(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, "[site]\nbase_url = 'https://example.org/news'\n"))
    assert settings.site.base_url == "https://example.org/news/"
    assert settings.site.host == "example.org"


def test_an_author_left_out_or_blank_is_the_sites_title(tmp_path: Path) -> None:
    """Never the built-in example's byline ("Example Newsroom" reached subscribers)."""
    assert load_settings(write(tmp_path, "[site]\ntitle = 'The Gazette'\n")).site.author == "The Gazette"
    blank = load_settings(write(tmp_path, "[site]\ntitle = 'The Gazette'\nauthor = '  '\n"))
    assert blank.site.author == "The Gazette"


def test_surrounding_blanks_are_trimmed_from_names(tmp_path: Path) -> None:
    settings = load_settings(
        write(tmp_path, "[site]\ntitle = '  The Gazette '\nauthor = ' Desk'\n[digest]\nfrom_name = '  '\n")
    )
    assert (settings.site.title, settings.site.author, settings.digest.from_name) == (
        "The Gazette",
        "Desk",
        "The Gazette",
    )


# --- paths --------------------------------------------------------------------------------------


def test_relative_paths_resolve_against_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write(tmp_path / "site", "[paths]\nseeds = 'in'\nfeeds = '../public'\nstate = '/var/tmp/st'\n")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # the config is named relative to here, paths are not
    settings = load_settings(Path(os.path.relpath(config)))
    assert settings.seeds_dir == (tmp_path / "site" / "in").resolve()
    assert settings.feeds_dir == (tmp_path / "public").resolve()
    assert settings.state_dir == Path("/var/tmp/st")
    assert settings.paths.templates == (tmp_path / "site" / "templates").resolve()


def test_a_templates_folder_set_explicitly_must_exist(tmp_path: Path) -> None:
    """The default `templates` folder may be absent (the bundled set serves); one named in the file
    that is not there, or is not a folder, is a typo, not a reason to use the bundled set silently."""
    assert load_settings(write(tmp_path, "")).paths.templates == (tmp_path / "templates").resolve()
    missing = write(tmp_path, "[paths]\ntemplates = 'my-templates'\n")
    assert error_of(missing) == f"{missing}: paths.templates: no such folder: {tmp_path / 'my-templates'}"
    (tmp_path / "my-templates").write_text("a file", encoding="utf-8")
    assert error_of(missing) == f"{missing}: paths.templates: not a folder: {tmp_path / 'my-templates'}"
    (tmp_path / "my-templates").unlink()
    (tmp_path / "my-templates").mkdir()
    assert load_settings(missing).paths.templates == (tmp_path / "my-templates").resolve()


def test_home_folder_in_paths_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    settings = load_settings(write(tmp_path, "[paths]\nseeds = '~/articles'\n"))
    assert settings.seeds_dir == (tmp_path / "home" / "articles").resolve()


# --- secrets from the environment ---------------------------------------------------------------


def test_smtp_password_comes_from_the_named_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(write(tmp_path, "[smtp]\nusername = 'desk'\npassword_env = 'DESK_MAIL_PW'\n"))
    monkeypatch.delenv("DESK_MAIL_PW", raising=False)
    assert settings.smtp.password is None
    monkeypatch.setenv("DESK_MAIL_PW", "s3cret")
    assert settings.smtp.password == "s3cret"
    assert "s3cret" not in repr(settings) and "s3cret" not in settings.model_dump_json()


def test_default_smtp_password_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUBLISHER_SMTP_PASSWORD", "pw")
    assert load_settings(write(tmp_path, "")).smtp.password == "pw"


def test_serve_secret_comes_from_the_named_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(write(tmp_path, "[serve]\nsecret_env = 'MY_SIGNING_KEY'\n"))
    monkeypatch.delenv("MY_SIGNING_KEY", raising=False)
    assert settings.secret is None
    monkeypatch.setenv("MY_SIGNING_KEY", "k" * 40)
    assert settings.secret == "k" * 40
    monkeypatch.setenv("MY_SIGNING_KEY", "")
    assert settings.secret is None


# --- through the command line -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("[site]\nlanguage = 'en_US'\n", "site.language: 'en_US' is not a BCP 47 language tag"),
        ("[paths]\nsedes = 'x'\n", "paths.sedes: unknown key (did you mean seeds?)"),
        ("[paths]\ntemplates = '/nonexistent'\n", "paths.templates: no such folder: /nonexistent"),
        ("[site\n", "invalid TOML: "),
    ],
)
def test_bad_config_via_the_cli_is_exit_2_and_one_error_line(
    project: Project, extra: str, expected: str
) -> None:
    project.config_path.write_text(extra, encoding="utf-8")
    result = project.cli("check")
    assert result.code == 2
    assert result.out == ""
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith(f"Error: {project.config_path}: {expected}")
    assert "Traceback" not in result.err


def test_missing_explicit_config_via_the_cli(project: Project) -> None:
    project.config_path.unlink()
    result = project.cli("check")
    assert (result.code, result.out) == (2, "")
    assert result.err == f"Error: {project.config_path}: no such configuration file\n"


# --- README.md lists every key -------------------------------------------------------

BEGIN = "<!-- settings reference: generated by tests/test_config.py, do not edit by hand -->"
END = "<!-- end of settings reference -->"


def _type_name(annotation: Any) -> str:
    if typing.get_origin(annotation) is typing.Literal:
        return " \\| ".join(f'"{v}"' for v in typing.get_args(annotation))
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return (
            " or ".join(_type_name(a) for a in typing.get_args(annotation) if a is not type(None))
            + " (optional)"
        )
    if annotation is Path:
        return "path"
    return {str: "text", int: "integer", float: "number", bool: "true/false"}.get(annotation, str(annotation))


def _default(value: Any) -> str:
    if value is None:
        return "(not set)"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str | Path):
        return f'`"{value}"`' if str(value) else '`""`'
    if isinstance(value, int) and value >= 10_000:
        return f"`{value:_}`"
    return f"`{value}`"


def reference() -> str:
    """The Markdown reference of every settings key, from the model's types, defaults, descriptions."""
    out = [BEGIN, ""]
    for name, field in Settings.model_fields.items():
        model = field.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue
        doc = " ".join((model.__doc__ or "").split())
        out += [f"### `[{name}]`", "", doc, "", "| Key | Type | Default | Description |", "|---|---|---|---|"]
        for key, sub in model.model_fields.items():
            description = (sub.description or "").replace("|", "\\|")
            out.append(
                f"| `{key}` | {_type_name(sub.annotation)} | {_default(sub.default)} | {description} |"
            )
        out.append("")
    out.append(END)
    return "\n".join(out)


def test_every_settings_key_has_a_description() -> None:
    missing = [
        f"{section}.{key}"
        for section, field in Settings.model_fields.items()
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
        for key, sub in field.annotation.model_fields.items()
        if not (sub.description or "").strip()
    ]
    assert missing == []


def test_docs_list_every_settings_key() -> None:
    """README.md holds the generated reference; when a key is added, regenerate it:
    PUBLISHER_REGENERATE_DOCS=1 python -m pytest tests/test_config.py"""
    expected = reference()
    text = DOCS.read_text(encoding="utf-8") if DOCS.exists() else ""
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.DOTALL)
    if os.environ.get("PUBLISHER_REGENERATE_DOCS"):
        assert pattern.search(text), f"{DOCS} has no reference markers to regenerate between"
        DOCS.write_text(pattern.sub(lambda _: expected, text), encoding="utf-8")
        text = DOCS.read_text(encoding="utf-8")
    found = pattern.search(text)
    assert found is not None, f"{DOCS} lacks the settings reference"
    assert found.group(0) == expected, (
        "README.md is out of date with publisher/config.py: regenerate with "
        "PUBLISHER_REGENERATE_DOCS=1 python -m pytest tests/test_config.py"
    )


# --- SMTP login in clear text -------------------------------------------------------------------


@pytest.mark.parametrize("host", ["mail.example.org", "192.0.2.25", "2001:db8::25", "localhost.example.org"])
def test_smtp_login_without_tls_to_another_machine_is_refused(tmp_path: Path, host: str) -> None:
    """AUTH over a plain connection would send the password in clear text across the network."""
    path = write(tmp_path, f"[smtp]\nhost = '{host}'\nusername = 'desk'\n")
    assert error_of(path) == (
        f"{path}: smtp.username: a login with security = 'none' would send the password to "
        f"{host} in clear text: set smtp.security to 'starttls' or 'tls' (or leave username unset)"
    )


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "localhost", "LOCALHOST."])
def test_smtp_login_without_tls_on_this_machine_is_allowed(tmp_path: Path, host: str) -> None:
    toml = f"[delivery]\ntransport = 'smtp'\n[smtp]\nhost = '{host}'\nusername = 'desk'\n"
    settings = load_settings(write(tmp_path, toml))
    assert settings.smtp.username == "desk"


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_smtp_login_over_tls_to_another_machine_is_allowed(tmp_path: Path, security: str) -> None:
    toml = (
        f"[delivery]\ntransport = 'smtp'\n[smtp]\nhost = 'mail.example.org'\nsecurity = '{security}'\n"
        "username = 'desk'\n"
    )
    assert load_settings(write(tmp_path, toml)).smtp.username == "desk"


def test_an_smtp_host_with_the_transport_left_at_outbox_is_refused(tmp_path: Path) -> None:
    """The default transport writes files: with a server named, digests were used up on them."""
    path = write(tmp_path, "[smtp]\nhost = 'mail.example.org'\nsecurity = 'starttls'\n")
    assert error_of(path) == (
        f"{path}: smtp.host is set (mail.example.org) but delivery.transport is not, and its default "
        '"outbox" mails nothing: set delivery.transport = "smtp" (or "outbox" to write messages to '
        "files on purpose)"
    )
    chosen = "[delivery]\ntransport = 'outbox'\n[smtp]\nhost = 'mail.example.org'\nsecurity = 'starttls'\n"
    assert load_settings(write(tmp_path, chosen)).delivery.transport == "outbox"  # said on purpose
