"""Do two calibrations of the same host and workload pick equally fast configurations?

Runs the calibration twice (separate stores and build caches, as two users would), then measures
both chosen configurations side by side, interleaved, at the target run length, and prints their
speed ratio: the geometric mean of the round-by-round ratios of their end-to-end wall times (each
round runs both back to back, so drift cancels), with its 80 % interval. The target is a ratio
within 5 % of 1. When both calibrations chose the same configuration the ratio is 1 by
definition and nothing is measured.

    python benchmarks/reproducibility.py --workload cuba --size 4000
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import Series, markdown_table, measure_interleaved, paired_gap  # noqa: E402

from autotune.calibrate import CalibrationSettings, calibrate  # noqa: E402
from autotune.host import collect_host  # noqa: E402
from autotune.report import confirmation_line  # noqa: E402
from autotune.search import DEFAULT_TRIALS, Budget  # noqa: E402
from autotune.workloads import resolve_workload  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="cuba")
    parser.add_argument("--size", type=int)
    parser.add_argument("--trials", type=int, default=DEFAULT_TRIALS)
    parser.add_argument("--target-duration", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=15,
                        help="paired rounds measuring the two choices (15)")
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
        print(f"calibration {run} chose {best.config.key}; {confirmation_line(outcome.profile)}",
              file=sys.stderr)
    first, second = chosen
    rows = [[s.label, s.config.key] for s in chosen]
    if first.config == second.config:
        print(markdown_table(["calibration", "chosen configuration"], rows))
        print("\nboth calibrations chose the same configuration: speed ratio 1.000 (within the "
              "5 % target)")
        return 0
    measure_interleaved(host, workload, chosen, args.target_duration, args.repeats,
                        work / "cache")
    gap = paired_gap(second, first)  # second's wall time / first's
    print(markdown_table(
        ["calibration", "chosen configuration", f"median wall, {args.target_duration:g} s run"],
        [[s.label, s.config.key, f"{s.median:.2f} ± {s.spread:.2f} s"] for s in chosen]))
    speed = 1 / gap.ratio
    verdict = "within" if abs(speed - 1) <= 0.05 else "OUTSIDE"
    print(f"\nspeed ratio second/first: {speed:.3f}, 80 % interval {1 / gap.high:.3f} to "
          f"{1 / gap.low:.3f} over {gap.rounds} paired rounds ({verdict} the 5 % target)")
    return 0 if verdict == "within" else 1


if __name__ == "__main__":
    sys.exit(main())
