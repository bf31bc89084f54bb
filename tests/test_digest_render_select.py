"""Which articles a digest holds and what is recorded: first run, backfill, no new articles,
consecutive cut-offs, exact bytes on reload, and a preview that changes nothing."""

from __future__ import annotations

import hashlib
import logging
import re
from datetime import timedelta
from pathlib import Path

import pytest

from publisher import digest, pipeline
from publisher.errors import DeliveryError
from publisher.store import digests as store_digests
from publisher.store.db import to_db_time
from tests.conftest import NOW, Project
from tests.support.digests import build, connection, markdown, publish

DAY = timedelta(days=1)


def _seed(project: Project, *names: str) -> None:
    for name in names:
        project.seed(f"{name}.md", markdown(f"The story of {name}", "2025-02-01", f"All about {name}."))


def _next(project: Project, at: object = NOW, backfill: int | None = None) -> digest.RenderedDigest | None:
    with connection(project.settings().db_path) as conn:
        return digest.prepare_next(conn, project.settings(), at, backfill=backfill)  # type: ignore[arg-type]


def _slugs(rendered: digest.RenderedDigest) -> list[str]:
    return [i.rsplit(":", 1)[1] for i in rendered.article_ids]


def test_first_run_without_backfill_records_a_baseline_and_sends_nothing(project: Project) -> None:
    """The back catalogue is never mailed by accident; what goes live afterwards is."""
    _seed(project, "old1", "old2")
    build(project, NOW - 2 * DAY)
    assert _next(project, NOW) is None
    with connection(project.settings().db_path) as conn:
        assert store_digests.baseline(conn) == NOW
        assert conn.execute("SELECT COUNT(*) FROM digests").fetchone()[0] == 0
    _seed(project, "new1")
    build(project, NOW + DAY)
    rendered = _next(project, NOW + 2 * DAY)
    assert rendered is not None
    assert _slugs(rendered) == ["new1"]
    assert rendered.period_start == NOW and rendered.period_end == NOW + 2 * DAY


def test_backfill_setting_includes_the_newest_live_articles(project: Project) -> None:
    project.configure("[digest]\nbackfill = 2\n")
    _seed(project, "a")
    build(project, NOW - 3 * DAY)
    _seed(project, "b")
    build(project, NOW - 2 * DAY)
    _seed(project, "c")
    build(project, NOW - DAY)
    rendered = _next(project)
    assert rendered is not None and sorted(_slugs(rendered)) == ["b", "c"]
    assert rendered.period_start is None


def test_backfill_argument_overrides_the_setting_even_after_a_baseline(project: Project) -> None:
    """`--backfill N` still counts while no digest was recorded, even after a baseline run."""
    _seed(project, "a", "b", "c")
    build(project, NOW - DAY)
    assert _next(project, NOW) is None
    rendered = _next(project, NOW + DAY, backfill=2)
    assert rendered is not None and len(rendered.article_ids) == 2
    _seed(project, "d")
    build(project, NOW + 2 * DAY)
    later = _next(project, NOW + 3 * DAY, backfill=50)  # ignored now: only d is new
    assert later is not None and _slugs(later) == ["d"]
    assert later.period_start == NOW + DAY


def test_no_new_articles_means_no_digest_and_nothing_recorded(project: Project) -> None:
    _seed(project, "a")
    build(project, NOW - DAY)
    first = _next(project, NOW, backfill=5)
    assert first is not None
    with connection(project.settings().db_path) as conn:
        before = list(conn.iterdump())
    assert _next(project, NOW + DAY) is None
    with connection(project.settings().db_path) as conn:
        assert list(conn.iterdump()) == before


def test_consecutive_digests_cut_at_the_previous_cut_off(project: Project) -> None:
    """Windows are (previous cut-off, cut-off]: an article live exactly at a cut-off is in that
    digest, and every article is in exactly one digest."""
    _seed(project, "a")
    build(project, NOW - DAY)
    _seed(project, "b")
    build(project, NOW - DAY / 2)
    with connection(project.settings().db_path) as conn:  # live exactly at the coming cut-off
        conn.execute("UPDATE articles SET live_at = ? WHERE slug = 'b'", (to_db_time(NOW),))
    first = _next(project, NOW, backfill=5)
    _seed(project, "c")
    build(project, NOW + DAY)
    second = _next(project, NOW + 2 * DAY)
    assert first is not None and second is not None
    assert sorted(_slugs(first)) == ["a", "b"]
    assert _slugs(second) == ["c"]
    assert second.period_start == first.period_end == NOW


def test_removed_articles_are_left_out(project: Project) -> None:
    _seed(project, "a", "b")
    build(project, NOW - DAY)
    (project.seeds / "b.md").unlink()
    build(project, NOW - DAY / 2)
    rendered = _next(project, NOW, backfill=5)
    assert rendered is not None and _slugs(rendered) == ["a"]


def test_recorded_digest_reloads_with_the_same_bytes(project: Project) -> None:
    """A resumed send uses exactly what was recorded, even after the articles changed."""
    _seed(project, "a", "b")
    build(project, NOW - DAY)
    rendered = _next(project, NOW, backfill=5)
    assert rendered is not None
    assert re.fullmatch(r"d-20250301-1200-[0-9a-f]{8}", rendered.digest_id)
    project.seed("a.md", markdown("A different title now", "2025-02-01", "All about a."))
    build(project, NOW + DAY)
    with connection(project.settings().db_path) as conn:
        assert digest.unfinished(conn) == [rendered.digest_id]
        again = digest.load(conn, rendered.digest_id)
        assert again == rendered
        digest.mark_complete(conn, rendered.digest_id, NOW + DAY)
        digest.mark_complete(conn, rendered.digest_id, NOW + 2 * DAY)  # once only
        assert digest.unfinished(conn) == []
        row = store_digests.get(conn, rendered.digest_id)
        assert row is not None and row.completed_at == NOW + DAY
        with pytest.raises(DeliveryError, match="digest d-nope: not recorded in the state database"):
            digest.load(conn, "d-nope")


def test_digest_id_is_stable_for_the_same_cut_off_and_articles(project: Project) -> None:
    _seed(project, "a", "b")
    build(project, NOW - DAY)
    with connection(project.settings().db_path) as conn:
        one = digest.render_preview(conn, project.settings(), NOW, backfill=5)
        two = digest.render_preview(conn, project.settings(), NOW, backfill=5)
    assert one is not None and two is not None
    assert one.digest_id == two.digest_id and one.nonce != two.nonce
    assert digest.personalise(one, "https://x.example/u/1", "A") == digest.personalise(
        two, "https://x.example/u/1", "A"
    )


def test_live_articles_missing_from_the_cache_are_left_out_and_logged(
    project: Project, caplog: pytest.LogCaptureFixture
) -> None:
    """Articles synced without a build have no content in the parse cache: skipped, with a warning."""
    _seed(project, "a")
    build(project, NOW - DAY)
    project.seed("b.md", markdown("The story of b", "2025-02-01", "All about b."))
    publish(project.settings(), NOW - DAY)
    logger = logging.getLogger("publisher.digest")
    logger.addHandler(caplog.handler)  # the CLI's logging setup stops propagation to the root
    try:
        rendered = _next(project, NOW, backfill=5)
    finally:
        logger.removeHandler(caplog.handler)
    assert rendered is not None and _slugs(rendered) == ["a"]
    assert "1 live article(s) left out: not in the build's cache" in caplog.text


def _state_fingerprint(project: Project) -> tuple[list[str], str]:
    with connection(project.settings().db_path) as conn:
        rows = list(conn.iterdump())
    return rows, hashlib.sha256((project.state / "publisher.sqlite3").read_bytes()).hexdigest()


def test_preview_changes_no_state(project: Project) -> None:
    """digest_preview writes its two files and leaves the database and feeds/digests/ alone."""
    _seed(project, "a", "b")
    build(project, NOW - DAY)
    before = _state_fingerprint(project)
    archive = sorted((project.feeds / "digests").iterdir())  # the build's (empty) archive
    paths = pipeline.digest_preview(project.settings(), NOW, backfill=5)
    assert [p.name for p in paths] == ["next-digest.html", "next-digest.txt"]
    assert all(p.parent == project.state / "preview" for p in paths)
    html, text = (p.read_text(encoding="utf-8") for p in paths)
    assert "The story of a" in html and "The story of b" in text
    assert (
        "https://news.example.org/unsubscribe/preview" in html and digest.PLACEHOLDER_UNSUBSCRIBE not in html
    )
    assert _state_fingerprint(project) == before
    assert sorted((project.feeds / "digests").iterdir()) == archive
    # Nothing was recorded: without backfill, the first real run still sends nothing.
    assert pipeline.digest_preview(project.settings(), NOW) == []
    assert _state_fingerprint(project) == before


def test_preview_without_a_database_says_so(project: Project) -> None:
    from publisher.errors import StateError

    with pytest.raises(StateError, match="no state database yet"):
        pipeline.digest_preview(project.settings(), NOW)
    assert not Path(project.state / "publisher.sqlite3").exists()
