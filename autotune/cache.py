"""What the build cache holds, and removing it safely.

The cache root (``$BRIAN2_AUTOTUNE_CACHE`` or the user's cache folder) holds, per host
fingerprint and node, the cpp_standalone build slots of every workload, script and
configuration (:mod:`autotune.buildslots`), with the profiles of profile-guided builds inside
them (:mod:`autotune.pgo`); the Cython caches; and the dry pass's model features
(:mod:`autotune.drypass`). All of it is rebuilt on demand, at the price of cold builds.

A slot that a running process holds (its ``flock``) is never touched: removing a folder that a
run is building in or reading its results from would corrupt that run. Lock files stay (a few
bytes each): deleting a lock file another process is about to open would let two processes
hold "the same" lock on different files.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from autotune.buildslots import try_lock
from autotune.paths import analysis_cache_dir
from autotune.pgo import PGO_DIR

#: Folders under the cache root that hold something other than build slots.
_CYTHON, _MODELS = "cython", "models"


@dataclass(frozen=True)
class CacheUsage:
    """Bytes the cache uses.

    Attributes:
        root: the cache folder.
        total: everything under it.
        profiles: the profile-guided builds' profiles (part of ``total``).
    """

    root: Path
    total: int
    profiles: int


@dataclass
class CleanOutcome:
    """What :func:`clean_cache` did.

    Attributes:
        removed: bytes removed.
        in_use: build slots left alone because a running process holds them.
    """

    removed: int = 0
    in_use: list[Path] = field(default_factory=list)


def _size(path: Path) -> int:
    if path.is_symlink() or path.is_file():
        try:
            return path.lstat().st_size
        except OSError:
            return 0
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() or p.is_symlink())


def cache_usage(root: Path) -> CacheUsage:
    """How much the cache under ``root`` holds (zeros when there is none)."""
    if not root.is_dir():
        return CacheUsage(root, 0, 0)
    total = profiles = 0
    for path in root.rglob("*"):  # one walk: a large cache has many files
        if not (path.is_file() or path.is_symlink()):
            continue
        size = path.lstat().st_size
        total += size
        if _in_profile(path.relative_to(root).parts):
            profiles += size
    return CacheUsage(root, total, profiles)


def _in_profile(parts: tuple[str, ...]) -> bool:
    """Whether a path (its parts under the cache root) lies in a build slot's profile folder."""
    return any(part == PGO_DIR and parent.startswith("slot-")
               for parent, part in zip(parts, parts[1:], strict=False))


def _slots(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("slot-*") if p.is_dir() and not p.is_symlink())


def _remove(path: Path) -> int:
    size = _size(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
    return size - (_size(path) if path.exists() else 0)


def clean_cache(root: Path, profiles_only: bool = False) -> CleanOutcome:
    """Remove the build cache under ``root``, or only the profiles of profile-guided builds.

    Slots in use are kept and listed; each other slot is removed while this process holds its
    lock, so no run can start in it meanwhile. Without ``profiles_only`` the Cython caches and
    the dry pass's features, the suite's predictions and the kept readings of scripts go too.
    """
    outcome = CleanOutcome()
    if not root.is_dir():
        return outcome
    for slot in _slots(root):
        lock = try_lock(slot.with_name(slot.name + ".lock"))
        if lock is None:
            outcome.in_use.append(slot)
            continue
        try:
            target = slot / PGO_DIR if profiles_only else slot
            if target.exists():
                outcome.removed += _remove(target)
        finally:
            lock.release()
    if not profiles_only:
        for folder in (root / _MODELS, analysis_cache_dir(root), *root.glob(f"*/{_CYTHON}")):
            if folder.exists():
                outcome.removed += _remove(folder)
    return outcome


def cache_summary(usage: CacheUsage) -> dict[str, object]:
    """``show --json``'s account of the cache."""
    return {"folder": str(usage.root), "bytes": usage.total, "pgo_profile_bytes": usage.profiles,
            "remove_with": "brian2-autotune clean"}


def cache_line(usage: CacheUsage) -> str:
    """``show``'s line about the cache: where, how big, how to remove it."""
    if usage.total == 0:
        return f"build cache: {usage.root} (empty)"
    profiles = (f", of which profile-guided profiles {human_bytes(usage.profiles)}"
                if usage.profiles else "")
    return (f"build cache: {usage.root}, {human_bytes(usage.total)}{profiles}; "
            "`brian2-autotune clean` removes it (builds in use are kept), "
            "`brian2-autotune clean --pgo-only` only the profiles")


def human_bytes(count: int) -> str:
    """``1.2 GiB``, ``340 MiB``, ``12 KiB``."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"
