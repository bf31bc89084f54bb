"""Every file publisher writes under feeds/ goes through here, atomically.

A file is first written in full to a temporary file in the same folder, flushed to disk, and only
then renamed over its target (`os.replace`, atomic on POSIX); the folder is then flushed so the
rename itself survives a crash. A build killed at any moment therefore leaves each output either
its old complete version or its new complete version, never a mix. A leftover temporary file is
named `.<name>.<pid>.tmp` (hidden, and `is_temp` recognises it); the next build removes it.

Writing bytes a file already holds is skipped altogether, so an unchanged file keeps its mtime
(HTTP caches and `If-Modified-Since` stay valid).

`write_atomic` writes one file. `Batch` writes many: all temporary files first, then one flush of
the whole file system (`syncfs`, far cheaper than an fsync per file on 10,000 pages), then the
renames in the order the files were given, then one flush per folder. The caller orders its
writes so a reader never sees a link to a page that is not there yet (pages before feeds).
"""

from __future__ import annotations

import ctypes
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from publisher.errors import OutputError

_TEMP = re.compile(r"^\..+\.(\d+)\.tmp$")

# Fault injection for tests: when set, called with (step, path) before each step that touches the
# disk ("write": a temporary file, "rename": a temporary file over its target, "delete"). A test
# raises from it (OSError(ENOSPC), or an exception standing for a kill) to stop a build exactly
# there. Never set outside tests.
FaultHook = Callable[[str, Path], None]
_fault: FaultHook | None = None


@contextmanager
def faults(hook: FaultHook) -> Iterator[None]:
    """Call `hook` before every disk step inside the block (tests only)."""
    global _fault
    previous, _fault = _fault, hook
    try:
        yield
    finally:
        _fault = previous


def _step(step: str, path: Path) -> None:
    if _fault is not None:
        _fault(step, path)


# Below this many files, an fsync per file is as cheap as a file-system-wide sync.
_SYNCFS_FROM = 16


def is_temp(name: str) -> bool:
    """A temporary file of ours (possibly left by a killed build): never an output."""
    return bool(_TEMP.match(name))


def _temp_name(target: Path) -> Path:
    return target.with_name(f".{target.name}.{os.getpid()}.tmp")


def same_bytes(path: Path, data: bytes) -> bool:
    """True when `path` is a regular file holding exactly `data` (size is checked before reading)."""
    try:
        if path.stat().st_size != len(data):
            return False
        return path.read_bytes() == data
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return False
    except OSError as exc:
        raise OutputError(f"{path}: cannot read: {exc.strerror or exc}") from exc


def _write_file(path: Path, data: bytes, *, sync: bool) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # some platforms cannot open folders; the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass  # e.g. file systems that do not support fsync on folders
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> bool:
    """Write `data` to `path` atomically. Returns False, touching nothing, when it already holds it."""
    if same_bytes(path, data):
        return False
    temp = _temp_name(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_quietly(temp)
        _step("write", path)
        _write_file(temp, data, sync=True)
        _step("rename", path)
        temp.replace(path)
    except OSError as exc:
        _remove_quietly(temp)
        raise OutputError(f"{path}: cannot write: {exc.strerror or exc}") from exc
    _fsync_dir(path.parent)
    return True


def _remove_quietly(path: Path) -> None:
    path.unlink(missing_ok=True)


def _syncfs(folder: Path) -> bool:
    """Flush every dirty file of the file system holding `folder`; False when not available."""
    try:
        # The running interpreter is linked against libc; find_library would spawn ldconfig.
        syncfs = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return False
    fd = os.open(folder, os.O_RDONLY)
    try:
        return bool(syncfs(fd) == 0)
    finally:
        os.close(fd)


class Batch:
    """Many atomic writes and deletions under one root, made visible by `commit`.

    `write` compares with the file in place and, when the bytes differ, writes the temporary file
    at once (so memory does not grow with the batch). `commit` flushes, renames in order, then
    deletes. Leaving the `with` block without committing removes the temporary files.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._pending: list[tuple[Path, Path, str]] = []  # (temp, target, rel)
        self._deletions: list[tuple[Path, str]] = []
        self._unsynced: list[Path] = []
        self._folders: set[Path] = set()  # made (or found) by this batch
        self.unchanged = 0

    def __enter__(self) -> Batch:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.abort()

    def write(self, rel: str, data: bytes) -> bool:
        """Queue `data` for `root/rel`; False when the file already holds exactly these bytes."""
        target = self.root / rel
        if same_bytes(target, data):
            self.unchanged += 1
            return False
        temp = _temp_name(target)
        try:
            if target.parent not in self._folders:  # one mkdir per folder, not per file
                target.parent.mkdir(parents=True, exist_ok=True)
                self._folders.add(target.parent)
            _step("write", target)
            try:
                _write_file(temp, data, sync=False)
            except FileExistsError:  # left by a killed process that had our pid
                _remove_quietly(temp)
                _write_file(temp, data, sync=False)
        except OSError as exc:
            raise OutputError(f"{target}: cannot write: {exc.strerror or exc}") from exc
        self._pending.append((temp, target, rel))
        return True

    def delete(self, rel: str) -> None:
        """Remove `root/rel` at commit time (after every write is in place)."""
        self._deletions.append((self.root / rel, rel))

    def commit(self) -> list[str]:
        """Make every queued write visible, then delete; returns the paths that changed."""
        changed: list[str] = []
        if self._pending:
            self._sync([temp for temp, _, _ in self._pending])
        folders: set[Path] = set()
        for temp, target, rel in self._pending:
            try:
                _step("rename", target)
                temp.replace(target)
            except OSError as exc:
                raise OutputError(f"{target}: cannot write: {exc.strerror or exc}") from exc
            folders.add(target.parent)
            changed.append(rel)
        self._pending.clear()
        for target, rel in self._deletions:
            try:
                _step("delete", target)
                target.unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise OutputError(f"{target}: cannot delete: {exc.strerror or exc}") from exc
            folders.add(target.parent)
            changed.append(rel)
        self._deletions.clear()
        for folder in sorted(folders):
            _fsync_dir(folder)
        return changed

    def detach(self) -> tuple[list[tuple[str, str, str]], int]:
        """Hand the temporary files written so far to another Batch (`adopt`), e.g. from a worker
        process: (temp, target, rel) for each, and the count of files found unchanged."""
        files = [(str(temp), str(target), rel) for temp, target, rel in self._pending]
        self._pending.clear()
        unchanged, self.unchanged = self.unchanged, 0
        return files, unchanged

    def adopt(self, files: list[tuple[str, str, str]], unchanged: int) -> None:
        """Take over temporary files another Batch detached; they are renamed at `commit`."""
        self._pending.extend((Path(temp), Path(target), rel) for temp, target, rel in files)
        self.unchanged += unchanged

    def abort(self) -> None:
        for temp, _, _ in self._pending:
            _remove_quietly(temp)
        self._pending.clear()
        self._deletions.clear()

    def _sync(self, temps: list[Path]) -> None:
        if len(temps) >= _SYNCFS_FROM and _syncfs(self.root):
            return
        for temp in temps:
            fd = os.open(temp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def remove_stale_temps(root: Path) -> int:
    """Delete temporary files a killed build left under `root` (not those of a live process)."""
    removed = 0
    if not root.is_dir():
        return 0
    for folder, _dirs, files in os.walk(root):
        for name in files:
            match = _TEMP.match(name)
            if match is None:
                continue
            pid = int(match.group(1))
            if pid != os.getpid() and _alive(pid):
                continue
            _remove_quietly(Path(folder) / name)
            removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A killed worker may linger as a zombie until someone reaps it: it writes nothing any more.
    try:
        return Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except OSError:
        return True
