"""Subscriber addresses and names at the door, and the store queries delivery relies on."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from publisher import subscriptions as subscribers
from publisher.errors import SubscriberError
from publisher.store import subscribers as store
from tests.conftest import NOW, Project
from tests.support.digests import connection


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("anna@example.org", "anna@example.org"),
        ("  Anna.Smith+news@Example.ORG  ", "anna.smith+news@example.org"),
        ("anna@Bücher.example", "anna@xn--bcher-kva.example"),
        ("o'brien@example.co.uk", "o'brien@example.co.uk"),
        ("x@sub.example.org.", "x@sub.example.org"),
    ],
)
def test_addresses_are_normalised(given: str, expected: str) -> None:
    assert subscribers.normalise_address(given) == expected


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("", "address: empty"),
        ("Anna <anna@example.org>", "give one bare address"),
        ("anna@example.org, bob@example.org", "give one bare address"),
        ("anna@example.org\r\nBcc: victim@example.org", "control characters or line breaks"),
        ("anna@exa\x00mple.org", "control characters or line breaks"),
        ("anna@exam\u2028ple.org", "control characters or line breaks"),
        ("anna", "exactly one @"),
        ("a@b@example.org", "exactly one @"),
        ("@example.org", "local-part@domain"),
        ("anna@", "local-part@domain"),
        ("anna@localhost", "the domain needs a dot"),
        (".anna@example.org", "not a valid address"),
        ("an..na@example.org", "not a valid address"),
        ("zoë@example.org", "non-ASCII characters before the @"),
        ("a" * 65 + "@example.org", "longer than 64 characters"),
        ("anna@-example.org", "not a valid domain name"),
        ("anna@example.123", "not a valid domain name"),
        ("anna@" + "a" * 64 + ".org", "not a valid domain name"),
        ("anna@" + ".".join(["abcdefghij"] * 25) + ".org", "longer than 253 characters"),
    ],
)
def test_bad_addresses_say_what_is_wrong(given: str, message: str) -> None:
    with pytest.raises(SubscriberError, match=message) as caught:
        subscribers.normalise_address(given)
    assert "\n" not in str(caught.value) and "\r" not in str(caught.value)


def test_names_are_flattened_and_bounded() -> None:
    assert subscribers.clean_name("  Zoë \r\n Ångström\t ") == "Zoë Ångström"
    assert subscribers.clean_name(None) == ""
    assert subscribers.clean_name("Eve\r\nBcc: x@example.org") == "Eve Bcc: x@example.org"
    with pytest.raises(SubscriberError, match="control characters"):
        subscribers.clean_name("Eve\x00")
    with pytest.raises(SubscriberError, match="longer than 64 characters"):
        subscribers.clean_name("n" * 65)


def test_add_reactivate_and_remove(project: Project) -> None:
    """add creates, re-adding is unchanged, remove keeps the row as unsubscribed, add re-activates."""
    with connection(project.settings().db_path) as conn:
        sub, outcome = subscribers.add(conn, "Anna@Example.org", "Anna", NOW)
        assert (outcome, sub.email, sub.name, sub.status) == ("added", "anna@example.org", "Anna", "active")
        assert len(sub.token_secret) >= 32
        again, outcome = subscribers.add(conn, "anna@example.org", None, NOW)
        assert (outcome, again.id, again.name, again.token_secret) == (
            "unchanged",
            sub.id,
            "Anna",
            sub.token_secret,
        )
        gone = subscribers.remove(conn, "ANNA@example.org", NOW)
        assert gone.status == "unsubscribed"
        assert store.active(conn) == []
        back, outcome = subscribers.add(conn, "anna@example.org", None, NOW)
        assert (outcome, back.status) == ("reactivated", "active")
        with pytest.raises(SubscriberError, match=r"bob@example\.org: not a subscriber"):
            subscribers.remove(conn, "bob@example.org", NOW)


def test_permanent_failures_bounce_at_the_threshold(project: Project) -> None:
    with connection(project.settings().db_path) as conn:
        sub, _ = subscribers.add(conn, "anna@example.org", "", NOW)
        assert store.record_permanent_failure(conn, sub.id, NOW, 3) is False
        store.reset_failures(conn, sub.id, NOW)
        assert store.record_permanent_failure(conn, sub.id, NOW, 3) is False
        assert store.record_permanent_failure(conn, sub.id, NOW, 3) is False
        assert store.record_permanent_failure(conn, sub.id, NOW + timedelta(hours=1), 3) is True
        bounced = store.get(conn, sub.id)
        assert bounced is not None and bounced.status == "bounced" and bounced.bounces == 3
        assert bounced.updated_at == NOW + timedelta(hours=1)
        assert store.active(conn) == []


def test_store_functions_join_an_open_transaction(project: Project) -> None:
    """Delivery records a bounce together with its ledger row: a rollback undoes both."""
    from publisher.store.db import transaction

    with connection(project.settings().db_path) as conn:
        sub, _ = subscribers.add(conn, "anna@example.org", "", NOW)
        with pytest.raises(RuntimeError), transaction(conn):
            store.record_permanent_failure(conn, sub.id, NOW, 1)
            store.set_status(conn, sub.id, "unsubscribed", NOW)
            raise RuntimeError("the ledger write failed")
        after = store.get(conn, sub.id)
        assert after is not None and (after.status, after.bounces) == ("active", 0)


def test_active_lists_only_active_in_id_order(project: Project) -> None:
    with connection(project.settings().db_path) as conn:
        for address in ("c@example.org", "a@example.org", "b@example.org"):
            subscribers.add(conn, address, "", NOW)
        subscribers.remove(conn, "a@example.org", NOW)
        assert [s.email for s in store.active(conn)] == ["c@example.org", "b@example.org"]
        assert store.counts(conn)["unsubscribed"] == 1
        first = store.active(conn)[0]
        assert store.token_secret(conn, first.id) == first.token_secret
        assert store.token_secret(conn, 9999) is None


def test_csv_round_trip_keeps_names_safe_for_spreadsheets(project: Project) -> None:
    """A name that a spreadsheet would run as a formula is exported quoted and imported back as it was."""
    with connection(project.settings().db_path) as conn:
        subscribers.add(conn, "eve@example.org", "=HYPERLINK(1)", NOW)
        subscribers.add(conn, "zoe@example.org", 'Zoë, "Z" Ångström', NOW)
        text = subscribers.export_csv(store.all_subscribers(conn))
    assert "'=HYPERLINK(1)" in text
    parsed = subscribers.parse_csv(text, "export.csv")
    assert parsed.problems == []
    assert parsed.rows == [
        ("eve@example.org", "=HYPERLINK(1)", "active"),
        ("zoe@example.org", 'Zoë, "Z" Ångström', "active"),
    ]


def test_export_then_import_keeps_who_opted_out_out(project: Project, tmp_path: Path) -> None:
    """Moving a list (export here, import into a new site) never mails someone who unsubscribed,
    bounced or never confirmed: the status column is imported as it is."""
    with connection(project.settings().db_path) as conn:
        for address in ("on@example.org", "gone@example.org", "dead@example.org", "wait@example.org"):
            subscribers.add(conn, address, "", NOW)
        store.set_status(conn, store.by_email(conn, "gone@example.org").id, "unsubscribed", NOW)  # type: ignore[union-attr]
        store.set_status(conn, store.by_email(conn, "dead@example.org").id, "bounced", NOW)  # type: ignore[union-attr]
        store.set_status(conn, store.by_email(conn, "wait@example.org").id, "pending", NOW)  # type: ignore[union-attr]
        text = subscribers.export_csv(store.all_subscribers(conn))
    fresh = tmp_path / "new.sqlite3"
    with connection(fresh) as conn:
        report = subscribers.import_csv(conn, text.encode("utf-8"), "export.csv", NOW)
        assert (report.added, report.kept_out, report.problems) == (4, 3, [])
        assert [s.email for s in store.active(conn)] == ["on@example.org"]
        assert {s.email: s.status for s in store.all_subscribers(conn)} == {
            "on@example.org": "active",
            "gone@example.org": "unsubscribed",
            "dead@example.org": "bounced",
            "wait@example.org": "pending",
        }


def test_an_unknown_status_is_a_bad_row(project: Project) -> None:
    parsed = subscribers.parse_csv("email,status\na@example.org,vip\nb@example.org,\n", "x.csv")
    assert parsed.rows == [("b@example.org", "", "active")]
    assert parsed.problems == [
        "x.csv: line 2: status: 'vip' is not one of pending, active, unsubscribed, bounced"
    ]
