"""What DKIM signing costs per digest message: CPU time of publisher.delivery.dkim's Signer on
messages rendered by publisher.delivery.message, with an RSA-2048 key, an Ed25519 key, and both.

    python bench/dkim_sign.py [--messages 200] [--body-kb 25]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from publisher.config import Settings
from publisher.delivery import dkim
from publisher.delivery.message import MessageTemplate, Recipient


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--body-kb", type=int, default=25)
    args = parser.parse_args()
    paragraph = "A paragraph of the story, long enough to look like one. " * 8
    body = "\n\n".join([paragraph] * max(1, args.body_kb * 1024 // (2 * len(paragraph))))
    template = MessageTemplate(
        digest_id="d-20250301-0800-bench",
        subject="Bench News: 10 new articles",
        text=body + "\nUNSUB\n",
        html_body="<p>" + body.replace("\n\n", "</p><p>") + '</p><a href="UNSUB">unsubscribe</a>',
        from_name="Bench News",
        from_address="news@news.example.org",
        host="news.example.org",
        list_name="Bench News",
        date=datetime(2025, 3, 1, 8, tzinfo=UTC),
        placeholders={"unsubscribe": "UNSUB"},
    )
    messages = [
        bytes(
            template.render(
                Recipient(f"reader{i}@example.org", "", f"https://news.example.org/u/{i}", f"mailto:u@x?{i}")
            )
        )
        for i in range(args.messages)
    ]
    with tempfile.TemporaryDirectory() as folder:
        keys = {}
        for algorithm in ("rsa", "ed25519"):
            pair = dkim.generate(algorithm)  # type: ignore[arg-type]
            path = Path(folder) / f"{algorithm}.key"
            dkim.write_pair(pair, path)
            keys[algorithm] = path
        print(f"{args.messages} messages of {len(messages[0]) / 1024:.1f} KB; load {os.getloadavg()[0]:.2f}")
        rsa = {"private_key_path": str(keys["rsa"])}
        ed = {"ed25519_private_key_path": str(keys["ed25519"])}
        for label, config in (("rsa-sha256", rsa), ("ed25519-sha256", ed), ("both", {**rsa, **ed})):
            settings = Settings.model_validate({"dkim": {"domain": "news.example.org", **config}})
            signer = dkim.signer_for(settings)
            assert signer is not None
            started = time.process_time()
            for message in messages:
                signer.sign(message)
            per = (time.process_time() - started) / len(messages) * 1000
            print(f"{label:15} {per:6.2f} ms of CPU per message ({1000 / per:,.0f} messages/s on one core)")


if __name__ == "__main__":
    main()
