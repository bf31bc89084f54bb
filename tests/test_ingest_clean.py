"""Every text field of every format is cleaned once at ingest (issue 11, points 9 and 10): control
characters and unbalanced bidi controls never reach a page, a feed or a mail, and a mailto link
that would add mail headers is no link."""

from __future__ import annotations

import re

import pytest

from publisher.ingest.clean import balanced, clean_text
from tests.conftest import Project

CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")

HOSTILE = """\
---
title: "Bell\\a and \\x1b[31mred\\x1b[0m \\0 title"
date: 2025-02-01
author: "Ann\\x07 Writer"
tags: ["ha\\x1brbour", "\\u202eevil"]
summary: "A summary\\x0b with \\u2066an open isolate"
---
The body is fine, but &#7; a character reference for BEL and one for &#x202E; RLO.
"""


def outputs(project: Project) -> dict[str, str]:
    return {
        str(p.relative_to(project.feeds)): p.read_text(encoding="utf-8")
        for p in project.feeds.rglob("*")
        if p.is_file() and p.suffix in (".html", ".xml", ".json")
    }


def test_control_and_bidi_characters_never_reach_any_output(project: Project) -> None:
    project.seed("hostile.md", HOSTILE)
    result = project.cli("build")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert "warning: seeds/hostile.md: title: removed 4 control characters (U+0000, U+0007, U+001B)" in lines
    assert "warning: seeds/hostile.md: author: removed 1 control character (U+0007)" in lines
    assert "warning: seeds/hostile.md: tags.0: removed 1 control character (U+001B)" in lines
    assert "warning: seeds/hostile.md: tags.1: removed 1 unbalanced bidirectional control" in lines
    assert "warning: seeds/hostile.md: summary: removed 1 unbalanced bidirectional control" in lines
    files = outputs(project)
    assert any(name.startswith("articles/") for name in files)
    for name, text in files.items():
        assert not CONTROL.search(text.replace("\n", "").replace("\t", "")), name
        assert not BIDI.search(text), name
    page = next(text for name, text in files.items() if name.startswith("articles/"))
    assert "Bell and [31mred[0m  title" in page and "Ann Writer" in page


def test_check_reports_the_same_warnings(project: Project) -> None:
    project.seed("hostile.md", HOSTILE)
    result = project.cli("check")
    warning = "warning: seeds/hostile.md: author: removed 1 control character (U+0007)"
    assert warning in result.out.splitlines()
    assert project.cli("check", "--strict").code == 1


def test_balanced_bidi_controls_are_kept() -> None:
    text = "name: \u2067مرحبا\u2069 and \u202bembedded\u202c"
    assert balanced(text) and clean_text(text) == (text, [])
    assert clean_text("a\u2069b")[0] == "ab"
    assert clean_text("\u202d\u2066x\u202c\u2069")[0] == "x"  # crossed, not nested


@pytest.mark.parametrize(
    "link",
    [
        "<mailto:a@b.example?subject=x%0d%0aBcc:c@d.example>",
        "[write to us](mailto:a@b.example?subject=x%0D%0ABcc:c@d.example)",
        "[write to us](mailto:a@b.example?body=%0aX-Evil:%201)",
    ],
)
def test_a_mailto_link_with_encoded_line_breaks_is_dropped_and_its_text_kept(
    project: Project, link: str
) -> None:
    project.seed("m.md", f"---\ntitle: Letters\ndate: 2025-02-01\n---\nContact: {link} today.\n")
    assert project.cli("build").code == 0
    page = next((project.feeds / "articles").glob("*.html")).read_text(encoding="utf-8")
    assert 'href="mailto:' not in page
    assert "a@b.example" in page and "today." in page
    assert 'href="mailto:' not in (project.feeds / "atom.xml").read_text(encoding="utf-8").replace(
        "&lt;", "<"
    )


def test_an_ordinary_mailto_link_stays_a_link(project: Project) -> None:
    project.seed(
        "m.md",
        "---\ntitle: Letters\ndate: 2025-02-01\n---\nWrite to <mailto:a@b.example?subject=Hi%20there>.\n",
    )
    assert project.cli("build").code == 0
    page = next((project.feeds / "articles").glob("*.html")).read_text(encoding="utf-8")
    assert 'href="mailto:a@b.example?subject=Hi%20there"' in page
