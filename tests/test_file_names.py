"""A seed file's name is shown escaped wherever a message names it: a name holding a line break or an
escape sequence can forge no output line and drive no terminal; ordinary names (é included) print as
they are."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest

from publisher.models import Problem, escape_name
from tests.conftest import Project
from tests.test_daemon import Daemon, story
from tests.test_daemon import daemons as daemons  # the fixture

# Any control character, line separator or bidi override left in output would be the bug.
RAW = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("café.txt", "café.txt"),
        ("Ćosić 2025.md", "Ćosić 2025.md"),
        ("a\nb.txt", "a\\nb.txt"),
        ("x\x1b[31m.md", "x\\x1b[31m.md"),
        ("tab\there\r.txt", "tab\\there\\r.txt"),
        ("caf\udce9.txt", "caf\\xe9.txt"),  # the byte 0xE9 of a Latin-1 name, as os.fsdecode keeps it
        ("evil\u202etxt.md", "evil\\u202etxt.md"),
        ("del\x7f\x85.md", "del\\x7f\\x85.md"),
    ],
)
def test_escape_name(name: str, shown: str) -> None:
    assert escape_name(name) == shown
    assert escape_name(shown) == shown  # escaping twice changes nothing


def test_a_problem_is_one_printable_line() -> None:
    problem = Problem("seeds/a\nb.md", "x\nERROR: forged", "bad \x1b[2J")
    assert str(problem) == "seeds/a\\nb.md: x\\nERROR: forged: bad \\x1b[2J"


def seed_hostile_names(project: Project) -> None:
    project.seed("café.md", "no front matter here\n")
    project.seed("a\nERROR: forged.txt", "not a date\n")
    project.seed("x\x1b[31m.md", "no front matter\n")
    project.seed("good.txt", story("The good story"))


EXPECTED = [
    "seeds/a\\nERROR: forged.txt: date: missing",
    "seeds/café.md: front matter: missing",
    "seeds/x\\x1b[31m.md: front matter: missing",
]


def assert_escaped(output: str) -> None:
    assert not RAW.search(output), output
    for line in output.splitlines():
        assert not line.lstrip().startswith("ERROR"), output
    for expected in EXPECTED:
        assert expected in output, output


def test_check_build_and_status_escape_names(project: Project) -> None:
    seed_hostile_names(project)
    check = project.cli("check")
    assert check.code == 1
    assert_escaped(check.out + check.err)
    assert "4 files checked, 1 valid, 3 rejected" in check.out
    build = project.cli("build")
    assert build.code == 0
    assert_escaped(build.out + build.err)
    status = project.cli("status")
    assert_escaped(status.out + status.err)
    as_json = project.cli("status", "--json")
    rejected = json.loads(as_json.out)["rejected"]
    assert_escaped("\n".join(rejected))


def test_the_daemon_log_escapes_names(project: Project, daemons: Callable[..., Daemon]) -> None:
    project.configure("[daemon]\nsettle = 0.1\n")
    project.seed("first.txt", story("The first story"))
    daemon = daemons("-vv")  # debug lines too: each changed path is logged
    daemon.wait_log("built:")
    seed_hostile_names(project)
    daemon.wait_log("3 rejected")
    daemon.wait_log("x\\x1b[31m.md")
    assert daemon.stop() == 0
    assert_escaped(daemon.log)
