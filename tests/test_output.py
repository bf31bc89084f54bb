"""publisher.output: atomic writes that skip identical bytes, batches, and stale temporary files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from publisher import output
from publisher.errors import OutputError


def test_write_atomic_writes_then_skips_identical_bytes(tmp_path: Path) -> None:
    """A second write of the same bytes touches nothing, so the mtime stays."""
    target = tmp_path / "sub" / "atom.xml"
    assert output.write_atomic(target, b"<feed/>") is True
    assert target.read_bytes() == b"<feed/>"
    os.utime(target, ns=(1_000_000_000, 1_000_000_000))
    assert output.write_atomic(target, b"<feed/>") is False
    assert target.stat().st_mtime_ns == 1_000_000_000
    assert output.write_atomic(target, b"<feed></feed>") is True
    assert target.read_bytes() == b"<feed></feed>"
    assert sorted(p.name for p in target.parent.iterdir()) == ["atom.xml"]


def test_write_atomic_reports_a_folder_in_the_way(tmp_path: Path) -> None:
    """An unwritable target is one OutputError naming the path, and no temporary file stays."""
    (tmp_path / "index.html").mkdir()
    with pytest.raises(OutputError, match=r"index\.html: cannot write"):
        output.write_atomic(tmp_path / "index.html", b"x")
    assert not any(output.is_temp(p.name) for p in tmp_path.iterdir())


def test_batch_is_invisible_until_commit(tmp_path: Path) -> None:
    """Queued writes exist only as temporary files until commit; deletions happen at commit."""
    (tmp_path / "old.html").write_bytes(b"old")
    (tmp_path / "same.html").write_bytes(b"same")
    with output.Batch(tmp_path) as batch:
        assert batch.write("articles/a.html", b"A") is True
        assert batch.write("same.html", b"same") is False
        batch.delete("old.html")
        assert not (tmp_path / "articles" / "a.html").exists()
        assert (tmp_path / "old.html").exists()
        temps = [p for p in tmp_path.rglob("*") if output.is_temp(p.name)]
        assert len(temps) == 1
        changed = batch.commit()
    assert changed == ["articles/a.html", "old.html"]
    assert batch.unchanged == 1
    assert (tmp_path / "articles" / "a.html").read_bytes() == b"A"
    assert not (tmp_path / "old.html").exists()
    assert not [p for p in tmp_path.rglob("*") if output.is_temp(p.name)]


def test_batch_many_files_uses_one_sync(tmp_path: Path) -> None:
    """Past the threshold the batch still lands every file intact."""
    with output.Batch(tmp_path) as batch:
        for i in range(40):
            batch.write(f"p/{i}.html", f"page {i}".encode())
        assert len(batch.commit()) == 40
    assert (tmp_path / "p" / "39.html").read_text() == "page 39"


def test_batch_replaces_a_leftover_temp_with_our_pid(tmp_path: Path) -> None:
    """A temporary file left by a dead process that had our pid (pids are reused) is replaced."""
    (tmp_path / "a").mkdir()
    leftover = tmp_path / "a" / f".x.html.{os.getpid()}.tmp"
    leftover.write_bytes(b"half a page from a killed build, longer than the new one")
    with output.Batch(tmp_path) as batch:
        assert batch.write("a/x.html", b"new") is True
        assert batch.commit() == ["a/x.html"]
    assert (tmp_path / "a" / "x.html").read_bytes() == b"new"
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["x.html"]


def test_abandoned_batch_leaves_no_temporary_files(tmp_path: Path) -> None:
    """An exception inside the block removes the temporary files and changes no output."""
    (tmp_path / "a.html").write_bytes(b"old")
    with pytest.raises(RuntimeError), output.Batch(tmp_path) as batch:
        batch.write("a.html", b"new")
        raise RuntimeError("boom")
    assert (tmp_path / "a.html").read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.html"]


def test_stale_temps_of_dead_processes_are_removed(tmp_path: Path) -> None:
    """Temporary files of a process that is gone are removed; names that only look alike stay."""
    dead = tmp_path / ".atom.xml.999999999.tmp"
    dead.write_bytes(b"partial")
    mine = tmp_path / "articles" / f".a.html.{os.getpid()}.tmp"
    mine.parent.mkdir()
    mine.write_bytes(b"partial")
    keep = tmp_path / "notes.tmp"
    keep.write_bytes(b"x")
    assert output.is_temp(dead.name) and not output.is_temp("atom.xml") and not output.is_temp(keep.name)
    assert output.remove_stale_temps(tmp_path) == 2
    assert keep.exists() and not dead.exists() and not mine.exists()
