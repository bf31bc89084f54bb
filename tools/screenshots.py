"""Screenshots of the email digest as subscribers see it, made from the bundled example seeds.

    python tools/screenshots.py [--out docs/images] [--chromium /usr/bin/chromium]

Builds the example site (seeds/ and publisher.toml) in a temporary folder at a fixed date,
renders the first digest with `publisher digest --preview --backfill 5` (the HTML part of the mail,
CSS inlined, as it is sent), and photographs it in headless Chromium on a phone (375 px) and a
desktop (700 px), each in the light and the dark colour scheme:
digest-phone-light.png, digest-phone-dark.png, digest-desktop-light.png, digest-desktop-dark.png.
README.md and docs/digest.md show them; run this again after changing the digest's templates.
Needs Playwright (installed with the test extras) and Chromium.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import ViewportSize, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
BUILT = "2025-02-23T08:00:00+00:00"  # the day after the newest example article
PREVIEWED = "2025-02-23T09:00:00+00:00"
POSTAL = 'postal_address = "Northfield Evening Post, 12 Harbour Road, Northfield NF1 2AB"'
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWS: dict[str, ViewportSize] = {
    "phone": {"width": 375, "height": 760},
    "desktop": {"width": 700, "height": 900},
}


def render_digest(work: Path) -> str:
    """The example site's first digest, HTML part, as `publisher digest --preview` renders it."""
    shutil.copytree(ROOT / "seeds", work / "seeds")
    config = (ROOT / "publisher.toml").read_text(encoding="utf-8")
    (work / "publisher.toml").write_text(f"{config}\n[digest]\n{POSTAL}\n", encoding="utf-8")
    for now, args in ((BUILT, ["build"]), (PREVIEWED, ["digest", "--preview", "--backfill", "5"])):
        command = [sys.executable, "-m", "publisher", "--config", str(work / "publisher.toml"), *args]
        env = {**os.environ, "PUBLISHER_NOW": now}
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            raise SystemExit(f"publisher {' '.join(args)} failed: {done.stderr.strip()}")
    return (work / "state" / "preview" / "next-digest.html").read_text(encoding="utf-8")


def photograph(html: str, out: Path, chromium: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    made = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=FLAGS)
        try:
            for view, size in VIEWS.items():
                for scheme in ("light", "dark"):
                    page = browser.new_page(viewport=size, color_scheme=scheme, device_scale_factor=1)
                    page.set_content(html)
                    target = out / f"digest-{view}-{scheme}.png"
                    page.screenshot(path=str(target))
                    page.close()
                    made.append(target)
        finally:
            browser.close()
    return made


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images", help="folder for the PNGs")
    parser.add_argument("--chromium", type=Path, default=Path("/usr/bin/chromium"), help="Chromium binary")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="publisher-screens-") as tmp:
        html = render_digest(Path(tmp))
    for path in photograph(html, args.out, args.chromium):
        print(f"{path} ({path.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
