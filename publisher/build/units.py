"""Rendering the many files of a build (article pages and archive documents), in units that can run
in this process or, on a cold or full build, in worker processes on every core.

A unit is one archive (its document and the pages of its members that need rendering) or a chunk
of pages. Each article is loaded once, from the parse cache's JSON. A worker writes its temporary
files itself (named with its own pid) and hands them to the parent's `output.Batch`, which makes
them visible in one commit with the rest of the build: atomicity is the batch's, wherever the
bytes were produced.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from publisher.config import Settings
from publisher.models import Published

if TYPE_CHECKING:
    from multiprocessing.context import BaseContext

    from publisher.build.pages import Pages
    from publisher.output import Batch

log = logging.getLogger("publisher.build")

# Below this many pages to render (or files to parse, build/parse.py), starting worker processes
# costs more than it saves.
POOL_FROM = 400
_CHUNK = 250


@dataclass(frozen=True, slots=True)
class Unit:
    """Pages to render, and the archive document `number` (None: pages only) with its members."""

    number: int | None
    members: tuple[str, ...]
    pages: tuple[str, ...]


def plan(
    conn: sqlite3.Connection,
    archives_to_write: Sequence[int],
    page_ids: Sequence[str],
    opened: tuple[int, Sequence[str]] | None = None,
) -> list[Unit]:
    """Units covering every archive to write and every page to render, each page exactly once.
    `opened`: the open archive's number and members (the others' are stored)."""
    from publisher.store import feed_archives

    todo = set(page_ids)
    units = []
    for number in sorted(archives_to_write):
        if opened is not None and number == opened[0]:
            members = tuple(opened[1])
        else:
            members = tuple(feed_archives.members(conn, number))
        mine = tuple(m for m in members if m in todo)
        todo.difference_update(mine)
        units.append(Unit(number, members, mine))
    rest = [i for i in page_ids if i in todo]
    units.extend(Unit(None, (), tuple(rest[i : i + _CHUNK])) for i in range(0, len(rest), _CHUNK))
    return units


def published(conn: sqlite3.Connection, ids: Sequence[str]) -> list[Published]:
    """The Published entries of `ids` (those that exist), newest first (by date, then id)."""
    from publisher.store import articles, cache

    found = cache.load_articles(conn, ids)
    known = articles.identities(conn, list(found))
    items = [Published(found[i], known[i]) for i in ids if i in found and i in known]
    return sorted(items, key=lambda p: (p.published, p.id), reverse=True)


def render(
    conn: sqlite3.Connection,
    settings: Settings,
    site: Pages,
    batch: Batch,
    unit: Unit,
    now: datetime,
    total: int,
) -> None:
    """Write the pages and archive document of `unit` into `batch`."""
    from publisher import urls
    from publisher.build import feed, images, pages
    from publisher.store import visible

    def archive_url(number: int) -> str | None:
        return urls.absolute(settings.site, feed.archive_path(number)) if 1 <= number <= total else None

    wanted = set(unit.pages)
    live = sorted(visible.published_among(conn, now, unit.members)) if unit.number is not None else []
    live_ids = set(live)
    entries = published(conn, sorted(live_ids | wanted))
    for item in entries:
        if item.id in wanted:
            if item.article.images:
                images.copy(batch, settings.seeds_dir, settings.feeds_dir, item.article, site.images_queued)
            batch.write(pages.page_path(item.identity.slug), site.article(item))
    if unit.number is not None:
        members = [item for item in entries if item.id in live_ids]
        document = feed.atom_archive(
            members,
            settings,
            number=unit.number,
            prev_archive=archive_url(unit.number - 1),
            next_archive=archive_url(unit.number + 1),
        )
        batch.write(feed.archive_path(unit.number), document)


def render_all(
    conn: sqlite3.Connection,
    settings: Settings,
    site: Pages,
    batch: Batch,
    units: list[Unit],
    now: datetime,
    total: int,
) -> None:
    """Every unit into `batch`: here when there are few pages, else on every core."""
    workers = min(os.cpu_count() or 1, 8)
    if sum(len(u.pages) for u in units) < POOL_FROM or workers < 2 or sys.platform != "linux":
        for unit in units:
            render(conn, settings, site, batch, unit, now, total)
        return
    import concurrent.futures

    context = pool_context()
    log.debug("render: %d units on %d worker processes (%s)", len(units), workers, context.get_start_method())
    with concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=context, initializer=die_with_parent, initargs=(os.getpid(),)
    ) as pool:
        jobs = [pool.submit(_work, settings, unit, now, total) for unit in units]
        for job in jobs:  # in submission order: archives after their pages, as in this process
            files, unchanged = job.result()
            batch.adopt(files, unchanged)


def pool_context() -> BaseContext:
    """How to start worker processes: `fork` (cheapest) only in a process that has no other
    thread, else `forkserver`. A fork copies every lock another thread held at that instant (the
    logging module's, SQLite's, the scheduler's) still held, with nobody left to release it: the
    daemon (`publisher run`: scheduler, watcher, server threads) must never fork. The fork server
    is a fresh interpreter started once, holding no lock and no open state file, and forks each
    worker from itself; the modules workers need are loaded in it once."""
    import multiprocessing
    import threading

    if sys.platform == "linux" and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    if sys.platform == "win32":
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["publisher.build.parse", "publisher.build.units"])
    return context


def die_with_parent(parent: int) -> None:
    """Worker initializer: a worker must not outlive a build that was killed. Forked from the
    build, it inherited the state lock (flock belongs to the open file, shared across fork) and
    would hold it, and go on writing temporary files, after its parent was gone. It dies with its
    own parent (the build, or the fork server, which ends when the build does), and at once if the
    build `parent` is already gone."""
    import ctypes
    import signal

    with contextlib.suppress(OSError, AttributeError):  # not Linux: it ends when its queue closes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    try:
        os.kill(parent, 0)  # the build died before prctl took effect
    except ProcessLookupError:
        os._exit(1)
    except PermissionError:
        pass


_WORKER: dict[str, object] = {}


def _work(
    settings: Settings, unit: Unit, now: datetime, total: int
) -> tuple[list[tuple[str, str, str]], int]:
    """In a worker: render one unit into temporary files; hand them over without committing."""
    from publisher import output
    from publisher.build import pages
    from publisher.store import db

    if "conn" not in _WORKER:  # once per worker process: its own connection and templates
        _WORKER["conn"] = db.connect(settings.db_path, readonly=True)
        _WORKER["site"] = pages.Pages(settings)
    conn = _WORKER["conn"]
    site = _WORKER["site"]
    assert isinstance(conn, sqlite3.Connection) and isinstance(site, pages.Pages)
    batch = output.Batch(settings.feeds_dir)
    render(conn, settings, site, batch, unit, now, total)
    return batch.detach()
