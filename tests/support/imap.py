"""A real IMAP server for tests: Debian's dovecot (package dovecot-imapd), started as the test's own
instance with a configuration in tmp_path, implicit TLS on a free loopback port with a certificate
from a private CA, one user with a password, and Maildir storage the test can fill directly."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.support.smtp_tls import Certificates, make_certificates

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
USER = "news"
PASSWORD = "correct horse battery staple"


def available() -> bool:
    return Path(DOVECOT).is_file() and os.access(DOVECOT, os.X_OK)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Dovecot:
    def __init__(self, root: Path) -> None:
        if not available():
            pytest.skip("dovecot is not installed (apt-get install dovecot-imapd)")
        # Dovecot will not read mail as root: under root, the mail processes run as `nobody`,
        # in a folder of their own (pytest's tmp_path is private to its owner).
        self.tmp_path = root
        self.owner = (os.getuid(), os.getgid())
        if os.getuid() == 0:
            nobody = pwd.getpwnam("nobody")
            self.owner = (nobody.pw_uid, nobody.pw_gid)
        root = Path(tempfile.mkdtemp(prefix="publisher-imap-"))
        root.chmod(0o755)
        self.root = root
        self.certs: Certificates = make_certificates(self.tmp_path / "tls")
        self.port = _free_port()
        self.home = root / "home" / USER
        self.maildir = self.home / "Maildir"
        for sub in ("new", "cur", "tmp"):
            (self.maildir / sub).mkdir(parents=True, exist_ok=True)
        for path in (
            root / "home",
            self.home,
            self.maildir,
            *(self.maildir / sub for sub in ("new", "cur", "tmp")),
        ):
            os.chown(path, *self.owner)
        (root / "run").mkdir()
        (root / "state").mkdir()
        (root / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}::::::\n", encoding="utf-8")
        uid, gid = self.owner
        self.config = root / "dovecot.conf"
        self.config.write_text(
            f"""
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = <{self.certs.cert_file}
ssl_key = <{self.certs.key_file}
auth_mechanisms = plain
disable_plaintext_auth = yes
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = {self.port}
    ssl = yes
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0600
  }}
  unix_listener stats-writer {{
    mode = 0600
  }}
}}
protocol imap {{
  mail_max_userip_connections = 50
}}
""",
            encoding="utf-8",
        )
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Dovecot:
        self.process = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(self.config)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    output = (
                        self.process.stdout.read().decode(errors="replace") if self.process.stdout else ""
                    )
                    log = (
                        (self.root / "dovecot.log").read_text(errors="replace")
                        if (self.root / "dovecot.log").exists()
                        else ""
                    )
                    self.__exit__()
                    raise RuntimeError(f"dovecot did not start:\n{output}\n{log}") from None
                time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)

    def deliver(self, data: bytes, name: str) -> None:
        path = self.maildir / "tmp" / name
        path.write_bytes(data)
        os.chown(path, *self.owner)
        path.rename(self.maildir / "new" / name)
