"""tools/screenshots.py, which makes the digest screenshots README.md and docs/digest.md show, still
works: four PNGs, the dark ones darker than the light ones."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.browser import CHROMIUM, needs_chromium

TOOL = Path(__file__).resolve().parent.parent / "tools" / "screenshots.py"


@needs_chromium
def test_screenshots_of_the_example_digest(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(TOOL), "--out", str(tmp_path), "--chromium", str(CHROMIUM)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "digest-desktop-dark.png",
        "digest-desktop-light.png",
        "digest-phone-dark.png",
        "digest-phone-light.png",
    ]
    for path in tmp_path.iterdir():
        assert path.read_bytes().startswith(b"\x89PNG") and path.stat().st_size < 200_000
