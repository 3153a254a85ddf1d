"""Host fingerprint: stability, change detection, cgroup parsing, the thread rule."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autotune.host import (
    CHECKED_COMPONENTS,
    GIB,
    HostFingerprint,
    changed_components,
    collect_cgroup_cpu_limit,
    collect_cgroup_memory_limit,
    collect_compiler,
    collect_host,
    collect_load,
    fingerprint_of,
    memory_aware_threads,
    other_cpu_snapshot,
    others_between,
    parse_cpu_max,
    parse_memory_max,
    usable_cpus,
)


def test_collect_host_is_stable_and_agrees_with_psutil(tmp_path: Path) -> None:
    """Cores and memory are read without psutil (apply cannot afford its import): they must be
    what psutil says, or every stored fingerprint would change. A second call with the
    compiler-version cache gives the same fingerprint."""
    import psutil

    first = collect_host()
    second = collect_host(compiler_cache=tmp_path / "compiler.txt")
    third = collect_host(compiler_cache=tmp_path / "compiler.txt")
    assert first.fingerprint == second.fingerprint == third.fingerprint
    assert len(first.fingerprint) == 16
    assert set(first.components) == set(CHECKED_COMPONENTS)
    assert first.components["physical_cores"] == psutil.cpu_count(logical=False)
    assert first.components["total_memory"] == psutil.virtual_memory().total


def test_the_compiler_is_asked_once_until_it_changes(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    calls = tmp_path / "calls"
    compiler = tmp_path / "fake-c++"
    compiler.write_text(f"#!/bin/sh\necho called >> {calls}\necho 'c++ (Test) 1.0'\n")
    compiler.chmod(0o755)
    monkeypatch.setenv("CXX", str(compiler))
    cache = tmp_path / "cache" / "compiler.txt"
    assert collect_compiler(cache) == "c++ (Test) 1.0"
    assert collect_compiler(cache) == "c++ (Test) 1.0"
    assert calls.read_text().count("called") == 1
    compiler.write_text(compiler.read_text().replace("1.0", "2.0"))  # upgraded
    assert collect_compiler(cache) == "c++ (Test) 2.0"
    assert calls.read_text().count("called") == 2


component_values = st.one_of(st.integers(0, 2**40), st.text(max_size=30), st.none())


@given(st.fixed_dictionaries({k: component_values for k in CHECKED_COMPONENTS}))
def test_fingerprint_ignores_key_order_and_info(components: dict[str, object]) -> None:
    reordered = dict(reversed(list(components.items())))
    assert fingerprint_of(components) == fingerprint_of(reordered)
    host = HostFingerprint(components, {"hostname": "a"})
    assert host.fingerprint == HostFingerprint(reordered, {"hostname": "b"}).fingerprint


@given(st.fixed_dictionaries({k: component_values for k in CHECKED_COMPONENTS}),
       st.sampled_from(CHECKED_COMPONENTS))
def test_any_checked_change_changes_the_fingerprint(components: dict[str, object],
                                                    key: str) -> None:
    changed = dict(components)
    changed[key] = "something else entirely" if components[key] != "something else entirely" \
        else "x"
    assert fingerprint_of(changed) != fingerprint_of(components)
    assert changed_components(components, changed) == [key]


@pytest.mark.parametrize("text, expected", [
    ("max 100000", None), ("150000 100000", 1.5), ("200000 100000", 2.0), ("50000", 0.5),
])
def test_parse_cpu_max(text: str, expected: float | None) -> None:
    assert parse_cpu_max(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("max", None), ("1073741824", GIB), ("9223372036854771712", None), ("0", None),
])
def test_parse_memory_max(text: str, expected: int | None) -> None:
    assert parse_memory_max(text) == expected


def _write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v2_limits_are_read_along_the_process_path(tmp_path: Path) -> None:
    _write(tmp_path, "proc/self/cgroup", "0::/user.slice/job\n")
    _write(tmp_path, "sys/fs/cgroup/cgroup.controllers", "cpu memory\n")
    _write(tmp_path, "sys/fs/cgroup/cpu.max", "max 100000\n")
    _write(tmp_path, "sys/fs/cgroup/user.slice/cpu.max", "300000 100000\n")
    _write(tmp_path, "sys/fs/cgroup/user.slice/job/cpu.max", "150000 100000\n")
    _write(tmp_path, "sys/fs/cgroup/user.slice/job/memory.max", str(3 * GIB))
    _write(tmp_path, "sys/fs/cgroup/user.slice/memory.max", "max")
    assert collect_cgroup_cpu_limit(tmp_path) == 1.5
    assert collect_cgroup_memory_limit(tmp_path) == 3 * GIB


def test_cgroup_v1_limits(tmp_path: Path) -> None:
    _write(tmp_path, "proc/self/cgroup", "4:memory:/docker/abc\n1:cpu,cpuacct:/docker/abc\n")
    _write(tmp_path, "sys/fs/cgroup/cpu/cpu.cfs_quota_us", "250000")
    _write(tmp_path, "sys/fs/cgroup/cpu/cpu.cfs_period_us", "100000")
    _write(tmp_path, "sys/fs/cgroup/memory/memory.limit_in_bytes", str(5 * GIB))
    assert collect_cgroup_cpu_limit(tmp_path) == 2.5
    assert collect_cgroup_memory_limit(tmp_path) == 5 * GIB


def test_no_cgroup_means_no_limit(tmp_path: Path) -> None:
    _write(tmp_path, "proc/self/cgroup", "0::/\n")
    _write(tmp_path, "sys/fs/cgroup/cgroup.controllers", "cpu\n")
    _write(tmp_path, "sys/fs/cgroup/cpu.max", "max 100000\n")
    assert collect_cgroup_cpu_limit(tmp_path) is None
    assert collect_cgroup_memory_limit(tmp_path) is None


@pytest.mark.parametrize("affinity, quota, expected", [
    (8, None, 8), (8, 2.0, 2), (8, 1.5, 1), (2, 16.0, 2), (4, 0.2, 1),
])
def test_usable_cpus_honours_affinity_and_quota(affinity: int, quota: float | None,
                                                expected: int) -> None:
    assert usable_cpus(affinity, quota) == expected


@pytest.mark.parametrize("cpus, memory, expected", [
    (16, 64 * GIB, 16), (16, 8 * GIB, 4), (2, 1 * GIB, 1), (4, 7 * GIB, 3),
])
def test_memory_aware_threads(cpus: int, memory: int, expected: int) -> None:
    assert memory_aware_threads(cpus, memory) == expected


def test_cgroup_memory_limit_caps_threads() -> None:
    components = {k: 0 for k in CHECKED_COMPONENTS}
    components.update(usable_cpus=16, total_memory=64 * GIB, memory_limit=4 * GIB)
    assert HostFingerprint(components).max_threads == 2


def test_collect_load_reports_a_busy_core() -> None:
    import subprocess
    import sys

    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        load = collect_load(sample_seconds=0.5)
    finally:
        burner.kill()
        burner.wait()
    assert load["other_cpu"] >= 0.5
    assert load["busy"] is True


#: Waits for a line, then runs four short CPU burners one after another, prints the CPU
#: seconds they used and waits until its input closes (so that it is not yet reaped).
SHORT_BURNS = """
import resource, subprocess, sys
sys.stdin.readline()
burn = "import time\\nt = time.process_time()\\nwhile time.process_time() - t < 0.3: pass"
for _ in range(4):
    subprocess.run([sys.executable, "-c", burn], check=True)
used = resource.getrusage(resource.RUSAGE_CHILDREN)
print(used.ru_utime + used.ru_stime, flush=True)
sys.stdin.read()
"""


def test_processes_that_start_and_end_between_two_snapshots_are_counted() -> None:
    """A short test run's dry pass, started and ended within one trial, escaped the count by
    process and left CUBA 1000's 2-thread loop measured 137 times its single-thread one. The
    host's CPU time sees it; this process's own children (its trials) stay out of it."""
    import subprocess
    import sys
    import time

    other = subprocess.Popen([sys.executable, "-c", SHORT_BURNS], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdin is not None and other.stdout is not None
        before, started = other_cpu_snapshot(), time.monotonic()
        other.stdin.write("go\n")
        other.stdin.flush()
        burned = float(other.stdout.readline())  # its children are reaped by it, not by us
        after, wall = other_cpu_snapshot(), time.monotonic() - started
    finally:
        if other.stdin is not None:
            other.stdin.close()
        other.wait(timeout=60)
    assert burned >= 1.0
    # jiffies are counted in hundredths of a second per CPU
    assert others_between(before, after) >= (burned - 0.05) / wall * 0.9

    before = other_cpu_snapshot()
    own = subprocess.run([sys.executable, "-c", "import time\nt = time.process_time()\n"
                          "while time.process_time() - t < 0.5: pass"], check=True)
    assert own.returncode == 0
    after = other_cpu_snapshot()
    # what our own child used is ours: the rest is what other processes used meanwhile
    assert before.cpus is not None and after.cpus is not None
    assert (after.cpus.own - before.cpus.own) >= 0.45
