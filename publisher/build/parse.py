"""Reading and parsing seed files for the parse cache (publisher.build.publish.refresh_cache), in this
process or, when there are many (a cold build of thousands), in worker processes on every core.

Each file is read once: the bytes hashed are the bytes parsed, and a file whose hash is the one
cached is not parsed at all. The row to store is prepared where the file was parsed, so a worker
hands back rows ready for the cache.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from publisher import ingest
from publisher.build.units import POOL_FROM, die_with_parent, pool_context
from publisher.config import Settings

if TYPE_CHECKING:
    from publisher.store import cache

log = logging.getLogger("publisher.build")

# A file and what to store for it (None: same bytes as cached, only its stat is recorded).
Parsed = tuple[ingest.SeedFile, "cache.Entry | None"]


def _parse_one(seed: ingest.SeedFile, settings: Settings, known_hash: str | None) -> Parsed:
    """Hash a file; parse it unless the hash is the one cached. The bytes hashed are the bytes
    parsed (one read), and the row to store is prepared here, in the worker on a cold build."""
    from publisher.store import cache

    data = None
    if seed.size > settings.ingest.max_bytes:
        file_hash = f"size:{seed.size}"  # never read a file that is too large
    else:
        try:
            data = ingest.read_limited(seed, settings.ingest.max_bytes)
            file_hash = hashlib.sha256(data).hexdigest()
        except (OSError, ingest.TooLarge):
            file_hash = "unreadable"  # parse_file says why
    if file_hash == known_hash:
        return seed, None
    if data is None:
        article, problems = ingest.parse_file(seed, settings)
    else:
        article, problems = ingest.parse_data(seed, settings, data)
    return seed, cache.entry(seed, file_hash, article, problems)


def _parse_chunk(chunk: list[tuple[ingest.SeedFile, str | None]], settings: Settings) -> list[Parsed]:
    return [_parse_one(seed, settings, known) for seed, known in chunk]


def parse_all(settings: Settings, seeds: list[ingest.SeedFile], known: dict[str, str]) -> Iterator[Parsed]:
    """Parse `seeds` in order, on every core when there are many (a cold build of thousands)."""
    work = [(seed, known.get(seed.rel)) for seed in seeds]
    workers = min(os.cpu_count() or 1, 8)
    if len(work) < POOL_FROM or workers < 2:
        yield from (_parse_one(seed, settings, known_hash) for seed, known_hash in work)
        return
    import concurrent.futures

    size = 100
    chunks = [work[i : i + size] for i in range(0, len(work), size)]
    context = pool_context()
    log.debug("parse: %d files on %d worker processes (%s)", len(work), workers, context.get_start_method())

    with concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=context, initializer=die_with_parent, initargs=(os.getpid(),)
    ) as pool:
        for done in pool.map(_parse_chunk, chunks, [settings] * len(chunks)):
            yield from done
