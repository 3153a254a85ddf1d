"""What OpenMP's passive wait (``OMP_WAIT_POLICY=PASSIVE``) costs on a quiet host, and what it
saves on a busy one.

    python benchmarks/wait_policy.py [--workloads cuba:4000 stdp:1000] [--duration 2] [--rounds 8]

``run``/``apply`` set the passive policy when other runs are going on the node (spinning threads
on cores that other jobs use slow everyone down). For each workload this builds the
cpp_standalone project with every usable CPU as OpenMP threads once, then runs its binary in
interleaved rounds with the default policy and with PASSIVE: first on a quiet host, then with one
busy-looping process per usable CPU but one (a neighbour's job; it stops by itself with the
benchmark). Reported: median binary wall time of each, and the paired ratio PASSIVE / default
(geometric mean of round-by-round ratios) with its 80 % interval.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _harness import markdown_table  # noqa: E402

from autotune import confirm as paired  # noqa: E402
from autotune.config import standalone_config  # noqa: E402
from autotune.host import collect_host  # noqa: E402
from autotune.records import TrialSpec  # noqa: E402
from autotune.trial import run_trial  # noqa: E402
from autotune.workloads import resolve_workload  # noqa: E402


def _spin(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pass


def _time_binary(folder: Path, passive: bool) -> float:
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    if passive:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    started = time.perf_counter()
    subprocess.run(["./main"], cwd=folder, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def _rounds(folder: Path, rounds: int) -> list[dict[str, float]]:
    out = []
    for k in range(rounds):
        order = (False, True) if k % 2 == 0 else (True, False)
        out.append({("passive" if p else "default"): _time_binary(folder, p) for p in order})
    return out


def _row(label: str, rounds: list[dict[str, float]]) -> list[str]:
    gap = paired.gap(rounds, "passive", "default")
    default = statistics.median(r["default"] for r in rounds)
    passive = statistics.median(r["passive"] for r in rounds)
    return [label, f"{default:.3f} s", f"{passive:.3f} s",
            f"{gap.ratio:.3f} ({gap.low:.3f}–{gap.high:.3f})"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", default=["cuba:4000", "stdp:1000"])
    parser.add_argument("--duration", type=float, default=2.0, help="simulated seconds (2)")
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    host = collect_host()
    threads = host.usable_cpus
    rows = []
    with tempfile.TemporaryDirectory(prefix="wait-policy-") as work:
        for item in args.workloads:
            name, _, size = item.partition(":")
            workload = resolve_workload(name, int(size) if size else None)
            folder = Path(work) / name
            result = run_trial(TrialSpec(workload, standalone_config(threads), args.duration,
                                         folder), timeout=1800)
            if not result.ok:
                raise SystemExit(f"{item}: the build failed: {result.error}")
            rows.append(_row(f"{item}, {threads} threads, quiet", _rounds(folder, args.rounds)))
            hogs = [multiprocessing.Process(target=_spin, args=(3600,), daemon=True)
                    for _ in range(max(1, threads - 1))]
            for hog in hogs:
                hog.start()
            try:
                rows.append(_row(f"{item}, {threads} threads, {len(hogs)} CPU(s) busy",
                                 _rounds(folder, args.rounds)))
            finally:
                for hog in hogs:
                    hog.terminate()
                    hog.join()
    print(f"{args.duration:g} s simulated, binary wall time, {args.rounds} interleaved rounds")
    print(markdown_table(["workload", "default", "PASSIVE", "PASSIVE / default (80 %)"], rows))


if __name__ == "__main__":
    main()
