"""DKIM: `publisher dkim keygen` writes real key pairs; every digest (over real SMTP and into the
outbox), every test copy and every confirmation email carries signatures that dkimpy verifies
against the published key; a message sent again after a crash is byte-identical and verifies; a
key that is missing stops sending before anything leaves."""

from __future__ import annotations

import email
import email.policy
import re
import stat
from collections.abc import Callable
from datetime import timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path

import dkim
import pytest

from publisher.clock import FixedClock
from publisher.store import db
from tests.conftest import NOW, Project
from tests.support.digests import markdown
from tests.support.serving import client, write_feeds
from tests.support.smtp import SmtpServer

SEND_AT = NOW + timedelta(minutes=1)
DOMAIN = "news.example.org"


def dns_of(project: Project) -> Callable[..., bytes | None]:
    """A resolver answering `<selector>._domainkey.news.example.org` from the TXT files keygen
    wrote beside each key, as the operator's DNS would after publishing them."""
    records = {
        "rsa2026": project.root / "keys" / "rsa.key.txt",
        "ed2026": project.root / "keys" / "ed.key.txt",
    }

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes | None:
        selector, _, rest = name.decode().partition("._domainkey.")
        if rest.rstrip(".") != DOMAIN or selector not in records or not records[selector].exists():
            return None
        return records[selector].read_bytes().strip()

    return dnsfunc


def with_keys(project: Project, *, ed25519: bool = True, generate: bool = True) -> None:
    project.configure(
        f"""
        [dkim]
        domain = "{DOMAIN}"
        selector = "rsa2026"
        private_key_path = "keys/rsa.key"
        ed25519_selector = "ed2026"
        """
        + ('ed25519_private_key_path = "keys/ed.key"\n' if ed25519 else "")
    )
    if generate:
        assert project.cli("dkim", "keygen").code == 0
        if ed25519:
            assert project.cli("dkim", "keygen", "--algorithm", "ed25519").code == 0


def verify_all(message: bytes, dnsfunc: Callable[..., bytes | None]) -> list[bytes]:
    """Verify every DKIM-Signature in `message`; return their a= values."""
    checker = dkim.DKIM(message)
    found = [v for k, v in checker.headers if k.lower() == b"dkim-signature"]
    assert found, "no DKIM-Signature"
    algorithms = []
    for index in range(len(found)):
        assert checker.verify(idx=index, dnsfunc=dnsfunc), f"signature {index} does not verify"
        algorithms.append(checker.signature_fields[b"a"])
    return algorithms


def signed_names(message: bytes) -> set[str]:
    value = email.message_from_bytes(message, policy=email.policy.compat32)["DKIM-Signature"]
    tags = dict(t.strip().split("=", 1) for t in re.sub(r"\s+", "", value).split(";") if t.strip())
    return set(tags["h"].split(":"))


def sample_site(project: Project, readers: list[str]) -> None:
    project.seed("one.md", markdown("Talks resume in Geneva", "2025-02-27"))
    assert project.cli("build").code == 0
    (project.root / "people.csv").write_text("email\n" + "\n".join(readers) + "\n", encoding="utf-8")
    assert project.cli("subscribers", "import", str(project.root / "people.csv")).code == 0


# -- keygen ---------------------------------------------------------------------------------


def test_keygen_writes_a_private_key_0600_and_prints_the_dns_record(project: Project) -> None:
    with_keys(project, ed25519=False, generate=False)
    result = project.cli("dkim", "keygen")
    assert result.code == 0, result.err
    key = project.root / "keys" / "rsa.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    txt = (project.root / "keys" / "rsa.key.txt").read_text()
    assert txt.startswith("v=DKIM1; k=rsa; p=MII")
    record = next(line for line in result.out.splitlines() if "IN TXT" in line)
    assert record.startswith("rsa2026._domainkey.news.example.org. IN TXT ( ")
    # Strings of at most 255 characters (RFC 1035), which together are the TXT file's text.
    strings = re.findall(r'"([^"]*)"', record)
    assert len(strings) == 2 and all(len(s) <= 255 for s in strings)
    assert "".join(strings) == txt.strip()


def test_keygen_refuses_to_replace_a_key(project: Project) -> None:
    with_keys(project, ed25519=False)
    key = project.root / "keys" / "rsa.key"
    before = key.read_bytes()
    result = project.cli("dkim", "keygen")
    assert result.code == 1
    assert result.err == f"Error: {key}: already exists; not replacing a DKIM key (remove it first)\n"
    assert key.read_bytes() == before
    assert sorted(p.name for p in key.parent.iterdir()) == ["rsa.key", "rsa.key.txt"]  # no temp left


def test_keygen_without_a_domain_or_a_path_says_which_key_to_set(project: Project) -> None:
    result = project.cli("dkim", "keygen")
    assert result.code == 2
    assert result.err == "Error: no file to write the key to: set dkim.private_key_path or give --out PATH\n"
    result = project.cli("dkim", "keygen", "--out", str(project.root / "k.pem"))
    assert result.code == 2
    assert result.err == "Error: no signing domain: set dkim.domain or give --domain\n"
    assert not (project.root / "k.pem").exists()


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--domain", "news example.org", "'news example.org' is not a DNS name"),
        ("--selector", "a;b=c", "'a;b=c' is not a DNS name"),
        ("--domain", "x" * 64 + ".org", "is not a DNS name"),
        ("--out", "~nosuchuser-publisher/k.pem", "~nosuchuser-publisher/k.pem"),
    ],
)
def test_keygen_checks_its_flags_before_making_a_key(
    project: Project, flag: str, value: str, message: str
) -> None:
    """A selector or domain goes into a DNS record and every signature: refused unless a DNS name."""
    args = ["--out", str(project.root / "k.pem"), "--domain", "news.example.org", flag, value]
    result = project.cli("dkim", "keygen", *args)
    assert result.code == 2
    assert message in result.err and "Traceback" not in result.err
    assert not (project.root / "k.pem").exists()


def test_dkim_check_names_each_usable_key_and_its_record(project: Project) -> None:
    with_keys(project)
    result = project.cli("dkim", "check")
    assert result.code == 0, result.err
    assert "rsa key" in result.out and "ed25519 key" in result.out
    assert "ed2026._domainkey.news.example.org. IN TXT" in result.out
    ed_txt = (project.root / "keys" / "ed.key.txt").read_text().strip()
    assert f'"{ed_txt}"' in result.out


def test_a_domain_without_a_key_is_a_config_error(project: Project) -> None:
    project.configure('[dkim]\ndomain = "news.example.org"\n')
    result = project.cli("check")
    assert result.code == 2
    assert "dkim: domain is set but no key is" in result.err


# -- signing --------------------------------------------------------------------------------


def test_every_digest_over_smtp_carries_two_signatures_that_verify(project: Project) -> None:
    """RSA and Ed25519, both verified by dkimpy against the published keys; the signature covers
    RFC 8058's List-Unsubscribe pair; a changed subject breaks it."""
    with_keys(project)
    readers = ["ann@example.org", "bob@example.net", "cy@example.com"]
    with SmtpServer() as server:
        project.configure(
            f'[delivery]\ntransport = "smtp"\n[smtp]\nhost = "127.0.0.1"\nport = {server.port}\n'
        )
        sample_site(project, readers)
        result = project.cli("digest", "--send", "--backfill", "5", now=SEND_AT)
        assert result.code == 0, result.err
        received = {r.recipients[0]: r.data for r in server.received}
    assert sorted(received) == readers
    dns = dns_of(project)
    for data in received.values():
        message = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        assert verify_all(message, dns) == [b"rsa-sha256", b"ed25519-sha256"]
        names = signed_names(message)
        for name in ("from", "to", "subject", "date", "message-id", "list-id"):
            assert name in names
        assert {"list-unsubscribe", "list-unsubscribe-post"} <= names
        tampered = re.sub(rb"Subject: [^\r]*", b"Subject: You won a prize", message, count=1)
        assert not dkim.verify(tampered, dnsfunc=dns)


def test_a_message_sent_again_after_a_crash_is_byte_identical_and_verifies(project: Project) -> None:
    """A crash between a message's intent and its result leaves the row `sending`; the next run
    (an hour later) sends it again with the Date the digest was recorded with, so the bytes and the
    signature (t= from that Date, not the clock) are the same."""
    with_keys(project, ed25519=False)
    sample_site(project, ["ann@example.org", "bob@example.net"])
    assert project.cli("digest", "--send", "--backfill", "5", now=SEND_AT).code == 0
    outbox = project.state / "outbox" / "new"
    first = {p.name for p in outbox.iterdir()}
    # The state a kill leaves: bob's row claimed, the digest unfinished.
    conn = db.connect(project.settings().db_path)
    try:
        conn.execute(
            "UPDATE ledger SET status = 'sending' WHERE subscriber_id = "
            "(SELECT id FROM subscribers WHERE email = 'bob@example.net')"
        )
        conn.execute("UPDATE digests SET completed_at = NULL")
    finally:
        conn.close()
    result = project.cli("digest", "--send", now=SEND_AT + timedelta(hours=1))
    assert result.code == 0, result.err
    (again,) = [p for p in outbox.iterdir() if p.name not in first]
    to_bob = [p for p in outbox.iterdir() if b"To: bob@example.net" in p.read_bytes()]
    assert len(to_bob) == 2 and again in to_bob
    assert to_bob[0].read_bytes() == to_bob[1].read_bytes()
    message = again.read_bytes()
    verify_all(message, dns_of(project))
    parsed = email.message_from_bytes(message, policy=email.policy.compat32)
    t = int(re.search(r"t=(\d+)", re.sub(r"\s+", "", parsed["DKIM-Signature"])).group(1))  # type: ignore[union-attr]
    assert t == int(parsedate_to_datetime(parsed["Date"]).timestamp()) == int(SEND_AT.timestamp())


def test_a_test_copy_is_signed(project: Project) -> None:
    with_keys(project)
    sample_site(project, ["ann@example.org"])
    result = project.cli("digest", "--to", "editor@example.org", "--backfill", "5", now=SEND_AT)
    assert result.code == 0, result.err
    (path,) = (project.state / "outbox" / "new").iterdir()
    assert verify_all(path.read_bytes(), dns_of(project)) == [b"rsa-sha256", b"ed25519-sha256"]


def test_the_confirmation_email_is_signed(project: Project) -> None:
    with_keys(project, ed25519=False)
    write_feeds(project.feeds)
    with client(project.settings(), FixedClock(NOW)) as http:
        page = http.get("/subscribe")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        r = http.post(
            "/subscribe",
            data={"email": "anna@example.org", "csrf": csrf},
            headers={"Origin": "https://news.example.org"},
        )
        assert r.status_code == 200
    (path,) = (project.state / "outbox" / "new").iterdir()
    message = path.read_bytes()
    assert verify_all(message, dns_of(project)) == [b"rsa-sha256"]
    assert {"from", "to", "subject", "date", "message-id", "auto-submitted"} <= signed_names(message)


def test_the_welcome_message_is_signed_with_its_unsubscribe_headers(project: Project) -> None:
    with_keys(project, ed25519=False)
    project.configure("[serve]\nwelcome = true\n")
    write_feeds(project.feeds)
    with client(project.settings(), FixedClock(NOW)) as http:
        page = http.get("/subscribe")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        origin = {"Origin": "https://news.example.org"}
        assert http.post(
            "/subscribe", data={"email": "anna@example.org", "csrf": csrf}, headers=origin
        ).is_success
        (confirmation,) = (project.state / "outbox" / "new").iterdir()
        link = re.search(rb"https://news\.example\.org(/confirm/[A-Za-z0-9_=-]+)", confirmation.read_bytes())
        assert link is not None
        path = link.group(1).decode()
        form = http.get(path).text
        token = re.search(r'name="csrf" value="([^"]+)"', form).group(1)  # type: ignore[union-attr]
        assert http.post(path, data={"csrf": token}, headers=origin).is_success
    (welcome,) = [p for p in (project.state / "outbox" / "new").iterdir() if p != confirmation]
    message = welcome.read_bytes()
    assert b"Subject: Welcome to" in message
    assert verify_all(message, dns_of(project)) == [b"rsa-sha256"]
    assert {"from", "to", "subject", "list-unsubscribe", "list-unsubscribe-post"} <= signed_names(message)


# -- failing closed -------------------------------------------------------------------------


def test_a_missing_key_stops_the_send_before_anything_leaves(project: Project) -> None:
    with_keys(project, ed25519=False, generate=False)
    sample_site(project, ["ann@example.org"])
    result = project.cli("digest", "--send", "--backfill", "5", now=SEND_AT)
    assert result.code == 1
    key = project.root / "keys" / "rsa.key"
    assert result.err.startswith(f"Error: {key}: cannot read the DKIM rsa key: No such file or directory")
    assert result.err.count("\n") == 1
    assert not (project.state / "outbox").exists()
    conn = db.connect(project.settings().db_path)
    try:
        assert conn.execute("SELECT COUNT(*) FROM digests").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0] == 0
    finally:
        conn.close()


def test_a_key_that_is_not_a_key_is_one_line(project: Project, tmp_path: Path) -> None:
    with_keys(project, ed25519=False, generate=False)
    key = project.root / "keys" / "rsa.key"
    key.parent.mkdir()
    key.write_text("-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n")
    result = project.cli("dkim", "check")
    assert result.code == 1
    assert result.err.startswith(f"Error: {key}: not a PEM private key without a passphrase")
    sample_site(project, ["ann@example.org"])
    result = project.cli("digest", "--to", "ed@example.org", "--backfill", "5", now=SEND_AT)
    assert result.code == 1 and "not a PEM private key" in result.err
    assert not (project.state / "outbox").exists()


@pytest.mark.parametrize("algorithm", ["rsa", "ed25519"])
def test_a_key_of_the_other_kind_is_refused(project: Project, algorithm: str) -> None:
    """An Ed25519 key where the RSA key belongs (and the reverse) is named, not half-used."""
    with_keys(project, generate=False)
    other = "ed25519" if algorithm == "rsa" else "rsa"
    target = project.root / "keys" / ("rsa.key" if algorithm == "rsa" else "ed.key")
    assert project.cli("dkim", "keygen", "--algorithm", other, "--out", str(target)).code == 0
    assert project.cli("dkim", "keygen", "--algorithm", other).code == 0  # the other slot: right kind
    result = project.cli("dkim", "check")
    assert result.code == 1
    assert f"Error: {target}: " in result.err and "must hold an" in result.err
