"""`publisher dkim keygen` (make a key pair, print its DNS record) and `publisher dkim check`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from publisher.cli.main import Context


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "dkim",
        help="make a DKIM key pair and print its DNS record; check the configured keys",
        description="Manage the DKIM keys that sign every digest and confirmation email when [dkim] "
        "is configured: make a key pair and print its DNS record, or check the configured keys "
        "(see docs/dkim.md).",
    )
    actions = parser.add_subparsers(dest="dkim_action", metavar="ACTION", required=True)
    keygen = actions.add_parser(
        "keygen",
        help="write a new private key (mode 0600) and print the DNS TXT record to publish",
        description="Write a new private key to dkim.private_key_path (or dkim.ed25519_private_key_path "
        "with --algorithm ed25519, or --out) with mode 0600, its TXT record text beside it (PATH.txt), "
        "and print the DNS record. Refuses to replace an existing key.",
    )
    keygen.add_argument("--algorithm", choices=("rsa", "ed25519"), default="rsa", help="default: rsa")
    keygen.add_argument("--bits", type=int, choices=(1024, 2048, 3072, 4096), default=2048, help="RSA size")
    keygen.add_argument("--out", type=_out_path, metavar="PATH", help="where the private key goes")
    keygen.add_argument("--domain", type=_dns_name, help="signing domain (default: dkim.domain)")
    keygen.add_argument(
        "--selector", type=_dns_name, help="selector (default: dkim.selector or dkim.ed25519_selector)"
    )
    keygen.set_defaults(handler=run_keygen)
    check = actions.add_parser(
        "check",
        help="load the configured keys and sign a sample; print the DNS records they need",
        description="Load every key [dkim] names, sign a sample message with each, and print the "
        "DNS TXT record each one needs. Exit 1 when a key cannot be used.",
    )
    check.set_defaults(handler=run_check)


def _dns_name(value: str) -> str:
    from publisher.config_mail import DNS_NAME

    if not DNS_NAME.match(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a DNS name")
    return value


def _out_path(value: str) -> Path:
    try:
        return Path(value).expanduser().resolve()
    except (RuntimeError, OSError) as exc:  # ~nosuchuser, or a loop of symbolic links
        raise argparse.ArgumentTypeError(f"{value!r}: {exc}") from None


def run_keygen(args: argparse.Namespace, ctx: Context) -> int:
    from publisher.delivery import dkim
    from publisher.errors import ConfigError

    settings = ctx.settings
    config = settings.dkim
    rsa = args.algorithm == "rsa"
    configured = config.private_key_path if rsa else config.ed25519_private_key_path
    if args.out is not None:
        path = args.out
    elif configured is not None:
        path = dkim.key_path(settings, configured)
    else:
        key = "dkim.private_key_path" if rsa else "dkim.ed25519_private_key_path"
        raise ConfigError(f"no file to write the key to: set {key} or give --out PATH")
    domain = args.domain or config.domain
    if not domain:
        raise ConfigError("no signing domain: set dkim.domain or give --domain")
    selector = args.selector or (config.selector if rsa else config.ed25519_selector)
    pair = dkim.generate(args.algorithm, args.bits)
    public = dkim.write_pair(pair, path)
    print(f"Private key: {path} (mode 0600; keep it secret)")
    print(f"TXT record text: {public}")
    print("Publish this DNS record, then wait for it to be visible before signing with the key:")
    print(dkim.dns_record(pair, selector, domain))
    return 0


def run_check(args: argparse.Namespace, ctx: Context) -> int:
    from publisher.delivery import dkim

    signer = dkim.signer_for(ctx.settings)
    if signer is None:
        print("DKIM is off: [dkim] domain is not set.")
        return 0
    for key in signer.keys:
        print(f"{key.algorithm} key {key.path}: usable; it needs this DNS record:")
        print(dkim.dns_record(dkim.public_pair(key), key.selector, signer.domain))
    return 0
