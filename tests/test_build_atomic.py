"""A build killed at any moment leaves every file in feeds/ either absent, its old complete version
or its new complete version; temporary files are recognisable and the next build finishes the job.

The build runs as a real `publisher build` subprocess over a corpus big enough that it is still
writing when it receives SIGKILL: once as soon as its first temporary file appears, once when
many are waiting to be renamed, and at a few fixed delays after start.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from conftest import BASE_CONFIG, NOW
from lxml import etree, html

from publisher import output

ARTICLES = 400


def _story(rng: random.Random, n: int) -> str:
    words = ["harbour", "council", "budget", "vote", "bridge", "ferry", "school", "market", "river"]
    paragraphs = [" ".join(rng.choice(words) for _ in range(60)) + "." for _ in range(6)]
    return (
        f"date 2025-01-{1 + n % 28:02d} Story {n} about Erdoğan’s “{rng.choice(words)}”.\n\n"
        + "\n\n".join(paragraphs)
    )


def _run(root: Path, *args: str, now: datetime = NOW) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "publisher", "--config", str(root / "publisher.toml"), "build", *args],
        cwd=root,
        env={**os.environ, "PUBLISHER_NOW": now.isoformat()},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _build(root: Path, now: datetime = NOW) -> None:
    proc = _run(root, now=now)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()


def _tree(feeds: Path) -> dict[str, bytes]:
    return {p.relative_to(feeds).as_posix(): p.read_bytes() for p in feeds.rglob("*") if p.is_file()}


def _complete(name: str, data: bytes) -> None:
    """The file parses as what its name says: a truncated file would not."""
    if name.endswith((".xml", ".xsl")):
        etree.fromstring(data)
    elif name.endswith(".json"):
        json.loads(data)
    elif name.endswith(".html"):
        assert data.rstrip().endswith(b"</html>"), name
        html.fromstring(data)


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, bytes], dict[str, bytes]]:
    """A project built once (the old version) and what an uninterrupted second build makes of it."""
    root = tmp_path_factory.mktemp("atomic") / "site"
    seeds = root / "seeds"
    seeds.mkdir(parents=True)
    rng = random.Random(7)
    for n in range(ARTICLES):
        (seeds / f"{n:04d}.txt").write_text(_story(rng, n), encoding="utf-8")
    (root / "publisher.toml").write_text(BASE_CONFIG, encoding="utf-8")
    _build(root)
    old = _tree(root / "feeds")
    # The change: every page gets a new site title, some articles go, some arrive.
    (root / "publisher.toml").write_text(
        BASE_CONFIG.replace("Test Gazette", "Renamed Gazette"), encoding="utf-8"
    )
    for n in range(0, ARTICLES, 50):
        (seeds / f"{n:04d}.txt").unlink()
    for n in range(ARTICLES, ARTICLES + 20):
        (seeds / f"{n:04d}.txt").write_text(_story(rng, n), encoding="utf-8")
    reference = root.parent / "reference"
    shutil.copytree(root, reference)
    _build(reference)
    new = _tree(reference / "feeds")
    assert len(new) > ARTICLES * 0.9 and all(new[k] != old[k] for k in ("index.html", "atom.xml"))
    return root, old, new


def _wait_for_temps(feeds: Path, proc: subprocess.Popen[bytes], at_least: int, deadline: float) -> bool:
    while time.monotonic() < deadline and proc.poll() is None:
        found = 0
        for _folder, _dirs, files in os.walk(feeds):
            found += sum(1 for name in files if output.is_temp(name))
            if found >= at_least:
                return True
        time.sleep(0.002)
    return False


@pytest.mark.parametrize("moment", ["first-temps", "many-temps", "0.5s"])
def test_a_killed_build_leaves_old_or_new_files_and_the_next_build_finishes(
    versions: tuple[Path, dict[str, bytes], dict[str, bytes]], tmp_path: Path, moment: str
) -> None:
    """SIGKILL mid-build: each output is old-complete or new-complete; then one build repairs all."""
    source, old, new = versions
    root = tmp_path / "site"
    shutil.copytree(source, root)
    feeds = root / "feeds"
    proc = _run(root)
    deadline = time.monotonic() + 60
    if moment.endswith("temps"):
        # The build must still be writing when it is killed, or this case proves nothing.
        assert _wait_for_temps(feeds, proc, 1 if moment == "first-temps" else 150, deadline)
    else:
        time.sleep(float(moment.removesuffix("s")))  # a moment to kill at, not a wait for a result
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    if moment.endswith("temps"):
        assert proc.returncode == -signal.SIGKILL

    temps = []
    for path in feeds.rglob("*"):
        rel = path.relative_to(feeds).as_posix()
        if not path.is_file():
            continue
        if output.is_temp(path.name):
            temps.append(rel)
            assert path.name.startswith("."), "temporary files are hidden"
            continue
        data = path.read_bytes()
        assert data in (old.get(rel), new.get(rel)), f"{rel} is neither the old nor the new version"
        _complete(rel, data)

    # Later than the killed run: PUBLISHER_NOW pins each process's start, and an article marked
    # live by the killed run must not lie in this run's future.
    _build(root, NOW + timedelta(hours=1))
    assert _tree(feeds) == new
    assert not [p for p in feeds.rglob("*") if output.is_temp(p.name)]
