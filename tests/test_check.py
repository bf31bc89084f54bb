"""`publisher check`: every problem printed, one summary line, exit 1 when a file is rejected,
nothing written; drafts, scheduled articles and duplicates counted; the example seeds/ are valid."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from publisher.models import Article
from publisher.pipeline import check
from tests.conftest import NOW, Project

REPO = Path(__file__).resolve().parents[1]


def good(project: Project) -> None:
    project.seed("a.txt", "date 2025-02-19 The harbour reopened on Monday.\n")
    project.seed("b.md", "---\ntitle: Rail works\ndate: 2025-02-20\n---\nNo trains this weekend.\n")


def test_all_good_exits_0_with_one_summary_line(project: Project) -> None:
    good(project)
    result = project.cli("check")
    assert (result.code, result.out, result.err) == (0, "2 files checked, 2 valid, 0 rejected\n", "")


def test_every_problem_then_the_summary_and_exit_1(project: Project) -> None:
    good(project)
    project.seed("c.txt", "date 2025-02-30 Never.\n")
    project.seed("d.md", "---\ntitle: x\ndate: 2025-02-19T09:00:00\ncolour: red\n---\nBody.\n")
    project.seed("e.txt", b"\x00\x01binary")
    project.seed("f.txt", "date 2025-02-19 Bell\x07 rang.\n")
    result = project.cli("check")
    assert result.code == 1
    assert result.err == ""
    assert result.out.splitlines() == [
        "seeds/c.txt: date: 2025-02-30 is not a real date (day is out of range for month)",
        "seeds/d.md: date: '2025-02-19T09:00:00' has a time but no zone "
        "(write e.g. 2025-02-19T09:00:00+00:00)",
        "seeds/d.md: colour: unknown key (allowed: title, date, author, tags, summary, draft, id, slug, "
        "description, categories, lastmod, published, image)",
        "seeds/e.txt: file: binary data, not text (NUL byte at byte offset 0)",
        "warning: seeds/f.txt: text: removed 1 control character (U+0007)",
        "6 files checked, 3 valid, 3 rejected, 1 warning",
    ]


def test_warnings_alone_exit_0_unless_strict(project: Project) -> None:
    project.seed("f.txt", "date 2025-02-19 Bell\x07 rang.\n")
    project.seed("x.docx", b"PK")
    result = project.cli("check")
    assert result.code == 0
    assert result.out.splitlines()[-1] == "1 file checked, 1 valid, 0 rejected, 2 warnings"
    strict = project.cli("check", "--strict")
    assert strict.code == 1
    assert strict.out == result.out


def test_draft_is_counted_as_draft(project: Project) -> None:
    good(project)
    project.seed("draft.md", "---\ntitle: Not yet\ndate: 2025-02-19\ndraft: true\n---\nWork in progress.\n")
    result = project.cli("check")
    assert (result.code, result.out) == (0, "3 files checked, 3 valid, 1 draft, 0 rejected\n")


def test_future_date_is_counted_as_scheduled(project: Project) -> None:
    """NOW is 2025-03-01 12:00 UTC; the site is in Europe/Paris (13:00 there)."""
    project.seed("tomorrow.txt", "date 2025-03-02 Embargoed until Sunday.\n")
    project.seed("later.md", "---\ntitle: x\ndate: 2025-03-01T13:30:00+01:00\n---\nAt half past one.\n")
    project.seed("today.txt", "date 2025-03-01 Today's story is out already.\n")
    project.seed("past.md", "---\ntitle: y\ndate: 2025-03-01T12:59:00+01:00\n---\nA minute ago.\n")
    result = project.cli("check")
    assert (result.code, result.out) == (0, "4 files checked, 4 valid, 2 scheduled for later, 0 rejected\n")


def test_scheduled_and_draft_are_reported_by_the_pipeline(project: Project) -> None:
    project.seed("tomorrow.txt", "date 2025-03-02 Embargoed.\n")
    project.seed("draft.md", "---\ntitle: x\ndate: 2025-03-09\ndraft: true\n---\nB.\n")
    report = check(project.settings(), NOW)
    assert (report.files, report.valid, report.drafts, report.scheduled, report.rejected) == (2, 2, 1, 1, 0)
    assert all(isinstance(a, Article) for a in report.articles)


def test_same_story_text_twice_the_second_is_reported_and_rejected(project: Project) -> None:
    """Published once: the file first by path keeps it; the copy is an error, so check exits 1."""
    story = "date 2025-02-19 The harbour reopened on Monday.\n\nBoats are back.\n"
    project.seed("a.txt", story)
    project.seed("copy of a.txt", story.replace("\n", "\r\n").replace("Monday.", "Monday. "))
    project.seed(
        "b.md",
        "---\ntitle: Harbour\ndate: 2025-02-20\n---\nThe harbour reopened on Monday.\n\nBoats are back.\n",
    )
    result = project.cli("check")
    assert result.code == 1
    assert result.out.splitlines() == [
        "seeds/b.md: body: same story text as seeds/a.txt; not published",
        "seeds/copy of a.txt: body: same story text as seeds/a.txt; not published",
        "3 files checked, 1 valid, 2 rejected",
    ]


def test_an_id_given_twice_is_reported_as_the_build_reports_it(project: Project) -> None:
    """check names the second file with a front-matter `id` already taken, in the build's words."""
    project.seed("a.md", "---\ntitle: A\ndate: 2025-02-19\nid: urn:x:1\n---\nFirst story.\n")
    project.seed("b.md", "---\ntitle: B\ndate: 2025-02-20\nid: urn:x:1\n---\nSecond story.\n")
    checked = project.cli("check")
    assert checked.code == 1
    line = "seeds/b.md: id: urn:x:1 is already used by seeds/a.md"
    assert checked.out.splitlines() == [line, "2 files checked, 1 valid, 1 rejected"]
    built = project.cli("build")
    assert line in built.out + built.err


def test_refused_files_count_as_checked(project: Project, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("date 2025-02-19 Outside.\n")
    (project.seeds / "link.txt").symlink_to(outside)
    result = project.cli("check")
    assert result.code == 1
    assert result.out.splitlines() == [
        "seeds/link.txt: file: symbolic link leads outside seeds/; refused",
        "1 file checked, 0 valid, 1 rejected",
    ]


@pytest.mark.timeout(30)
def test_fifo_in_seeds_does_not_hang_check(project: Project) -> None:
    good(project)
    os.mkfifo(project.seeds / "pipe.md")
    result = project.cli("check")
    assert result.code == 1
    assert result.out.splitlines() == [
        "seeds/pipe.md: file: not a regular file; refused",
        "3 files checked, 2 valid, 1 rejected",
    ]


def test_check_writes_nothing(project: Project) -> None:
    good(project)
    project.seed("bad.txt", b"\xff")
    before = sorted(p.relative_to(project.root) for p in project.root.rglob("*"))
    stamps = {p: p.stat().st_mtime_ns for p in project.seeds.rglob("*")}
    project.cli("check")
    assert sorted(p.relative_to(project.root) for p in project.root.rglob("*")) == before
    assert {p: p.stat().st_mtime_ns for p in project.seeds.rglob("*")} == stamps
    assert not project.state.exists() and not project.feeds.exists()


def test_quiet_prints_problems_but_no_summary_when_all_is_well(project: Project) -> None:
    good(project)
    assert project.cli("-q", "check").out == ""
    assert project.cli("check", "-q").out == ""
    project.seed("bad.txt", "no date\n")
    result = project.cli("check", "-q")
    assert result.code == 1
    assert result.out.splitlines() == [
        "seeds/bad.txt: date: missing: the file must start with 'date YYYY-MM-DD' (it starts 'no date')",
        "3 files checked, 2 valid, 1 rejected",
    ]


def test_verbose_lists_what_each_good_file_becomes(project: Project) -> None:
    good(project)
    project.seed("draft.md", "---\ntitle: Draft\ndate: 2025-02-19\ndraft: true\n---\nB.\n")
    project.seed("soon.txt", "date 2025-03-05 Soon.\n")
    result = project.cli("check", "-v")
    assert result.code == 0
    assert result.out.splitlines() == [
        "seeds/a.txt: ok: The harbour reopened on Monday (2025-02-19T00:00:00+01:00)",
        "seeds/b.md: ok: Rail works (2025-02-20T00:00:00+01:00)",
        "seeds/draft.md: draft: Draft (2025-02-19T00:00:00+01:00)",
        "seeds/soon.txt: scheduled: Soon (2025-03-05T00:00:00+01:00)",
        "4 files checked, 4 valid, 1 draft, 1 scheduled for later, 0 rejected",
    ]


def test_usage_errors_exit_2(project: Project) -> None:
    result = project.cli("check", "--bogus")
    assert result.code == 2
    assert result.out == ""
    assert result.err.splitlines()[-1] == "Error: unrecognized arguments: --bogus"


def test_no_traceback_for_any_kind_of_bad_input(project: Project, tmp_path: Path) -> None:
    project.seed("a.md", "---\n" + "a: &x [1]\nb: *x\n" + "---\nB.\n")
    project.seed("b.md", "---\n[unclosed\n---\nB.\n")
    project.seed("c.md", "---\n" + "[" * 3000 + "\n---\nB.\n")
    project.seed("d.txt", bytes(range(256)))
    project.seed("e.txt", "")
    project.seed("f.md", "---\ntitle: x\ndate: 2025-02-19\nid: 3\ntags: {a: 1}\n---\n")
    (project.seeds / "g.txt").symlink_to(tmp_path / "nowhere")
    os.mkfifo(project.seeds / "h.txt")
    result = project.cli("check")
    assert result.code == 1
    assert "Traceback" not in result.out + result.err
    assert result.err == ""
    lines = result.out.splitlines()
    assert lines[-1] == "8 files checked, 0 valid, 8 rejected"
    assert len({line.split(":")[0] for line in lines[:-1]}) == 8


def test_missing_seeds_folder(project: Project) -> None:
    project.seeds.rmdir()
    result = project.cli("check")
    assert result.code == 1
    assert result.out == ""
    assert result.err == (
        f"Error: {project.seeds}: the seeds folder does not exist "
        "(check paths.seeds in the configuration, or mount the share it names)\n"
    )


def test_real_process_entry_point(project: Project) -> None:
    """`python -m publisher` in a subprocess: the same output and exit status."""
    good(project)
    project.seed("bad.txt", b"\xff")
    proc = subprocess.run(
        [sys.executable, "-m", "publisher", "--config", str(project.config_path), "check"],
        capture_output=True,
        text=True,
        env={**os.environ, "PUBLISHER_NOW": NOW.isoformat()},
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == [
        "seeds/bad.txt: encoding: not UTF-8: invalid byte 0xff at byte offset 0",
        "3 files checked, 2 valid, 1 rejected",
    ]
    assert proc.stderr == ""


# --- the bundled example site -------------------------------------------------------------------


def test_example_seeds_are_all_valid() -> None:
    """README's Quickstart runs `publisher build` on these: every one must be publishable."""
    proc = subprocess.run(
        [sys.executable, "-m", "publisher", "--config", str(REPO / "publisher.toml"), "-v", "check"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert all(": ok: " in line for line in lines[:-1]), lines
    assert 4 <= len(lines) - 1 <= 6
    assert lines[-1] == f"{len(lines) - 1} files checked, {len(lines) - 1} valid, 0 rejected"


def test_example_seeds_use_both_formats_and_markdown_with_tags_and_summary() -> None:
    from publisher.config_file import load_settings
    from publisher.ingest import ingest

    result = ingest(load_settings(REPO / "publisher.toml"))
    assert result.problems == []
    formats = {a.format for a in result.articles}
    assert formats == {"text", "markdown"}
    assert any(a.format == "markdown" and a.tags and a.author for a in result.articles)
    settings = load_settings(REPO / "publisher.toml")
    assert settings.site.base_url == "https://news.example.org/"
    assert settings.site.language == "en"
    assert settings.seeds_dir == REPO / "seeds"
