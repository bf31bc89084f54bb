"""A corpus migrated from Hugo or Jekyll: the common front-matter keys keep their meaning (slug,
description, categories, lastmod, published, image), those that mean nothing here are ignored
with a warning, and the same problem in many files is one line of the summary."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import feedparser
from lxml import html

from publisher import pipeline
from publisher.models import Problem, grouped
from tests.conftest import NOW, Project
from tests.test_images import png

HUGO = """\
---
title: "Harbour reopens"
date: 2025-02-17T07:45:00+01:00
lastmod: 2025-02-18T10:00:00+01:00
slug: harbour-back-at-work
description: Boats are back at work after the storm.
categories: [Local, Weather]
tags: [harbour]
aliases: [/old/harbour/]
layout: post
image: harbour.jpg
---
Northfield harbour reopened at first light on Monday.
"""


def test_hugo_keys_keep_their_meaning(project: Project) -> None:
    """slug names the page, description is the summary, categories join tags, lastmod is updated."""
    project.seed("2025-02-17-harbour.md", HUGO)
    project.seed("harbour.jpg", png(40, 20))  # a PNG under another name: its bytes decide
    report = pipeline.build(project.settings(), NOW)
    assert report.rejected == 0
    page = project.feeds / "articles" / "harbour-back-at-work.html"
    og_image = html.fromstring(page.read_bytes()).xpath("//meta[@property='og:image']/@content")
    assert og_image == [f"https://news.example.org/images/{hashlib.sha256(png(40, 20)).hexdigest()[:20]}.png"]
    feed = feedparser.parse((project.feeds / "atom.xml").read_bytes())
    (entry,) = feed.entries
    assert entry.link == "https://news.example.org/articles/harbour-back-at-work.html"
    assert entry.summary == "Boats are back at work after the storm."
    assert [t.term for t in entry.tags] == ["harbour", "Local", "Weather"]
    assert tuple(entry.updated_parsed[:5]) == (2025, 2, 18, 9, 0)
    assert entry.published.startswith("2025-02-17")


def test_foreign_keys_are_warnings_not_errors(project: Project) -> None:
    project.seed("a.md", HUGO)
    result = project.cli("check")
    assert result.code == 0
    message = "ignored: a Hugo or Jekyll key that means nothing to publisher"
    assert result.out.splitlines() == [
        "warning: seeds/a.md: image: image harbour.jpg not found in seeds/; not shown",
        f"warning: seeds/a.md: aliases: {message}",
        f"warning: seeds/a.md: layout: {message}",
        "1 file checked, 1 valid, 0 rejected, 3 warnings",
    ]


def test_an_image_elsewhere_is_not_the_page_image(project: Project) -> None:
    project.seed("a.md", "---\ntitle: x\ndate: 2025-02-19\nimage: https://cdn.example/x.jpg\n---\nBody.\n")
    result = project.cli("check")
    assert result.out.splitlines()[0] == (
        "warning: seeds/a.md: image: ignored: only a picture beside the article in seeds/ can be its image"
    )


def test_one_line_per_key_for_a_whole_corpus(project: Project) -> None:
    """5 files with the same foreign keys: one line per key, naming two examples; -v lists all."""
    for n in range(5):
        project.seed(
            f"{n}.md",
            f"---\ntitle: Story {n}\ndate: 2025-02-1{n}\nlayout: post\naliases: [/{n}/]\n---\nText {n}.\n",
        )
    result = project.cli("check")
    message = "ignored: a Hugo or Jekyll key that means nothing to publisher"
    assert result.out.splitlines() == [
        f"warning: layout: {message} — 5 files, e.g. seeds/0.md, seeds/1.md",
        f"warning: aliases: {message} — 5 files, e.g. seeds/0.md, seeds/1.md",
        "5 files checked, 5 valid, 0 rejected, 10 warnings",
    ]
    built = project.cli("build")
    assert built.out.splitlines()[:2] == result.out.splitlines()[:2]
    verbose = project.cli("-v", "check")
    assert sum(1 for line in verbose.out.splitlines() if "aliases" in line) == 5


def test_grouping_reads_like_the_issue() -> None:
    """5,000 identical errors: `slug: unknown key — 5,000 files, e.g. a.md, b.md`, once."""
    problems = [Problem(f"seeds/{n:04}.md", "slug", "unknown key") for n in range(5000)]
    problems.insert(0, Problem("seeds/0000.md", "date", "missing"))
    assert grouped(problems) == [
        "seeds/0000.md: date: missing",
        "slug: unknown key — 5,000 files, e.g. seeds/0000.md, seeds/0001.md",
    ]
    assert grouped(problems[:3]) == [str(p) for p in problems[:3]]  # fewer than three: as they are


def test_a_typo_is_still_an_error_and_publish_dates_are_refused(project: Project) -> None:
    """Strictness stays: an unknown key rejects the file with a hint; publishDate is not dropped."""
    project.seed("typo.md", "---\ntitle: x\ndate: 2025-02-19\nsulg: x\n---\nBody.\n")
    project.seed("when.md", "---\ntitle: y\ndate: 2025-02-19\npublishDate: 2025-03-19\n---\nOther.\n")
    result = project.cli("check")
    assert result.code == 1
    assert result.out.splitlines()[:2] == [
        "seeds/typo.md: sulg: unknown key (did you mean slug?)",
        "seeds/when.md: publishDate: not supported: publisher publishes at `date`; put the publication "
        "time there",
    ]


def test_published_false_is_a_draft(project: Project) -> None:
    project.seed("a.md", "---\ntitle: Secret\ndate: 2025-02-19\npublished: false\n---\nNot yet.\n")
    report = pipeline.check(project.settings(), NOW)
    assert report.drafts == 1


def test_a_slug_must_leave_an_address(project: Project) -> None:
    project.seed("a.md", "---\ntitle: x\ndate: 2025-02-19\nslug: 東京\n---\nBody.\n")
    result = project.cli("check")
    assert "seeds/a.md: slug: must contain a letter or digit from a to z or 0 to 9" in result.out


def test_a_slug_is_normalised_and_a_taken_one_gets_a_number(project: Project) -> None:
    project.seed("a.md", "---\ntitle: One\ndate: 2025-02-18\nslug: Café Story\n---\nFirst.\n")
    project.seed("b.md", "---\ntitle: Two\ndate: 2025-02-19\nslug: cafe-story\n---\nSecond.\n")
    pipeline.build(project.settings(), NOW)
    names = sorted(p.name for p in (project.feeds / "articles").iterdir())
    assert names == ["cafe-story-2.html", "cafe-story.html"]


def test_lastmod_moves_updated_and_is_never_before_the_date(project: Project) -> None:
    base = "---\ntitle: x\ndate: 2025-02-19T08:00:00Z\n{}---\nBody.\n"
    project.seed("a.md", base.format("lastmod: 2025-01-01\n"))
    pipeline.build(project.settings(), NOW)
    entry = feedparser.parse((project.feeds / "atom.xml").read_bytes()).entries[0]
    assert tuple(entry.updated_parsed[:5]) == (2025, 2, 19, 8, 0)  # clamped to the date
    project.seed("a.md", base.format("lastmod: 2025-02-25T12:00:00Z\n"))
    pipeline.build(project.settings(), NOW + timedelta(days=1))
    entry = feedparser.parse((project.feeds / "atom.xml").read_bytes()).entries[0]
    assert tuple(entry.updated_parsed[:5]) == (2025, 2, 25, 12, 0)  # the writer's time, not the build's
    assert datetime(2025, 2, 25, 12, tzinfo=UTC) < NOW
