"""Benchmark of `publisher build` as a whole process (see bench/README.md).

Generates a synthetic corpus in the plain-text format (N articles of 1 to 12 KB, deterministic from
a seed), then times cold builds (empty state and feeds/), rebuilds with nothing changed, and
rebuilds after adding one article, each as a subprocess, several runs, printing medians and the
peak memory of the child (ru_maxrss).

    python bench/build.py                    # 1,000 and 10,000 articles
    python bench/build.py --sizes 100000     # the big one (generating it takes a while)
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

_VOCABULARY = (
    "the minister said on tuesday that talks would continue despite growing pressure from allies "
    "across europe and the united states officials warned of delays in funding for the project "
    "while analysts expect markets to react calmly to news of an agreement reached late at night "
    "residents gathered outside the council building to protest plans for a new road through the "
    "park a spokesperson declined to comment further citing ongoing negotiations with partners"
)
WORDS = tuple(_VOCABULARY.split(" "))
NAMES = ("Erdoğan", "Zelenskyy", "Müller", "Kallas", "Łukasz", "São Paulo", "Reykjavík", "Dvořák")
FURNITURE = (
    "CLICK HERE TO GET THE NEWS APP",
    "MINISTER SAYS TALKS WILL CONTINUE AMID RIFT ON FUNDING",
    "SIGN UP FOR OUR DAILY NEWSLETTER",
)

CONFIG = """\
[site]
title = "Bench Gazette"
base_url = "https://bench.example.org/"
author = "Bench Desk"
language = "en"
timezone = "UTC"
"""


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(8, 24))]
    if rng.random() < 0.3:
        words.insert(rng.randrange(len(words)), rng.choice(NAMES))
    text = " ".join(words)
    if rng.random() < 0.2:
        text = f"“{text},” {rng.choice(NAMES)} said"
    return text[0].upper() + text[1:] + "."


def article_text(rng: random.Random, index: int) -> str:
    """One article of about 1 to 12 KB: a date line with the lead paragraph, then paragraphs."""
    target = rng.randint(1_000, 12_000)
    day = 1 + index % 28
    month = 1 + (index // 28) % 12
    year = 2015 + (index // 336) % 10
    paragraphs: list[str] = []
    size = 0
    while size < target:
        if paragraphs and rng.random() < 0.08:
            paragraph = rng.choice(FURNITURE)
        else:
            paragraph = " ".join(_sentence(rng) for _ in range(rng.randint(1, 4)))
        # A unique marker keeps every story distinct (duplicates are reported, not published).
        if not paragraphs:
            paragraph = f"Report {index}: {paragraph}"
        paragraphs.append(paragraph)
        size += len(paragraph.encode("utf-8")) + 2
    return f"date {year:04d}-{month:02d}-{day:02d} " + "\n\n".join(paragraphs) + "\n"


def generate(folder: Path, count: int, seed: int = 1) -> None:
    """Write `count` articles into folder/seeds (skipped when already generated with this seed)."""
    seeds = folder / "seeds"
    stamp = folder / ".generated"
    if stamp.exists() and stamp.read_text() == f"{count} {seed}":
        return
    if seeds.exists():
        shutil.rmtree(seeds)
    seeds.mkdir(parents=True)
    rng = random.Random(seed)
    for index in range(count):
        name = f"{index:06d}_{rng.getrandbits(48):012x}.txt"
        (seeds / name).write_text(article_text(rng, index), encoding="utf-8")
    (folder / "publisher.toml").write_text(CONFIG, encoding="utf-8")
    stamp.write_text(f"{count} {seed}")


def run_build(folder: Path, *args: str) -> tuple[float, int, str]:
    """One `publisher build` as a whole process: (wall seconds, peak RSS in MB, summary line).

    Peak memory comes from wait4's rusage: the largest resident set of the process or of any
    worker it started (per process, not summed).
    """
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "publisher", "build", *args],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PUBLISHER_NOW": NOW},
    )
    out = proc.stdout.read() if proc.stdout else b""
    err = proc.stderr.read() if proc.stderr else b""
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"build failed in {folder}: {err.decode()}")
    lines = out.decode().strip().splitlines()
    return elapsed, usage.ru_maxrss // 1024, lines[-1] if lines else ""


NOW = "2026-01-01T12:00:00+00:00"


def _median(samples: list[tuple[float, int, str]]) -> str:
    seconds = statistics.median(s[0] for s in samples)
    memory = max(s[1] for s in samples)
    return f"median {seconds:6.2f} s  (runs: {', '.join(f'{s[0]:.2f}' for s in samples)})  peak {memory} MB"


def bench(folder: Path, count: int, runs: int, cold_runs: int) -> None:
    generate(folder, count)
    print(f"== {count:,} articles ({folder})  load average {os.getloadavg()[0]:.2f}", flush=True)
    cold = []
    for _ in range(cold_runs):
        # Moved aside, deleted after the timed build: on ext4, files created within a minute or
        # so of deleting thousands of others in the same block group wait while the allocator
        # skips every recently freed inode (recently_deleted() in a kernel profile); that would
        # add 5-6 s of system time to a cold 10,000 build. The timing is of the build itself.
        old = folder / f".old-{os.getpid()}"
        old.mkdir(exist_ok=True)
        for name in ("state", "feeds"):
            if (folder / name).exists():
                (folder / name).rename(old / f"{name}-{len(cold)}")
        cold.append(run_build(folder))
        shutil.rmtree(old)
    if cold:
        print(f"cold build            {_median(cold)}\n    {cold[-1][2]}", flush=True)
    else:
        run_build(folder)  # --cold-runs 0: reuse the state of an earlier run (built here if missing)
    same = [run_build(folder) for _ in range(runs)]
    print(f"nothing changed       {_median(same)}\n    {same[-1][2]}", flush=True)
    added = []
    rng = random.Random(count)
    for n in range(runs):
        extra = folder / "seeds" / f"added_{n:03d}.txt"
        extra.write_text(article_text(rng, count + 10_000 + n), encoding="utf-8")
        added.append(run_build(folder))
    print(f"one article added     {_median(added)}\n    {added[-1][2]}", flush=True)
    for n in range(runs):
        (folder / "seeds" / f"added_{n:03d}.txt").unlink()
    run_build(folder)  # back to the generated corpus for the next invocation
    print(f"load average now {os.getloadavg()[0]:.2f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000])
    parser.add_argument("--runs", type=int, default=5, help="runs of each rebuild")
    parser.add_argument(
        "--cold-runs", type=int, default=3, help="runs of the cold build (0: keep the existing state)"
    )
    parser.add_argument("--folder", type=Path, default=Path("/tmp/publisher-bench"))
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    for count in args.sizes:
        bench(args.folder / f"c{count}", count, args.runs, args.cold_runs)


if __name__ == "__main__":
    main()
