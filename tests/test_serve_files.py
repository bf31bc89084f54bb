"""`publisher serve`, static half: feeds/ over HTTP with the right types, validators, conditional
requests (RFC 9110), gzip, HEAD, cache headers, and no way out of feeds/."""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator
from email.utils import formatdate

import pytest

from publisher.clock import FixedClock
from publisher.server import create_app
from publisher.server.conditional import accepts_gzip
from publisher.server.static import safe_segments
from tests.conftest import BASE_CONFIG, NOW, Project
from tests.support.serving import FILES, TestClient, client, raw_get, tree, write_feeds

IDENTITY = {"Accept-Encoding": "identity"}
GZIP = {"Accept-Encoding": "gzip"}


@pytest.fixture
def site(project: Project) -> Project:
    project.configure("[serve]\ncache_max_age = 120\n")
    write_feeds(project.feeds)
    return project


@pytest.fixture
def http(site: Project) -> Iterator[TestClient]:
    with client(site.settings(), FixedClock(NOW)) as c:
        yield c


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/atom.xml", "application/atom+xml; charset=utf-8"),
        ("/archive/1.xml", "application/atom+xml; charset=utf-8"),
        ("/rss.xml", "application/rss+xml; charset=utf-8"),
        ("/feed.json", "application/feed+json"),
        ("/data.json", "application/json"),
        ("/index.html", "text/html; charset=utf-8"),
        ("/style.css", "text/css; charset=utf-8"),
        ("/atom.xsl", "text/xsl; charset=utf-8"),
        ("/logo.png", "image/png"),
        ("/notes.bin", "application/octet-stream"),
    ],
)
def test_content_types(http: TestClient, path: str, kind: str) -> None:
    """Each kind of file goes out with its media type, and the bytes are the file's."""
    r = http.get(path, headers=IDENTITY)
    assert r.status_code == 200
    assert r.headers["content-type"] == kind
    expected = FILES[path.lstrip("/")]
    assert r.content == (expected.encode() if isinstance(expected, str) else expected)
    assert r.headers["x-content-type-options"] == "nosniff"


def test_root_and_folders_serve_index_html(http: TestClient, site: Project) -> None:
    """`/` is index.html; a folder with its slash is its index.html; without it, a relative 301."""
    assert http.get("/").text == FILES["index.html"]
    assert http.get("/articles/").text == FILES["articles/index.html"]
    r = http.get("/articles", follow_redirects=False)
    assert r.status_code == 301
    assert r.headers["location"] == "articles/"
    (site.feeds / "empty").mkdir()
    assert http.get("/empty/").status_code == 404


def test_validators_and_cache_headers(http: TestClient, site: Project) -> None:
    """A strong ETag (quoted content hash), Last-Modified from the file, Cache-Control from settings."""
    r = http.get("/atom.xml", headers=IDENTITY)
    etag = r.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"') and not etag.startswith("W/")
    assert r.headers["last-modified"] == formatdate(
        int((site.feeds / "atom.xml").stat().st_mtime), usegmt=True
    )
    assert r.headers["cache-control"] == "public, max-age=120"
    # The same bytes under another name have the same ETag: it is the content's, not the path's.
    assert http.get("/archive/1.xml", headers=IDENTITY).headers["etag"] == etag


def test_if_none_match(http: TestClient) -> None:
    """304 with the validators and no body for a matching tag, a list, a weak form or `*`; else 200."""
    etag = http.get("/atom.xml", headers=IDENTITY).headers["etag"]
    for value in (etag, f'"nope", {etag}', f"W/{etag}", "*"):
        r = http.get("/atom.xml", headers={**IDENTITY, "If-None-Match": value})
        assert r.status_code == 304, value
        assert r.content == b""
        assert r.headers["etag"] == etag
        assert r.headers["cache-control"] == "public, max-age=120"
        assert "content-length" not in r.headers or r.headers["content-length"] == "0"
    assert http.get("/atom.xml", headers={**IDENTITY, "If-None-Match": '"other"'}).status_code == 200


def test_if_modified_since_and_precedence(http: TestClient, site: Project) -> None:
    """If-Modified-Since: 304 at or after the file's time, 200 before it or when the date is bad;
    ignored whenever If-None-Match is present (RFC 9110 13.2.2)."""
    mtime = int((site.feeds / "atom.xml").stat().st_mtime)
    at, before = formatdate(mtime, usegmt=True), formatdate(mtime - 60, usegmt=True)
    later = formatdate(mtime + 3600, usegmt=True)

    def status(**headers: str) -> int:
        return http.get("/atom.xml", headers={**IDENTITY, **headers}).status_code

    assert status(**{"If-Modified-Since": at}) == 304
    assert status(**{"If-Modified-Since": later}) == 304
    assert status(**{"If-Modified-Since": before}) == 200
    assert status(**{"If-Modified-Since": "yesterday"}) == 200
    assert status(**{"If-None-Match": '"other"', "If-Modified-Since": later}) == 200
    etag = http.get("/atom.xml", headers=IDENTITY).headers["etag"]
    assert status(**{"If-None-Match": etag, "If-Modified-Since": before}) == 304


def test_if_match_and_if_unmodified_since(http: TestClient, site: Project) -> None:
    """The other two preconditions answer 412 when they fail, 200 when they hold."""
    etag = http.get("/atom.xml", headers=IDENTITY).headers["etag"]
    mtime = int((site.feeds / "atom.xml").stat().st_mtime)
    get = http.get
    assert get("/atom.xml", headers={**IDENTITY, "If-Match": etag}).status_code == 200
    assert get("/atom.xml", headers={**IDENTITY, "If-Match": '"other"'}).status_code == 412
    assert get("/atom.xml", headers={**IDENTITY, "If-Match": f"W/{etag}"}).status_code == 412
    old = formatdate(mtime - 60, usegmt=True)
    assert get("/atom.xml", headers={**IDENTITY, "If-Unmodified-Since": old}).status_code == 412
    now = formatdate(mtime, usegmt=True)
    assert get("/atom.xml", headers={**IDENTITY, "If-Unmodified-Since": now}).status_code == 200


def test_gzip_has_its_own_etag(http: TestClient) -> None:
    """gzip when accepted: Content-Encoding, Vary, a distinct strong ETag; each tag revalidates only
    its own encoding; q=0 refuses gzip."""
    with http.stream("GET", "/atom.xml", headers=GZIP) as r:
        raw = b"".join(r.iter_raw())
        assert r.headers["content-encoding"] == "gzip"
        assert r.headers["vary"] == "Accept-Encoding"
        gz_tag = r.headers["etag"]
        assert int(r.headers["content-length"]) == len(raw)
    assert gzip.decompress(raw) == FILES["atom.xml"].encode()  # type: ignore[union-attr]
    plain = http.get("/atom.xml", headers=IDENTITY)
    assert "content-encoding" not in plain.headers
    assert plain.headers["vary"] == "Accept-Encoding"
    assert plain.headers["etag"] != gz_tag
    assert http.get("/atom.xml", headers={**GZIP, "If-None-Match": gz_tag}).status_code == 304
    assert http.get("/atom.xml", headers={**IDENTITY, "If-None-Match": gz_tag}).status_code == 200
    assert http.get("/atom.xml", headers={**GZIP, "If-None-Match": plain.headers["etag"]}).status_code == 200
    refused = http.get("/atom.xml", headers={"Accept-Encoding": "gzip;q=0, identity"})
    assert "content-encoding" not in refused.headers
    # Too small to gain from gzip, and images are not compressed at all.
    assert "content-encoding" not in http.get("/style.css", headers=GZIP).headers
    assert "content-encoding" not in http.get("/logo.png", headers=GZIP).headers


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, False),
        ("", False),
        ("gzip", True),
        ("deflate, gzip;q=0.5", True),
        ("GZIP", True),
        ("gzip;q=0", False),
        ("gzip; q=0.0", False),
        ("*", True),
        ("*;q=0", False),
        ("br, *;q=0.1", True),
        ("gzip;q=0, *", False),
        ("identity", False),
    ],
)
def test_accept_encoding_parsing(header: str | None, expected: bool) -> None:
    assert accepts_gzip(header) is expected


def test_head_matches_get(http: TestClient) -> None:
    """HEAD: GET's status and headers (Content-Length included), no body; conditional too."""
    for headers in (IDENTITY, GZIP):
        got, head = http.get("/atom.xml", headers=headers), http.head("/atom.xml", headers=headers)
        assert head.status_code == 200
        assert head.content == b""
        for name in ("content-type", "content-length", "etag", "last-modified", "cache-control"):
            assert head.headers.get(name) == got.headers.get(name), name
    etag = http.head("/atom.xml", headers=IDENTITY).headers["etag"]
    assert http.head("/atom.xml", headers={**IDENTITY, "If-None-Match": etag}).status_code == 304


def test_a_changed_file_gets_a_new_etag(http: TestClient, site: Project) -> None:
    """The cache follows the file: a rewrite (new inode, new mtime) is served at once, new tag."""
    first = http.get("/atom.xml", headers=IDENTITY).headers["etag"]
    target = site.feeds / "atom.xml"
    tmp = target.with_name(".atom.xml.tmp")
    tmp.write_text(FILES["atom.xml"].replace("Gazette", "Herald"), encoding="utf-8")  # type: ignore[union-attr]
    stat = target.stat()
    os.replace(tmp, target)
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
    r = http.get("/atom.xml", headers={**IDENTITY, "If-None-Match": first})
    assert r.status_code == 200
    assert "Herald" in r.text
    assert r.headers["etag"] != first


def test_other_methods_are_refused(http: TestClient) -> None:
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        r = http.request(method, "/atom.xml")
        assert r.status_code == 405, method
        assert "GET" in r.headers["allow"]


def test_missing_and_hidden_files_are_404(http: TestClient, site: Project) -> None:
    (site.feeds / ".atom.xml.tmp").write_text("half-written", encoding="utf-8")
    for path in ("/nope.xml", "/.atom.xml.tmp", "/articles/.hidden", "/atom.xml/", "/articles/nope.html"):
        r = http.get(path)
        assert r.status_code == 404, path
        assert "feeds" not in r.text and str(site.root) not in r.text


@pytest.mark.parametrize(
    "raw",
    [
        b"/../publisher.toml",
        b"/%2e%2e/publisher.toml",
        b"/%2E%2E/publisher.toml",
        b"/%2e%2e%2fpublisher.toml",
        b"/articles/../../publisher.toml",
        b"/articles/%2e%2e/%2e%2e/publisher.toml",
        b"/..%5cpublisher.toml",
        b"//etc/passwd",
        b"/%2fetc%2fpasswd",
        b"/atom.xml%00.html",
        b"/%00",
        b"/./atom.xml",
        b"/seeds/",
        b"/link-out",
        b"/dir-out/publisher.toml",
    ],
)
def test_no_path_escapes_feeds(site: Project, raw: bytes) -> None:
    """Dot segments (plain or percent-encoded), encoded slashes, backslashes, NUL, absolute paths
    and symlinks pointing outside feeds/ all get the same 404; the secret stays unread."""
    (site.feeds / "link-out").symlink_to(site.config_path)
    (site.feeds / "dir-out").symlink_to(site.root, target_is_directory=True)
    app = create_app(site.settings(), FixedClock(NOW))
    status, headers, body = raw_get(app, raw)
    assert status == 404
    assert body == raw_get(app, b"/no-such-file")[2]
    assert headers["content-security-policy"].startswith("default-src 'none'")


def test_symlinks_inside_feeds_are_followed(site: Project) -> None:
    (site.feeds / "latest.xml").symlink_to(site.feeds / "atom.xml")
    app = create_app(site.settings(), FixedClock(NOW))
    status, headers, _ = raw_get(app, b"/latest.xml")
    assert status == 200
    assert headers["content-type"] == "application/atom+xml; charset=utf-8"


@pytest.mark.parametrize(
    ("path", "ok"),
    [
        ("/", True),
        ("/a/b.html", True),
        ("/a/", True),
        ("/a//b", False),
        ("/../x", False),
        ("/.git/config", False),
        ("/a\\b", False),
        ("/a\x00b", False),
        ("/a\x7fb", False),
        ("relative", False),
    ],
)
def test_safe_segments(path: str, ok: bool) -> None:
    assert (safe_segments(path) is not None) is ok


def test_long_urls_get_414(http: TestClient) -> None:
    assert http.get("/" + "a" * 3000).status_code == 414


def test_serving_writes_nothing(site: Project, http: TestClient) -> None:
    """Reading every file, conditionally and not, leaves feeds/ and seeds/ exactly as they were."""
    site.seed("one.md", "date 2025-01-01 Hello.\n")
    before = (tree(site.feeds), tree(site.seeds))
    for name in FILES:
        http.get(f"/{name}", headers=GZIP)
        http.head(f"/{name}")
    assert (tree(site.feeds), tree(site.seeds)) == before


def test_large_files_stream_with_validators(site: Project, http: TestClient) -> None:
    """Files too big for the cache are streamed from disk, still with an ETag and 304."""
    big = b"x" * (5 * 1024 * 1024)
    (site.feeds / "big.txt").write_bytes(big)
    r = http.get("/big.txt", headers=IDENTITY)
    assert r.status_code == 200 and r.content == big
    assert r.headers["content-type"].startswith("text/plain")
    etag = r.headers["etag"]
    assert http.get("/big.txt", headers={**IDENTITY, "If-None-Match": etag}).status_code == 304


def test_feed_documents_get_a_policy_that_lets_atom_xsl_work(http: TestClient) -> None:
    """atom.xml and rss.xml may load a same-origin XSLT (script-src 'self') whose output has an
    inline <style>; HTML pages keep the strict policy: no script at all, no inline style."""
    feed_csp = http.get("/atom.xml").headers["content-security-policy"]
    assert "script-src 'self'" in feed_csp and "style-src 'self' 'unsafe-inline'" in feed_csp
    assert "default-src 'none'" in feed_csp and "frame-ancestors 'none'" in feed_csp
    assert http.get("/rss.xml").headers["content-security-policy"] == feed_csp
    page_csp = http.get("/index.html").headers["content-security-policy"]
    assert "script-src" not in page_csp and "unsafe-inline" not in page_csp
    assert page_csp.startswith("default-src 'none'; style-src 'self';")


def test_a_site_under_a_path(project: Project) -> None:
    """With base_url https://…/news/, everything lives under /news/ and nothing outside it."""
    project.config_path.write_text(
        BASE_CONFIG.replace("https://news.example.org/", "https://news.example.org/news/"), encoding="utf-8"
    )
    write_feeds(project.feeds)
    with client(project.settings(), FixedClock(NOW)) as http:
        assert http.get("/news/atom.xml").headers["content-type"] == "application/atom+xml; charset=utf-8"
        assert http.get("/news/").text == FILES["index.html"]
        assert http.get("/atom.xml").status_code == 404
        assert http.get("/").status_code == 404
        form = http.get("/news/subscribe")
        assert 'action="/news/subscribe"' in form.text and 'href="/news/subscribe.css"' in form.text
        r = http.post(
            "/news/subscribe", data={"email": "a@example.org"}, headers={"Origin": "https://news.example.org"}
        )
        assert r.status_code == 200
        assert http.get("/subscribe").status_code == 404


@pytest.mark.parametrize(
    ("base", "bare", "location"), [("/news/", "/news", "news/"), ("/a/b/", "/a/b", "b/")]
)
def test_the_site_path_without_its_slash_is_redirected(
    project: Project, base: str, bare: str, location: str
) -> None:
    """GET /news was a 404 for a site at https://…/news/; now a 301 to the relative news/, as for
    any folder (relative, so it can never point at another host)."""
    project.config_path.write_text(
        BASE_CONFIG.replace("https://news.example.org/", f"https://news.example.org{base}"), encoding="utf-8"
    )
    write_feeds(project.feeds)
    with client(project.settings(), FixedClock(NOW)) as http:
        for method in ("GET", "HEAD"):
            r = http.request(method, bare, follow_redirects=False)
            assert (r.status_code, r.headers["location"]) == (301, location)
        assert http.get(bare).text == FILES["index.html"]  # followed: the site's index
        assert http.get(bare + "x", follow_redirects=False).status_code == 404
        assert http.get(bare.rsplit("/", 1)[0] + "/", follow_redirects=False).status_code == 404
