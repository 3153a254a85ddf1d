"""Shared pieces of the benchmarks: interleaved end-to-end measurement, markdown tables, the
workload argument and the suite's prediction for a workload.

Every alternative is measured by the same harness as calibration trials (a fresh process per run,
wall time from spawn to exit, peak RSS of the process tree), interleaved A B C D A B C D ... so
that drift on a shared machine hits all alternatives alike.
"""

from __future__ import annotations

import compileall
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from autotune import confirm as paired  # noqa: E402
from autotune.calibrate import read_features  # noqa: E402
from autotune.config import RunConfig  # noqa: E402
from autotune.host import HostFingerprint  # noqa: E402
from autotune.paths import cython_cache_dir, standalone_build_dir  # noqa: E402
from autotune.profile import Profile  # noqa: E402
from autotune.records import TrialResult, TrialSpec  # noqa: E402
from autotune.transfer import Member, predicted_profile  # noqa: E402
from autotune.trial import run_trial  # noqa: E402
from autotune.workloads import WorkloadSpec  # noqa: E402

T = TypeVar("T")


@dataclass
class Series:
    """Repeated end-to-end measurements of one alternative."""

    label: str
    config: RunConfig
    results: list[TrialResult] = field(default_factory=list)

    @property
    def walls(self) -> list[float]:
        return [r.phases["total"] for r in self.results if r.ok]

    @property
    def median(self) -> float:
        return statistics.median(self.walls) if self.walls else float("nan")

    @property
    def spread(self) -> float:
        walls = self.walls
        return (max(walls) - min(walls)) / 2 if len(walls) > 1 else 0.0

    @property
    def peak_mib(self) -> float:
        peaks = [r.peak_rss for r in self.results if r.ok and r.peak_rss]
        return max(peaks) / 2**20 if peaks else float("nan")


def paired_gap(slow: Series, base: Series) -> paired.Gap[str]:
    """``slow``'s wall time over ``base``'s, paired round by round (both ran in each round of
    :func:`measure_interleaved`, so drift cancels), with its 80 % interval."""
    rounds = [{"slow": a.phases["total"], "base": b.phases["total"]}
              for a, b in zip(slow.results, base.results, strict=True) if a.ok and b.ok]
    return paired.gap(rounds, "slow", "base")


def spec_for(host: HostFingerprint, workload: WorkloadSpec, config: RunConfig, duration: float,
             cache_root: Path) -> TrialSpec:
    """A trial spec using the calibration's first build slot (warm builds; the benchmark runs
    one trial at a time, after its calibrations)."""
    build = (standalone_build_dir(cache_root, host.fingerprint, workload.signature, config)
             / "slot-0" if config.device == "cpp_standalone" else None)
    cache = cython_cache_dir(cache_root, host.fingerprint, config)
    return TrialSpec(workload, config, duration, build, cache)


def measure_interleaved(host: HostFingerprint, workload: WorkloadSpec, series: Sequence[Series],
                        duration: float, repeats: int, cache_root: Path,
                        timeout: float = 3600) -> None:
    """Warm every distinct configuration up, then measure ``repeats`` rounds of every one.

    Each round starts one alternative later (A B C, B C A, C A B, ...), so that no alternative
    always runs right after the same other one: on a busy host a run's neighbour (a heavy one
    just ended, caches it left) moves its time, and a fixed order would put that into one
    alternative's ratios every round. A profile-guided configuration warms up twice: its first
    run takes the profile, its second rebuilds with it (:mod:`autotune.pgo`); what is measured
    is the build with the profile.
    """
    distinct = {s.config: s for s in series}
    for config in distinct:  # warm-up: builds and caches, not counted
        for _ in range(2 if config.pgo else 1):
            run_trial(spec_for(host, workload, config, duration, cache_root), timeout)
    for round_index in range(repeats):
        done: dict[RunConfig, TrialResult] = {}
        for s in rotated(series, round_index):
            if s.config not in done:  # alternatives that chose the same config share a run
                done[s.config] = run_trial(spec_for(host, workload, s.config, duration,
                                                    cache_root), timeout)
            s.results.append(done[s.config])


def compile_bytecode_as_installed() -> None:
    """Write the package's bytecode, as ``pip install`` leaves it, before timing runs of the
    tool. Where ``PYTHONDONTWRITEBYTECODE`` is set (the development VM's shell sets it) and the
    package is installed in place (``pip install -e``), each run otherwise compiles our ~30
    modules from source again: about 50 ms a run, which a user's install does not pay."""
    compileall.compile_dir(str(Path(__file__).resolve().parent.parent / "autotune"), quiet=1)


def rotated(items: Sequence[T], start: int) -> list[T]:
    """``items`` in order from position ``start`` (modulo their number), wrapping round."""
    offset = start % len(items) if items else 0
    return [*items[offset:], *items[:offset]]


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def workload_argument(text: str) -> tuple[str, int | None]:
    """A benchmark's workload argument, a workload file (``.py``) or a built-in
    ``NAME[:SIZE]``, as (name or path, size)."""
    if text.endswith(".py"):
        return text, None
    name, _, size = text.partition(":")
    return name, int(size) if size else None


def suite_prediction(members: Sequence[Member], workload: WorkloadSpec) -> Profile | None:
    """What ``run`` predicts for ``workload`` from the suite's ``members`` (its features from
    a dry pass); None when the dry pass fails or the suite is too small."""
    features = read_features(workload)
    return predicted_profile(members, features) if features is not None else None
