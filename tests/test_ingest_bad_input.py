"""Issue 2, "Validation and bad input": each case with a real file in tmp_path and its exact message.

The message lines are part of the contract (`seeds/x.md: field: message`), so they are compared whole.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from publisher.ingest import ingest
from publisher.models import Article
from tests.conftest import Project

PARIS = ZoneInfo("Europe/Paris")


def run(project: Project) -> tuple[dict[str, Article], list[str]]:
    """Ingest the project's seeds/: articles by source, and every problem as its printed line."""
    result = ingest(project.settings())
    return {a.source: a for a in result.articles}, [str(p) for p in result.problems]


def only(project: Project, name: str) -> tuple[Article | None, list[str]]:
    articles, lines = run(project)
    return articles.get(name), lines


# --- encodings and line ends -------------------------------------------------------------------

BODY = "Council approves the new library.\n\nThe vote was unanimous.\n"


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("lf.txt", f"date 2025-02-19 {BODY}".encode()),
        ("crlf.txt", f"date 2025-02-19 {BODY}".replace("\n", "\r\n").encode()),
        ("cr.txt", f"date 2025-02-19 {BODY}".replace("\n", "\r").encode()),
        ("bom.txt", b"\xef\xbb\xbf" + f"date 2025-02-19 {BODY}".encode()),
        ("bom-crlf.txt", b"\xef\xbb\xbf" + f"date 2025-02-19 {BODY}".replace("\n", "\r\n").encode()),
    ],
)
def test_utf8_with_or_without_bom_and_any_line_end_is_accepted(
    project: Project, name: str, data: bytes
) -> None:
    """BOM and CRLF/LF/CR give the same article, with no warning."""
    project.seed(name, data)
    article, lines = only(project, name)
    assert lines == []
    assert article is not None
    assert article.paragraphs == ("Council approves the new library.", "The vote was unanimous.")
    assert article.title == "Council approves the new library"


def test_bom_and_crlf_in_markdown_front_matter_are_accepted(project: Project) -> None:
    text = "---\ntitle: Budget day\ndate: 2025-02-19\n---\nThe budget passed.\n"
    project.seed("a.md", b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())
    article, lines = only(project, "a.md")
    assert lines == []
    assert article is not None and article.title == "Budget day"


def test_bytes_that_are_not_utf8_are_rejected_naming_the_byte_offset(project: Project) -> None:
    project.seed("latin1.txt", "date 2025-02-19 Café society returns.".encode("latin-1"))
    article, lines = only(project, "latin1.txt")
    assert article is None
    assert lines == ["seeds/latin1.txt: encoding: not UTF-8: invalid byte 0xe9 at byte offset 19"]


def test_byte_offset_counts_the_byte_order_mark(project: Project) -> None:
    """The offset is the file's own, so `xxd` on the file shows the culprit at that place."""
    project.seed("bom.txt", b"\xef\xbb\xbf" + "date 2025-02-19 Café society".encode("latin-1"))
    _, lines = only(project, "bom.txt")
    assert lines == ["seeds/bom.txt: encoding: not UTF-8: invalid byte 0xe9 at byte offset 22"]


def test_a_character_cut_off_at_the_end_is_reported_as_such(project: Project) -> None:
    """A half-copied file often ends inside a multi-byte character."""
    project.seed("half.txt", "date 2025-02-19 Erdoğ".encode()[:-1])
    _, lines = only(project, "half.txt")
    assert lines == [
        "seeds/half.txt: encoding: not UTF-8: incomplete character 0xc4 at byte offset 20, "
        "the end of the file"
    ]


def test_control_characters_are_removed_with_a_warning(project: Project) -> None:
    project.seed("ctrl.txt", b"date 2025-02-19 Bells\x07 ring\x1b at\x7f noon.\n\nSecond\x0c paragraph.")
    article, lines = only(project, "ctrl.txt")
    assert lines == [
        "warning: seeds/ctrl.txt: text: removed 4 control characters (U+0007, U+000C, U+001B, U+007F)"
    ]
    assert article is not None
    assert article.paragraphs == ("Bells ring at noon.", "Second paragraph.")
    assert not any(ord(c) < 32 for c in article.body_html.replace("\n", ""))


def test_c1_controls_are_removed_too(project: Project) -> None:
    project.seed("c1.md", "---\ntitle: A\u0085B\ndate: 2025-02-19\n---\nText\u009b here.\n")
    article, lines = only(project, "c1.md")
    assert lines == ["warning: seeds/c1.md: text: removed 2 control characters (U+0085, U+009B)"]
    assert article is not None and article.title == "AB" and article.paragraphs == ("Text here.",)


# --- dates, empty and binary files ---------------------------------------------------------------


def test_missing_date_is_rejected(project: Project) -> None:
    project.seed("nodate.txt", "The mayor resigned on Tuesday.\n")
    _, lines = only(project, "nodate.txt")
    assert lines == [
        "seeds/nodate.txt: date: missing: the file must start with 'date YYYY-MM-DD' "
        "(it starts 'The mayor resigned on Tuesday.')"
    ]


def test_missing_date_in_markdown_is_rejected(project: Project) -> None:
    project.seed("nodate.md", "---\ntitle: Hello\n---\nBody.\n")
    _, lines = only(project, "nodate.md")
    assert lines == ["seeds/nodate.md: date: missing"]


def test_impossible_date_is_rejected(project: Project) -> None:
    project.seed("feb30.txt", "date 2025-02-30 A day that never was.\n")
    _, lines = only(project, "feb30.txt")
    assert lines == ["seeds/feb30.txt: date: 2025-02-30 is not a real date (day is out of range for month)"]


def test_impossible_date_in_markdown_is_rejected(project: Project) -> None:
    project.seed("feb30.md", "---\ntitle: Never\ndate: 2025-02-30\n---\nBody.\n")
    _, lines = only(project, "feb30.md")
    assert lines == [
        "seeds/feb30.md: date: '2025-02-30' is not a real date or date-time (day is out of range for month)"
    ]


def test_a_zone_offset_of_a_day_or_more_is_named_in_the_writers_terms(project: Project) -> None:
    project.seed("tz.md", "---\ntitle: Far east\ndate: 2025-02-19T08:30:00+25:00\n---\nBody.\n")
    _, lines = only(project, "tz.md")
    assert lines == [
        "seeds/tz.md: date: '2025-02-19T08:30:00+25:00' is not a real date or date-time "
        "(a zone offset lies between -23:59 and +23:59)"
    ]


def test_date_in_another_form_is_rejected(project: Project) -> None:
    project.seed("us.txt", "date 02/19/2025 Body.\n")
    _, lines = only(project, "us.txt")
    assert lines == ["seeds/us.txt: date: '02/19/2025' is not a date in the form YYYY-MM-DD"]


@pytest.mark.parametrize("content", [b"", b"   \n\n\t\r\n", b"\xef\xbb\xbf", b"\xef\xbb\xbf \n"])
def test_empty_file_is_rejected(project: Project, content: bytes) -> None:
    project.seed("empty.txt", content)
    _, lines = only(project, "empty.txt")
    assert lines == ["seeds/empty.txt: file: empty"]


def test_binary_junk_with_nul_is_rejected(project: Project) -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))
    project.seed("photo.txt", png)
    _, lines = only(project, "photo.txt")
    assert lines == ["seeds/photo.txt: file: binary data, not text (NUL byte at byte offset 8)"]


def test_binary_junk_without_nul_is_rejected(project: Project) -> None:
    junk = bytes((i * 37 + 11) % 255 + 1 for i in range(600))  # every byte value but NUL, scrambled
    project.seed("junk.md", junk)
    _, lines = only(project, "junk.md")
    assert len(lines) == 1
    assert lines[0].startswith("seeds/junk.md: file: binary data, not text (")


def test_only_page_furniture_means_no_story(project: Project) -> None:
    project.seed("caps.txt", "date 2025-02-19\n\nCLICK HERE TO GET THE FOX NEWS APP\n")
    _, lines = only(project, "caps.txt")
    assert lines == ["seeds/caps.txt: body: no story text after the date"]


def test_markdown_without_body_is_rejected(project: Project) -> None:
    project.seed("nobody.md", "---\ntitle: Empty\ndate: 2025-02-19\n---\n\n")
    _, lines = only(project, "nobody.md")
    assert lines == ["seeds/nobody.md: body: no text after the front matter"]


# --- front matter -------------------------------------------------------------------------------


def test_front_matter_that_is_not_a_mapping_is_rejected(project: Project) -> None:
    project.seed("list.md", "---\n- title\n- date\n---\nBody.\n")
    project.seed("scalar.md", "---\njust a sentence\n---\nBody.\n")
    _, lines = run(project)
    assert lines == [
        "seeds/list.md: front matter: must be a mapping of keys to values, not a list",
        "seeds/scalar.md: front matter: must be a mapping of keys to values, not a str",
    ]


def test_missing_or_unclosed_front_matter_is_rejected(project: Project) -> None:
    project.seed("none.md", "Just a body.\n")
    project.seed("open.md", "---\ntitle: x\ndate: 2025-02-19\nBody.\n")
    _, lines = run(project)
    assert lines == [
        "seeds/none.md: front matter: missing: a Markdown article starts with a '---' line",
        "seeds/open.md: front matter: not closed: no '---' line after the front matter",
    ]


def test_yaml_syntax_error_names_the_line(project: Project) -> None:
    project.seed("bad.md", "---\ntitle: x\ndate: [2025\n---\nBody.\n")
    _, lines = run(project)
    assert len(lines) == 1
    assert lines[0].startswith("seeds/bad.md: front matter: not valid YAML: ")
    assert "(line " in lines[0]


def test_yaml_alias_bomb_is_rejected_before_it_expands(project: Project) -> None:
    """A billion laughs: nine levels of ten aliases each would be 10**9 strings once expanded."""
    levels = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 10):
        refs = ", ".join([f"*a{i - 1}"] * 10)
        levels.append(f"a{i}: &a{i} [{refs}]")
    project.seed("bomb.md", "---\ntitle: lol\ndate: 2025-02-19\n" + "\n".join(levels) + "\n---\nBody.\n")
    _, lines = run(project)
    assert lines == ["seeds/bomb.md: front matter: YAML aliases are not allowed (line 5)"]


def test_deeply_nested_yaml_is_rejected(project: Project) -> None:
    """Flow style ([[[…) is refused by a linear pre-check; block style by the event walk."""
    project.seed("flow.md", "---\nx: " + "[" * 3000 + "]" * 3000 + "\n---\nBody.\n")
    project.seed("block.md", "---\n" + "".join(" " * i + f"k{i}:\n" for i in range(40)) + "---\nBody.\n")
    _, lines = run(project)
    assert lines == [
        "seeds/block.md: front matter: not valid YAML: nested too deeply",
        "seeds/flow.md: front matter: not valid YAML: nested too deeply",
    ]


def test_oversized_front_matter_is_rejected(project: Project) -> None:
    project.seed("big.md", "---\ntitle: x\ndate: 2025-02-19\n" + "#" * 9_000 + "\n---\nBody.\n")
    _, lines = run(project)
    assert lines == ["seeds/big.md: front matter: larger than 8 KB"]


def test_unknown_front_matter_keys_are_errors(project: Project) -> None:
    project.seed("typo.md", "---\ntitle: x\ndate: 2025-02-19\ntitel: y\nauthors: [a]\nzzz: 1\n---\nBody.\n")
    _, lines = run(project)
    allowed = (
        "(allowed: title, date, author, tags, summary, draft, id, slug, description, categories, "
        "lastmod, published, image)"
    )
    assert lines == [
        "seeds/typo.md: titel: unknown key (did you mean title?)",
        "seeds/typo.md: authors: unknown key (did you mean author?)",
        f"seeds/typo.md: zzz: unknown key {allowed}",
    ]


def test_every_front_matter_problem_is_reported(project: Project) -> None:
    project.seed("many.md", "---\ntitle: ''\ndate: tomorrow\ndraft: perhaps\n---\nBody.\n")
    _, lines = run(project)
    assert lines == [
        "seeds/many.md: title: String should have at least 1 character",
        "seeds/many.md: date: 'tomorrow' is not a real date or date-time "
        "(Invalid isoformat string: 'tomorrow')",
        "seeds/many.md: draft: Input should be a valid boolean, unable to interpret input",
    ]


def test_naive_date_time_is_rejected(project: Project) -> None:
    project.seed("naive.md", "---\ntitle: x\ndate: 2025-02-19T08:30:00\n---\nBody.\n")
    _, lines = run(project)
    assert lines == [
        "seeds/naive.md: date: '2025-02-19T08:30:00' has a time but no zone "
        "(write e.g. 2025-02-19T08:30:00+00:00)"
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-02-19T08:30:00+01:00", datetime(2025, 2, 19, 8, 30, tzinfo=PARIS)),
        ("2025-02-19T07:30:00Z", datetime(2025, 2, 19, 8, 30, tzinfo=PARIS)),
        ("'2025-02-19 08:30:00+01:00'", datetime(2025, 2, 19, 8, 30, tzinfo=PARIS)),
        ("2025-02-19", datetime(2025, 2, 19, 0, 0, tzinfo=PARIS)),
        ("2025-07-01", datetime(2025, 7, 1, 0, 0, tzinfo=PARIS)),  # summer time: +02:00
    ],
)
def test_dates_with_zone_or_midnight_in_site_timezone(
    project: Project, value: str, expected: datetime
) -> None:
    project.seed("d.md", f"---\ntitle: x\ndate: {value}\n---\nBody.\n")
    article, lines = only(project, "d.md")
    assert lines == []
    assert article is not None and article.date == expected
    assert article.date.utcoffset() is not None


def test_plain_text_date_is_midnight_in_site_timezone(project: Project) -> None:
    project.seed("d.txt", "date 2025-07-01 Summer story.\n")
    article, _ = only(project, "d.txt")
    assert article is not None
    assert article.date == datetime(2025, 7, 1, tzinfo=PARIS)
    assert article.date.isoformat() == "2025-07-01T00:00:00+02:00"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("[politics, europe]", ("politics", "europe")),
        ("politics, europe", ("politics", "europe")),
        ("'politics,  europe , politics'", ("politics", "europe")),
        ("\n  - politics\n  - europe", ("politics", "europe")),
        ("2025", ("2025",)),
        ("[]", ()),
    ],
)
def test_tags_as_list_or_comma_separated_text(
    project: Project, value: str, expected: tuple[str, ...]
) -> None:
    project.seed("t.md", f"---\ntitle: x\ndate: 2025-02-19\ntags: {value}\n---\nBody.\n")
    article, lines = only(project, "t.md")
    assert lines == []
    assert article is not None and article.tags == expected


def test_tag_that_is_not_text_is_reported_with_its_position(project: Project) -> None:
    project.seed("t.md", "---\ntitle: x\ndate: 2025-02-19\ntags: [ok, {a: b}]\n---\nBody.\n")
    _, lines = run(project)
    assert lines == ["seeds/t.md: tags.1: Input should be a valid string"]


@pytest.mark.parametrize(
    "value", ["tag:news.example.org,2025:budget", "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66"]
)
def test_explicit_id_absolute_iri_is_kept(project: Project, value: str) -> None:
    project.seed("i.md", f"---\ntitle: x\ndate: 2025-02-19\nid: '{value}'\n---\nBody.\n")
    article, lines = only(project, "i.md")
    assert lines == []
    assert article is not None and article.explicit_id == value


@pytest.mark.parametrize("value", ["budget-2025", "'/articles/1'", "12", "'tag: spaced out'"])
def test_explicit_id_must_be_an_absolute_iri(project: Project, value: str) -> None:
    project.seed("i.md", f"---\ntitle: x\ndate: 2025-02-19\nid: {value}\n---\nBody.\n")
    _, lines = run(project)
    assert lines == [
        "seeds/i.md: id: must be an absolute IRI such as tag:example.org,2025:my-story or urn:uuid:…"
    ]


def test_yaml_words_like_no_stay_text_and_yes_still_means_true(project: Project) -> None:
    """YAML 1.1 would read the title `No` as false; only true/false are booleans here."""
    project.seed("n.md", "---\ntitle: No\nauthor: On\ndate: 2025-02-19\ndraft: yes\n---\nBody.\n")
    article, lines = only(project, "n.md")
    assert lines == []
    assert article is not None
    assert (article.title, article.author, article.draft) == ("No", "On", True)


def test_one_bad_file_never_stops_the_others(project: Project) -> None:
    project.seed("a.txt", "date 2025-02-19 First story.\n")
    project.seed("b.txt", b"\xff\xfe junk")
    project.seed("c.md", "---\ntitle: Third\ndate: 2025-02-19\n---\nThird story.\n")
    articles, lines = run(project)
    assert sorted(articles) == ["a.txt", "c.md"]
    assert lines == ["seeds/b.txt: encoding: not UTF-8: invalid byte 0xff at byte offset 0"]


def test_a_crash_in_a_parser_is_one_line_and_the_others_go_on(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The safety net for our own bugs (the fault is injected: no real input is known to crash)."""
    import publisher.ingest.markdown as markdown

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("parser exploded\nbadly")

    monkeypatch.setattr(markdown, "parse", boom)
    project.seed("a.txt", "date 2025-02-19 Fine.\n")
    project.seed("b.md", "---\ntitle: x\ndate: 2025-02-19\n---\nBody.\n")
    articles, lines = run(project)
    assert list(articles) == ["a.txt"]
    assert lines == [
        "seeds/b.md: file: could not be read: RuntimeError: parser exploded badly "
        "(a bug in publisher: please report)"
    ]


def test_seeds_are_never_modified(project: Project) -> None:
    files = {
        "a.txt": b"date 2025-02-19 A.\r\n",
        "b.md": b"\xef\xbb\xbf---\ntitle: x\ndate: 2025-02-19\n---\nB\x07.\n",
        "c.txt": b"\xff",
    }
    for name, data in files.items():
        project.seed(name, data)
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in project.seeds.iterdir()}
    run(project)
    after = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in project.seeds.iterdir()}
    assert after == before
