"""How well each way of choosing the reference loop fit's features predicts a model it never saw.

    python benchmarks/feature_choice.py [--suites 200] [--activity 1.5] [--seed 1] [--db URL]

A suite like the built-in one (the members' real features, as the dry pass reads them) gets
random costs per kind of work (each 0.3-3 times a typical one) and, per model, an activity
factor the features miss (firing and input rates: up to ``--activity`` times either way, evenly
in log), plus 5 % noise per member. Each model is then left out in turn, the features are chosen
on the others and its reference loop is predicted, as for a script never calibrated. Four ways
are compared: least error on the members (what ``autotune.transfer`` did up to this benchmark),
held-out error alone (``margin`` 0), held-out within :data:`autotune.fit.HELD_OUT_MARGIN` then
least error, and the same among the fits that price a kind of work every model has (the rule
it uses now: :data:`autotune.transfer.GENERAL_KINDS`). With ``--db``, a store holding a
calibrated suite is replayed instead (its members' measured reference loops, each model left
out once).
Pure arithmetic: seconds, and nothing is simulated.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from autotune.features import ModelFeatures  # noqa: E402
from autotune.fit import HELD_OUT_MARGIN, fit_held_out, fit_non_negative  # noqa: E402
from autotune.transfer import GENERAL_KINDS, REFERENCE, _rate_row  # noqa: E402
from benchmarks._harness import markdown_table  # noqa: E402

#: The built-in suite's members as the dry pass read them on the development VM (the tests of
#: ``autotune.transfer`` fit them too).
SUITE = {
    ("wang-buzsaki", 1000): ModelFeatures(1000, 4000, 88000, 60458, 0, 4, 0, 4, 6000,
                                          vector_operations=88),
    ("wang-buzsaki", 300): ModelFeatures(300, 1200, 26400, 18280, 0, 4, 0, 4, 1800,
                                         vector_operations=88),
    ("synfire", 1000): ModelFeatures(1085, 3085, 20085, 98500, 0, 7, 1000, 7, 0,
                                     vector_operations=21),
    ("stdp", 4000): ModelFeatures(4001, 4002, 4007, 4000, 4000, 7, 0, 7, 0, 4000,
                                  vector_operations=8),
    ("coba-hh", 400): ModelFeatures(400, 2400, 42000, 31898, 0, 5, 0, 5, 2400,
                                    vector_operations=105),
    ("coba-hh", 100): ModelFeatures(100, 600, 10500, 8048, 0, 5, 0, 5, 600,
                                    vector_operations=105),
    ("cuba", 4000): ModelFeatures(4000, 12000, 40000, 320105, 0, 6, 0, 6, 0,
                                  vector_operations=10),
    ("cuba", 1000): ModelFeatures(1000, 3000, 10000, 80131, 0, 6, 0, 6, 0,
                                  vector_operations=10),
    ("coba", 4000): ModelFeatures(4000, 12000, 64000, 320587, 0, 6, 0, 6, 0,
                                  vector_operations=16),
}
#: Seconds per simulated second per unit of each kind of work (:func:`_rate_row`'s order).
TYPICAL_COSTS = (3e-6, 2.5e-4, 1.9e-4, 4e-7, 4.5e-5, 5e-4)
#: A prediction this far below the truth counts as this far (a prediction of no loop at all).
FLOOR = 1e-3

Point = tuple[ModelFeatures, float, str]
Chooser = Callable[[list[list[float]], list[float], list[str]], Sequence[float]]

CHOOSERS: dict[str, Chooser] = {
    "least error on the members": lambda xs, ys, groups: fit_non_negative(xs, ys)[0],
    "held-out error alone": lambda xs, ys, groups: fit_held_out(
        xs, ys, groups, margin=0.0).coefficients,
    f"held-out within {HELD_OUT_MARGIN:.2f}, then least error":
        lambda xs, ys, groups: fit_held_out(xs, ys, groups).coefficients,
    "the same among fits pricing operations or object steps (used)":
        lambda xs, ys, groups: fit_held_out(xs, ys, groups,
                                            general=GENERAL_KINDS).coefficients,
}


def left_out_errors(points: Sequence[Point], chooser: Chooser) -> dict[str, list[float]]:
    """Each model's points predicted by the fit on the other models': the log of predicted
    over true reference loop, per point."""
    errors: dict[str, list[float]] = {}
    for model in dict.fromkeys(name for *_, name in points):
        rest = [p for p in points if p[2] != model]
        coefficients = chooser([_rate_row(f) for f, _, _ in rest], [r for _, r, _ in rest],
                               [name for *_, name in rest])
        for features, rate, name in points:
            if name == model:
                predicted = sum(x * c for x, c in zip(_rate_row(features), coefficients,
                                                      strict=True))
                errors.setdefault(model, []).append(math.log(max(predicted, FLOOR * rate)
                                                             / rate))
    return errors


def random_suite(rng: random.Random, activity: float) -> list[Point]:
    """The built-in suite's features with random costs per kind of work and activity."""
    costs = [c * rng.uniform(0.3, 3.0) for c in TYPICAL_COSTS]
    factors = {name: math.exp(rng.uniform(-math.log(activity), math.log(activity)))
               for name, _ in SUITE}
    return [(f, factors[name] * rng.uniform(0.95, 1.05)
             * sum(x * c for x, c in zip(_rate_row(f), costs, strict=True)), name)
            for (name, _), f in SUITE.items()]


def summary(errors: Sequence[float]) -> list[str]:
    """Median and 90th percentile of the error factor, and the share beyond 5 and 20 times."""
    factors = sorted(math.exp(abs(e)) for e in errors)
    return [f"{statistics.median(factors):.2f}", f"{factors[int(0.9 * len(factors))]:.2f}",
            f"{sum(f > 5 for f in factors) / len(factors):.0%}",
            f"{sum(f > 20 for f in factors) / len(factors):.0%}"]


def stored_suite(url: str) -> list[Point]:
    """A calibrated suite's members: features and measured reference loop."""
    from autotune.store import open_store
    from autotune.transfer import members_of

    with open_store(url) as store:
        members = members_of(store.profiles())
    return [(m.features, e.cost.rate, str(m.profile.workload["name"])) for m in members
            if (e := m.profile.entry(REFERENCE)) is not None and e.cost is not None]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suites", type=int, default=200, help="random suites to draw")
    parser.add_argument("--activity", type=float, default=1.5,
                        help="largest activity factor the features miss, either way")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--db", help="replay this store's calibrated suite instead")
    args = parser.parse_args()
    if args.db:
        points = stored_suite(args.db)
        rows = [[label, *(" ".join(f"{math.exp(e):.2f}" for e in errors)
                          for errors in left_out_errors(points, chooser).values())]
                for label, chooser in CHOOSERS.items()]
        models = list(dict.fromkeys(name for *_, name in points))
        print(markdown_table(["way (predicted / measured loop)", *models], rows))
        return 0
    rng = random.Random(args.seed)
    suites = [random_suite(rng, args.activity) for _ in range(args.suites)]
    rows = []
    for label, chooser in CHOOSERS.items():
        errors = [e for suite in suites for model in left_out_errors(suite, chooser).values()
                  for e in model]
        rows.append([label, *summary(errors)])
    print(f"{args.suites} random suites, activity up to {args.activity:g} times either way, "
          f"seed {args.seed}: each model left out and predicted from the others")
    print(markdown_table(["way", "median error (times)", "90th percentile", "beyond 5 times",
                          "beyond 20 times"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
