"""One place decides what is published: whatever disk step a build is killed at (output.py's
fault-injection hook, never sleeps), the files and the records agree (issue 11, "make the classes
impossible").

After a killed build every entry in every feed has its page; after the next build every page has
its entry, every published article is in exactly one feed document (atom.xml or one archive), and
a further build writes nothing. A full disk (ENOSPC) on feeds/ or on state/ for build, digest and
subscribers is one error line and changes nothing that was recorded.
"""

from __future__ import annotations

import errno
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from publisher import output, pipeline
from publisher.config_file import load_settings
from tests.conftest import BASE_CONFIG, NOW, Project
from tests.support.digests import markdown

ATOM = "{http://www.w3.org/2005/Atom}"
CONFIG = BASE_CONFIG + "\n[feed]\nentries = 3\narchive_size = 2\nindex_entries = 3\n"


class Killed(BaseException):
    """Stands for kill -9 at one disk step: nothing in publisher catches it."""


def entry_pages(feeds: Path) -> dict[str, list[str]]:
    """Each article page linked from atom.xml and the archives -> the documents holding it."""
    found: dict[str, list[str]] = {}
    documents = [feeds / "atom.xml", *sorted((feeds / "archive").glob("*.xml"))]
    for document in documents:
        if not document.is_file():
            continue
        for entry in ET.parse(document).getroot().iter(f"{ATOM}entry"):
            for link in entry.iter(f"{ATOM}link"):
                if link.get("rel", "alternate") == "alternate":
                    page = link.get("href", "").split("/articles/", 1)[-1]
                    found.setdefault(page, []).append(document.name)
    return found


def pages(feeds: Path) -> set[str]:
    folder = feeds / "articles"
    return {p.name for p in folder.glob("*.html")} if folder.is_dir() else set()


def article_text(n: int, version: int) -> str:
    body = f"Story {n}, version {version}: the harbour board met and decided item {n * 7 + version}."
    return markdown(f"Harbour story number {n}", f"2025-02-{1 + n % 27:02d}", body)


# A step changes seeds/ (add, edit or remove article n), then builds, killed at disk step `kill_at`
# (None: not killed).
STEPS = st.lists(
    st.tuples(
        st.sampled_from(["add", "edit", "remove"]),
        st.integers(0, 9),
        st.one_of(st.none(), st.integers(0, 40)),
    ),
    min_size=1,
    max_size=6,
)


@settings(
    max_examples=30,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(steps=STEPS)
def test_builds_killed_anywhere_converge(steps: list[tuple[str, int, int | None]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "seeds").mkdir()
        (root / "publisher.toml").write_text(CONFIG, encoding="utf-8")
        config = load_settings(root / "publisher.toml")
        versions: dict[int, int] = {}
        now = NOW
        for action, n, kill_at in steps:
            path = root / "seeds" / f"story-{n}.md"
            if action == "remove":
                path.unlink(missing_ok=True)
                versions.pop(n, None)
            else:
                versions[n] = versions.get(n, 0) + 1
                path.write_text(article_text(n, versions[n]), encoding="utf-8")
            now += timedelta(minutes=5)

            def hook(step: str, target: Path, kill_at: int | None = kill_at, count: list[int] = [0]) -> None:  # noqa: B006 - one counter per build
                count[0] += 1
                if kill_at is not None and count[0] > kill_at:
                    raise Killed

            try:
                with output.faults(hook):
                    pipeline.build(config, now, allow_mass_removal=True)
            except Killed:
                pass
            linked = entry_pages(config.feeds_dir)
            missing = set(linked) - pages(config.feeds_dir)
            assert not missing, f"feed entries without their page after a killed build: {missing}"
        now += timedelta(minutes=5)
        report = pipeline.build(config, now, allow_mass_removal=True)
        linked = entry_pages(config.feeds_dir)
        assert set(linked) == pages(config.feeds_dir), "pages and feed entries disagree"
        assert all(len(where) == 1 for where in linked.values()), linked
        assert len(linked) == len(versions) == report.published
        again = pipeline.build(config, now + timedelta(minutes=5), allow_mass_removal=True)
        assert again.written == [], again.written


# --- a full disk ----------------------------------------------------------------------------------


def _mount_tmpfs(folder: Path, size: str) -> bool:
    """A small tmpfs at `folder` where the test runs as root and may mount; else False."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
            capture_output=True,
            check=False,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _fill(folder: Path) -> None:
    """Leave no free block on the file system holding `folder`."""
    with open(folder / "filler", "wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC


@pytest.fixture
def small_disk(project: Project) -> Iterator[Path]:
    """state/ on its own 2 MB file system (tmpfs as root; skipped where nothing can be mounted:
    the injected ENOSPC tests below cover those machines)."""
    if not _mount_tmpfs(project.state, "2m"):
        pytest.skip("cannot mount a tmpfs here (not root, or no permission)")
    try:
        yield project.state
    finally:
        subprocess.run(["umount", "-l", str(project.state)], check=False, timeout=10)


def test_a_full_state_disk_is_one_line_for_every_command(project: Project, small_disk: Path) -> None:
    project.seed("a.md", article_text(1, 1))
    assert project.cli("subscribers", "add", "anna@example.org").code == 0
    assert project.cli("build").code == 0
    assert project.cli("digest", "--send").code == 0  # baseline
    database = project.settings().db_path
    _fill(small_disk)
    for n in range(2, 40):
        project.seed(f"b{n}.md", article_text(n, 1))
    rows = "".join(f"reader{i}@example.org,Reader {i} {'x' * 50}\n" for i in range(4000))
    (project.root / "many.csv").write_text("email,name\n" + rows, encoding="utf-8")
    for argv in (
        ("build",),
        ("subscribers", "import", str(project.root / "many.csv")),
        ("digest", "--send"),
    ):
        result = project.cli(*argv, now=NOW + timedelta(hours=1))
        assert "Traceback" not in result.err
        if result.code != 0:
            assert result.code == 1 and result.err.count("\n") == 1, (argv, result.err)
            assert result.err.startswith("Error: "), result.err
            assert str(database) in result.err or "No space left" in result.err, result.err
    (small_disk / "filler").unlink()
    assert project.cli("build", now=NOW + timedelta(hours=2)).code == 0
    assert project.cli("subscribers", "list").code == 0


@pytest.mark.parametrize("where", ["pages", "feeds", "digest web version"])
def test_an_injected_full_disk_on_feeds_fails_closed(project: Project, where: str) -> None:
    """ENOSPC from the writer: the command says so in one line, and what the state records stays
    true (the next run, with space again, finishes the work and mails each article once)."""
    assert project.cli("subscribers", "add", "anna@example.org").code == 0
    assert project.cli("digest", "--send").code == 0
    for n in range(3):
        project.seed(f"a{n}.md", article_text(n, 1))
    wanted = {"pages": "articles", "feeds": "feeds", "digest web version": "digests"}[where]

    def full(step: str, path: Path) -> None:
        # The build writes the digests' index and stylesheet; the web version is d-*.html.
        if path.parent.name == wanted and (wanted != "digests" or path.name.startswith("d-")):
            raise OSError(errno.ENOSPC, "No space left on device")

    later = NOW + timedelta(hours=1)
    with output.faults(full):
        built = project.cli("build", now=later)
        sent = project.cli("digest", "--send", now=later + timedelta(minutes=1))
    if where == "digest web version":
        assert built.code == 0 and sent.code == 1
        assert "No space left on device" in sent.err and sent.err.count("\n") == 1
    else:
        assert built.code == 1 and "No space left on device" in built.err and built.err.count("\n") == 1
        assert sent.code == 0 and "nothing to send" in sent.out
    assert project.cli("build", now=later + timedelta(minutes=2)).code == 0
    final = project.cli("digest", "--send", now=later + timedelta(minutes=3))
    assert final.code == 0 and "outbox/ 1," in final.out, final.out + final.err
    linked = entry_pages(project.feeds)
    assert set(linked) == pages(project.feeds) and len(linked) == 3
