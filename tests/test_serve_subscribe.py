"""`publisher serve`, subscriber half: double opt-in subscribing, confirming, RFC 8058 one-click
unsubscribing, CSRF, rate limits, bounded bodies and the no-enumeration rule."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest

from publisher import tokens
from publisher.clock import FixedClock
from publisher.server import create_app
from publisher.server.security import HEADERS
from publisher.store import db
from publisher.store import subscribers as store
from tests.conftest import NOW, Project
from tests.support.serving import TestClient, client, link_in, outbox, tree, write_feeds

SITE = "https://news.example.org"
SAME = {"Origin": SITE}


@pytest.fixture
def site(project: Project) -> Project:
    write_feeds(project.feeds)
    return project


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def http(site: Project, clock: FixedClock) -> Iterator[TestClient]:
    with client(site.settings(), clock) as c:
        yield c


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def status_of(site: Project, address: str) -> str | None:
    conn = db.connect(site.settings().db_path)
    try:
        found = store.by_email(conn, address)
        return None if found is None else found.status
    finally:
        conn.close()


def add_subscriber(site: Project, address: str, status: store.Status = "active") -> store.Subscriber:
    conn = db.connect(site.settings().db_path)
    try:
        return store.add(conn, address, "", NOW, status=status)[0]
    finally:
        conn.close()


def token_for(site: Project, sub: store.Subscriber, purpose: str, expires: timedelta | None = None) -> str:
    return tokens.make(
        site.settings(), sub.id, sub.token_secret, purpose, None if expires is None else NOW + expires
    )


def subscribe(http: TestClient, address: str) -> tuple[int, str]:
    page = http.get("/subscribe")
    r = http.post("/subscribe", data={"email": address, "csrf": csrf_of(page.text)}, headers=SAME)
    return r.status_code, r.text


# -- subscribing --------------------------------------------------------------------------------


def test_subscribe_page_has_a_form_with_a_csrf_token(http: TestClient) -> None:
    r = http.get("/subscribe")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.headers["cache-control"] == "no-store"
    assert '<form class="card" method="post" action="/subscribe">' in r.text
    cookie = r.headers["set-cookie"]
    assert "publisher_csrf=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Secure" in cookie  # base_url is https
    assert csrf_of(r.text).split(".")[0] == http.cookies["publisher_csrf"]


def test_security_headers(http: TestClient) -> None:
    r = http.get("/subscribe")
    csp = r.headers["content-security-policy"]
    for part in ("default-src 'none'", "style-src 'self'", "form-action 'self'", "frame-ancestors 'none'"):
        assert part in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "same-origin"
    assert r.headers["x-frame-options"] == "DENY"
    css = http.get("/subscribe.css")
    assert css.status_code == 200 and css.headers["content-type"] == "text/css; charset=utf-8"
    assert http.get("/subscribe.css", headers={"If-None-Match": css.headers["etag"]}).status_code == 304


def test_subscribing_sends_one_signed_expiring_confirmation(http: TestClient, site: Project) -> None:
    """A new address becomes pending and gets one message whose link names it, for confirming only."""
    code, text = subscribe(http, "Anna@Example.ORG")
    assert code == 200
    assert "Check your inbox" in text and "anna@example.org" in text
    assert status_of(site, "anna@example.org") == "pending"
    (message,) = outbox(site.state)
    assert message["To"] == "anna@example.org"
    assert message["From"] == "Test Gazette <news@news.example.org>"
    assert message["Subject"] == "Confirm your subscription to Test Gazette"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Message-ID"].endswith("@news.example.org>")
    link = link_in(message, "confirm")
    assert link.startswith("https://news.example.org/confirm/")
    token = link.rsplit("/", 1)[1]
    settings = site.settings()
    conn = db.connect(settings.db_path)
    try:
        sub = store.by_email(conn, "anna@example.org")
        assert sub is not None
        lookup = lambda i: store.token_secret(conn, i)  # noqa: E731
        assert tokens.verify(settings, token, "confirm", NOW, lookup) == sub.id
        with pytest.raises(tokens.TokenError):
            tokens.verify(settings, token, "unsubscribe", NOW, lookup)
        with pytest.raises(tokens.TokenError):
            tokens.verify(settings, token, "confirm", NOW + timedelta(hours=48, seconds=1), lookup)
    finally:
        conn.close()


def test_the_static_form_posts_without_a_token_from_the_same_origin(http: TestClient, site: Project) -> None:
    """index.html's form has no token; the browser's Origin header vouches for it."""
    r = http.post("/subscribe", data={"email": "ben@example.org"}, headers=SAME)
    assert r.status_code == 200
    assert status_of(site, "ben@example.org") == "pending"
    r = http.post(
        "/subscribe", data={"email": "cy@example.org"}, headers={"Origin": "https://news.example.org:443x"}
    )
    assert r.status_code == 403


@pytest.mark.parametrize(
    ("with_token", "headers"),
    [
        (False, {}),
        (False, {"Origin": "https://evil.example"}),
        (False, {"Origin": "null"}),
        (True, {"Origin": "https://evil.example"}),
        (True, {"Sec-Fetch-Site": "cross-site"}),
        (False, {"Origin": SITE, "Sec-Fetch-Site": "same-site"}),
    ],
)
def test_csrf_refusals(http: TestClient, site: Project, with_token: bool, headers: dict[str, str]) -> None:
    """No token and no same-origin Origin, or any cross-site sign, is a 403 and sends nothing."""
    data = {"email": "dee@example.org"}
    if with_token:
        data["csrf"] = csrf_of(http.get("/subscribe").text)
    r = http.post("/subscribe", data=data, headers=headers)
    assert r.status_code == 403
    assert "This form has expired" in r.text
    assert status_of(site, "dee@example.org") is None
    assert outbox(site.state) == []


def test_csrf_token_must_match_its_cookie_and_be_fresh(site: Project, clock: FixedClock) -> None:
    with client(site.settings(), clock) as first, client(site.settings(), clock) as second:
        token = csrf_of(first.get("/subscribe").text)
        second.get("/subscribe")  # a cookie of its own
        assert second.post("/subscribe", data={"email": "e@example.org", "csrf": token}).status_code == 403
        forged = token.rsplit(".", 1)[0] + ".AAAAAAAAAAAAAAAAAAAAAAAA"
        assert first.post("/subscribe", data={"email": "e@example.org", "csrf": forged}).status_code == 403
        clock.advance(timedelta(hours=3))
        assert first.post("/subscribe", data={"email": "e@example.org", "csrf": token}).status_code == 403
        fresh = csrf_of(first.get("/subscribe").text)
        assert first.post("/subscribe", data={"email": "e@example.org", "csrf": fresh}).status_code == 200


def test_a_bad_address_is_400_with_the_form_again(http: TestClient, site: Project) -> None:
    for bad in ("", "not-an-address", "a@b", "Anna <a@example.org>", "a@example.org\r\nBcc: x@example.org"):
        token = csrf_of(http.get("/subscribe").text)
        r = http.post("/subscribe", data={"email": bad, "csrf": token}, headers=SAME)
        assert r.status_code == 400, bad
        assert "Please give one email address" in r.text
        assert 'aria-invalid="true"' in r.text
    assert outbox(site.state) == []


def test_no_enumeration(site: Project, clock: FixedClock) -> None:
    """New, pending, active, unsubscribed and bounced addresses get byte-identical answers (the
    addresses have equal lengths, so even Content-Length agrees); only new, pending and
    unsubscribed ones are mailed."""
    known: dict[str, store.Status] = {
        "pend": "pending",
        "actv": "active",
        "gone": "unsubscribed",
        "bncd": "bounced",
    }
    for local, status in known.items():
        add_subscriber(site, f"{local}@example.org", status)
    answers = {}
    for local in ("newb", *known):
        with client(site.settings(), clock) as c:
            r = c.post("/subscribe", data={"email": f"{local}@example.org"}, headers=SAME)
            headers = {k: v for k, v in r.headers.items() if k != "date"}
            answers[local] = (r.status_code, headers, r.text.replace(f"{local}@example.org", "ADDRESS"))
    assert len({repr(a) for a in answers.values()}) == 1, answers
    assert answers["newb"][0] == 200
    mailed = sorted(str(m["To"]) for m in outbox(site.state))
    assert mailed == ["gone@example.org", "newb@example.org", "pend@example.org"]
    assert status_of(site, "actv@example.org") == "active"
    assert status_of(site, "gone@example.org") == "unsubscribed"  # until the owner confirms


def test_rate_limit_per_client(site: Project, clock: FixedClock) -> None:
    """Past the burst, 429 with Retry-After; the bucket refills with time."""
    site.configure("[serve]\nrate_ip_burst = 3\nrate_ip_per_minute = 1\n")
    with client(site.settings(), clock) as c:
        codes = [
            c.post("/subscribe", data={"email": f"p{i}@example.org"}, headers=SAME).status_code
            for i in range(4)
        ]
        assert codes == [200, 200, 200, 429]
        r = c.post("/subscribe", data={"email": "q@example.org"}, headers=SAME)
        assert r.status_code == 429
        assert r.headers["retry-after"] == "60"
        assert "Too many requests" in r.text
        clock.advance(timedelta(seconds=61))
        assert c.post("/subscribe", data={"email": "q@example.org"}, headers=SAME).status_code == 200


def test_rate_limit_per_address(site: Project, clock: FixedClock) -> None:
    site.configure("[serve]\nrate_address_burst = 2\nrate_address_per_hour = 1\n")
    with client(site.settings(), clock) as c:
        codes = [
            c.post("/subscribe", data={"email": "x@example.org"}, headers=SAME).status_code for _ in range(3)
        ]
        assert codes == [200, 200, 429]
        # Another spelling of the same address counts against the same bucket.
        assert c.post("/subscribe", data={"email": "X@EXAMPLE.org"}, headers=SAME).status_code == 429
        assert c.post("/subscribe", data={"email": "y@example.org"}, headers=SAME).status_code == 200
    assert len(outbox(site.state)) == 3


def test_bad_tokens_spend_the_client_bucket(site: Project, clock: FixedClock) -> None:
    site.configure("[serve]\nrate_ip_burst = 2\nrate_ip_per_minute = 1\n")
    sub = add_subscriber(site, "f@example.org")
    good = token_for(site, sub, "unsubscribe")
    with client(site.settings(), clock) as c:
        assert [c.get(f"/unsubscribe/{'A' * 40}").status_code for _ in range(3)] == [400, 400, 429]
        assert c.get(f"/unsubscribe/{good}").status_code == 429


# -- confirming ---------------------------------------------------------------------------------


def test_confirming_takes_a_post(http: TestClient, site: Project) -> None:
    """GET shows a button and changes nothing (scanners); POST with the form's token subscribes."""
    subscribe(http, "gil@example.org")
    link = link_in(outbox(site.state)[0], "confirm")
    path = link.removeprefix(SITE)
    page = http.get(path)
    assert page.status_code == 200
    assert "Yes, subscribe me" in page.text and "gil@example.org" in page.text
    assert '<form class="card" method="post">' in page.text
    assert status_of(site, "gil@example.org") == "pending"
    assert http.post(path, data={}, headers=SAME).status_code == 403
    assert status_of(site, "gil@example.org") == "pending"
    r = http.post(path, data={"csrf": csrf_of(page.text)}, headers=SAME)
    assert r.status_code == 200 and "You're subscribed" in r.text
    assert status_of(site, "gil@example.org") == "active"
    again = http.post(path, data={"csrf": csrf_of(http.get(path).text)}, headers=SAME)
    assert again.status_code == 200 and again.text == r.text
    assert len(outbox(site.state)) == 1


def test_an_old_confirmation_link_does_not_undo_an_unsubscribe(site: Project, clock: FixedClock) -> None:
    """Confirmed, then unsubscribed: the first confirmation link, still within its hours, gets
    the plain 400 and changes nothing. Subscribing again sends a new link, which works."""
    with client(site.settings(), clock) as http:
        subscribe(http, "lou@example.org")
        old = link_in(outbox(site.state)[0], "confirm").removeprefix(SITE)
        page = http.get(old)
        assert http.post(old, data={"csrf": csrf_of(page.text)}, headers=SAME).status_code == 200
        assert status_of(site, "lou@example.org") == "active"
        clock.advance(timedelta(hours=1))
        sub = add_subscriber(site, "lou@example.org")  # the same row: gives its id and secret
        unsubscribe = f"/unsubscribe/{token_for(site, sub, 'unsubscribe')}"
        assert http.post(unsubscribe, data={"List-Unsubscribe": "One-Click"}).status_code == 200
        assert status_of(site, "lou@example.org") == "unsubscribed"
        clock.advance(timedelta(minutes=5))
        assert http.get(old).status_code == 400
        assert http.post(old, data={"csrf": csrf_of(page.text)}, headers=SAME).status_code == 400
        assert status_of(site, "lou@example.org") == "unsubscribed"
        subscribe(http, "lou@example.org")
        new = link_in(outbox(site.state)[-1], "confirm").removeprefix(SITE)
        assert new != old
        page = http.get(new)
        assert http.post(new, data={"csrf": csrf_of(page.text)}, headers=SAME).status_code == 200
        assert status_of(site, "lou@example.org") == "active"


def test_bad_confirm_tokens_get_one_plain_400(site: Project, clock: FixedClock) -> None:
    """Tampered, expired, wrong-purpose, unknown-subscriber and garbage tokens look the same."""
    sub = add_subscriber(site, "hal@example.org", "pending")
    good = token_for(site, sub, "confirm", timedelta(hours=1))
    flipped = good[:-2] + ("A" if good[-2] != "A" else "B") + good[-1]
    bodies = set()
    with client(site.settings(), clock) as c:
        assert c.get(f"/confirm/{good}").status_code == 200
        candidates = [
            flipped,
            token_for(site, sub, "unsubscribe"),
            tokens.make(site.settings(), sub.id + 1, sub.token_secret, "confirm"),
            "x",
            "A" * 40,
            "%00",
            good + "A",
        ]
        for bad in candidates:
            for method in ("GET", "POST"):
                r = c.request(method, f"/confirm/{bad}", data={"csrf": "x"}, headers=SAME)
                assert r.status_code == 400, (bad, method)
                bodies.add(r.text)
        clock.advance(timedelta(hours=1))
        expired = c.get(f"/confirm/{good}")
        assert expired.status_code == 400
        bodies.add(expired.text)
    assert len(bodies) == 1
    (body,) = bodies
    assert "This link is not valid" in body and "hal@" not in body
    assert status_of(site, "hal@example.org") == "pending"


# -- unsubscribing ------------------------------------------------------------------------------


def test_one_click_unsubscribe_without_cookies(site: Project, clock: FixedClock) -> None:
    """RFC 8058: POST `List-Unsubscribe=One-Click` unsubscribes at once, sets no cookie, does not
    redirect, and says the same when repeated."""
    sub = add_subscriber(site, "ida@example.org")
    path = f"/unsubscribe/{token_for(site, sub, 'unsubscribe')}"
    with client(site.settings(), clock, cookies=None) as c:
        r = c.post(
            path,
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert r.status_code == 200
        assert "set-cookie" not in r.headers and "location" not in r.headers
        assert "You're unsubscribed" in r.text
        assert status_of(site, "ida@example.org") == "unsubscribed"
        again = c.post(path, data={"List-Unsubscribe": "One-Click"})
        assert again.status_code == 200 and again.text == r.text
        assert not c.cookies


def test_one_click_unsubscribe_as_multipart(site: Project, http: TestClient) -> None:
    sub = add_subscriber(site, "jo@example.org")
    path = f"/unsubscribe/{token_for(site, sub, 'unsubscribe')}"
    r = http.post(path, files={"List-Unsubscribe": (None, "One-Click")})
    assert r.status_code == 200
    assert status_of(site, "jo@example.org") == "unsubscribed"


def test_unsubscribe_page_has_a_button(http: TestClient, site: Project) -> None:
    """GET (what a person's click does) changes nothing; the button's POST, CSRF-checked, does."""
    sub = add_subscriber(site, "kim@example.org")
    path = f"/unsubscribe/{token_for(site, sub, 'unsubscribe')}"
    page = http.get(path)
    assert page.status_code == 200 and '<button type="submit">Unsubscribe</button>' in page.text
    assert status_of(site, "kim@example.org") == "active"
    assert http.post(path, data={"confirm": "1"}, headers=SAME).status_code == 403
    assert (
        http.post(
            path, data={"csrf": csrf_of(page.text)}, headers={"Origin": "https://evil.example"}
        ).status_code
        == 403
    )
    assert status_of(site, "kim@example.org") == "active"
    r = http.post(path, data={"csrf": csrf_of(page.text)}, headers=SAME)
    assert r.status_code == 200 and "You're unsubscribed" in r.text
    assert status_of(site, "kim@example.org") == "unsubscribed"


def test_bad_unsubscribe_tokens_are_400(http: TestClient, site: Project) -> None:
    sub = add_subscriber(site, "lu@example.org")
    good = token_for(site, sub, "unsubscribe")
    for bad in (good[:-1] + ("A" if good[-1] != "A" else "B"), token_for(site, sub, "confirm"), "nope"):
        r = http.post(f"/unsubscribe/{bad}", data={"List-Unsubscribe": "One-Click"})
        assert r.status_code == 400
        assert "lu@" not in r.text
    assert status_of(site, "lu@example.org") == "active"


def test_rotating_the_token_secret_voids_links(http: TestClient, site: Project) -> None:
    sub = add_subscriber(site, "mo@example.org")
    path = f"/unsubscribe/{token_for(site, sub, 'unsubscribe')}"
    conn = db.connect(site.settings().db_path)
    conn.execute("UPDATE subscribers SET token_secret = 'rotated' WHERE id = ?", (sub.id,))
    conn.close()
    assert http.post(path, data={"List-Unsubscribe": "One-Click"}).status_code == 400


# -- bounds and side effects --------------------------------------------------------------------


def test_oversized_bodies_get_413(http: TestClient, site: Project) -> None:
    big = b"email=" + b"a" * 20_000
    declared = http.post(
        "/subscribe", content=big, headers={**SAME, "Content-Type": "application/x-www-form-urlencoded"}
    )
    assert declared.status_code == 413

    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b"a" * 1000

    chunked = http.post(
        "/subscribe", content=chunks(), headers={**SAME, "Content-Type": "application/x-www-form-urlencoded"}
    )
    assert chunked.status_code == 413
    assert "Request too large" in chunked.text
    assert outbox(site.state) == []


def test_unknown_routes_and_methods(http: TestClient) -> None:
    assert http.put("/subscribe").status_code == 405
    assert http.delete(f"/unsubscribe/{'A' * 40}").status_code == 405
    assert http.get("/subscribe/").status_code == 404
    assert http.get("/confirm/").status_code == 404


def test_never_writes_into_feeds_or_seeds(site: Project, http: TestClient) -> None:
    site.seed("one.md", "date 2025-01-01 Hello.\n")
    before = (tree(site.feeds), tree(site.seeds))
    subscribe(http, "ned@example.org")
    path = link_in(outbox(site.state)[0], "confirm").removeprefix(SITE)
    http.post(path, data={"csrf": csrf_of(http.get(path).text)}, headers=SAME)
    assert (tree(site.feeds), tree(site.seeds)) == before
    assert status_of(site, "ned@example.org") == "active"


def test_a_failing_transport_still_answers_the_same(site: Project, clock: FixedClock) -> None:
    """SMTP down: the visitor sees the usual page (nothing to enumerate); the failure is logged."""
    site.configure('[delivery]\ntransport = "smtp"\n[smtp]\nhost = "127.0.0.1"\nport = 1\ntimeout = 2\n')
    with client(site.settings(), clock) as c:
        r = c.post("/subscribe", data={"email": "oz@example.org"}, headers=SAME)
    assert r.status_code == 200 and "Check your inbox" in r.text
    assert status_of(site, "oz@example.org") == "pending"


def test_a_broken_template_is_a_500_page_and_a_log_line(
    site: Project, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    """An operator's template override that fails only when rendered (one that does not compile
    stops the start: test_render_errors.py): the visitor gets the 500 page, the log says why."""
    custom = site.root / "custom"
    custom.mkdir()
    (custom / "subscribe.html.j2").write_text("{{ 1/0 }}", encoding="utf-8")
    settings = site.settings().model_copy(
        update={"paths": site.settings().paths.model_copy(update={"templates": custom})}
    )
    with client(settings, clock, raise_server_exceptions=False) as c:
        r = c.get("/subscribe")
    assert r.status_code == 500
    assert "Something went wrong" in r.text and "1/0" not in r.text
    assert any("GET /subscribe failed" in m and "subscribe.html.j2" in m for m in caplog.messages)
    # The error page is answered outside the middleware stack; it carries the same policy.
    for name, value in HEADERS.items():
        assert r.headers[name] == value


# -- plain HTTP (a LAN address, a test, a proxy that hides the scheme) ----------------------------

LAN = "http://192.168.1.20:8080"


def test_subscribing_over_plain_http_on_a_lan_address(site: Project, clock: FixedClock) -> None:
    """base_url is https, but the server is reached over plain HTTP at a LAN address: the cookie
    was always Secure, the browser (and this client) never sent it back, and every form was a 403."""
    with TestClient(create_app(site.settings(), clock), base_url=LAN) as http:
        page = http.get("/subscribe")
        cookie = page.headers["set-cookie"]
        assert "publisher_csrf=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
        assert "Secure" not in cookie
        # A browser sends its Origin; the token and its cookie pass without it too.
        for headers in ({"Origin": LAN}, {}):
            token = csrf_of(http.get("/subscribe").text)
            r = http.post("/subscribe", data={"email": "lan@example.org", "csrf": token}, headers=headers)
            assert r.status_code == 200, r.text
        assert status_of(site, "lan@example.org") == "pending"
        # Still refused: another site's Origin, a token without its cookie and without an Origin.
        token = csrf_of(http.get("/subscribe").text)
        evil = http.post(
            "/subscribe",
            data={"email": "x@example.org", "csrf": token},
            headers={"Origin": "http://evil.example"},
        )
        assert evil.status_code == 403
        http.cookies.clear()
        assert http.post("/subscribe", data={"email": "x@example.org", "csrf": token}).status_code == 403
    assert status_of(site, "x@example.org") is None


def test_a_token_whose_cookie_the_browser_dropped_passes_on_its_origin(
    site: Project, clock: FixedClock
) -> None:
    """Behind a proxy that talks plain HTTP to the app and passes the public Host, the cookie is
    Secure; a browser on plain HTTP drops it, and its same-origin Origin header vouches instead."""
    with TestClient(create_app(site.settings(), clock), base_url="http://news.example.org") as http:
        page = http.get("/subscribe")
        assert "Secure" in page.headers["set-cookie"]  # addressed to the https site's host
        token = csrf_of(page.text)
        http.cookies.clear()
        r = http.post(
            "/subscribe",
            data={"email": "fy@example.org", "csrf": token},
            headers={"Origin": "http://news.example.org"},
        )
        assert r.status_code == 200
        forged = token.rsplit(".", 1)[0] + ".AAAAAAAAAAAAAAAAAAAAAAAA"
        http.cookies.set("publisher_csrf", "someone-else")
        wrong = http.post("/subscribe", data={"email": "gy@example.org", "csrf": forged}, headers=SAME)
        assert wrong.status_code == 403  # a cookie that does not match still fails
