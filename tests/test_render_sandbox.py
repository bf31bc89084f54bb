"""Templates that come from the configuration render in Jinja2's sandbox (issue 11, point 8): the
digest subject and the files of the templates folder can format values, never run code."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from publisher.errors import OutputError
from publisher.render import Templates
from tests.conftest import NOW, Project

ESCAPES = [
    "{{ cycler.__init__.__globals__.os.popen('echo pwned-$((6*7))').read() }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ lipsum.__globals__['os'].popen('echo pwned-$((6*7))').read() }}",
    "{% set x = [] %}{{ x.append(1) }}",
]


@pytest.mark.parametrize("source", ESCAPES)
def test_the_subject_template_cannot_reach_python(project: Project, source: str) -> None:
    templates = Templates(project.settings())
    with pytest.raises(OutputError) as info:
        templates.render_string(source, count=1, site=project.settings().site)
    assert "pwned-42" not in str(info.value)


@pytest.mark.parametrize("source", ESCAPES[:3])
def test_a_template_file_from_the_templates_folder_cannot_reach_python(
    project: Project, tmp_path: Path, source: str
) -> None:
    folder = project.root / "templates"
    folder.mkdir()
    (folder / "evil.html").write_text(source, encoding="utf-8")
    with pytest.raises(OutputError):
        Templates(project.settings()).render("evil.html")


def test_the_digest_subject_from_the_config_runs_no_code(
    project: Project, capfd: pytest.CaptureFixture[str]
) -> None:
    """Through the whole command: the subject template's escape is an error, not `id`'s output."""
    project.configure(
        "[digest]\nsubject = \"{{ cycler.__init__.__globals__.os.popen('echo pwned-$((6*7))').read() }}\"\n"
    )
    project.seed("a.txt", "date 2025-02-01 The harbour reopened on Monday after the storm.\n")
    assert project.cli("build").code == 0
    result = project.cli("digest", "--preview", "--backfill", "5", now=NOW + timedelta(hours=1))
    captured = capfd.readouterr()
    assert "pwned-42" not in result.out + result.err + captured.out + captured.err
    assert result.code == 1
    assert result.err.startswith("Error: template ") and result.err.count("\n") == 1
