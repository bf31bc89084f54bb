"""Benchmark of `publisher serve`: requests per second for atom.xml, full and conditional (304).

Builds a real site (60 synthetic articles through `publisher build`, so atom.xml holds 50 entries
with full content), starts `publisher serve` as a subprocess on 127.0.0.1, and loads it from a
second process:

- with `wrk` when it is installed (Debian: `apt-get install wrk`), for `--duration` seconds per
  scenario over `--connections` keep-alive connections;
- else with the asyncio client below (raw HTTP/1.1 keep-alive, no third-party code in the hot
  path), bounded by `--requests` per scenario and by `--duration`.

Scenarios: GET identity (200), GET gzip (200), GET with If-None-Match (304), and the same with gzip.
Columns: bytes of one response on the wire; requests per second; the server process's CPU time
per request (user + system, from /proc: far less sensitive to other load on the machine than
requests per second; the median of `--repeat` runs).

    python bench/serve.py                     # wrk if present, else the asyncio client
    python bench/serve.py --client python --requests 20000
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import importlib.util
import os
import re
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOW = "2026-01-01T12:00:00+00:00"


def _build_site(folder: Path) -> Path:
    spec = importlib.util.spec_from_file_location("bench_build", ROOT / "bench" / "build.py")
    assert spec and spec.loader
    corpus = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(corpus)
    corpus.generate(folder, 60)
    config = folder / "publisher.toml"
    env = {**os.environ, "PUBLISHER_NOW": NOW}
    subprocess.run(
        [sys.executable, "-m", "publisher", "-q", "--config", str(config), "build"], check=True, env=env
    )
    return config


def _start(config: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "publisher", "-q", "--config", str(config), "serve", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=err,
        )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    line = proc.stdout.readline().decode() if ready else ""
    found = re.search(r"on (http://\S+)", line)
    if not found:
        proc.kill()
        raise SystemExit(f"publisher serve did not start: {log.read_text()}")
    return proc, found.group(1)


# -- the asyncio load generator -----------------------------------------------------------------


async def _connection(host: str, port: int, request: bytes, quota: list[int], deadline: float) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    done = 0
    try:
        while quota[0] > 0 and time.perf_counter() < deadline:
            quota[0] -= 1
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            found = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
            length = int(found.group(1)) if found else 0
            if length:
                await reader.readexactly(length)
            done += 1
    finally:
        writer.close()
    return done


async def _load(
    url: str, headers: dict[str, str], requests: int, connections: int, seconds: float
) -> tuple[float, int]:
    host, port = url.removeprefix("http://").rstrip("/").rsplit(":", 1)
    lines = ["GET /atom.xml HTTP/1.1", f"Host: {host}:{port}"] + [f"{k}: {v}" for k, v in headers.items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    quota = [requests]
    start = time.perf_counter()
    counts = await asyncio.gather(
        *(_connection(host, int(port), request, quota, start + seconds) for _ in range(connections))
    )
    return sum(counts) / (time.perf_counter() - start), sum(counts)


def python_client(url: str, headers: dict[str, str], args: argparse.Namespace) -> tuple[float, int]:
    # Warm up (the first request loads the file into the server's cache).
    asyncio.run(_load(url, headers, 200, 2, 5))
    return asyncio.run(_load(url, headers, args.requests, args.connections, args.duration))


def wrk_client(url: str, headers: dict[str, str], args: argparse.Namespace) -> tuple[float, int]:
    command = ["wrk", "-t1", f"-c{args.connections}", f"-d{max(1, round(args.duration))}s", "--latency"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    subprocess.run([*command[:3], "-d1s", *command[4:], url + "atom.xml"], check=True, capture_output=True)
    out = subprocess.run([*command, url + "atom.xml"], check=True, capture_output=True, text=True).stdout
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert found, out
    if re.search(r"Non-2xx or 3xx responses", out):
        raise SystemExit(f"errors under load:\n{out}")
    count = re.search(r"(\d+) requests in", out)
    assert count, out
    return float(found.group(1)), int(count.group(1))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far (Linux /proc): unlike requests per
    second, it barely depends on what else the machine is doing."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wire(url: str, headers: dict[str, str]) -> tuple[int, str]:
    """(bytes of one response on the wire, its ETag) for GET /atom.xml with these headers."""
    host, port = url.removeprefix("http://").rstrip("/").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", "/atom.xml", headers=headers)
        response = conn.getresponse()
        body = response.read()
        head = sum(len(f"{k}: {v}\r\n") for k, v in response.getheaders()) + len("HTTP/1.1 200 OK\r\n\r\n")
        return head + len(body), str(response.getheader("ETag"))
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--client", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per run at most")
    parser.add_argument("--requests", type=int, default=30_000, help="requests per scenario at most (python)")
    parser.add_argument("--repeat", type=int, default=5, help="rounds through the scenarios")
    args = parser.parse_args()
    client = args.client
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "python"
    load = wrk_client if client == "wrk" else python_client

    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        folder = Path(tmp)
        config = _build_site(folder)
        atom = (folder / "feeds" / "atom.xml").read_bytes()
        proc, url = _start(config, folder / "serve.log")
        try:
            identity = wire(url, {"Accept-Encoding": "identity"})[1]
            gz = wire(url, {"Accept-Encoding": "gzip"})[1]
            scenarios = [
                ("GET atom.xml, identity (200)", {"Accept-Encoding": "identity"}),
                ("GET atom.xml, gzip (200)", {"Accept-Encoding": "gzip"}),
                ("If-None-Match, identity (304)", {"Accept-Encoding": "identity", "If-None-Match": identity}),
                ("If-None-Match, gzip (304)", {"Accept-Encoding": "gzip", "If-None-Match": gz}),
            ]
            print(f"atom.xml: {len(atom):,} bytes; client: {client}, {args.connections} connections")
            # Rounds go through every scenario in turn, so a burst of other load on the machine hits
            # all of them alike; each scenario shows its median round, and the 304/200 ratio is the
            # median of the per-round ratios.
            runs: list[list[tuple[float, float]]] = [[] for _ in scenarios]
            for _ in range(args.repeat):
                for index, (_, headers) in enumerate(scenarios):
                    before = cpu_seconds(proc.pid)
                    rate, count = load(url, headers, args)
                    runs[index].append((rate, (cpu_seconds(proc.pid) - before) / count * 1e6))
            print(f"{'scenario':32} {'bytes':>8} {'req/s':>8} {'CPU µs/req':>11}")
            for (name, headers), found in zip(scenarios, runs, strict=True):
                rate = statistics.median(run[0] for run in found)
                cpu = statistics.median(run[1] for run in found)
                size = wire(url, headers)[0]
                print(f"{name:32} {size:8,} {rate:8,.0f} {cpu:11,.0f}")
            share = statistics.median(c[1] / f[1] for f, c in zip(runs[0], runs[2], strict=True))
            speed = statistics.median(c[0] / f[0] for f, c in zip(runs[0], runs[2], strict=True))
            print(
                f"304 vs 200 (identity): {speed:.1f}x the requests per second; a 304 costs the server "
                f"{100 * share:.0f}% of the CPU time of a full response (per-round ratios: "
                + ", ".join(f"{100 * c[1] / f[1]:.0f}%" for f, c in zip(runs[0], runs[2], strict=True))
                + ")"
            )
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=15)


if __name__ == "__main__":
    main()
