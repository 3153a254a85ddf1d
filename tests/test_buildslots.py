"""Build folders that concurrent processes never share, and the node's register of runs.

Each test holds locks from a real second process: flock is per open file, so only another
process shows what a concurrent run would see.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from autotune.buildslots import (
    acquire_build_slot,
    count_neighbours,
    node_dir,
    node_name,
    register_run,
)

HOLD_SLOT = """
import sys
from pathlib import Path
from autotune.buildslots import acquire_build_slot
slot = acquire_build_slot(Path(sys.argv[1]), hold_until_exit=True)
print(slot.index, flush=True)
sys.stdin.read()  # hold it until the test closes stdin
"""

HOLD_REGISTRATION = """
import sys
from pathlib import Path
from autotune.buildslots import register_run
registration = register_run(Path(sys.argv[1]))
registration.update(int(sys.argv[2]))
print(registration.neighbours.runs, flush=True)
sys.stdin.read()
"""


@contextmanager
def _holder(code: str, *args: str) -> Iterator[str]:
    """A second process running ``code``; yields its first line, stops it on exit."""
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=60)


def test_a_slot_in_use_is_never_handed_out_and_a_freed_one_is_reused(tmp_path: Path) -> None:
    base = tmp_path / "config"
    with _holder(HOLD_SLOT, str(base)) as held:
        assert held == "0"
        mine = acquire_build_slot(base)
        assert mine.index == 1 and mine.path == base / "slot-1" and mine.path.is_dir()
        with _holder(HOLD_SLOT, str(base)) as third:
            assert third == "2"  # 0 and 1 are taken
        mine.release()
    again = acquire_build_slot(base)  # everybody left: the warm slot 0 comes back
    assert again.index == 0
    again.release()


def test_the_node_name_separates_machines_sharing_one_cache(tmp_path: Path) -> None:
    folder = node_dir(tmp_path, "abc123")
    assert folder == tmp_path / "abc123" / node_name()
    assert "/" not in node_name() and node_name()


def test_the_register_counts_live_runs_and_forgets_dead_ones(tmp_path: Path) -> None:
    node = tmp_path / "node"
    with _holder(HOLD_REGISTRATION, str(node), "2") as seen_by_first:
        assert seen_by_first == "0"
        with _holder(HOLD_REGISTRATION, str(node), "1") as seen_by_second:
            assert seen_by_second == "1"
            mine = register_run(node)
            assert (mine.neighbours.runs, mine.neighbours.cores) == (2, 3)
            mine.lock.release()
    # every holder is gone (this process released its lock too): all three files are stale,
    # and counting removes them
    left = count_neighbours(node / "active")
    assert (left.runs, left.cores) == (0, 0)
    assert not list((node / "active").glob("*.run"))


def test_the_cpu_time_of_another_process_leaves_a_run_fewer_cpus() -> None:
    """A process spinning beside this one (not its child) takes CPU time from the CPUs this
    one may use: what it took, per second, is missing from the CPUs left free, whatever else
    the host is doing (other work only leaves fewer)."""
    import psutil

    from autotune.buildslots import cpus_left_free, sample_cpus

    since = sample_cpus()
    if since is None:
        pytest.skip("no per-CPU times on this platform")
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        process = psutil.Process(spinner.pid)
        while sum(process.cpu_times()[:2]) < 1.5:  # however long the host takes to give it
            time.sleep(0.05)
        spun = sum(process.cpu_times()[:2])
        free = cpus_left_free(since)
        window = time.monotonic() - since.wall
    finally:
        spinner.kill()
        spinner.wait()
    assert free is not None
    assert 0.0 <= free <= since.cpus - spun / window + 0.05
