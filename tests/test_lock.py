"""One publisher per state folder: the lock on state/lock."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator

import pytest

from publisher.errors import LockedError
from publisher.lock import held_by, state_lock
from tests.conftest import Project

HOLDER = textwrap.dedent(
    """
    import sys
    from publisher.config_file import load_settings
    from publisher.lock import state_lock
    with state_lock(load_settings(sys.argv[1]), purpose="publisher run"):
        print("locked", flush=True)
        sys.stdin.readline()
    """
)


def test_a_second_holder_is_refused_with_the_first_ones_pid(project: Project) -> None:
    settings = project.settings()
    with state_lock(settings, purpose="publisher run"):
        assert held_by(settings) == f"pid {os.getpid()}, publisher run"
        with pytest.raises(LockedError) as caught, state_lock(settings):
            pass
    error = caught.value
    assert error.exit_code == 3
    assert error.one_line() == (
        f"{settings.state_dir} is in use by another publisher process (pid {os.getpid()}, publisher run) "
        "(let it finish or stop the daemon; --wait SECONDS waits for the lock)"
    )
    assert held_by(settings) is None
    with state_lock(settings):  # released: free again
        pass


@contextlib.contextmanager
def holder(project: Project) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the lock as `publisher run`; a line on its stdin releases it."""
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(project.config_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "locked\n"
        yield child
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()


def test_the_lock_excludes_another_process_and_dies_with_it(project: Project) -> None:
    settings = project.settings()
    with holder(project) as child:
        with pytest.raises(LockedError, match=f"pid {child.pid}, publisher run"), state_lock(settings):
            pass
        child.kill()  # no clean release: the kernel drops the lock with the process
        child.wait()
        with state_lock(settings):
            pass


def test_wait_gets_the_lock_once_it_is_released(project: Project) -> None:
    settings = project.settings()
    taken = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with state_lock(settings):
            taken.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    assert taken.wait(10)
    timer = threading.Timer(0.3, release.set)
    timer.start()
    with state_lock(settings, wait=30):
        assert release.is_set()
    thread.join()
    timer.join()


def test_wait_gives_up_after_its_time(project: Project) -> None:
    settings = project.settings()
    with (
        state_lock(settings),
        pytest.raises(LockedError, match=r"after waiting 0\.5 s"),
        state_lock(settings, wait=0.5),
    ):
        pass


@pytest.mark.parametrize("command", [["build"], ["digest", "--send"]])
def test_cron_commands_wait_for_the_lock_when_asked(project: Project, command: list[str]) -> None:
    """`build --wait` and `digest --send --wait` take the lock once its holder lets go; without
    enough patience they exit 3 with one line, like a cron run that finds the daemon busy."""
    settings = project.settings()
    project.seed("a.txt", "date 2025-02-19 A story about the harbour reopening after the storm.\n")
    with holder(project) as child:
        refused = project.cli(*command, "--wait", "0.2")
        assert refused.code == 3
        assert refused.err.startswith(f"Error: {settings.state_dir} is in use by another publisher process")
        assert "after waiting 0.2 s" in refused.err
        assert child.stdin is not None
        stdin = child.stdin
        release = threading.Timer(0.3, lambda: (stdin.write("\n"), stdin.flush()))
        release.start()
        waited = project.cli(*command, "--wait", "30")
        release.join()
        assert waited.code == 0, waited.err


@pytest.mark.parametrize(
    "command", [["build"], ["digest", "--send"], ["digest", "--preview"], ["run"], ["inbound"]]
)
@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("nan", "'nan' is not a number of seconds (a finite one: 0 or more)"),
        ("inf", "'inf' is not a number of seconds (a finite one: 0 or more)"),
        ("-inf", "'-inf' is not a number of seconds (a finite one: 0 or more)"),
        ("1e400", "'1e400' is not a number of seconds (a finite one: 0 or more)"),
        ("-1", "must be 0 or more seconds"),
        ("soon", "'soon' is not a number of seconds"),
    ],
)
def test_wait_must_be_a_finite_number_of_seconds(
    project: Project, command: list[str], value: str, message: str
) -> None:
    """`--wait nan` never timed out (or never waited), `--wait -1` and `inf` were taken as given:
    each is a usage error now, exit 2, with nothing done."""
    result = project.cli(*command, f"--wait={value}")
    assert (result.code, result.out) == (2, "")
    assert result.err.splitlines()[-1] == f"Error: argument --wait: {message}"
    apart = project.cli(*command, "--wait", value)  # "-inf" looks like an option: argparse says so
    assert (apart.code, apart.out) == (2, "")
    assert apart.err.splitlines()[-1].startswith("Error: argument --wait: ")
    assert not project.state.exists()  # nothing was started, nothing was written
