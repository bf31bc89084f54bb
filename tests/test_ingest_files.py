"""Which files in seeds/ are read, which are ignored or refused, and how big a file may be."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import publisher.ingest as ingest_module
from publisher.ingest import SeedFile, ingest, parse_file, scan
from publisher.models import Article
from tests.conftest import BASE_CONFIG, Project

GOOD_TXT = "date 2025-02-19 The harbour reopened on Wednesday.\n"
GOOD_MD = "---\ntitle: Harbour\ndate: 2025-02-19\n---\nThe harbour reopened.\n"


def run(project: Project) -> tuple[dict[str, Article], list[str]]:
    result = ingest(project.settings())
    return {a.source: a for a in result.articles}, [str(p) for p in result.problems]


# --- ignored silently ---------------------------------------------------------------------------

JUNK_NAMES = [
    ".hidden.txt",  # hidden
    ".DS_Store",
    ".a.md.swp",  # vim swap
    "a.md.swp",
    "a.txt.swo",
    "a.txt~",  # emacs/gedit backup
    "#a.txt#",  # emacs autosave
    ".#a.txt",  # emacs lock
    "~$story.md",  # office lock
    "4913",  # vim's write test
    "a.txt.bak",
    "a.md.orig",
    "a.txt.tmp",
    "a.md.part",  # partial download/copy
    "a.txt.crdownload",
    "a.md.kate-swp",
]


def test_hidden_swap_backup_and_temp_files_are_ignored_silently(project: Project) -> None:
    for name in JUNK_NAMES:
        project.seed(name, GOOD_TXT)
    project.seed("real.txt", GOOD_TXT)
    articles, lines = run(project)
    assert list(articles) == ["real.txt"]
    assert lines == []


def test_hidden_folders_are_skipped_silently(project: Project) -> None:
    project.seed(".git/objects/x.txt", GOOD_TXT)
    project.seed(".drafts/y.md", GOOD_MD)
    articles, lines = run(project)
    assert articles == {}
    assert lines == []


def test_other_file_types_get_a_warning_not_an_error(project: Project) -> None:
    """Pictures are not strays: articles show them (tests/test_images.py)."""
    project.seed("photo.jpg", b"\xff\xd8\xff")
    project.seed("notes.docx", b"PK")
    articles, lines = run(project)
    assert articles == {}
    assert lines == [
        "warning: seeds/notes.docx: file: not an article file (.txt, .md or .markdown); ignored",
    ]


def test_suffixes_are_case_insensitive_and_markdown_long_form_is_read(project: Project) -> None:
    project.seed("A.TXT", GOOD_TXT)
    project.seed("b.Markdown", GOOD_MD)
    articles, lines = run(project)
    assert lines == []
    assert {k: a.format for k, a in articles.items()} == {"A.TXT": "text", "b.Markdown": "markdown"}


# --- sub-folders --------------------------------------------------------------------------------


def test_sub_folders_are_read_recursively_with_their_relative_path(project: Project) -> None:
    project.seed("2025/02/budget.txt", GOOD_TXT)
    project.seed("sport/final.md", GOOD_MD)
    project.seed("top.txt", "date 2025-02-18 Another story entirely.\n")
    articles, lines = run(project)
    assert lines == []
    assert sorted(articles) == ["2025/02/budget.txt", "sport/final.md", "top.txt"]


def test_sub_folder_problems_name_the_full_path(project: Project) -> None:
    project.seed("desk/bad.txt", b"\xc3")
    _, lines = run(project)
    assert lines == [
        "seeds/desk/bad.txt: encoding: not UTF-8: incomplete character 0xc3 at byte offset 0, "
        "the end of the file"
    ]


def test_nesting_is_bounded(project: Project) -> None:
    deep = "/".join(f"d{i}" for i in range(20))
    project.seed(f"{deep}/x.txt", GOOD_TXT)
    articles, lines = run(project)
    assert articles == {}
    cut = "/".join(f"d{i}" for i in range(17))
    assert lines == [f"warning: seeds/{cut}: folder: nested too deep; not read"]


# --- symbolic links -----------------------------------------------------------------------------


def test_symlink_leading_outside_seeds_is_refused(project: Project, tmp_path: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text(GOOD_TXT)
    (project.seeds / "leak.txt").symlink_to(outside)
    (project.seeds / "passwd.txt").symlink_to("/etc/passwd")
    (project.seeds / "up.md").symlink_to("../publisher.toml")
    articles, lines = run(project)
    assert articles == {}
    assert lines == [
        "seeds/leak.txt: file: symbolic link leads outside seeds/; refused",
        "seeds/passwd.txt: file: symbolic link leads outside seeds/; refused",
        "seeds/up.md: file: symbolic link leads outside seeds/; refused",
    ]


def test_symlinked_folder_is_not_followed(project: Project, tmp_path: Path) -> None:
    project.seed("real/a.txt", GOOD_TXT)
    (project.seeds / "alias").symlink_to(project.seeds / "real")
    articles, lines = run(project)
    assert list(articles) == ["real/a.txt"]
    assert lines == ["warning: seeds/alias: folder: symbolic link to a folder; not followed"]


def test_symlink_inside_seeds_is_accepted(project: Project) -> None:
    """A link into a hidden folder: the file is read once, under the link's name."""
    project.seed(".library/harbour.md", GOOD_MD)
    (project.seeds / "harbour.md").symlink_to(".library/harbour.md")
    articles, lines = run(project)
    assert lines == []
    assert list(articles) == ["harbour.md"]
    assert articles["harbour.md"].title == "Harbour"


def test_symlink_to_a_file_read_anyway_counts_once(project: Project) -> None:
    project.seed("2025/harbour.md", GOOD_MD)
    (project.seeds / "latest.md").symlink_to("2025/harbour.md")
    articles, lines = run(project)
    assert list(articles) == ["2025/harbour.md"]
    assert lines == [
        "warning: seeds/latest.md: file: symbolic link to seeds/2025/harbour.md, "
        "which is read already; ignored"
    ]


def test_broken_symlink_is_refused(project: Project) -> None:
    (project.seeds / "gone.txt").symlink_to("nowhere.txt")
    _, lines = run(project)
    assert lines == ["seeds/gone.txt: file: broken symbolic link; refused"]


def test_seeds_folder_itself_may_be_a_symlink(project: Project, tmp_path: Path) -> None:
    real = tmp_path / "elsewhere"
    real.mkdir()
    (real / "a.txt").write_text(GOOD_TXT)
    shutil.rmtree(project.seeds)
    project.seeds.symlink_to(real)
    articles, lines = run(project)
    assert lines == []
    assert list(articles) == ["a.txt"]


def test_missing_seeds_folder_is_one_problem(project: Project) -> None:
    shutil.rmtree(project.seeds)
    articles, lines = run(project)
    assert articles == {}
    assert lines == [f"{project.seeds}: folder: does not exist (paths.seeds)"]


# --- FIFOs and unreadable files -----------------------------------------------------------------


@pytest.mark.timeout(20)
def test_fifo_is_refused_without_being_opened(project: Project) -> None:
    """Opening a FIFO for reading would wait for a writer forever."""
    os.mkfifo(project.seeds / "pipe.txt")
    project.seed("a.txt", GOOD_TXT)
    articles, lines = run(project)
    assert list(articles) == ["a.txt"]
    assert lines == ["seeds/pipe.txt: file: not a regular file; refused"]


@pytest.mark.timeout(20)
def test_a_file_replaced_by_a_fifo_after_scan_is_not_waited_on(project: Project) -> None:
    path = project.seed("a.txt", GOOD_TXT)
    settings = project.settings()
    files, _ = scan(settings)
    path.unlink()
    os.mkfifo(path)
    article, problems = parse_file(files[0], settings)
    assert article is None
    assert [str(p) for p in problems] == ["seeds/a.txt: file: cannot read: not a regular file"]


def test_unreadable_file_is_reported(project: Project) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads any file; test_unreadable_file_as_another_user covers this as root")
    path = project.seed("locked.txt", GOOD_TXT)
    project.seed("fine.txt", "date 2025-02-19 Something else.\n")
    path.chmod(0)
    try:
        articles, lines = run(project)
    finally:
        path.chmod(0o644)
    assert list(articles) == ["fine.txt"]
    assert lines == ["seeds/locked.txt: file: cannot read: Permission denied"]


@pytest.fixture
def world_readable_dir() -> Iterator[Path]:
    """A folder another user can enter (pytest's tmp_path is private to its owner)."""
    folder = Path(tempfile.mkdtemp(prefix="publisher-test-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# Root reads every file whatever its mode. So a child process runs `publisher check` once as root
# (output discarded) to import everything it needs (the interpreter may live where only root can
# read), then becomes `nobody` and runs it again: for nobody, a mode-000 file is truly unreadable.
_AS_NOBODY = """
import contextlib, io, os, sys
import publisher.cli.main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    publisher.cli.main.main(sys.argv[1:])
os.setgroups([])
os.setgid(65534)
os.setuid(65534)
sys.exit(publisher.cli.main.main(sys.argv[1:]))
"""


def test_unreadable_file_as_another_user(world_readable_dir: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to switch user; test_unreadable_file_is_reported covers this")
    root = world_readable_dir
    seeds = root / "seeds"
    seeds.mkdir()
    seeds.chmod(0o755)
    config = root / "publisher.toml"
    config.write_text(BASE_CONFIG)
    config.chmod(0o644)
    fine = seeds / "fine.txt"
    fine.write_text(GOOD_TXT)
    fine.chmod(0o644)
    locked = seeds / "locked.txt"
    locked.write_text("date 2025-02-19 Locked away.\n")
    locked.chmod(0)
    env = {**os.environ, "PUBLISHER_NOW": "2025-03-01T12:00:00+00:00"}
    proc = subprocess.run(
        [sys.executable, "-c", _AS_NOBODY, "--config", str(config), "check"],
        capture_output=True,
        text=True,
        cwd=root,
        env=env,
        timeout=60,
        check=False,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.stdout.splitlines() == [
        "seeds/locked.txt: file: cannot read: Permission denied",
        "2 files checked, 1 valid, 1 rejected",
    ]
    assert proc.returncode == 1


# --- size limit ---------------------------------------------------------------------------------


class ReadSpy:
    """Records which paths os.open saw and how many bytes os.read returned (it still does the work)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.opened: list[str] = []
        self.bytes_read = 0
        real_open, real_read = os.open, os.read

        def spy_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
            self.opened.append(os.fspath(path))
            return real_open(path, flags, *args, **kwargs)

        def spy_read(fd: int, n: int) -> bytes:
            data = real_read(fd, n)
            self.bytes_read += len(data)
            return data

        monkeypatch.setattr(ingest_module.os, "open", spy_open)
        monkeypatch.setattr(ingest_module.os, "read", spy_read)


def test_huge_file_is_rejected_without_being_opened(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sparse 8 GB file: no disk used, and rejected from its size alone."""
    big = project.seeds / "huge.txt"
    with big.open("wb") as handle:
        handle.write(b"date 2025-02-19 ")
        handle.truncate(8 * 1024**3)
    project.seed("small.txt", GOOD_TXT)
    spy = ReadSpy(monkeypatch)
    articles, lines = run(project)
    assert list(articles) == ["small.txt"]
    assert lines == ["seeds/huge.txt: file: too large: 8589934592 bytes (limit 262144, ingest.max_bytes)"]
    assert not any(p.endswith("huge.txt") for p in spy.opened)
    assert spy.bytes_read == len(GOOD_TXT)


def test_size_limit_is_configurable(project: Project) -> None:
    project.configure("[ingest]\nmax_bytes = 100\n")
    project.seed("ok.txt", "date 2025-02-19 " + "x" * 84)  # exactly 100 bytes
    project.seed("big.txt", "date 2025-02-19 " + "x" * 85)
    articles, lines = run(project)
    assert list(articles) == ["ok.txt"]
    assert lines == ["seeds/big.txt: file: too large: 101 bytes (limit 100, ingest.max_bytes)"]


def test_file_that_grew_after_scan_is_rejected_unread(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.configure("[ingest]\nmax_bytes = 1000\n")
    path = project.seed("growing.txt", GOOD_TXT)
    settings = project.settings()
    files, _ = scan(settings)
    with path.open("ab") as handle:
        handle.truncate(50_000_000)
    spy = ReadSpy(monkeypatch)
    article, problems = parse_file(files[0], settings)
    assert article is None
    assert [str(p) for p in problems] == [
        "seeds/growing.txt: file: too large: 50000000 bytes (limit 1000, ingest.max_bytes)"
    ]
    assert spy.bytes_read == 0


def test_reading_never_asks_for_more_than_the_limit(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even if scan's size were stale (shrunk seed), at most limit + 1 bytes are read."""
    project.configure("[ingest]\nmax_bytes = 64\n")
    path = project.seed("a.txt", "date 2025-02-19 " + "y" * 40)
    settings = project.settings()
    seed = SeedFile(path.resolve(), "a.txt", 10, 0)
    asked: list[int] = []
    real_read = os.read

    def spy_read(fd: int, n: int) -> bytes:
        asked.append(n)
        return real_read(fd, n)

    monkeypatch.setattr(ingest_module.os, "read", spy_read)
    article, problems = parse_file(seed, settings)
    assert problems == [] and article is not None
    assert max(asked) <= 65
