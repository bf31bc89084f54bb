"""The shape of the code: each third-party library has one home, and the CLI and README agree."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "publisher"

# Library -> the modules (paths relative to publisher/, a trailing "/" meaning a whole package)
# allowed to import it.
HOMES: dict[str, tuple[str, ...]] = {
    "feedgen": ("build/feed.py",),
    "jinja2": ("render.py",),
    "markupsafe": ("render.py",),
    "yaml": ("ingest/frontmatter.py",),
    "markdown_it": ("ingest/markdown.py",),
    "css_inline": ("digest.py", "digest/"),
    "apscheduler": ("daemon/",),
    "watchfiles": ("daemon/watch.py",),
    "starlette": ("server/",),
    "hypercorn": ("server/",),
    "uvloop": ("server/runner.py",),
    "smtplib": ("delivery/mailer.py",),
    "dkim": ("delivery/dkim.py",),
    "cryptography": ("delivery/dkim.py",),
    "nacl": ("delivery/dkim.py",),
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def _allowed(rel: str, homes: tuple[str, ...]) -> bool:
    return any(rel == home or (home.endswith("/") and rel.startswith(home)) for home in homes)


def test_each_library_is_imported_only_in_its_home() -> None:
    """feedgen only in the feed module, Jinja2 only in render, and so on (STYLE.md, point 2)."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        for library in _imports(path) & HOMES.keys():
            if not _allowed(rel, HOMES[library]):
                offenders.append(f"{rel} imports {library}")
    assert offenders == []


def test_modules_stay_small() -> None:
    """Modules under ~400 lines: a bigger one wants splitting along a noun."""
    big = [
        f"{p.relative_to(ROOT)} ({n} lines)"
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 450
    ]
    assert big == []


def test_ci_runs_the_readme_test_command() -> None:
    """CI must call the very test command README's Quickstart gives."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    quickstart = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```(?:sh|bash|console)?\n(.*?)```", quickstart, re.S)
    assert block is not None, "Quickstart has no command block"
    commands = [line for line in block.group(1).splitlines() if line.strip()]
    assert len(commands) == 2, "Quickstart holds exactly two commands"
    assert "publisher build" in commands[0]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert commands[1] in ci.splitlines()
