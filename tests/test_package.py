"""The package as a user gets it: a built wheel, installed (not editable) into a fresh virtual
environment, starts a site in an empty folder and builds it, with no file of this repository in reach.

Offline and quick: the wheel is built without build isolation (the test environment has the build
backend), installed with `--no-deps --no-index`, and the new environment finds the dependencies in
this environment's site-packages through a path file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import feedparser
import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.package


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, f"{argv} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from a copy of the sources that pyproject.toml packages (nothing else)."""
    src = tmp_path_factory.mktemp("src")
    shutil.copy2(ROOT / "pyproject.toml", src)
    shutil.copy2(ROOT / "README.md", src)
    shutil.copytree(ROOT / "publisher", src / "publisher", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("dist")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "-w",
            str(out),
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            str(src),
        ],
        cwd=src,
        env=env,
    )
    (built,) = out.glob("publisher-*.whl")
    return built


def test_the_wheel_ships_the_bundled_templates(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    bundled = {p.name for p in (ROOT / "publisher" / "templates").iterdir() if p.is_file()}
    assert bundled and {f"publisher/templates/{name}" for name in bundled} <= names
    assert "publisher/py.typed" in names
    assert not any(n.startswith(("tests/", "seeds/", "templates/", "bench/")) for n in names)


def test_the_installed_wheel_starts_and_builds_a_site_in_an_empty_folder(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    outside = ("PIP_", "PYTHON", "PUBLISHER", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if not k.startswith(outside)}
    env["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        cwd=tmp_path,
        env=env,
    )
    # The dependencies: this environment's site-packages, after the new one's own (a plain path line
    # runs no .pth file there, so this checkout's editable install stays out of reach).
    site_packages = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    (site_packages / "zz_test_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")

    empty = tmp_path / "empty"
    empty.mkdir()
    where = _run([str(python), "-c", "import publisher; print(publisher.__file__)"], cwd=empty, env=env)
    assert Path(where.stdout.strip()).is_relative_to(site_packages), where.stdout

    script = str(env_dir / "bin" / "publisher")
    flags = ["--title", "Wheel Gazette", "--base-url", "https://wheel.example.org/", "--author", "Desk"]
    flags += ["--language", "en", "--timezone", "UTC", "--from-name", "Wheel Gazette"]
    flags += ["--from-address", "news@wheel.example.org", "--postal-address", "1 Wheel Street"]
    created = _run([script, "init", "site", *flags], cwd=empty, env=env)
    assert "Created a site in site" in created.stdout
    site = empty / "site"
    built = _run([script, "build", "--strict"], cwd=site, env=env)
    assert built.stdout.startswith("2 published"), built.stdout
    assert built.stderr == ""

    feeds = site / "feeds"
    assert {"atom.xml", "rss.xml", "feed.json", "index.html", "style.css", "atom.xsl"} <= {
        p.name for p in feeds.iterdir()
    }
    for name in ("atom.xml", "rss.xml"):
        parsed = feedparser.parse((feeds / name).read_bytes())
        assert not parsed.bozo and len(parsed.entries) == 2, name
    assert len(json.loads((feeds / "feed.json").read_bytes())["items"]) == 2
    assert (feeds / "style.css").read_bytes() == (ROOT / "publisher" / "templates" / "style.css").read_bytes()
    assert "Wheel Gazette" in (feeds / "index.html").read_text(encoding="utf-8")
    checked = _run([script, "check"], cwd=site, env=env)
    assert checked.stdout == "2 files checked, 2 valid, 0 rejected\n"
