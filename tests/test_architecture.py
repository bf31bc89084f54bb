"""The shape of the code and the project: the import-linter contracts in pyproject.toml (layers, one
home per library, no cycles) hold, modules stay small, and the README, the CLI and CI agree."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from publisher.cli.main import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "publisher"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", str(cwd / "pyproject.toml"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_import_contracts_hold() -> None:
    """Layers, one home per third-party library, no import cycles: `lint-imports` keeps every
    contract in pyproject.toml (its report names the import that broke one)."""
    proc = _lint_imports(ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    assert f"Contracts: {len(contracts)} kept, 0 broken." in proc.stdout


@pytest.mark.parametrize(
    ("module", "planted", "contract"),
    [
        ("store/db.py", "from publisher.build import publish", "cli, daemon and server on top"),
        ("digest/select.py", "import publisher.delivery.engine", "cli, daemon and server on top"),
        ("ingest/text.py", "import smtplib", "Only delivery/transports/smtp.py speaks SMTP"),
        ("pipeline.py", "import feedgen", "feedgen and lxml live in build/feed.py"),
        ("config.py", "import publisher.build.pages", "cli, daemon and server on top"),
    ],
)
def test_a_planted_violation_breaks_its_contract(
    tmp_path: Path, module: str, planted: str, contract: str
) -> None:
    """The contracts are live: a copy of the package with one forbidden import fails them."""
    shutil.copy2(ROOT / "pyproject.toml", tmp_path)
    copy = tmp_path / "publisher"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / module
    target.write_text(target.read_text(encoding="utf-8") + f"\n{planted}  # noqa\n", encoding="utf-8")
    proc = _lint_imports(tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"{contract}" in proc.stdout and "BROKEN" in proc.stdout


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


def test_the_readme_command_table_lists_every_command() -> None:
    table = (ROOT / "README.md").read_text(encoding="utf-8").split("## Commands", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `publisher (\w+)", table, re.M))
    assert listed == set(COMMANDS)


def test_every_linked_doc_exists() -> None:
    """Every docs/….md that the README, the docs, the example settings file, contrib/ or the code
    names is in the repository (the example publisher.toml once named one that was not)."""
    sources = [ROOT / "README.md", ROOT / "publisher.toml", *ROOT.glob("docs/*.md"), *PACKAGE.rglob("*.py")]
    sources += (
        [p for p in (ROOT / "contrib").rglob("*") if p.is_file()] if (ROOT / "contrib").is_dir() else []
    )
    missing = []
    for source in sources:
        text = source.read_text(encoding="utf-8", errors="replace")
        for name in re.findall(r"(?<![\w/.])(?:\.\./)?docs/([\w.-]+\.md)", text):
            if not (ROOT / "docs" / name).exists():
                missing.append(f"{source.relative_to(ROOT)} names docs/{name}")
        if source.parent == ROOT / "docs":
            for name in re.findall(r"\]\((?!https?:|#)([\w.-]+\.md)", text):
                if not (ROOT / "docs" / name).exists():
                    missing.append(f"{source.relative_to(ROOT)} links {name}")
    assert missing == []


def test_only_one_test_reads_outside_the_project() -> None:
    """The suite stands alone: only the one optional test may look at ../shared/."""
    readers = sorted(
        p.name
        for p in (ROOT / "tests").rglob("*.py")
        if re.search(r"""["']shared["']""", p.read_text(encoding="utf-8")) and p.name != Path(__file__).name
    )
    assert readers == ["test_ingest_formats.py"]
