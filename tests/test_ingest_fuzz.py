"""Robustness: whatever bytes or text a file holds, `parse_file` returns an article or problems and
never raises; every problem is one line naming the file; every article's HTML is inert."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from publisher.config import Settings
from publisher.ingest import SeedFile, parse_file
from tests.test_ingest_html import assert_inert

# database=None: nothing written into the working tree; failures print their reproducing blob.
FUZZ = settings(
    max_examples=100,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def place() -> Iterator[tuple[Path, Settings]]:
    """One seeds/ folder for all examples (hypothesis reruns a test body many times)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "seeds").mkdir()
        yield root, Settings(base_dir=root, site={"timezone": "Europe/Paris"}, ingest={"max_bytes": 20_000})


def parse(place: tuple[Path, Settings], name: str, data: bytes) -> None:
    root, config = place
    path = root / "seeds" / name
    path.write_bytes(data)
    info = path.stat()
    article, problems = parse_file(SeedFile(path, name, info.st_size, info.st_mtime_ns), config)
    for problem in problems:
        line = str(problem)
        assert "\n" not in line and "\r" not in line, line
        assert problem.path == f"seeds/{name}"
        assert problem.field, line
    if article is None:
        assert any(p.severity == "error" for p in problems)
    else:
        assert article.title and "\n" not in article.title
        assert_inert(article.body_html)


@FUZZ
@given(data=st.binary(max_size=3000))
@pytest.mark.parametrize("name", ["x.txt", "x.md"])
def test_random_bytes_never_raise(place: tuple[Path, Settings], name: str, data: bytes) -> None:
    parse(place, name, data)


@FUZZ
@given(text=st.text(max_size=2000))
@pytest.mark.parametrize("name", ["x.txt", "x.md"])
def test_random_text_never_raises(place: tuple[Path, Settings], name: str, text: str) -> None:
    parse(place, name, text.encode("utf-8", "surrogatepass"))


_MD_PIECES = st.sampled_from(
    [
        "---\n", "title: ", "date: ", "2025-02-19", "2025-02-30", "T08:00:00+01:00", "tags: ", "[a, b]",
        "draft: ", "true", "id: ", "tag:x,2025:y", "&a ", "*a", "- ", "{", "}", "[", "]", ": ", "\n",
        "\n\n", "<script>", "[l](javascript:x)", "![i](data:x)", "> ", "# ", "```", "|a|b|\n|-|-|\n",
        "**", "_", "`", "\\", "&#0;", "\x00", "\x07", "\u2028", "é", "Erdoğan", "“", "’", "date 2025-02-19 ",
    ]
)  # fmt: skip


@FUZZ
@given(pieces=st.lists(_MD_PIECES, max_size=60))
@pytest.mark.parametrize("name", ["x.txt", "x.md"])
def test_format_shaped_input_never_raises(place: tuple[Path, Settings], name: str, pieces: list[str]) -> None:
    """Text made of the formats' own building blocks reaches deeper than random characters."""
    parse(place, name, "".join(pieces).encode("utf-8", "surrogatepass"))


@FUZZ
@given(
    title=st.text(max_size=200),
    body=st.text(min_size=1, max_size=500),
    tags=st.lists(st.text(max_size=20), max_size=5),
)
def test_markdown_with_arbitrary_field_values_never_raises(
    place: tuple[Path, Settings], title: str, body: str, tags: list[str]
) -> None:
    import json

    # JSON is YAML: any string survives quoting this way.
    text = f"---\ntitle: {json.dumps(title)}\ndate: 2025-02-19\ntags: {json.dumps(tags)}\n---\n{body}\n"
    parse(place, "x.md", text.encode("utf-8", "surrogatepass"))
