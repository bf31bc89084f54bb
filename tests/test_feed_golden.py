"""What a feed reader receives from a fixed site: atom.xml, rss.xml and feed.json compared byte for
byte with tests/golden/feeds/, so any change in output shows up in review as a diff of these files.

Regenerate them with PUBLISHER_REGEN_GOLDEN=1 after a deliberate change, and read the diff. The
structural checks below hold whatever the golden files say, so a wrong golden file cannot pass.
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path

import pytest

from publisher.build import feed
from tests.conftest import NOW, SAMPLE, Project
from tests.support.feeds import assert_atom_valid, parse_clean

GOLDEN = Path(__file__).parent / "golden" / "feeds"
FILES = (feed.ATOM_FILE, *feed.FORMATS)  # every feed document the build writes

HARBOUR = """\
---
title: Harbour reopens after the storm
date: 2025-02-17T07:45:00+00:00
author: Maya Okafor
tags: [harbour, weather]
summary: Boats and the island ferry are back at work.
---
The harbour reopened at first light on Monday, three days after **Storm Ilse**.

- The ferry runs its normal timetable from Tuesday.
- Anglers are asked to use the [south pier](/piers.html#south).

> "We are grateful it was not worse," said the harbour master.
"""

MARKET = """\
date 2025-02-21 Market stallholders can pay their fees by card from March. \
The town’s markets officer said so on Friday.

The change follows a petition signed by 214 traders & customers <not all of them regulars>.
"""

DRAFT = """\
---
title: Not ready
date: 2025-02-10
draft: true
---
Unfinished.
"""


@pytest.fixture
def site(project: Project) -> Project:
    """Three published articles (Markdown with front matter, our plain-text sample, a short plain
    text with markup-like characters) and a draft, built once at a fixed moment."""
    project.seed("2025-02-17_harbour.md", HARBOUR)
    project.seed(SAMPLE.name, SAMPLE.read_bytes())
    project.seed("market/card-payments.txt", MARKET)
    project.seed("draft.md", DRAFT)
    result = project.cli("build", "--strict", now=NOW)
    assert result.code == 0, result.out + result.err
    assert result.out.startswith("3 published")
    return project


def _check_golden(name: str, actual: bytes) -> None:
    path = GOLDEN / name
    if os.environ.get("PUBLISHER_REGEN_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(actual)
    assert path.exists(), f"{path} missing: run with PUBLISHER_REGEN_GOLDEN=1"
    expected = path.read_bytes()
    if actual != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.decode().splitlines(keepends=True),
                actual.decode().splitlines(keepends=True),
                str(path),
                "actual",
            )
        )
        pytest.fail(f"{name} differs from the golden file (PUBLISHER_REGEN_GOLDEN=1 to accept):\n{diff}")


@pytest.mark.parametrize("name", FILES)
def test_each_feed_matches_its_golden_file(site: Project, name: str) -> None:
    _check_golden(name, (site.feeds / name).read_bytes())


def test_the_golden_feeds_are_valid_and_tell_the_same_story(site: Project) -> None:
    """Whatever the golden files hold: Atom passes the RFC 4287 schema, both XML feeds read back
    through feedparser without complaint, JSON Feed 1.1 parses, and the three list the same three
    articles, newest first, under the same ids and links; the draft is in none of them."""
    atom = site.feeds / "atom.xml"
    assert_atom_valid(atom.read_bytes())
    parsed_atom = parse_clean(atom.read_bytes())
    parsed_rss = parse_clean((site.feeds / "rss.xml").read_bytes())
    doc = json.loads((site.feeds / "feed.json").read_bytes())
    assert doc["version"] == "https://jsonfeed.org/version/1.1"
    titles = [e.title for e in parsed_atom.entries]
    assert titles == [
        "Market stallholders can pay their fees by card from March",
        "A senior harbour official in Northfield is urging the regional transport board not to let…",
        "Harbour reopens after the storm",
    ]
    assert [e.title for e in parsed_rss.entries] == titles
    assert [item["title"] for item in doc["items"]] == titles
    ids = [e.id for e in parsed_atom.entries]
    assert all(i.startswith("tag:news.example.org,") for i in ids) and len(set(ids)) == 3
    assert [item["id"] for item in doc["items"]] == ids
    links = [e.link for e in parsed_atom.entries]
    assert all(link.startswith("https://news.example.org/articles/") for link in links)
    assert [e.link for e in parsed_rss.entries] == links
    assert [item["url"] for item in doc["items"]] == links
    for name in FILES:
        text = (site.feeds / name).read_text(encoding="utf-8")
        assert "Not ready" not in text and "Unfinished" not in text, name
        assert "ISLANDERS SAY" not in text, name  # page furniture stays out
        assert "https://news.example.org/piers.html#south" in text, name  # relative link made absolute


def test_a_second_fresh_build_gives_the_same_bytes(site: Project, tmp_path: Path) -> None:
    """The golden files are reproducible: another site with the same seeds and moment gives them."""
    twin = Project(tmp_path / "twin")
    twin.seeds.mkdir(parents=True)
    twin.config_path.write_bytes(site.config_path.read_bytes())
    for path in site.seeds.rglob("*"):
        if path.is_file():
            twin.seed(path.relative_to(site.seeds).as_posix(), path.read_bytes())
    assert twin.cli("build", now=NOW).code == 0
    for name in FILES:
        assert (twin.feeds / name).read_bytes() == (site.feeds / name).read_bytes(), name
