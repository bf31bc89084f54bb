"""Slow and incomplete clients against `publisher serve`, on 127.0.0.1 only, bounded in count and time.

Starts `publisher serve` (serve.request_timeout = --timeout) on a small site, opens --connections
connections that each send the start of a request head and never finish it, keeps a few of them
trickling a byte a second, and meanwhile asks for atom.xml on fresh connections, one after the
other. Reports how long opening them took, the latency of the ordinary requests while they are held
(median, 99th percentile, worst; and any that failed), and when the server had closed each
half-open connection, counted from when it was opened.

    python bench/slowloris.py                      # 5,000 connections, request_timeout 5 s
    python bench/slowloris.py --connections 2000 --timeout 15
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import re
import resource
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MAX_CONNECTIONS = 20_000


def start(folder: Path, timeout: float) -> tuple[subprocess.Popen[bytes], str, int]:
    (folder / "feeds").mkdir()
    (folder / "seeds").mkdir()
    (folder / "feeds" / "atom.xml").write_text(
        '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom"><title>T</title>'
        + "<entry><title>An entry of a feed</title></entry>" * 200
        + "</feed>\n",
        encoding="utf-8",
    )
    config = folder / "publisher.toml"
    config.write_text(
        '[site]\ntitle = "Bench"\nbase_url = "https://news.example.org/"\n'
        f"[serve]\nrequest_timeout = {timeout}\n",
        encoding="utf-8",
    )
    err = (folder / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "publisher", "-q", "--config", str(config), "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=err,
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    found = re.search(r"on http://([\d.]+):(\d+)/", proc.stdout.readline().decode() if ready else "")
    if not found:
        proc.kill()
        raise SystemExit(f"publisher serve did not start: {(folder / 'serve.log').read_text()}")
    return proc, found.group(1), int(found.group(2))


def get(host: str, port: int) -> float | None:
    """Seconds for one GET /atom.xml on a fresh connection; None when it failed."""
    began = time.perf_counter()
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request("GET", "/atom.xml")
        response = conn.getresponse()
        response.read()
        return time.perf_counter() - began if response.status == 200 else None
    except OSError:
        return None
    finally:
        conn.close()


async def hold(host: str, port: int, count: int, limit: float) -> tuple[float, list[float], int]:
    """Open `count` half-open connections; return (seconds to open them, seconds from opening to
    the server's close for each closed one, how many stayed open past `limit`)."""
    closes: list[float] = []
    left_open = 0
    connected = 0
    all_open = 0.0

    async def one(index: int) -> None:
        nonlocal left_open, connected, all_open
        reader, writer = await asyncio.open_connection(host, port)
        opened = time.monotonic()
        connected += 1
        if connected == count:
            all_open = opened
        writer.write(b"GET /atom.xml HTTP/1.1\r\nHost: bench\r\nX-Slow: ")
        try:
            while True:
                try:
                    data = await asyncio.wait_for(reader.read(1024), 1.0)
                except TimeoutError:
                    if time.monotonic() - opened > limit:
                        left_open += 1
                        return
                    if index % 100 == 0:  # a few trickle a byte a second
                        writer.write(b"a")
                    continue
                if not data:
                    closes.append(time.monotonic() - opened)
                    return
        except OSError:
            closes.append(time.monotonic() - opened)
        finally:
            writer.close()

    began = time.monotonic()
    tasks = []
    for index in range(count):
        tasks.append(asyncio.create_task(one(index)))
        if index % 200 == 199:
            await asyncio.sleep(0)  # let the connects of this batch go out
    failed = sum(1 for r in await asyncio.gather(*tasks, return_exceptions=True) if r is not None)
    if failed:
        print(f"{failed:,} connections could not be opened")
    return (all_open - began if all_open else float("nan")), closes, left_open


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--connections", type=int, default=5000)
    parser.add_argument("--timeout", type=float, default=5.0, help="serve.request_timeout, seconds")
    parser.add_argument("--probes", type=int, default=200, help="ordinary requests while they are held")
    args = parser.parse_args()
    count = min(args.connections, MAX_CONNECTIONS)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < count + 256:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count + 1024), hard))

    with tempfile.TemporaryDirectory(prefix="bench-slowloris-") as tmp:
        proc, host, port = start(Path(tmp), args.timeout)
        try:
            baseline = [t for t in (get(host, port) for _ in range(args.probes)) if t is not None]
            limit = args.timeout * 3 + 10

            async def run() -> tuple[tuple[float, list[float], int], list[float | None]]:
                held = asyncio.create_task(hold(host, port, count, limit))
                await asyncio.sleep(min(2.0, args.timeout / 2))  # the connections are opening / open
                probes = []
                for _ in range(args.probes):
                    probes.append(await asyncio.to_thread(get, host, port))
                return await held, probes

            (opened, closes, left_open), probes = asyncio.run(run())
            ok = [t for t in probes if t is not None]
            print(f"publisher serve, request_timeout {args.timeout:g} s; {count:,} half-open connections")
            print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
            print(f"alone:  GET atom.xml median {1000 * statistics.median(baseline):.1f} ms")
            if ok:
                ok.sort()
                print(
                    f"held:   GET atom.xml median {1000 * statistics.median(ok):.1f} ms, "
                    f"p99 {1000 * ok[int(0.99 * (len(ok) - 1))]:.1f} ms, worst {1000 * ok[-1]:.1f} ms; "
                    f"{len(probes) - len(ok)} of {len(probes)} failed"
                )
            else:
                print(f"held:   all {len(probes)} requests failed")
            closes.sort()
            spread = (
                f", after {min(closes):.1f}–{max(closes):.1f} s (median {statistics.median(closes):.1f} s)"
                if closes
                else ""
            )
            print(
                f"closed by the server: {len(closes):,} of {count:,}{spread}; "
                f"still open after {limit:.0f} s: {left_open:,}"
            )
            print(f"(opening them took {opened:.1f} s)")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=15)


if __name__ == "__main__":
    main()
