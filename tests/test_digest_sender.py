"""The digest's sender and footer never carry an example site's values: From, the mailto unsubscribe
address and the display name follow [site] unless set, and nothing is sent without a postal address."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from publisher.config_file import load_settings
from publisher.store import digests as store_digests
from tests.conftest import BASE_CONFIG, NOW, Project
from tests.support.digests import connection, markdown
from tests.support.serving import outbox

LATER = NOW + timedelta(minutes=1)
SITE = """\
[site]
title = "Harbour Times"
base_url = "https://harbour.example.net/news/"
"""


def test_sender_defaults_follow_the_site(tmp_path: Path) -> None:
    config = tmp_path / "publisher.toml"
    config.write_text(SITE, encoding="utf-8")
    digest = load_settings(config).digest
    assert digest.from_name == "Harbour Times"
    assert digest.from_address == "news@harbour.example.net"
    assert digest.unsubscribe_mailto == "unsubscribe@harbour.example.net"
    assert digest.postal_address == ""


def test_sender_values_that_are_set_are_kept(tmp_path: Path) -> None:
    config = tmp_path / "publisher.toml"
    config.write_text(
        SITE + '[digest]\nfrom_name = "The Times desk"\nfrom_address = "desk@harbour.example.net"\n'
        'unsubscribe_mailto = "leave@lists.example.net"\npostal_address = "1 Quay Road"\n',
        encoding="utf-8",
    )
    digest = load_settings(config).digest
    assert (digest.from_name, digest.from_address) == ("The Times desk", "desk@harbour.example.net")
    assert digest.unsubscribe_mailto == "leave@lists.example.net"
    assert digest.postal_address == "1 Quay Road"


def test_no_example_value_in_the_defaults(tmp_path: Path) -> None:
    config = tmp_path / "publisher.toml"
    config.write_text(SITE, encoding="utf-8")
    values = load_settings(config).digest.model_dump()
    assert not any("Example" in str(v) or "news.example.org" in str(v) for v in values.values())


def _without_postal_address(project: Project) -> None:
    project.config_path.write_text(BASE_CONFIG, encoding="utf-8")
    project.seed("one.md", markdown("Talks resume in Geneva", "2025-02-27"))
    assert project.cli("build").code == 0
    assert project.cli("subscribers", "add", "ana@example.com").code == 0


def test_send_refuses_without_a_postal_address_and_records_nothing(project: Project) -> None:
    _without_postal_address(project)
    result = project.cli("digest", "--send", "--backfill", "1", now=LATER)
    assert result.code == 2
    assert result.err.strip().splitlines() == [
        "Error: digest.postal_address: not set; every digest's footer gives the sender's postal "
        "address, so set it in [digest] before sending"
    ]
    assert outbox(project.state) == []
    with connection(project.settings().db_path) as conn:
        assert store_digests.summaries(conn) == []
        assert store_digests.baseline(conn) is None


def test_test_copy_refuses_without_a_postal_address(project: Project) -> None:
    _without_postal_address(project)
    result = project.cli("digest", "--to", "me@example.com", "--backfill", "1", now=LATER)
    assert result.code == 2 and "digest.postal_address: not set" in result.err
    assert outbox(project.state) == []


@pytest.mark.parametrize("command", [("--send",), ("--to", "me@example.com")])
def test_nothing_is_mailed_from_the_built_in_example_site(project: Project, command: tuple[str, ...]) -> None:
    """A publisher.toml without [site] title and base_url would mail "Example News" with links to
    news.example.org: refused like a missing postal address, recording nothing."""
    project.seed("one.md", markdown("Talks resume in Geneva", "2025-02-27"))
    assert project.cli("build").code == 0  # built while the site was set (build refuses too)
    assert project.cli("subscribers", "add", "ana@example.com").code == 0
    project.unset_site("title", "base_url")
    result = project.cli("digest", *command, "--backfill", "1", now=LATER)
    assert result.code == 2
    assert result.err.strip().splitlines() == [
        "Error: site.title and site.base_url: not set; a digest's sender, links and unsubscribe address "
        "come from [site], so set them in [site] (the built-in values are an example's)"
    ]
    assert outbox(project.state) == []
    with connection(project.settings().db_path) as conn:
        assert store_digests.summaries(conn) == []


def test_preview_works_without_a_postal_address_and_says_what_is_missing(project: Project) -> None:
    _without_postal_address(project)
    result = project.cli("digest", "--preview", "--backfill", "1", now=LATER)
    assert result.code == 0, result.err
    assert "digest.postal_address is not set" in result.err
    html = (project.state / "preview" / "next-digest.html").read_text(encoding="utf-8")
    assert "Talks resume in Geneva" in html


def test_the_real_message_carries_the_derived_sender(project: Project) -> None:
    project.seed("one.md", markdown("Talks resume in Geneva", "2025-02-27"))
    assert project.cli("build").code == 0
    assert project.cli("subscribers", "add", "ana@example.com").code == 0
    assert project.cli("digest", "--send", "--backfill", "1", now=LATER).code == 0
    [message] = outbox(project.state)
    assert str(message["From"]) == "Test Gazette <news@news.example.org>"
    assert "<mailto:unsubscribe@news.example.org?subject=" in str(message["List-Unsubscribe"])
    part = message.get_body(("plain",))
    assert part is not None and "Test Gazette, 1 Test Street, 75001 Paris" in part.get_content()


def test_an_http_site_offers_no_one_click_unsubscribe(project: Project) -> None:
    """RFC 8058 allows List-Unsubscribe-Post only beside an https URL: a site served over http
    keeps List-Unsubscribe (its link and the mailto) without it, and the send says why."""
    config = project.config_path.read_text(encoding="utf-8")
    project.config_path.write_text(config.replace("https://news.example.org/", "http://news.example.org/"))
    project.seed("one.md", markdown("Talks resume in Geneva", "2025-02-27"))
    assert project.cli("build").code == 0
    assert project.cli("subscribers", "add", "ana@example.com").code == 0
    result = project.cli("digest", "--send", "--backfill", "1", now=LATER)
    assert result.code == 0, result.err
    assert "List-Unsubscribe-Post (one-click unsubscribe) is left out" in result.err
    [message] = outbox(project.state)
    assert ", <http://news.example.org/unsubscribe/" in str(message["List-Unsubscribe"])
    assert message["List-Unsubscribe-Post"] is None
