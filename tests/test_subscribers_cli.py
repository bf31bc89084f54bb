"""`publisher subscribers`: add, remove, list, import (bad rows by line number, idempotent), export."""

from __future__ import annotations

import subprocess
import sys

import pytest

from publisher.store import db, ledger
from publisher.store import subscribers as store
from tests.conftest import NOW, Project

CSV = (
    "Email,Name,Signed up\n"  # header names are case-insensitive; extra columns are ignored
    "anna@example.org,Anna,2024-01-01\n"
    "not-an-address,Bob,2024-01-02\n"
    "\n"
    '"zoe@Bücher.example","Zoë\nÅngström",2024-01-03\n'
    "eve@example.org\r\n"
    "Eve <eve@example.org>,Eve,2024-01-04\n"
    "anna@example.org,Anna again,2024-01-05\n"
    'mallory@example.org,"Mal\x00lory",x\n'
)


def test_add_list_remove(project: Project) -> None:
    result = project.cli("subscribers", "add", "Anna@Example.ORG", "--name", "Anna Ä")
    assert (result.code, result.out, result.err) == (0, "added anna@example.org\n", "")
    assert (
        project.cli("subscribers", "add", "anna@example.org").out == "already subscribed: anna@example.org\n"
    )
    project.cli("subscribers", "add", "bob@example.org")
    assert project.cli("subscribers", "remove", "BOB@example.org").out == "unsubscribed bob@example.org\n"
    listing = project.cli("subscribers", "list")
    assert listing.code == 0
    assert listing.out.splitlines() == [
        "anna@example.org  active        Anna Ä",
        "bob@example.org   unsubscribed",
        "2 subscribers: 1 active, 1 unsubscribed",
    ]
    only = project.cli("subscribers", "list", "--status", "active")
    assert only.out.splitlines()[0] == "anna@example.org  active        Anna Ä"
    assert project.cli("subscribers", "add", "bob@example.org").out == "re-activated bob@example.org\n"


def test_delete_erases_the_subscriber_and_their_send_records(project: Project) -> None:
    """`delete` forgets an address: the row and its send-ledger rows go (so an import can add it
    again, unlike after `remove`); everyone else's records stay."""
    project.cli("subscribers", "add", "anna@example.org")
    project.cli("subscribers", "add", "bob@example.org")
    conn = db.connect(project.settings().db_path)
    try:
        ids = [s.id for s in store.all_subscribers(conn)]
        ledger.enqueue(conn, "d-1", ids, NOW)
    finally:
        conn.close()
    result = project.cli("subscribers", "delete", "Anna@Example.org")
    assert (result.code, result.out, result.err) == (0, "deleted anna@example.org and 1 send record\n", "")
    conn = db.connect(project.settings().db_path)
    try:
        assert [s.email for s in store.all_subscribers(conn)] == ["bob@example.org"]
        assert [e.email for e in ledger.entries(conn, "d-1")] == ["bob@example.org"]
    finally:
        conn.close()
    again = project.cli("subscribers", "delete", "anna@example.org")
    assert (again.code, again.err) == (1, "Error: anna@example.org: not a subscriber\n")
    (project.root / "people.csv").write_text("email\nanna@example.org\n", encoding="utf-8")
    assert project.cli("subscribers", "import", str(project.root / "people.csv")).out.startswith("1 added")


def test_bad_address_is_one_error_line(project: Project) -> None:
    result = project.cli("subscribers", "add", "Anna <anna@example.org>")
    assert result.code == 1
    assert result.err == (
        "Error: 'Anna <anna@example.org>': give one bare address such as anna@example.org "
        "(no name, no list)\n"
    )
    result = project.cli("subscribers", "remove", "nobody@example.org")
    assert (result.code, result.err) == (1, "Error: nobody@example.org: not a subscriber\n")


def test_import_reports_bad_rows_by_line_and_imports_the_rest(project: Project) -> None:
    path = project.root / "people.csv"
    path.write_bytes(b"\xef\xbb\xbf" + CSV.encode("utf-8"))
    result = project.cli("subscribers", "import", str(path))
    assert result.code == 1
    assert result.err.splitlines() == [
        f"{path}: line 3: 'not-an-address': an address has exactly one @",
        f"{path}: line 8: 'Eve <eve@example.org>': give one bare address such as anna@example.org "
        "(no name, no list)",
        f"{path}: line 10: name 'Mal\\x00lory': control characters are not allowed",
    ]
    assert result.out == "3 added, 0 already present, 1 duplicate in file, 3 bad\n"
    assert project.cli("subscribers", "list", "-q").out == project.cli("-q", "subscribers", "list").out
    listing = project.cli("subscribers", "list", "-q").out.splitlines()
    assert listing == [
        "anna@example.org           active        Anna",
        "eve@example.org            active",
        "zoe@xn--bcher-kva.example  active        Zoë Ångström",
    ]


def test_import_is_idempotent_and_never_resubscribes(project: Project) -> None:
    path = project.root / "people.csv"
    path.write_text("email\nanna@example.org\nbob@example.org\n", encoding="utf-8")
    assert (
        project.cli("subscribers", "import", str(path)).out
        == "2 added, 0 already present, 0 duplicates in file, 0 bad\n"
    )
    project.cli("subscribers", "remove", "bob@example.org")
    again = project.cli("subscribers", "import", str(path))
    assert (again.code, again.out) == (0, "0 added, 2 already present, 0 duplicates in file, 0 bad\n")
    assert "bob@example.org   unsubscribed" in project.cli("subscribers", "list").out


def test_import_problems_with_the_whole_file(project: Project) -> None:
    missing = project.cli("subscribers", "import", str(project.root / "nope.csv"))
    assert missing.code == 1 and missing.err.startswith(f"Error: {project.root / 'nope.csv'}: cannot read:")
    headerless = project.root / "h.csv"
    headerless.write_text("address,name\na@example.org,A\n", encoding="utf-8")
    result = project.cli("subscribers", "import", str(headerless))
    assert result.err == f"Error: {headerless}: line 1: the header row has no email column\n"
    latin = project.root / "l.csv"
    latin.write_bytes("email,name\nz@example.org,Zo\xeb\n".encode("latin-1"))
    assert (
        project.cli("subscribers", "import", str(latin)).err
        == f"Error: {latin}: not UTF-8 (byte offset 27)\n"
    )
    empty = project.root / "e.csv"
    empty.write_text("", encoding="utf-8")
    assert "empty file" in project.cli("subscribers", "import", str(empty)).err


def test_export_round_trip(project: Project) -> None:
    """export writes CSV that import reads back into the same subscribers."""
    project.cli("subscribers", "add", "anna@example.org", "--name", 'Anna "Ä", Jr.')
    project.cli("subscribers", "add", "bob@example.org")
    project.cli("subscribers", "remove", "bob@example.org")
    exported = project.cli("subscribers", "export")
    assert exported.code == 0
    assert (
        exported.out
        == 'email,name,status\nanna@example.org,"Anna ""Ä"", Jr.",active\nbob@example.org,,unsubscribed\n'
    )
    other = Project(project.root.parent / "other")
    other.seeds.mkdir(parents=True)
    other.configure("")
    path = other.root / "in.csv"
    path.write_text(exported.out, encoding="utf-8")
    assert other.cli("subscribers", "import", str(path)).code == 0
    assert other.cli("subscribers", "export").out.replace("unsubscribed", "active") == exported.out.replace(
        "unsubscribed", "active"
    )


def test_export_runs_as_a_real_process(project: Project) -> None:
    """The installed entry point writes UTF-8 CSV to a pipe."""
    project.cli("subscribers", "add", "zoe@example.org", "--name", "Zoë")
    done = subprocess.run(
        [sys.executable, "-m", "publisher", "--config", str(project.config_path), "subscribers", "export"],
        capture_output=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", "PYTHONIOENCODING": "utf-8"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode("utf-8") == "email,name,status\nzoe@example.org,Zoë,active\n"


def test_every_csv_row_is_accounted_for_with_duplicates_counted(project: Project) -> None:
    """Issue 11 point 14: added / already present / duplicate in file / bad add up to the rows."""
    assert project.cli("subscribers", "add", "old@example.org").code == 0
    path = project.root / "people.csv"
    path.write_text(
        "email,name\nanna@example.org,Anna\nold@example.org,\nANNA@example.org,Again\nbad,\n"
        "bob@example.org,Bob\nanna@example.org,Thrice\n",
        encoding="utf-8",
    )
    result = project.cli("subscribers", "import", str(path))
    assert result.out == "2 added, 1 already present, 2 duplicates in file, 1 bad\n"
    assert result.code == 1


def test_an_unclosed_quote_is_an_error_naming_the_line_and_imports_nothing(project: Project) -> None:
    path = project.root / "people.csv"
    path.write_text(
        'email,name\nanna@example.org,Anna\nbob@example.org,"Bob\ncarl@example.org,Carl\n', encoding="utf-8"
    )
    result = project.cli("subscribers", "import", str(path))
    assert result.code == 1
    assert result.err == (
        f"Error: {path}: line 3: unexpected end of data; the file cannot be read to its end, nothing was "
        "imported (an unclosed quote swallows the rows after it: fix that line)\n"
    )
    assert "anna@example.org" not in project.cli("subscribers", "list").out


def test_a_value_past_the_csv_modules_limit_is_named_as_too_long(project: Project) -> None:
    path = project.root / "people.csv"
    path.write_text("email,name\nanna@example.org," + "A" * 200_000 + "\n", encoding="utf-8")
    result = project.cli("subscribers", "import", str(path))
    assert result.code == 1
    assert result.err == (
        f"Error: {path}: line 2: a value longer than 131,072 characters; the file cannot be read to "
        "its end, nothing was imported (no address or name is that long: look for an unclosed quote "
        "or a stray value on that line)\n"
    )
    assert "anna@example.org" not in project.cli("subscribers", "list").out


def test_a_quote_closed_rows_later_is_an_error_too(project: Project) -> None:
    path = project.root / "people.csv"
    path.write_text(
        'email,name\nanna@example.org,"Anna\nbob@example.org,Bob\ncarl@example.org,Carl"\ndan@example.org,Dan\n',
        encoding="utf-8",
    )
    result = project.cli("subscribers", "import", str(path))
    assert result.code == 1
    assert result.err.startswith(
        f"Error: {path}: line 2: a quoted value runs on to line 4 over what look like rows"
    )
    assert "dan@example.org" not in project.cli("subscribers", "list").out


def test_an_import_says_how_many_came_in_unsubscribed_bounced_or_pending(project: Project) -> None:
    path = project.root / "moved.csv"
    path.write_text(
        "email,name,status\non@example.org,On,active\noff@example.org,Off,unsubscribed\n", encoding="utf-8"
    )
    result = project.cli("subscribers", "import", str(path))
    assert result.code == 0, result.err
    assert result.out == (
        "2 added (1 of them unsubscribed, bounced or pending), 0 already present, "
        "0 duplicates in file, 0 bad\n"
    )
    listing = project.cli("subscribers", "list").out
    assert "off@example.org" in listing and "unsubscribed" in listing


def test_an_import_applies_the_files_opt_outs_to_known_addresses_and_never_the_reverse(
    project: Project,
) -> None:
    for address in ("kept@example.org", "leaving@example.org", "gone@example.org"):
        assert project.cli("subscribers", "add", address).code == 0
    assert project.cli("subscribers", "remove", "gone@example.org").code == 0
    path = project.root / "other-list.csv"
    path.write_text(
        "email,status\nleaving@example.org,unsubscribed\ngone@example.org,active\nkept@example.org,\n",
        encoding="utf-8",
    )
    result = project.cli("subscribers", "import", str(path))
    assert result.code == 0, result.err
    assert result.out == (
        "0 added, 3 already present (1 of them now unsubscribed or bounced, as the file says), "
        "0 duplicates in file, 0 bad\n"
    )
    statuses = {
        line.split()[0]: line.split()[1] for line in project.cli("subscribers", "list", "-q").out.splitlines()
    }
    assert statuses == {
        "kept@example.org": "active",
        "leaving@example.org": "unsubscribed",
        "gone@example.org": "unsubscribed",
    }


def test_an_endless_file_is_refused_unread_past_the_cap(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`import /dev/zero` grew to gigabytes: the file is read up to a cap (lowered here)."""
    from publisher.cli import subscribers as command

    monkeypatch.setattr(command, "MAX_IMPORT_BYTES", 2**20)
    result = project.cli("subscribers", "import", "/dev/zero")
    assert result.code == 1
    assert result.err == (
        "Error: /dev/zero: larger than 1 MiB, more than any list of subscribers; nothing was imported "
        "(split it, or check that it is the right file)\n"
    )
