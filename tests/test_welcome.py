"""The welcome message: off by default; when `serve.welcome` is on, one message after a subscriber
confirms, from a template the operator can replace, with a working one-click unsubscribe."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from publisher.clock import FixedClock
from tests.conftest import NOW, Project
from tests.support.serving import TestClient, client, link_in, outbox, write_feeds
from tests.test_serve_subscribe import SAME, SITE, csrf_of, status_of, subscribe


@pytest.fixture
def site(project: Project) -> Project:
    project.configure("[serve]\nwelcome = true\n")
    write_feeds(project.feeds)
    return project


@pytest.fixture
def http(site: Project) -> Iterator[TestClient]:
    with client(site.settings(), FixedClock(NOW)) as c:
        yield c


def _confirm(http: TestClient, site: Project, address: str) -> None:
    subscribe(http, address)
    path = link_in(outbox(site.state)[0], "confirm").removeprefix(SITE)
    r = http.post(path, data={"csrf": csrf_of(http.get(path).text)}, headers=SAME)
    assert r.status_code == 200 and "You're subscribed" in r.text


def test_confirming_sends_one_welcome_that_unsubscribes_in_one_click(http: TestClient, site: Project) -> None:
    _confirm(http, site, "gil@example.org")
    confirmation, welcome = outbox(site.state)
    assert str(welcome["Subject"]) == "Welcome to Test Gazette"
    assert welcome["To"] == "gil@example.org" and welcome["Auto-Submitted"] == "auto-generated"
    assert welcome["Message-ID"] != confirmation["Message-ID"]
    assert welcome["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # As a mail program reads it: the raw header holds the two links in angle brackets (RFC 2369),
    # not an encoded word.
    raw = next(p for p in (site.state / "outbox" / "new").iterdir() if b"Welcome to" in p.read_bytes())
    header = raw.read_bytes().split(b"\r\nList-Unsubscribe: ", 1)[1].split(b"\r\n", 1)[0]
    assert header.startswith(b"<https://news.example.org/unsubscribe/") and b"=?" not in header
    assert b">, <mailto:" in header and header.endswith(b">")
    https, mailto = (part.strip(" <>") for part in str(welcome["List-Unsubscribe"]).split(","))
    assert mailto.startswith("mailto:")
    assert link_in(welcome, "unsubscribe") == https
    # The link in it works like a digest's: a one-click POST unsubscribes.
    r = http.post(https.removeprefix(SITE), data={"List-Unsubscribe": "One-Click"})
    assert r.status_code == 200 and status_of(site, "gil@example.org") == "unsubscribed"


def test_a_second_click_on_the_confirmation_link_sends_no_second_welcome(
    http: TestClient, site: Project
) -> None:
    _confirm(http, site, "gil@example.org")
    path = link_in(outbox(site.state)[0], "confirm").removeprefix(SITE)
    again = http.post(path, data={"csrf": csrf_of(http.get(path).text)}, headers=SAME)
    assert again.status_code == 200
    assert len(outbox(site.state)) == 2


def test_the_operator_writes_the_welcome_in_their_templates_folder(project: Project) -> None:
    (project.root / "templates").mkdir(exist_ok=True)
    (project.root / "templates" / "welcome_email.txt.j2").write_text(
        "Glad to have you, {{ address }}. Leave any time: {{ unsubscribe }}\n", encoding="utf-8"
    )
    project.configure("[serve]\nwelcome = true\n")  # paths.templates: "templates", the default
    write_feeds(project.feeds)
    with client(project.settings(), FixedClock(NOW)) as http:
        _confirm(http, project, "gil@example.org")
    welcome = outbox(project.state)[1]
    body = welcome.get_body(("plain",))
    assert body is not None and body.get_content().startswith("Glad to have you, gil@example.org. Leave")


def test_off_by_default(project: Project) -> None:
    write_feeds(project.feeds)
    with client(project.settings(), FixedClock(NOW)) as http:
        _confirm(http, project, "gil@example.org")
    assert len(outbox(project.state)) == 1


def test_confirmation_and_welcome_lines_fit_78_columns_whatever_the_title(project: Project) -> None:
    """RFC 5322's 78 characters: paragraphs are wrapped around a long title and address; a link,
    which must not be broken, is the only line allowed past it. The signature keeps its "-- "."""
    title = "The Northfield and District Harbour, Ferry and Fishing Fleet Weekly"
    config = project.config_path.read_text(encoding="utf-8").replace('"Test Gazette"', f'"{title}"')
    project.config_path.write_text(config + "\n[serve]\nwelcome = true\n", encoding="utf-8")
    write_feeds(project.feeds)
    with client(project.settings(), FixedClock(NOW)) as http:
        _confirm(http, project, "a.rather.long.name.for.a.person@northfield-district.example.org")
    messages = outbox(project.state)
    assert len(messages) == 2
    for message, kind in zip(messages, ("confirm", "unsubscribe"), strict=True):
        body = message.get_body(("plain",))
        assert body is not None
        text = body.get_content()
        lines = text.splitlines()
        assert all(len(line) <= 78 or line.startswith("https://") for line in lines), text
        assert link_in(message, kind) in lines  # the link stays whole, on its own line
        assert "\n\n-- \n" in text.replace("\r\n", "\n") and title in " ".join(lines)
