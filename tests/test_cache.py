"""The build cache: its size in ``show``, and ``clean`` that never touches a build in use."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from autotune.buildslots import acquire_build_slot
from autotune.cache import cache_usage, clean_cache
from tests.conftest import REPO, run_cli

HOLD_SLOT = """
import sys, time
from pathlib import Path
from autotune.buildslots import acquire_build_slot
slot = acquire_build_slot(Path(sys.argv[1]), hold_until_exit=True)
print(slot.path, flush=True)
sys.stdin.read()  # hold the slot until the test closes our stdin
"""


def _fill(folder: Path, files: dict[str, int]) -> None:
    for name, size in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * size)


def _cache(root: Path) -> tuple[Path, Path]:
    """A cache with two built slots of one configuration (each with a profile), a Cython cache
    and dry-pass features; the two slots' folders."""
    base = root / "fp" / "node" / "script-a" / "cpp_standalone-t0-float64-default-pgo"
    slots = (base / "slot-0", base / "slot-1")
    for slot in slots:
        _fill(slot, {"main": 1000, "code_objects/a.o": 500, "pgo/profiles/a.gcda": 100,
                     "pgo/state.json": 10})
    _fill(root / "fp" / "cython" / "default", {"_cython_magic_1.so": 2000})
    _fill(root / "models", {"abc.json": 50})
    _fill(root / "scripts", {"def.json": 30})
    return slots


def test_clean_removes_the_cache_but_keeps_a_build_in_use(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    busy, idle = _cache(root)
    usage = cache_usage(root)
    assert usage.profiles == 220 and usage.total == 2 * 1610 + 2000 + 50 + 30
    holder = subprocess.Popen([sys.executable, "-c", HOLD_SLOT, str(busy.parent)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    try:
        assert holder.stdout is not None and Path(holder.stdout.readline().strip()) == busy
        profiles_only = clean_cache(root, profiles_only=True)
        assert profiles_only.removed == 110 and profiles_only.in_use == [busy]
        assert (busy / "pgo" / "profiles" / "a.gcda").exists()
        assert not (idle / "pgo").exists() and (idle / "main").exists()
        everything = clean_cache(root)
        assert everything.in_use == [busy]
        assert everything.removed == 1500 + 2000 + 50 + 30
        assert not idle.exists() and not (root / "models").exists()
        assert not (root / "scripts").exists()
        assert not (root / "fp" / "cython").exists()
        assert (busy / "main").exists() and (busy / "pgo" / "state.json").exists()
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=60)
    assert clean_cache(root).removed == 1610  # released: now it goes too
    # the folder is usable again: a new run takes slot 0 and builds there
    assert acquire_build_slot(busy.parent).path == busy


def test_show_names_the_cache_and_clean_empties_it(calibrated: dict[str, object],
                                                   tmp_path: Path) -> None:
    root = tmp_path / ("own-cache-" + "x" * 120)  # longer than the 160 columns of a pipe
    _cache(root)
    env = {"BRIAN2_AUTOTUNE_CACHE": str(root)}
    shown = run_cli("show", "--db", str(calibrated["url"]), env=env)
    assert shown.returncode == 0, shown.stderr
    line = next(x for x in shown.stdout.splitlines() if x.startswith("build cache:"))
    assert str(root) in line and "KiB" in line and "brian2-autotune clean" in line
    document = json.loads(run_cli("show", "--json", "--db", str(calibrated["url"]),
                                  env=env).stdout)
    assert document["cache"]["bytes"] == cache_usage(root).total > 0
    cleaned = run_cli("clean", "--json", env=env)
    assert cleaned.returncode == 0, cleaned.stderr
    assert json.loads(cleaned.stdout)["removed_bytes"] == 2 * 1610 + 2000 + 50 + 30
    assert cache_usage(root).total == 0
    again = run_cli("clean", env=env)
    assert again.returncode == 0
    assert f"removed 0 B of build cache from {root}" in again.stdout.splitlines()
