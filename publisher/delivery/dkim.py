"""DKIM (RFC 6376, RFC 8463): signing outgoing mail and making key pairs. dkimpy's only home.

`signer_for(settings)` loads the keys `[dkim]` names (RSA, Ed25519, or both: each message then
carries one signature per key) and returns a `Signer`, or None when `[dkim]` is not configured. A
key that is missing, unreadable or malformed is a `DkimError` when the signer is made, before
anything is sent. `Signer.sign(message)` returns the message with its DKIM-Signature header
fields prepended.

The signature's timestamp (t=) is the message's own Date, not the wall clock: a message sent again
after a crash (same Date, same Message-ID) is then byte-identical to the first copy. dkimpy's
`DKIM.sign` always stamps `time.time()`, so this module builds the tag list itself, as that method
does, and hands it to dkimpy's `gen_header`, which hashes, signs and folds.

`generate(algorithm)` makes a key pair with `cryptography` (dkimpy's own key maker runs the openssl
program) and `dns_record` gives the TXT record that publishes its public half.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Literal

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from dkim.canonicalization import CanonicalizationPolicy
from dkim.crypto import parse_pem_private_key

from publisher.config import Settings
from publisher.errors import PublisherError

Algorithm = Literal["rsa", "ed25519"]

# What a reader sees and RFC 8058 requires covered (List-Unsubscribe and List-Unsubscribe-Post),
# plus what gives the body its meaning. Each name is listed once more than it occurs ("oversigning",
# RFC 6376 section 8.15), so nobody can add a second From or List-Unsubscribe without breaking
# the signature.
SIGNED = (
    "From",
    "To",
    "Cc",
    "Reply-To",
    "Subject",
    "Date",
    "Message-ID",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Auto-Submitted",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
)
_CANONICALIZE = (b"relaxed", b"relaxed")  # survives re-folding and trailing-space changes in transit
_ALGORITHMS: dict[Algorithm, bytes] = {"rsa": b"rsa-sha256", "ed25519": b"ed25519-sha256"}


class DkimError(PublisherError):
    """A DKIM key cannot be used, or a key pair cannot be written."""


@dataclass(frozen=True)
class Key:
    """One signing key: the algorithm, the selector it is published under, the private key as
    dkimpy takes it (PKCS#1 PEM for RSA, the base64 seed for Ed25519) and where it came from."""

    algorithm: Algorithm
    selector: str
    private: bytes
    path: Path


class Signer:
    """Signs messages for one domain with one or two keys."""

    def __init__(self, domain: str, keys: list[Key]) -> None:
        self.domain = domain
        self.keys = keys
        self._signing_keys = [_signing_key(key) for key in keys]  # parsed once, used per message

    def sign(self, message: bytes) -> bytes:
        """`message` (CRLF line ends) with one DKIM-Signature per key in front of it."""
        return self.signatures(message) + message

    def signatures(self, message: bytes) -> bytes:
        """The DKIM-Signature header fields for `message`, one per key, each ending in CRLF."""
        headers = _header_names(message)
        include = [name.encode("ascii") for name in SIGNED for _ in range(headers.get(name.lower(), 0) + 1)]
        timestamp = _date_of(message)
        return b"".join(
            self._signature(message, key, signing_key, include, timestamp)
            for key, signing_key in zip(self.keys, self._signing_keys, strict=True)
        )

    def _signature(
        self, message: bytes, key: Key, signing_key: object, include: list[bytes], timestamp: int
    ) -> bytes:
        algorithm = _ALGORITHMS[key.algorithm]
        # What dkim.DKIM.sign does, with t= taken from the message (see the module docstring).
        signer = dkim.DKIM(message, linesep=b"\r\n")
        signer.signature_algorithm = algorithm
        signer.hasher = dkim.HASH_ALGORITHMS[algorithm]
        policy = CanonicalizationPolicy.from_c_value(b"/".join(_CANONICALIZE))
        body_hash = base64.b64encode(signer.hasher(policy.canonicalize_body(signer.body)).digest())
        domain = self.domain.encode("ascii")
        fields = [
            (b"v", b"1"),
            (b"a", algorithm),
            (b"c", policy.to_c_value()),
            (b"d", domain),
            (b"i", b"@" + domain),
            (b"q", b"dns/txt"),
            (b"s", key.selector.encode("ascii")),
            (b"t", str(timestamp).encode("ascii")),
            (b"h", b" : ".join(name.lower() for name in include)),
            (b"bh", body_hash),
            (b"b", b"0" * 60),  # placeholder, so b= folds onto its own line (as dkimpy does)
        ]
        value: bytes = signer.gen_header(
            fields, [n.lower() for n in include], policy, b"DKIM-Signature", signing_key
        )
        return b"DKIM-Signature: " + value


def _signing_key(key: Key) -> object:
    """The key as dkimpy's signing code takes it."""
    if key.algorithm == "rsa":
        return parse_pem_private_key(key.private)
    import nacl.encoding
    import nacl.signing

    return nacl.signing.SigningKey(key.private, encoder=nacl.encoding.Base64Encoder)


def _header_names(message: bytes) -> dict[str, int]:
    """How often each header field (lower-cased name) occurs in `message`'s header."""
    head = message.split(b"\r\n\r\n", 1)[0]
    counts: dict[str, int] = {}
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") or b":" not in line:
            continue
        name = line.split(b":", 1)[0].strip().decode("ascii", "replace").lower()
        counts[name] = counts.get(name, 0) + 1
    return counts


def _date_of(message: bytes) -> int:
    """The message's Date as Unix seconds (the signature's t=)."""
    head = message.split(b"\r\n\r\n", 1)[0].decode("ascii", "replace")
    for field in head.replace("\r\n ", " ").replace("\r\n\t", " ").split("\r\n"):
        name, _, value = field.partition(":")
        if name.strip().lower() == "date":
            try:
                return int(parsedate_to_datetime(value.strip()).timestamp())
            except (TypeError, ValueError) as exc:
                raise DkimError(f"cannot sign a message whose Date is {value.strip()!r}") from exc
    raise DkimError("cannot sign a message without a Date header")


def signer_for(settings: Settings) -> Signer | None:
    """The signer `[dkim]` describes, with its keys read and checked now; None without
    `dkim.domain`. Raises DkimError (one line naming the file) for a key that cannot be used."""
    config = settings.dkim
    if not config.domain:
        return None
    keys: list[Key] = []
    if config.private_key_path is not None:
        path = key_path(settings, config.private_key_path)
        keys.append(Key("rsa", config.selector, _load(path, "rsa"), path))
    if config.ed25519_private_key_path is not None:
        path = key_path(settings, config.ed25519_private_key_path)
        keys.append(Key("ed25519", config.ed25519_selector, _load(path, "ed25519"), path))
    # Sign a sample with each key now: a key dkimpy cannot use is found before any mail is made.
    sample = b"From: a@" + config.domain.encode() + b"\r\nDate: Thu, 01 Jan 2026 00:00:00 +0000\r\n\r\nx\r\n"
    for key in keys:
        try:
            Signer(config.domain, [key]).sign(sample)
        except (dkim.DKIMException, ValueError, TypeError) as exc:
            raise DkimError(f"{key.path}: not a usable DKIM {key.algorithm} key: {exc}") from exc
    return Signer(config.domain, keys)


def key_path(settings: Settings, path: Path) -> Path:
    """A key path from `[dkim]`, resolved against the configuration file's folder."""
    return (settings.base_dir / path.expanduser()).resolve()


def _load(path: Path, algorithm: Algorithm) -> bytes:
    """The private key in `path`, converted to the form dkimpy signs with."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DkimError(
            f"{path}: cannot read the DKIM {algorithm} key: {exc.strerror or exc}",
            hint="make one with `publisher dkim keygen`, or fix dkim.*private_key_path",
        ) from exc
    if algorithm == "ed25519":
        text = data.strip()
        if not text.startswith(b"-----"):  # dkimpy's own form: the base64 seed
            try:
                seed = base64.b64decode(text, validate=True)
            except ValueError:
                seed = b""
            if len(seed) != 32:
                raise DkimError(f"{path}: not an Ed25519 private key (32 bytes, base64, or PEM)")
            return text
    try:
        loaded = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise DkimError(f"{path}: not a PEM private key without a passphrase ({exc})") from exc
    if algorithm == "rsa":
        if not isinstance(loaded, rsa.RSAPrivateKey):
            raise DkimError(f"{path}: dkim.private_key_path must hold an RSA key")
        if loaded.key_size < 1024:
            raise DkimError(f"{path}: an RSA key of {loaded.key_size} bits is too short (use 2048)")
        return loaded.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    if not isinstance(loaded, ed25519.Ed25519PrivateKey):
        raise DkimError(f"{path}: dkim.ed25519_private_key_path must hold an Ed25519 key")
    raw = loaded.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return base64.b64encode(raw)


# -- key pairs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyPair:
    algorithm: Algorithm
    private_pem: bytes  # PKCS#8 PEM, what `openssl` and this module read
    public: bytes  # the p= value: base64 of the DER SubjectPublicKeyInfo (RSA) or the raw key (Ed25519)


def generate(algorithm: Algorithm, bits: int = 2048) -> KeyPair:
    """A new key pair (RSA of `bits`, or Ed25519)."""
    if algorithm == "rsa":
        return _pair(algorithm, rsa.generate_private_key(public_exponent=65537, key_size=bits))
    return _pair(algorithm, ed25519.Ed25519PrivateKey.generate())


def public_pair(key: Key) -> KeyPair:
    """The key pair of a loaded signing key (for printing its DNS record again)."""
    private: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    if key.algorithm == "rsa":
        loaded = serialization.load_pem_private_key(key.private, password=None)
        assert isinstance(loaded, rsa.RSAPrivateKey)
        private = loaded
    else:
        private = ed25519.Ed25519PrivateKey.from_private_bytes(base64.b64decode(key.private))
    return _pair(key.algorithm, private)


def _pair(algorithm: Algorithm, private: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> KeyPair:
    if isinstance(private, rsa.RSAPrivateKey):
        public = private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    else:
        public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return KeyPair(algorithm, pem, base64.b64encode(public))


def txt_value(pair: KeyPair) -> str:
    """The TXT record's text: `v=DKIM1; k=rsa; p=…`."""
    return f"v=DKIM1; k={pair.algorithm}; p={pair.public.decode('ascii')}"


def dns_record(pair: KeyPair, selector: str, domain: str) -> str:
    """A zone-file line; the text is split into strings of at most 255 characters (RFC 1035)."""
    value = txt_value(pair)
    strings = " ".join(f'"{value[i : i + 255]}"' for i in range(0, len(value), 255))
    return f"{selector}._domainkey.{domain}. IN TXT ( {strings} )"


def write_pair(pair: KeyPair, path: Path) -> Path:
    """Write the private key to `path` (mode 0600) and the TXT value to `path` + ".txt"; refuse
    to replace either. Each file appears whole or not at all. Returns the public file's path."""
    public = path.with_name(path.name + ".txt")
    for target in (path, public):
        if target.exists() or target.is_symlink():
            raise DkimError(f"{target}: already exists; not replacing a DKIM key (remove it first)")
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_new(path, pair.private_pem, 0o600)
    _write_new(public, (txt_value(pair) + "\n").encode("ascii"), 0o644)
    return public


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Temp file (created with `mode`), fsync, then a hard link to the final name, which fails
    rather than replace a file that appeared meanwhile."""
    tmp = path.with_name(f".{path.name}.{hashlib.sha256(os.urandom(8)).hexdigest()[:8]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.link(tmp, path)
    except FileExistsError as exc:
        raise DkimError(f"{path}: already exists; not replacing a DKIM key (remove it first)") from exc
    finally:
        tmp.unlink(missing_ok=True)
