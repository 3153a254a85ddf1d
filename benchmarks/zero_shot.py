"""Zero-shot: how well does the suite predict a model it never saw?

Leave-one-out over the suite (``calibrate --suite``): for each model, every member of that model
is left out, the configuration is predicted from the others' calibrations and the model's
features (:mod:`autotune.transfer`, as ``run`` does for a script never calibrated), and that
choice is measured against the model's oracle, end to end (fresh process, start-up to exit, warm
builds), in interleaved rounds at each run length: the oracle is the fastest of the candidate
configurations in the measurement itself (the four float64 families the suite calibrates:
Brian2's default Cython, numpy, standalone without OpenMP, standalone with the memory-aware
thread count; at a length where the model's own calibration predicts a candidate more than
``--prune`` times slower than its best, that candidate is left out). Ratios are paired round by
round, with an 80 % interval.

``--outside`` adds models in no suite (a built-in ``NAME:SIZE`` or a workload file), predicted
from the whole suite as ``run`` predicts a user's script, and measured the same way against
every candidate (one measured more than ``--prune`` times slower than the fastest at a shorter
length is left out of the longer ones).

    python benchmarks/zero_shot.py --work /tmp/zero-shot            # suite, then 1, 10, 100 s
    python benchmarks/zero_shot.py --work /tmp/zero-shot --lengths 1 10 --rounds 3 \
        --outside benchmarks/models/brunel_hakim.py
    python benchmarks/zero_shot.py --work /tmp/zero-shot --choices-only \
        --outside benchmarks/models/brunel_hakim.py   # the choices alone, nothing measured
    python benchmarks/zero_shot.py --work /tmp/zero-shot --leave-out synfire  # one model

A left-out model is measured at its smallest size in the suite (``--every-size``: each).
``--choices-only`` prints what each prediction chooses, for every size, with what the left-out
model's own calibration predicts of that choice against its own best, without measuring:
whether a second calibration of the suite (or a change to the prediction) chooses the same as
the one whose choices were measured.
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
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

from autotune.calibrate import first_configs  # noqa: E402
from autotune.choice import choose, fallback_config  # noqa: E402
from autotune.config import Allowed, RunConfig, brian2_default_config  # noqa: E402
from autotune.host import HostFingerprint, collect_host, cython_available  # noqa: E402
from autotune.profile import Profile  # noqa: E402
from autotune.suite import SUITE, calibrate_suite, parse_members  # noqa: E402
from autotune.transfer import Member, members_of, predicted_profile  # noqa: E402
from autotune.workloads import WorkloadSpec, resolve_workload  # noqa: E402

#: A model in no calibration: float32 was checked on none of its runs.
FLOAT64 = Allowed(float32=False)


def _ratio(tuned: Series, other: Series) -> str:
    """The tuned choice's speed over ``other``'s (above 1: tuned is faster), paired round by
    round, with its 80 % interval."""
    gap = paired_gap(tuned, other)
    if math.isnan(gap.ratio) or gap.low <= 0 or math.isinf(gap.high):
        return "-"
    return f"{1 / gap.ratio:.2f} ({1 / gap.high:.2f}–{1 / gap.low:.2f})"


def _candidates(host: HostFingerprint, own: Profile, length: float, prune: float
                ) -> list[RunConfig]:
    """The float64 family configurations worth measuring at ``length``: all but those the
    model's own calibration predicts more than ``prune`` times slower than its best."""
    families = first_configs(host.max_threads, cython_available(host))
    ranked = {e.config: e.cost.predict(length) for e in own.valid  # type: ignore[union-attr]
              if e.config in families}
    best = min(ranked.values())
    return [c for c in families if c in ranked and ranked[c] <= prune * best]


def _measure_row(host: HostFingerprint, workload: WorkloadSpec, label: str, length: float,
                 tuned: RunConfig, configs: list[RunConfig], rounds: int, cache: Path
                 ) -> tuple[list[str], dict[RunConfig, Series]]:
    """Measure the tuned choice, Brian2's default, the fixed rule and ``configs`` interleaved;
    the table row and the series measured."""
    default, rule = brian2_default_config(True), fallback_config(host)
    series = [Series(c.key, c) for c in dict.fromkeys([*configs, default, rule, tuned])]
    print(f"[{label} {length:g} s] tuned={tuned.key}; measuring "
          + ", ".join(s.label for s in series), file=sys.stderr)
    measure_interleaved(host, workload, series, length, rounds, cache)
    by_config = {s.config: s for s in series}
    oracle = min(series, key=lambda s: s.median)
    t = by_config[tuned]
    row = [label, f"{length:g} s", tuned.key, oracle.config.key,
           *(f"{by_config[c].median:.2f} s" for c in (tuned, default, rule)),
           f"{oracle.median:.2f} s", _ratio(t, oracle),
           _ratio(t, by_config[default]), _ratio(t, by_config[rule])]
    print(" | ".join(row), file=sys.stderr)
    return row, by_config


def _outside_prediction(members: list[Member], text: str
                        ) -> tuple[WorkloadSpec, Profile] | None:
    """A model in no suite (``NAME:SIZE`` or a workload file) and its prediction from all
    members (None, said on stderr, when there is none)."""
    workload = resolve_workload(*workload_argument(text))
    prediction = suite_prediction(members, workload)
    if prediction is None:
        print(f"[{text}] no prediction (dry pass failed or suite too small)", file=sys.stderr)
        return None
    return workload, prediction


def _outside_rows(host: HostFingerprint, members: list[Member], text: str,
                  lengths: list[float], rounds: int, prune: float, cache: Path
                  ) -> list[list[str]]:
    """Rows for a model in no suite: predicted from all members, measured against every
    float64 family configuration (less those already ``prune`` times slower)."""
    found = _outside_prediction(members, text)
    if found is None:
        return []
    workload, prediction = found
    label = f"{workload.describe()} (outside the suite)"
    configs = first_configs(host.max_threads, cython_available(host))
    rows = []
    for length in sorted(lengths):
        tuned = choose(host, prediction, duration=length, allowed=FLOAT64)[0]
        row, measured = _measure_row(host, workload, label, length, tuned, configs, rounds,
                                     cache)
        rows.append(row)
        fastest = min(s.median for s in measured.values())
        configs = [c for c in configs if measured[c].median <= prune * fastest]
    return rows


def _choice_row(label: str, length: float, tuned: RunConfig, own: Profile | None
                ) -> list[str]:
    """A ``--choices-only`` row: the choice, and what the model's own calibration (if any)
    predicts of it against its own best."""
    if own is None:
        return [label, f"{length:g} s", tuned.key, "-", "-"]
    best = min(own.valid, key=lambda e: e.cost.predict(length))  # type: ignore[union-attr]
    entry = own.entry(tuned)
    regret = ("-" if entry is None or entry.cost is None else
              f"{entry.cost.predict(length) / best.cost.predict(length):.2f}")  # type: ignore[union-attr]
    return [label, f"{length:g} s", tuned.key, best.config.key, regret]


def _leave_out(members: list[Member], name: str) -> list[Member]:
    return [m for m in members if m.profile.workload.get("name") != name]


def _left_out_members(members: list[Member], names: list[str], every_size: bool
                      ) -> list[Member]:
    """The members to predict with their model left out: each size of each named model, or
    only its smallest (the cheapest to measure)."""
    chosen = []
    for name in names:
        sizes = sorted((m for m in members if m.profile.workload["name"] == name),
                       key=lambda m: m.features.synapses + m.features.state_variables)
        chosen += sizes if every_size else sizes[:1]
    return chosen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True,
                        help="folder of the suite's store and builds (reused when run again)")
    parser.add_argument("--members", nargs="+", metavar="NAME:SIZE",
                        help="suite members (default: the built-in suite)")
    parser.add_argument("--lengths", nargs="+", type=float, default=[1.0, 10.0, 100.0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3)")
    parser.add_argument("--outside", nargs="+", default=[], metavar="MODEL",
                        help="models in no suite (workload files or NAME:SIZE), predicted "
                             "from the whole suite")
    parser.add_argument("--only-outside", action="store_true",
                        help="measure the --outside models only (no leave-one-out)")
    parser.add_argument("--leave-out", nargs="+", metavar="NAME",
                        help="leave out only these suite models in turn (default: each)")
    parser.add_argument("--prune", type=float, default=3.0,
                        help="leave out candidates the model's own calibration predicts this "
                             "many times slower than its best at that length (3)")
    parser.add_argument("--choices-only", action="store_true",
                        help="print the predicted choices (and the left-out models' own "
                             "calibrations' view of them) for every size, measure nothing")
    parser.add_argument("--every-size", action="store_true",
                        help="measure every size of a left-out model (default: its smallest)")
    args = parser.parse_args()

    host = collect_host()
    args.work.mkdir(parents=True, exist_ok=True)
    db, cache = f"sqlite:///{args.work / 'suite.db'}", args.work / "cache"
    members_asked = parse_members(args.members) if args.members else list(SUITE)
    started = time.perf_counter()
    profiles = calibrate_suite(members=members_asked, db=db, cache_root=cache, host=host)
    suite_seconds = time.perf_counter() - started
    members = members_of(profiles)
    rows = []
    left_out_names = [] if args.only_outside else [
        name for name in dict.fromkeys(m.profile.workload["name"] for m in members)
        if not args.leave_out or name in args.leave_out]
    for left_out in _left_out_members(members, left_out_names,
                                      args.every_size or args.choices_only):
        name = left_out.profile.workload["name"]
        prediction = predicted_profile(_leave_out(members, name), left_out.features)
        if prediction is None:
            continue
        workload = resolve_workload(name, left_out.profile.workload["size"])
        for length in args.lengths:
            tuned = choose(host, prediction, duration=length, allowed=FLOAT64)[0]
            if args.choices_only:
                rows.append(_choice_row(workload.describe(), length, tuned, left_out.profile))
                continue
            configs = _candidates(host, left_out.profile, length, args.prune)
            own = left_out.profile.entry(tuned)
            if tuned not in configs and own is not None and own.cost is not None:
                # a choice the model's own calibration puts beyond --prune: say so, unmeasured
                best = min(e.cost.predict(length) for e in left_out.profile.valid  # type: ignore[union-attr]
                           if e.config in configs)
                rows.append([workload.describe(), f"{length:g} s", tuned.key, "-",
                             f"{own.cost.predict(length):.1f} s (own calibration)", "-", "-",
                             "-", f"{best / own.cost.predict(length):.2f} (own calibration)",
                             "-", "-"])
                continue
            rows.append(_measure_row(host, workload, workload.describe(), length, tuned,
                                     configs, args.rounds, cache)[0])
    if args.choices_only:
        for text in args.outside:
            found = _outside_prediction(members, text)
            if found is not None:
                rows += [_choice_row(f"{found[0].describe()} (outside)", length,
                                     choose(host, found[1], duration=length,
                                            allowed=FLOAT64)[0], None)
                         for length in args.lengths]
        print(markdown_table(["model", "run length", "tuned (predicted)",
                              "own calibration's best", "own calibration: its time / best's"],
                             rows))
        return 0
    for text in args.outside:
        rows += _outside_rows(host, members, text, args.lengths, args.rounds, args.prune, cache)
    report = [f"Machine: {host.components['cpu_model']}, {host.usable_cpus} usable CPUs, "
              f"{host.usable_memory / 2**30:.0f} GiB; Python {host.components['python']}, "
              f"Brian2 {host.components['brian2']}, {host.components['compiler']}; "
              f"{platform.system()} {platform.machine()}.",
              f"Suite: {', '.join(m.name for m in members)} "
              f"({suite_seconds:.0f} s to calibrate or reuse here).", "",
              markdown_table(["left-out model", "run length", "tuned (predicted)", "oracle",
                              "tuned", "Brian2 default", "fixed rule", "oracle median",
                              "tuned speed / oracle's (80 %)", "/ default's", "/ fixed rule's"],
                             rows)]
    print("\n".join(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
