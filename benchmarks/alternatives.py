"""Is the tuned configuration really faster than what a user would have done?

For each workload and run length this measures, side by side and interleaved, the end-to-end wall
time (fresh process, start-up to exit) and peak memory of:

1. Brian2's default configuration (runtime, Cython when available, float64);
2. the fixed rule "always cpp_standalone with the memory-aware thread count";
3. the configuration ``autotune.apply(duration=L)`` chooses from a calibrated profile of the
   workload itself, or, with ``--suite-db``, what ``run`` chooses for a model never calibrated:
   predicted from the suite in that store and the model's features (float64);
4. the exhaustive oracle: every configuration of the space calibrated, the fastest for that run
   length picked after the fact;
5. the oracle's fastest configuration without a profile-guided build (:mod:`autotune.pgo`):
   where the tuner applies PGO, it must not lose to it beyond noise, and where the oracle's
   best is a PGO build this says what PGO is worth on that model and length.

Profile-guided configurations are measured with their profile (each warms up twice: the
instrumented run, then the rebuild), as every later run of a script uses them.

The speed-ups are paired: the geometric mean of round-by-round ratios (each round runs every
alternative back to back, so drift cancels) with an 80 % interval, so that "loses by more than
noise" has a meaning: an interval wholly below the target.

It also compares the cost of the (budgeted) calibration with the exhaustive search (the same
calibration, confirmation included, with a budget of the whole space: what a user would run to
try everything), and times ``autotune.apply()`` with a stored profile. Output: markdown tables on
stdout (and ``--out``).

    python benchmarks/alternatives.py                       # cuba 4000 at 1, 10, 100 s
    python benchmarks/alternatives.py --workloads cuba:4000 stdp:1000 --lengths 1 10 100
    python benchmarks/alternatives.py --work /tmp/bench   # keeps (and later reuses) calibrations
    python benchmarks/alternatives.py --workloads benchmarks/models/brunel_hakim.py \
        --suite-db sqlite:////tmp/zero-shot/suite.db --lengths 1 10 --no-pgo  # a model in no suite

Workloads are built-ins (``NAME[:SIZE]``) or workload files.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import (  # noqa: E402
    Series,
    markdown_table,
    measure_interleaved,
    paired_gap,
    suite_prediction,
    workload_argument,
)

from autotune.calibrate import CalibrationSettings, calibrate  # noqa: E402
from autotune.choice import choose, fallback_config  # noqa: E402
from autotune.config import Allowed, brian2_default_config  # noqa: E402
from autotune.host import collect_host  # noqa: E402
from autotune.profile import Profile  # noqa: E402
from autotune.search import DEFAULT_TRIALS, Budget  # noqa: E402
from autotune.store import open_store  # noqa: E402
from autotune.transfer import members_of  # noqa: E402
from autotune.workloads import WorkloadSpec, resolve_workload  # noqa: E402


@dataclass(frozen=True)
class Cost:
    """What a calibration cost: wall seconds, trials, and of those the confirmation's."""

    wall: float
    trials: int
    confirm_wall: float
    confirm_trials: int

    def cell(self) -> str:
        return (f"{self.wall:.0f} s / {self.trials} trials (confirmation {self.confirm_wall:.0f} "
                f"s / {self.confirm_trials})")


def _calibrate(workload: str, size: int | None, db: str, cache: Path, trials: int,
               exhaustive: bool, pgo: bool = True) -> tuple[Profile, Cost]:
    """Calibrate (or, when ``db`` holds a finished calibration from an earlier run of this script
    with ``--work``, reuse it) and return the profile and its cost."""
    sidecar = Path(db.removeprefix("sqlite:///")).with_suffix(".json")
    if not sidecar.exists():
        budget = Budget(trials=100_000 if exhaustive else trials)
        started = time.perf_counter()
        calibrate(workload, size=size, db=db, cache_root=cache,
                  settings=CalibrationSettings(budget=budget, pgo=pgo))
        sidecar.write_text(json.dumps({"wall": time.perf_counter() - started}))
    with open_store(db) as store:
        profile = store.profiles()[-1]
        assert profile.calibration_id is not None
        every = store.trials(profile.calibration_id)
        confirm = store.trials(profile.calibration_id, purpose="confirm")
    wall = float(json.loads(sidecar.read_text())["wall"])
    confirm_wall = sum(t.phases.get("total", 0.0) for t in confirm)
    return profile, Cost(wall, len(every), confirm_wall, len(confirm))


def _suite_prediction(suite_db: str, workload: WorkloadSpec) -> Profile:
    """What ``run`` predicts for ``workload`` from the suite in ``suite_db``."""
    with open_store(suite_db) as store:
        members = members_of(store.profiles())
    prediction = suite_prediction(members, workload)
    if prediction is None:
        raise SystemExit(f"{suite_db} holds no suite that predicts {workload.describe()} "
                         "(calibrate --suite first), or its dry pass failed")
    return prediction


def paired_ratio(other: Series, tuned: Series) -> str:
    """How many times faster ``tuned`` ran than ``other``: the geometric mean of the ratios of
    their wall times round by round (each round ran both back to back, so drift cancels), with
    its 80 % interval; a loss "beyond noise" is an interval wholly below the target."""
    gap = paired_gap(other, tuned)
    if gap.rounds < 2 or gap.low == gap.high:  # one round, or the same configuration
        return f"{gap.ratio:.2f}"
    return f"{gap.ratio:.2f} ({gap.low:.2f}–{gap.high:.2f})"


def apply_milliseconds(db: str, repeats: int = 15) -> float:
    """Median wall time of ``import autotune; autotune.apply()`` in a process that has already
    imported Brian2 (as any user script has), with a stored profile. The code runs from
    ``python -c``, where no script file says standalone can serve it: it says so itself, so
    that the profile's winner is applied whatever it is, as for a script read and found safe."""
    code = ("import time, brian2\nt = time.perf_counter()\nimport autotune\n"
            f"autotune.apply(db={db!r}, record=False, standalone_ok=True)\n"
            "print(time.perf_counter() - t)\n")
    times = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True)
        times.append(float(out.stdout.strip().splitlines()[-1]))
    return 1000 * statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", default=["cuba:4000"],
                        help="NAME[:SIZE] built-ins or workload files (default cuba:4000)")
    parser.add_argument("--suite-db", metavar="URL",
                        help="the tuned choice is predicted from the suite in this store, as "
                             "for a model never calibrated, instead of calibrated on the model")
    parser.add_argument("--lengths", nargs="+", type=float, default=[1.0, 10.0, 100.0])
    parser.add_argument("--repeats", type=int, default=5,
                        help="interleaved rounds per run length (5)")
    parser.add_argument("--trials", type=int, default=DEFAULT_TRIALS,
                        help=f"tuned calibration's budget (default {DEFAULT_TRIALS}, as calibrate)")
    parser.add_argument("--no-pgo", action="store_true",
                        help="leave profile-guided builds out of both searches (each costs an "
                             "instrumented build and run: the exhaustive search is ~2x faster)")
    parser.add_argument("--out", type=Path, help="also write the markdown here")
    parser.add_argument("--work", type=Path,
                        help="folder for stores and builds; calibrations finished there by an "
                             "earlier run are reused (default: a new temporary folder)")
    args = parser.parse_args()

    host = collect_host()
    work = args.work or Path(tempfile.mkdtemp(prefix="autotune-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    report = [f"Machine: {host.components['cpu_model']}, {host.usable_cpus} usable CPUs, "
              f"{host.usable_memory / 2**30:.0f} GiB; Python {host.components['python']}, "
              f"Brian2 {host.components['brian2']}, {host.components['compiler']}; "
              f"{platform.system()} {platform.machine()}.", ""]
    speed_rows, memory_rows, cost_rows = [], [], []
    apply_ms = None
    for item in args.workloads:
        name, size = workload_argument(item)
        workload = resolve_workload(name, size)
        tuned_db, oracle_db = (f"sqlite:///{work / f'{workload.name}-{k}.db'}"
                               for k in ("tuned", "all"))
        if args.suite_db:
            tuned, tuned_cost = _suite_prediction(args.suite_db, workload), None
        else:
            print(f"[{workload.describe()}] calibrating (budget {args.trials})...",
                  file=sys.stderr)
            tuned, tuned_cost = _calibrate(name, size, tuned_db, work / "cache-tuned",
                                           args.trials, exhaustive=False,
                                           pgo=not args.no_pgo)
        print(f"[{workload.describe()}] exhaustive search...", file=sys.stderr)
        oracle, oracle_cost = _calibrate(name, size, oracle_db, work / "cache-all", args.trials,
                                         exhaustive=True, pgo=not args.no_pgo)
        if tuned_cost is not None:
            searched = ((tuned_cost.wall - tuned_cost.confirm_wall)
                        / (oracle_cost.wall - oracle_cost.confirm_wall))
            cost_rows.append([workload.describe(), tuned_cost.cell(), oracle_cost.cell(),
                              f"{tuned_cost.wall / oracle_cost.wall:.2f}", f"{searched:.2f}"])
            if apply_ms is None:
                apply_ms = apply_milliseconds(tuned_db)
        for length in args.lengths:
            # what autotune.apply would set (a prediction: float64, float32 was not checked)
            chosen = choose(host, tuned, duration=length,
                            allowed=Allowed(float32=not args.suite_db))[0]
            ranked = oracle.ranked(length)
            fastest = ranked[0].config
            without_pgo = next(e.config for e in ranked if not e.config.pgo)
            series = [Series("default", brian2_default_config(True)),
                      Series("fixed rule", fallback_config(host)),
                      Series("tuned", chosen), Series("oracle", fastest),
                      Series("best without PGO", without_pgo)]
            print(f"[{workload.describe()}] {length:g} s: "
                  + ", ".join(f"{s.label}={s.config.key}" for s in series), file=sys.stderr)
            measure_interleaved(host, workload, series, length, args.repeats, work / "cache")
            d, f, t, o, n = series
            speed_rows.append([workload.describe(), f"{length:g} s",
                               *(f"{s.median:.2f} ± {s.spread:.2f} s ({s.config.key})"
                                 for s in series),
                               *(paired_ratio(other, t) for other in (d, f, o, n))])
            memory_rows.append([workload.describe(), f"{length:g} s",
                                *(f"{s.peak_mib:.0f}" for s in series)])
    report.append(markdown_table(
        ["workload", "run length", "1 default", "2 fixed rule", "3 tuned", "4 oracle",
         "5 oracle without PGO", "tuned speed-up vs 1 (80 % interval)", "vs 2",
         "tuned speed / oracle speed", "vs 5"],
        speed_rows))
    report += ["", "Peak memory (MiB, process tree):", "", markdown_table(
        ["workload", "run length", "default", "fixed rule", "tuned", "oracle",
         "oracle without PGO"], memory_rows)]
    report += ["", "Calibration cost:", "", markdown_table(
        ["workload", "calibration", "exhaustive search", "ratio",
         "ratio without either confirmation"], cost_rows)]
    if apply_ms is not None:
        report += ["", f"`autotune.apply()` with a stored profile: {apply_ms:.1f} ms (median of "
                   "15, Brian2 already imported)."]
    text = "\n".join(report)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
