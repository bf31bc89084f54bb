"""Benchmark of `publisher digest --send`: render and send N personalised digests over SMTP.

Builds a throw-away project (a dozen articles, N subscribers imported from CSV, delivery over SMTP
to bench/smtp_discard.py on 127.0.0.1, which reads and discards), then times one whole
`publisher digest --send --backfill 12` process: selecting and rendering the digest, enqueueing N
ledger rows, and sending N messages, each with its own To, Message-ID and signed unsubscribe
links. Reports messages per second (wall clock of the whole process) and the sender's own CPU
time per message (user + system, from resource.getrusage of the child), and checks the server
counted N messages.

    python bench/digest.py                       # 10,000 subscribers, default concurrency
    python bench/digest.py --subscribers 2000 --concurrency 8 --runs 3
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
NOW = "2025-03-03T08:00:00+00:00"
BODY = (
    "The council approved the plan on Tuesday after a long debate. Residents had asked for changes "
    "to the route, and officials said they would publish a revised map within weeks. "
) * 6


def make_project(root: Path, subscribers: int, port: int, concurrency: int | None) -> None:
    seeds = root / "seeds"
    seeds.mkdir(parents=True)
    for i in range(12):
        title = f"Council approves plan number {i} for the park — «café» edition"
        seeds.joinpath(f"a{i:02d}.md").write_text(
            f'---\ntitle: "{title}"\ndate: 2025-02-{10 + i:02d}\nauthor: "Zoë Ñandú"\n---\n\n'
            f"{BODY} Story {i} has its own words: {'lorem ' * i}\n",
            encoding="utf-8",
        )
    delivery = f"concurrency = {concurrency}\n" if concurrency else ""
    root.joinpath("publisher.toml").write_text(
        '[site]\ntitle = "Bench Gazette"\nbase_url = "https://news.example.org/"\n\n'
        '[digest]\npostal_address = "Bench Gazette, 1 Test Street, 75001 Paris"\n\n'
        f'[delivery]\ntransport = "smtp"\n{delivery}\n'
        f'[smtp]\nhost = "127.0.0.1"\nport = {port}\ntimeout = 10\n',
        encoding="utf-8",
    )
    rows = ["email,name"] + [
        f"reader{i}@example{i % 50}.org,{'Zoë Reader' if i % 3 == 0 else 'Reader'} {i}"
        for i in range(subscribers)
    ]
    root.joinpath("subscribers.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")


def publisher(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PUBLISHER_NOW": NOW, "PUBLISHER_SECRET": "bench-secret-" + "x" * 32}
    return subprocess.run(
        [sys.executable, "-m", "publisher", "--config", str(root / "publisher.toml"), "-q", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def start_server() -> tuple[subprocess.Popen[str], int]:
    server = subprocess.Popen(
        [sys.executable, str(HERE / "smtp_discard.py")], stdout=subprocess.PIPE, text=True
    )
    assert server.stdout is not None
    line = server.stdout.readline()
    return server, int(line.split()[1])


def one_run(subscribers: int, concurrency: int | None) -> tuple[float, float, float, int]:
    server, port = start_server()
    root = Path(tempfile.mkdtemp(prefix="publisher-bench-digest-"))
    try:
        make_project(root, subscribers, port, concurrency)
        for args in (("build",), ("subscribers", "import", str(root / "subscribers.csv"))):
            done = publisher(root, *args)
            if done.returncode != 0:
                raise SystemExit(f"publisher {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = publisher(root, "digest", "--send", "--backfill", "12")
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise SystemExit(f"digest --send failed:\n{done.stdout}{done.stderr}")
        user = after.ru_utime - before.ru_utime
        cpu = user + (after.ru_stime - before.ru_stime)
    finally:
        server.terminate()
        out, _ = server.communicate(timeout=10)
        shutil.rmtree(root, ignore_errors=True)
    received = int(out.split()[-1])
    return wall, cpu, user, received


def main() -> None:
    parser = argparse.ArgumentParser(description="Benchmark publisher digest --send over SMTP.")
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=None, help="default: the setting's default")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rates, cpus = [], []
    for run in range(args.runs):
        wall, cpu, user, received = one_run(args.subscribers, args.concurrency)
        if received != args.subscribers:
            raise SystemExit(f"the server received {received} messages, expected {args.subscribers}")
        per = args.subscribers / 1000
        rates.append(args.subscribers / wall)
        cpus.append(cpu / args.subscribers * 1000)
        print(
            f"run {run + 1}: {args.subscribers} messages in {wall:.2f} s = {rates[-1]:,.0f} msg/s; "
            f"sender CPU {cpu:.2f} s = {cpus[-1]:.3f} ms/message (user {user / per:.3f}, "
            f"system {(cpu - user) / per:.3f})",
            flush=True,
        )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"load average {load}; median: {statistics.median(rates):,.0f} messages/s, "
        f"{statistics.median(cpus):.3f} ms sender CPU per message "
        f"(whole process: start-up, render, ledger, SMTP; concurrency {args.concurrency or 'default'})"
    )


if __name__ == "__main__":
    main()
