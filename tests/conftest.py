"""Shared fixtures: a throw-away project folder in tmp_path with its own config, seeds/ and state.

Topic-specific fixtures live beside their tests (tests/test_<topic>*.py) or in tests/support/.
"""

from __future__ import annotations

import contextlib
import io
import os
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from publisher.cli.main import main
from publisher.config import Settings
from publisher.config_file import load_settings

DATA = Path(__file__).resolve().parent / "data"
# Our own plain-text sample: a news story with typographic quotes, a non-ASCII name and page
# furniture (all-capitals cross-links and an app promotion) between its paragraphs.
SAMPLE = DATA / "sample.txt"
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

BASE_CONFIG = """\
[site]
title = "Test Gazette"
base_url = "https://news.example.org/"
author = "Test Desk"
language = "en"
timezone = "Europe/Paris"

[paths]
seeds = "seeds"
feeds = "feeds"
state = "state"
"""
# Sending refuses without digest.postal_address; every test project has one unless it says otherwise.
POSTAL = 'postal_address = "Test Gazette, 1 Test Street, 75001 Paris"'


def with_postal_address(config: str) -> str:
    """`config` with digest.postal_address set (in its [digest] table, or a new one) if it has none."""
    if "postal_address" in config:
        return config
    if "\n[digest]\n" in config:
        return config.replace("\n[digest]\n", f"\n[digest]\n{POSTAL}\n", 1)
    return config + f"\n[digest]\n{POSTAL}\n"


@dataclass
class Result:
    code: int
    out: str
    err: str


@dataclass
class Project:
    """A publisher project in a temporary folder."""

    root: Path
    extra_config: str = ""

    @property
    def seeds(self) -> Path:
        return self.root / "seeds"

    @property
    def feeds(self) -> Path:
        return self.root / "feeds"

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def config_path(self) -> Path:
        return self.root / "publisher.toml"

    def configure(self, extra: str) -> None:
        """Append TOML (whole sections) to the base configuration."""
        self.extra_config += "\n" + textwrap.dedent(extra)
        self.config_path.write_text(with_postal_address(BASE_CONFIG + self.extra_config), encoding="utf-8")

    def settings(self) -> Settings:
        return load_settings(self.config_path)

    def unset_site(self, *keys: str) -> None:
        """Take `[site]` keys (`title`, `base_url`) out of the configuration file, as an operator
        who never set them: the built-in example values then stand in."""
        lines = self.config_path.read_text(encoding="utf-8").splitlines()
        kept = [line for line in lines if not line.startswith(tuple(f"{key} =" for key in keys))]
        self.config_path.write_text("\n".join(kept) + "\n", encoding="utf-8")

    def seed(self, name: str, content: str | bytes) -> Path:
        path = self.seeds / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(textwrap.dedent(content), encoding="utf-8")
        else:
            path.write_bytes(content)
        return path

    def cli(self, *args: str, now: datetime | None = NOW) -> Result:
        """Run `publisher --config … ARGS` in this process; capture stdout and stderr."""
        out, err = io.StringIO(), io.StringIO()
        env_now = os.environ.get("PUBLISHER_NOW")
        if now is not None:
            os.environ["PUBLISHER_NOW"] = now.isoformat()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    code = main(["--config", str(self.config_path), *args])
                except SystemExit as exc:  # argparse usage errors and --version
                    code = exc.code if isinstance(exc.code, int) else 1
        finally:
            if env_now is None:
                os.environ.pop("PUBLISHER_NOW", None)
            else:
                os.environ["PUBLISHER_NOW"] = env_now
        return Result(code, out.getvalue(), err.getvalue())


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    proj = Project(tmp_path / "site")
    proj.seeds.mkdir(parents=True)
    proj.config_path.write_text(with_postal_address(BASE_CONFIG), encoding="utf-8")
    yield proj


@pytest.fixture
def now() -> datetime:
    return NOW
