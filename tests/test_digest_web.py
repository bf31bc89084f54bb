"""The digest's web version and the digests' archive, served by a real `publisher serve` and read in
headless Chromium under the Content-Security-Policy it sends: styled as designed (a stylesheet,
no inline style), the preheader hidden, no CSP violation; index.html links the archive."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from tests.conftest import NOW, Project
from tests.support.browser import chromium, needs_chromium
from tests.support.digests import markdown
from tests.support.serving import serve_process

pytestmark = needs_chromium

LATER = NOW + timedelta(minutes=1)
WATCH_CSP = """
window.__csp = [];
document.addEventListener('securitypolicyviolation',
  (e) => window.__csp.push(e.violatedDirective + ' ' + (e.blockedURI || 'inline')));
"""


def _digest(project: Project) -> str:
    """Build three stories and send the first digest; the digest's id."""
    for n, title in enumerate(("Harbour reopens", "Council budget passes", "Library opens late")):
        project.seed(f"s{n}.md", markdown(title, f"2025-02-2{n}", f"{title}: the story, number {n}."))
    assert project.cli("build").code == 0
    assert project.cli("subscribers", "add", "reader@example.org").code == 0
    sent = project.cli("digest", "--send", "--backfill", "3", now=LATER)
    assert sent.code == 0, sent.err
    [page] = [p for p in (project.feeds / "digests").glob("d-*.html")]
    return page.stem


def _listen(page: Any, problems: list[str]) -> None:
    """Console errors (CSP violations among them) and failed responses go into `problems`."""

    def console(msg: Any) -> None:
        if msg.type == "error":
            problems.append(msg.text)

    def response(resp: Any) -> None:
        if resp.status >= 400 and not resp.url.endswith("/favicon.ico"):
            problems.append(f"{resp.status} {resp.url}")

    page.on("console", console)
    page.on("response", response)


def _open(page: Any, url: str, problems: list[str]) -> None:
    response = page.goto(url)
    assert response is not None and response.status == 200, url
    assert "style-src 'self'" in (response.headers.get("content-security-policy") or "")
    page.wait_for_load_state("load")
    problems[:] = [p for p in problems if not p.startswith("Failed to load resource")]  # see responses
    problems.extend(f"{url}: {v}" for v in page.evaluate("window.__csp"))


def test_web_version_and_archive_look_as_designed_under_the_csp(project: Project, tmp_path: Path) -> None:
    digest_id = _digest(project)
    with serve_process(project.config_path, tmp_path / "serve.log", now=NOW) as base, chromium() as browser:
        for scheme in ("light", "dark"):
            page = browser.new_page(color_scheme=scheme, viewport={"width": 900, "height": 800})
            page.add_init_script(WATCH_CSP)
            problems: list[str] = []
            _listen(page, problems)

            _open(page, f"{base}digests/{digest_id}.html", problems)
            assert not page.locator(".preheader").is_visible()
            assert page.locator(".title a").first.is_visible()
            styles = page.evaluate(
                "(() => { const m = getComputedStyle(document.querySelector('.main'));"
                " const t = getComputedStyle(document.querySelector('.title'));"
                " return [m.maxWidth, m.backgroundColor, t.fontSize]; })()"
            )
            card = "rgb(255, 255, 255)" if scheme == "light" else "rgb(29, 30, 32)"
            assert styles == ["600px", card, "20px"], (scheme, styles)
            assert page.locator("link[rel=canonical]").get_attribute("href") == (
                f"https://news.example.org/digests/{digest_id}.html"
            )

            _open(page, f"{base}digests/index.html", problems)
            assert page.evaluate("getComputedStyle(document.body).maxWidth") == "640px"
            assert page.locator(f"a[href$='{digest_id}.html']").count() == 1
            assert problems == [], problems
            page.close()

        # index.html (built by `publisher build`) links the archive.
        page = browser.new_page()
        page.goto(base)
        assert page.locator("a[href='digests/index.html']").count() == 1
        page.close()


def test_archive_exists_from_the_first_build(project: Project) -> None:
    """index.html links digests/index.html, so the build writes it (and its stylesheet) at once."""
    project.seed("one.md", markdown("Harbour reopens", "2025-02-20"))
    assert project.cli("build").code == 0
    index = (project.feeds / "digests" / "index.html").read_text(encoding="utf-8")
    assert "No digest has been sent yet." in index
    assert 'href="digest.css"' in index and "<style" not in index and "style=" not in index
    css = (project.feeds / "digests" / "digest.css").read_text(encoding="utf-8")
    assert ".preheader" in css and "prefers-color-scheme: dark" in css and ".archive" in css
    assert 'href="digests/index.html"' in (project.feeds / "index.html").read_text(encoding="utf-8")


def test_web_version_has_no_style_attribute_or_element(project: Project) -> None:
    digest_id = _digest(project)
    web = (project.feeds / "digests" / f"{digest_id}.html").read_text(encoding="utf-8")
    assert "<style" not in web and "style=" not in web
    assert '<link rel="stylesheet" href="digest.css">' in web
