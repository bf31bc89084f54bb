"""The incremental build (partial identity sync, pages only for what changed) must end where a full
rebuild of the same history ends: same identities, same claims, same problems, same files."""

from __future__ import annotations

import random
import shutil
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import BASE_CONFIG, NOW

from publisher import pipeline
from publisher.config_file import load_settings
from publisher.store import articles


def _text(rng: random.Random, n: int) -> str:
    words = ["tide", "pier", "gull", "storm", "ferry", "quay", "buoy", "harbour"]
    body = " ".join(rng.choice(words) for _ in range(12))
    return f"date 2025-02-{1 + n % 27:02d} Notice {n}: the {body}.\n\nMore on {n}.\n"


def _markdown(n: int, explicit: str) -> str:
    return f"---\ntitle: Note {n}\ndate: 2025-02-{1 + n % 27:02d}\nid: {explicit}\n---\nNote {n} text.\n"


def _files(feeds: Path) -> dict[str, bytes]:
    return {p.relative_to(feeds).as_posix(): p.read_bytes() for p in sorted(feeds.rglob("*")) if p.is_file()}


def _state(root: Path) -> tuple[object, ...]:
    with sqlite3.connect(root / "state" / "publisher.sqlite3") as conn:
        identities = conn.execute(
            "SELECT id, slug, source, story_hash, content_hash, updated, removed_at IS NULL "
            "FROM articles ORDER BY id"
        ).fetchall()
        claims = conn.execute("SELECT path, article_id FROM parse_cache ORDER BY path").fetchall()
    return identities, claims, _files(root / "feeds")


def _step(rng: random.Random, seeds: Path, counter: list[int]) -> str:
    present = sorted(p.name for p in seeds.iterdir())
    action = rng.choice(
        ["add", "add", "edit", "rename", "copy", "delete", "explicit", "steal", "break", "restore"]
    )
    counter[0] += 1
    n = counter[0]
    if action == "add" or not present:
        (seeds / f"a{n}.txt").write_text(_text(rng, n), encoding="utf-8")
    elif action == "edit":
        target = seeds / rng.choice(present)
        target.write_text(target.read_text(encoding="utf-8") + f"\nEdit {n}.\n", encoding="utf-8")
    elif action == "rename":
        name = rng.choice(present)
        (seeds / name).rename(seeds / f"r{n}{Path(name).suffix}")
    elif action == "copy":
        name = rng.choice(present)
        shutil.copy(seeds / name, seeds / f"c{n}{Path(name).suffix}")
    elif action == "delete":
        (seeds / rng.choice(present)).unlink()
    elif action == "explicit":
        (seeds / f"m{n}.md").write_text(_markdown(n, f"urn:note:{n % 3}"), encoding="utf-8")
    elif action == "steal":  # an explicit id some other file may already hold
        (seeds / f"s{n}.md").write_text(_markdown(n, f"urn:note:{rng.randrange(3)}"), encoding="utf-8")
    elif action == "break":
        (seeds / rng.choice(present)).write_text("no date at all\n", encoding="utf-8")
    else:  # restore a broken or removed story under an old name
        (seeds / rng.choice(present)).write_text(_text(rng, rng.randrange(n)), encoding="utf-8")
    return action


@pytest.mark.parametrize("seed", [2025, 1])
def test_incremental_builds_end_where_full_builds_end(tmp_path: Path, seed: int) -> None:
    """Forty random changes; after each, the incremental project and a --full twin agree exactly."""
    rng = random.Random(seed)
    roots = [tmp_path / "incremental", tmp_path / "full"]
    for root in roots:
        (root / "seeds").mkdir(parents=True)
        (root / "publisher.toml").write_text(BASE_CONFIG + "\n[feed]\nentries = 4\narchive_size = 3\n")
    counter = [0]
    for _ in range(4):
        _step(rng, roots[0] / "seeds", counter)
    for step in range(40):
        shutil.rmtree(roots[1] / "seeds")
        shutil.copytree(roots[0] / "seeds", roots[1] / "seeds")
        moment = NOW + timedelta(hours=step)
        quick = pipeline.build(load_settings(roots[0] / "publisher.toml"), moment)
        full = pipeline.build(load_settings(roots[1] / "publisher.toml"), moment, full=True)
        assert [str(p) for p in quick.problems] == [str(p) for p in full.problems], step
        assert (quick.published, quick.next_embargo) == (full.published, full.next_embargo), step
        assert _state(roots[0]) == _state(roots[1]), step
        _step(rng, roots[0] / "seeds", counter)


def test_adding_one_file_neither_loads_every_identity_nor_renders_every_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the first build, one new file means a partial sync, one new page and the feeds."""
    root = tmp_path / "site"
    (root / "seeds").mkdir(parents=True)
    (root / "publisher.toml").write_text(BASE_CONFIG)
    rng = random.Random(1)
    for n in range(30):
        (root / "seeds" / f"a{n}.txt").write_text(_text(rng, n), encoding="utf-8")
    settings = load_settings(root / "publisher.toml")
    pipeline.build(settings, NOW)
    (root / "seeds" / "new.txt").write_text(_text(rng, 99), encoding="utf-8")

    def refuse(*args: object) -> None:
        raise AssertionError("a full identity sync was not needed")

    monkeypatch.setattr(articles, "_load", refuse)
    report = pipeline.build(settings, NOW)
    assert (report.parsed, report.new, report.published) == (1, 1, 31)
    pages = [p for p in report.written if p.startswith("articles/")]
    assert len(pages) == 1 and pages[0].startswith("articles/notice-99-")
