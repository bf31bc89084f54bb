"""Benchmark of `publisher run`: latency from a dropped file to atom.xml, idle CPU, memory over time.

Uses bench/build.py's synthetic corpus (10,000 plain-text articles by default), builds it once
cold, then starts the daemon as a subprocess and measures:

- latency: for each drop, from the moment the file is closed to the moment an atom.xml holding it
  is in place (polled every 5 ms), over `--drops` drops, one at a time; median, p90 and max;
- idle CPU: the daemon's user+system CPU time (/proc/PID/stat, all threads) over `--idle` seconds
  with nothing happening, as a percentage of one core;
- memory: resident set size (VmRSS) after the first 10 drops and after `--stamina` drops.

    python bench/daemon.py                               # 10,000 articles, 100 drops, 1,000 for RSS
    python bench/daemon.py --articles 1000 --stamina 200 # quicker
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build import generate

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14 and 15)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def wait_for(predicate: object, what: str, proc: subprocess.Popen[bytes], timeout: float = 600) -> None:
    end = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if proc.poll() is not None:
            raise SystemExit(f"daemon exited ({proc.returncode}) waiting for {what}")
        if time.monotonic() > end:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.005)


def drop(seeds: Path, index: int, moment: datetime) -> tuple[str, float]:
    """Write one new Markdown article dated `moment` (newest of all); return its marker and close time."""
    marker = f"Bench drop {index:05d}"
    text = (
        f"---\ntitle: {marker}\ndate: {moment.isoformat()}\n---\n"
        + "\n\n".join(f"Paragraph {p} of the dropped story number {index}." for p in range(8))
        + "\n"
    )
    with (seeds / f"drop-{index:05d}.md").open("w", encoding="utf-8") as f:
        f.write(text)
    return marker, time.monotonic()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--articles", type=int, default=10_000)
    parser.add_argument("--drops", type=int, default=100, help="drops timed for latency")
    parser.add_argument("--stamina", type=int, default=1_000, help="drops in all, for the memory figure")
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of idle CPU measurement")
    parser.add_argument("--settle", type=float, default=None, help="daemon.settle (default: the default)")
    parser.add_argument("--dir", type=Path, default=None, help="work folder (default: /tmp/…)")
    args = parser.parse_args()

    folder = args.dir or Path(f"/tmp/publisher-bench-daemon-{args.articles}")
    generate(folder, args.articles)
    for name in ("feeds", "state"):
        subprocess.run(["rm", "-rf", str(folder / name)], check=True)
    for old in (folder / "seeds").glob("drop-*.md"):
        old.unlink()
    config = folder / "publisher.toml"
    text = config.read_text(encoding="utf-8").split("\n[daemon]")[0]
    if args.settle is not None:
        text += f"\n[daemon]\nsettle = {args.settle}\n"
    config.write_text(text, encoding="utf-8")
    base = [sys.executable, "-m", "publisher", "--config", str(config)]

    started = time.monotonic()
    subprocess.run([*base, "-q", "build"], check=False)
    print(f"corpus: {args.articles} articles; cold build {time.monotonic() - started:.1f} s")

    log_path = folder / "daemon.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([*base, "run"], stderr=log, stdout=subprocess.DEVNULL)
    try:
        wait_for(lambda: "no digest owed" in log_path.read_text(errors="replace"), "the start", proc)
        atom = folder / "feeds" / "atom.xml"

        time.sleep(1.0)  # let the start-up work finish settling before measuring idle
        before = cpu_seconds(proc.pid)
        time.sleep(args.idle)
        idle = cpu_seconds(proc.pid) - before
        print(f"idle CPU: {idle:.3f} s over {args.idle:g} s = {100 * idle / args.idle:.2f} % of one core")

        seeds = folder / "seeds"
        moment = datetime.now(UTC) - timedelta(hours=1)
        latencies: list[float] = []
        rss_after_10 = 0.0
        total = max(args.drops, args.stamina)
        for index in range(total):
            moment += timedelta(seconds=1)
            marker, closed = drop(seeds, index, moment)
            needle = marker.encode()
            wait_for(lambda needle=needle: needle in atom.read_bytes(), marker, proc)  # type: ignore[misc]
            if index < args.drops:
                latencies.append(time.monotonic() - closed)
            if index == 9:
                rss_after_10 = rss_mb(proc.pid)
                print(f"  10 drops, RSS {rss_after_10:.1f} MB", flush=True)
            if index + 1 == args.drops:
                ordered = sorted(latencies)
                print(
                    f"latency over {len(latencies)} drops: median {statistics.median(ordered):.3f} s, "
                    f"p90 {ordered[int(0.9 * (len(ordered) - 1))]:.3f} s, max {ordered[-1]:.3f} s"
                )
            if (index + 1) % 100 == 0:
                print(f"  {index + 1} drops, RSS {rss_mb(proc.pid):.1f} MB", flush=True)
        rss_end = rss_mb(proc.pid)
        growth = 100 * (rss_end / rss_after_10 - 1) if rss_after_10 else 0.0
        print(
            f"RSS after 10 drops {rss_after_10:.1f} MB, "
            f"after {total} drops {rss_end:.1f} MB ({growth:+.1f} %)"
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
        print(f"daemon exit status after SIGTERM: {code}")


if __name__ == "__main__":
    main()
