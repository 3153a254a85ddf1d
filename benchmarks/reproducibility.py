"""Do two calibrations of the same host and workload pick equally fast configurations?

Runs the calibration twice (separate stores and build caches, as two users would), then measures
both chosen configurations side by side, interleaved, at the target run length, and prints the
ratio of their median end-to-end wall times. The target is a ratio within 5 % of 1.

    python benchmarks/reproducibility.py --workload cuba --size 4000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import Series, markdown_table, measure_interleaved  # noqa: E402

from autotune.calibrate import CalibrationSettings, calibrate  # noqa: E402
from autotune.host import collect_host  # noqa: E402
from autotune.search import DEFAULT_TRIALS, Budget  # noqa: E402
from autotune.workloads import resolve_workload  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="cuba")
    parser.add_argument("--size", type=int)
    parser.add_argument("--trials", type=int, default=DEFAULT_TRIALS)
    parser.add_argument("--target-duration", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    host = collect_host()
    workload = resolve_workload(args.workload, args.size)
    work = Path(tempfile.mkdtemp(prefix="autotune-repro-"))
    chosen = []
    for run in ("first", "second"):
        print(f"calibration {run}...", file=sys.stderr)
        outcome = calibrate(workload, db=f"sqlite:///{work / f'{run}.db'}",
                            cache_root=work / f"cache-{run}", host=host,
                            settings=CalibrationSettings(target_duration=args.target_duration,
                                                         budget=Budget(trials=args.trials),
                                                         seed=len(chosen)))
        best = outcome.profile.best()
        if best is None:
            print(f"calibration {run} found no valid configuration", file=sys.stderr)
            return 1
        chosen.append(Series(f"calibration {run}", best.config))
    measure_interleaved(host, workload, chosen, args.target_duration, args.repeats,
                        work / "cache")
    first, second = chosen
    ratio = second.median / first.median
    print(markdown_table(
        ["calibration", "chosen configuration", f"median wall, {args.target_duration:g} s run"],
        [[s.label, s.config.key, f"{s.median:.2f} ± {s.spread:.2f} s"] for s in chosen]))
    verdict = "within" if abs(ratio - 1) <= 0.05 else "OUTSIDE"
    print(f"\nspeed ratio second/first: {1 / ratio:.3f} ({verdict} the 5 % target)")
    return 0 if verdict == "within" else 1


if __name__ == "__main__":
    sys.exit(main())
