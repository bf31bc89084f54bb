"""The two input formats: what a person expects from our sample story, from plain text and from
Markdown with front matter (titles, summaries, paragraphs, furniture, drafts, hashes)."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from publisher.ingest import SeedFile, ingest, parse_file
from publisher.ingest.text import derive_summary, derive_title, is_furniture, lead_sentence, shorten
from publisher.models import Article
from tests.conftest import SAMPLE, Project

PARIS = ZoneInfo("Europe/Paris")


def one(project: Project, name: str, text: str | bytes) -> Article:
    project.seed(name, text)
    result = ingest(project.settings())
    assert [str(p) for p in result.problems] == []
    (article,) = result.articles
    return article


# --- our sample (tests/data/sample.txt): a news story with page furniture -------------------------


@pytest.fixture
def sample(project: Project) -> Article:
    info = SAMPLE.stat()
    article, problems = parse_file(
        SeedFile(SAMPLE.resolve(), SAMPLE.name, info.st_size, info.st_mtime_ns), project.settings()
    )
    assert problems == []
    assert article is not None
    return article


def test_sample_date_is_midnight_in_the_site_timezone(sample: Article) -> None:
    assert sample.date == datetime(2025, 2, 19, 0, 0, tzinfo=PARIS)
    assert sample.date.isoformat() == "2025-02-19T00:00:00+01:00"


def test_sample_title_is_the_lead_cut_before_a_name(sample: Article) -> None:
    """The lead sentence is 226 characters; the title stops before "Coastal Ferries Director
    Marguerite Delacroix" rather than in the middle of it, and fits a feed reader's list."""
    assert sample.title == (
        "A senior harbour official in Northfield is urging the regional transport board not to let…"
    )
    assert len(sample.title) <= 90


def test_sample_summary_is_the_whole_first_paragraph(sample: Article) -> None:
    assert sample.summary == (
        "A senior harbour official in Northfield is urging the regional transport board not to let "
        "Coastal Ferries Director Marguerite Delacroix decide alone the future of the island crossing "
        "as the winter timetable nears its end."
    )


def test_sample_paragraphs_are_the_story_without_capitals_lines(sample: Article) -> None:
    paragraphs = sample.paragraphs
    assert len(paragraphs) == 16
    assert paragraphs[0].startswith("A senior harbour official in Northfield is urging")
    assert paragraphs[2] == '"Let\'s not make it easy for them," she added.'
    assert paragraphs[-1].startswith('"The board is handing the future of the island to the company,"')
    joined = "\n".join(paragraphs)
    assert "ISLANDERS SAY" not in joined
    assert "BOARD PROMISES DECISION" not in joined
    assert "CLICK HERE" not in joined
    assert not any(is_furniture(p) for p in paragraphs)


def test_sample_keeps_typographic_quotes_and_names(sample: Article) -> None:
    joined = "\n".join(sample.paragraphs)
    assert "Selin Erdoğan" in joined
    assert "doesn’t involve the people" in joined
    assert "‘these are our plans for the winter,’" in joined
    assert "new timetable – something" in joined
    assert "Erdoğan" in sample.body_html and "doesn’t" in sample.body_html


def test_sample_body_html_is_one_escaped_paragraph_each(sample: Article) -> None:
    assert sample.body_html.count("<p>") == 16
    assert sample.body_html.startswith("<p>A senior harbour official in Northfield")
    assert '<p>"Let\'s not make it easy for them," she added.</p>' in sample.body_html
    assert sample.format == "text" and sample.source == SAMPLE.name


# --- plain text -------------------------------------------------------------------------------


def test_plain_text_paragraphs_joined_and_furniture_dropped(project: Project) -> None:
    article = one(
        project,
        "a.txt",
        "  \n date 2025-02-19 The council met\non Tuesday.\n\n"
        "MORE: COUNCIL BUDGET SHOWDOWN LOOMS\n\n  Second   paragraph\there.  \n\n\n",
    )
    assert article.paragraphs == ("The council met on Tuesday.", "Second paragraph here.")
    assert article.title == "The council met on Tuesday"
    assert article.format == "text"
    assert article.author is None and article.tags == () and not article.draft


def test_plain_text_date_on_its_own_line(project: Project) -> None:
    article = one(project, "a.txt", "date 2025-02-19\nFirst paragraph.\n\nSecond.\n")
    assert article.paragraphs == ("First paragraph.", "Second.")


def test_short_capitals_are_kept_as_story(project: Project) -> None:
    """Acronyms and short shouts are text; only long all-capitals lines are furniture."""
    article = one(project, "a.txt", "date 2025-02-19 NATO met.\n\nUK AND EU\n\nDone.\n")
    assert article.paragraphs == ("NATO met.", "UK AND EU", "Done.")


@pytest.mark.parametrize(
    ("paragraph", "title"),
    [
        ("Dr. Smith resigned. The board met.", "Dr. Smith resigned"),
        ("The U.S. and Canada agreed on Monday. Talks go on.", "The U.S. and Canada agreed on Monday"),
        ("Why now? Nobody knows.", "Why now?"),
        ('"We will win," she said. Then she left.', '"We will win," she said'),
        ("J. K. Rowling spoke. Fans cheered.", "J. K. Rowling spoke"),
        ("No full stop at all", "No full stop at all"),
    ],
)
def test_title_is_the_lead_sentence(paragraph: str, title: str) -> None:
    assert derive_title([paragraph], 90) == title


def test_long_title_is_cut_at_a_word_and_not_on_a_little_word() -> None:
    sentence = (
        "Officials in the northern district say the flooding that began on Monday will last until "
        "the end of the week"
    )
    title = derive_title([sentence], 60)
    assert title == "Officials in the northern district say the flooding…"
    assert len(title) <= 60


@pytest.mark.parametrize(
    ("sentence", "title"),
    [
        (
            "The central library will stay open until 9pm on Thursdays from next month, the first "
            "extension of its hours in more than a decade",
            "The central library will stay open until 9pm on Thursdays from next month…",
        ),
        (
            "Northfield councillors approved a budget on Tuesday night that raises council tax by 2.9 "
            "per cent and keeps the libraries open",
            "Northfield councillors approved a budget on Tuesday night that raises council tax…",
        ),
        (
            "The minister said on Monday – after weeks of silence on the matter – that the plan would go "
            "ahead in full",
            "The minister said on Monday – after weeks of silence on the matter…",
        ),
    ],
)
def test_long_title_prefers_a_clause_break_and_never_ends_on_a_bare_number(sentence: str, title: str) -> None:
    assert derive_title([sentence], 90) == title


def test_shorten_never_exceeds_the_limit_and_keeps_whole_words() -> None:
    text = "Alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu"
    for limit in range(8, len(text) + 2):
        short = shorten(text, limit)
        assert len(short) <= limit
        words = short.removesuffix("…").split()
        assert all(w in text.split() for w in words)
        if len(text) <= limit:
            assert short == text
        else:
            assert short.endswith("…")


def test_shorten_at_an_exact_word_boundary_keeps_the_last_word() -> None:
    assert shorten("one two three four", 9) == "one two…"  # "one two t" would cut "three"
    assert shorten("one two three four", 14) == "one two three…"


def test_shorten_a_single_enormous_word() -> None:
    assert shorten("x" * 50, 10) == "x" * 9 + "…"


def test_lead_sentence_does_not_stop_at_initials() -> None:
    assert lead_sentence("Gen. Patton arrived. Later more.") == "Gen. Patton arrived."


def test_summary_takes_whole_paragraphs_that_fit() -> None:
    assert derive_summary(["One.", "Two.", "Three."], 12) == "One. Two."
    long = "word " * 100
    assert derive_summary([long, "Two."], 40).endswith("…")
    assert len(derive_summary([long], 40)) <= 40
    assert derive_summary([], 40) == ""


# --- Markdown ---------------------------------------------------------------------------------


MD = """\
---
title: "Harbour reopens after storm"
date: 2025-02-19T08:30:00+01:00
author: Ana Lima
tags: [harbour, weather]
summary: Boats are back in the water.
id: tag:news.example.org,2025:harbour
---
The harbour *reopened* on Wednesday,
three days after the storm.

## What changed

- New breakwater
- Longer quay

> "We are back," said the harbour master.

```
code block stays
```
"""


def test_markdown_front_matter_and_body(project: Project) -> None:
    article = one(project, "harbour.md", MD)
    assert article.format == "markdown"
    assert article.title == "Harbour reopens after storm"
    assert article.date == datetime(2025, 2, 19, 8, 30, tzinfo=PARIS)
    assert article.author == "Ana Lima"
    assert article.tags == ("harbour", "weather")
    assert article.summary == "Boats are back in the water."
    assert article.explicit_id == "tag:news.example.org,2025:harbour"
    assert article.paragraphs == (
        "The harbour reopened on Wednesday, three days after the storm.",
        "What changed",
        "New breakwater",
        "Longer quay",
        '"We are back," said the harbour master.',
    )
    assert "<em>reopened</em>" in article.body_html
    assert "<h2>What changed</h2>" in article.body_html
    assert "<li>New breakwater</li>" in article.body_html
    assert "<pre><code>code block stays\n</code></pre>" in article.body_html


def test_markdown_without_title_or_summary_derives_them(project: Project) -> None:
    article = one(
        project,
        "x.md",
        "---\ndate: 2025-02-19\n---\nThe ferry was cancelled. Winds reached 90 km/h.\n\nMore later.\n",
    )
    assert article.title == "The ferry was cancelled"
    assert article.summary == "The ferry was cancelled. Winds reached 90 km/h. More later."


def test_markdown_summary_is_shortened_when_long(project: Project) -> None:
    project.configure("[ingest]\nsummary_max_chars = 40\n")
    article = one(project, "x.md", f"---\ntitle: T\ndate: 2025-02-19\nsummary: {'word ' * 30}\n---\nB.\n")
    assert len(article.summary) <= 40 and article.summary.endswith("…")


def test_draft_is_marked(project: Project) -> None:
    article = one(project, "x.md", "---\ntitle: T\ndate: 2025-02-19\ndraft: true\n---\nB.\n")
    assert article.draft is True


def test_story_hash_ignores_file_name_line_ends_and_spacing(project: Project) -> None:
    a = one(project, "a.txt", "date 2025-02-19 Same  story.\n\nSecond.\n")
    os.remove(project.seeds / "a.txt")
    b = one(project, "b.txt", "date 2025-02-20 Same story.\r\n\r\nSecond.\r\n")
    assert a.story_hash == b.story_hash
    assert a.content_hash != b.content_hash  # the date differs: a reader sees that


def test_content_hash_is_stable_across_runs(project: Project) -> None:
    project.seed("a.md", MD)
    first = ingest(project.settings()).articles[0]
    second = ingest(project.settings()).articles[0]
    assert first == second


def test_title_limit_is_configurable(project: Project) -> None:
    project.configure("[ingest]\ntitle_max_chars = 30\n")
    article = one(
        project, "a.txt", "date 2025-02-19 Residents of the old town voted to keep the market open.\n"
    )
    assert article.title == "Residents of the old town…"


def test_the_shared_seeds_when_present_are_accepted(project: Project) -> None:
    """The one test that may read outside the project: ../shared/seeds/, when it exists next to the
    clone, is ingested without a single problem. Nothing else depends on it."""
    shared = Path(__file__).resolve().parents[2] / "shared" / "seeds"
    files = sorted(p for p in shared.glob("*") if p.is_file()) if shared.is_dir() else []
    if not files:
        pytest.skip(f"no shared seeds at {shared}")
    for path in files:
        project.seed(path.name, path.read_bytes())
    result = ingest(project.settings())
    assert [str(p) for p in result.problems] == []
    assert len(result.articles) == len(files)
    example_seeds = Path(__file__).resolve().parents[1] / "seeds"
    own = {p.read_bytes() for p in example_seeds.rglob("*") if p.is_file()}
    assert not own & {p.read_bytes() for p in files}  # the example seeds/ are our own
