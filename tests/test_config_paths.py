"""paths.seeds, feeds and state are separate folders: one inside another (or the same) is refused at load.

`state = "feeds"` made `publisher serve` serve publisher.sqlite3 and secret.key to anyone; `feeds =
"seeds"` made a build write and delete in the writers' folder.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import POSTAL, Project

SITE = '[site]\nbase_url = "https://news.example.org/"\n'


def configure(project: Project, toml: str) -> None:
    project.config_path.write_text(f"{SITE}{toml}\n[digest]\n{POSTAL}\n", encoding="utf-8")


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[paths]\nstate = "feeds"\n', "paths.feeds and paths.state are the same folder ({r}/feeds)"),
        ('[paths]\nfeeds = "seeds"\n', "paths.seeds and paths.feeds are the same folder ({r}/seeds)"),
        ('[paths]\nstate = "seeds"\n', "paths.seeds and paths.state are the same folder ({r}/seeds)"),
        ('[paths]\nstate = "feeds/st"\n', "paths.state ({r}/feeds/st) is inside paths.feeds ({r}/feeds)"),
        ('[paths]\nfeeds = "state/www"\n', "paths.feeds ({r}/state/www) is inside paths.state ({r}/state)"),
        ('[paths]\nfeeds = "seeds/out"\n', "paths.feeds ({r}/seeds/out) is inside paths.seeds ({r}/seeds)"),
        ('[paths]\nseeds = "."\n', "paths.feeds ({r}/feeds) is inside paths.seeds ({r})"),
        ('[paths]\nstate = "seeds/.st"\n', "paths.state ({r}/seeds/.st) is inside paths.seeds ({r}/seeds)"),
    ],
)
def test_overlapping_folders_are_refused_naming_both_keys(project: Project, toml: str, message: str) -> None:
    configure(project, toml)
    project.seed("a.txt", "date 2025-02-01 The library opens late on Thursdays.\n")
    before = tree(project.root)
    expected = message.format(r=project.root)
    for argv in (["build"], ["check"], ["status"], ["serve"], ["digest", "--preview"], ["run"]):
        result = project.cli(*argv)
        assert (result.code, result.out) == (2, ""), argv
        assert result.err.startswith(f"Error: {project.config_path}: {expected}: use separate folders")
        assert len(result.err.splitlines()) == 1
    assert tree(project.root) == before  # nothing written, nothing removed


def test_a_symbolic_link_to_the_state_folder_is_seen_through(project: Project) -> None:
    (project.root / "state").mkdir()
    (project.root / "public").symlink_to("state")
    configure(project, '[paths]\nfeeds = "public"\n')
    for argv in ("build", "serve"):
        result = project.cli(argv)
        assert result.code == 2
        assert f"paths.feeds and paths.state are the same folder ({project.root}/state)" in result.err


@pytest.mark.parametrize(
    ("toml", "key", "where"),
    [
        ('[paths]\ntemplates = "feeds"\n', "paths.templates", "the same folder as"),
        ('[paths]\ntemplates = "feeds/t"\n', "paths.templates", "inside"),
        ('[dkim]\ndomain = "x.org"\nprivate_key_path = "feeds/k.pem"\n', "dkim.private_key_path", "inside"),
        (
            '[dkim]\ndomain = "x.org"\ned25519_private_key_path = "feeds/ed.pem"\n',
            "dkim.ed25519_private_key_path",
            "inside",
        ),
        ('[inbound]\nmaildir = "feeds/mail"\n', "inbound.maildir", "inside"),
    ],
)
def test_secrets_and_templates_must_not_be_in_the_served_folder(
    project: Project, toml: str, key: str, where: str
) -> None:
    configure(project, toml)
    result = project.cli("check")
    assert result.code == 2
    assert result.err.startswith(f"Error: {project.config_path}: {key} (")
    assert f"is {where} paths.feeds ({project.root}/feeds), which is served to anyone" in result.err


@pytest.mark.parametrize(
    "toml",
    [
        '[paths]\nseeds = "in"\nfeeds = "../public"\nstate = "st"\n',
        '[paths]\nseeds = "seeds-old"\nfeeds = "seeds-out"\n',  # a shared prefix is not nesting
        '[paths]\ntemplates = "."\n',  # a site folder as templates holds feeds/: allowed
        '[dkim]\ndomain = "example.org"\nprivate_key_path = "state/dkim.pem"\n',
    ],
)
def test_separate_folders_load(project: Project, toml: str) -> None:
    configure(project, toml)
    project.settings()
