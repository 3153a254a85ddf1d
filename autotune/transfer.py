"""Predict a never-calibrated model's costs from the host's suite calibration.

Each calibration of a built-in workload measures every configuration's ``fixed`` and ``rate``
(:mod:`autotune.costmodel`) on one model whose features (:mod:`autotune.features`) the profile
keeps. Across the suite (several models, several sizes) each configuration's costs are fit as
non-negative combinations of those features, weighted for relative error:

* loop seconds per simulated second: ``operations`` (of the equations integrated each step),
  ``synapses``, ``object_steps`` (every object's code runs each step: Python's per-object
  overhead is most of numpy's small models) and ``random_normals`` (noise drawn each step), the
  per-step counts per 0.1 ms simulated, so that a finer time step costs what it does;
* fixed seconds: a constant (interpreter, Brian2's import), ``synapses`` (created at set-up) and
  ``objects`` (code generated and compiled);
* a cold build's extra seconds: a constant and ``objects``.

Those fits predict the *reference* configuration (standalone without OpenMP, float64, default
flags). Every other configuration is predicted *relative to it*: its fixed part and loop rate
are the reference's times the geometric mean of the same ratio over the members that measured
both. The features miss what drives most of a loop's cost (firing rates, the cost of each
operation), so absolute loop rates predicted for a model unlike the members are off by 10-50
times (CUBA's from COBA-HH and STDP on the development VM); fit per configuration, those errors
differ between configurations and decide the choice (they made 2 OpenMP threads look 1.5 times
faster than none for CUBA, which runs 2.6 times slower with them at 100 s). Ratios between
configurations vary far less from model to model, and an error in the reference's scale moves
every configuration together; a script's first run corrects that scale
(:func:`autotune.learned.scale_to_script`).

:func:`predicted_profile` turns the fits into a :class:`~autotune.profile.Profile` for one model,
so that choosing, learning from the script's own runs and pricing cold builds work on it as on
a calibrated profile. Pure Python (no numpy): :func:`autotune.apply` runs it before every run.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from autotune.config import RunConfig
from autotune.costmodel import CostModel, LoopRelation
from autotune.errors import ProfileError
from autotune.features import ModelFeatures
from autotune.profile import PREFERENCE_MARGIN, Profile, ProfileEntry

#: A prediction needs at least this many different models in the suite (sizes of one model alone
#: cannot tell its features apart: they all grow together), and a configuration is predicted
#: only when at least this many members measured it.
MIN_MODELS = 2
#: Uncertainty of a prediction for a model outside the suite, on top of the fit's own misfit
#: and the members' measurement spread: the features miss firing rates and equation costs.
TRANSFER_SPREAD = 0.10
#: The configuration whose costs are fit from the features; the others are predicted relative
#: to it (standalone without OpenMP: every member that can build measures it).
REFERENCE = RunConfig("cpp_standalone", "cpp")
#: How far (a factor, either way) a predicted loop rate may be from the model's true one, when
#: the suite has too few models to tell by leaving each out (:func:`loop_scale_error`).
DEFAULT_SCALE_ERROR = 10.0
#: Loop scales tried between ``1/K`` and ``K`` (evenly in log) when choosing robustly.
SCALE_STEPS = 13
#: What a prediction's workload is called in its profile (``kind``).
PREDICTION = "prediction"


@dataclass(frozen=True)
class Member:
    """One calibrated suite model: its features and profile."""

    features: ModelFeatures
    profile: Profile

    @property
    def name(self) -> str:
        workload = self.profile.workload
        size = workload.get("size")
        return f"{workload.get('name')} {size}" if size else str(workload.get("name"))


def members_of(profiles: Sequence[Profile]) -> list[Member]:
    """The profiles that can serve a suite: the newest of each workload whose features are
    known (newest first)."""
    members, seen = [], set()
    for profile in sorted(profiles, key=lambda p: p.created_at, reverse=True):
        signature = profile.workload.get("signature")
        if "model" not in profile.workload or signature in seen:
            continue
        try:
            members.append(Member(ModelFeatures.from_dict(profile.workload["model"]), profile))
        except ProfileError:  # features of an older version: calibrate --suite reads them anew
            continue
        seen.add(signature)
    return members


def suite_ready(members: Sequence[Member]) -> bool:
    """Whether the members can predict: at least :data:`MIN_MODELS` different models."""
    return len({m.profile.workload.get("name") for m in members}) >= MIN_MODELS


def _solve(rows: list[list[float]], targets: list[float]) -> list[float] | None:
    """Least squares by the normal equations (small, column-scaled systems); None if singular."""
    n = len(rows[0])
    a = [[sum(r[i] * r[j] for r in rows) for j in range(n)] for i in range(n)]
    b = [sum(r[i] * t for r, t in zip(rows, targets, strict=True)) for i in range(n)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda k: abs(a[k][col]))
        if abs(a[pivot][col]) < 1e-12:
            return None
        a[col], a[pivot], b[col], b[pivot] = a[pivot], a[col], b[pivot], b[col]
        for k in range(col + 1, n):
            factor = a[k][col] / a[col][col]
            a[k] = [x - factor * y for x, y in zip(a[k], a[col], strict=True)]
            b[k] -= factor * b[col]
    solution = [0.0] * n
    for col in reversed(range(n)):
        rest = sum(a[col][k] * solution[k] for k in range(col + 1, n))
        solution[col] = (b[col] - rest) / a[col][col]
    return solution


def fit_non_negative(xs: Sequence[Sequence[float]], ys: Sequence[float]) -> tuple[list[float],
                                                                                   float]:
    """Non-negative coefficients ``c`` minimising the relative error of ``x · c`` against
    ``y``; and that error's root mean square (0.2 = 20 %).

    Exhaustive over which coefficients are free (at most a handful of features), so the
    answer is the exact optimum, with fewer free coefficients preferred on equal error.
    """
    n = len(xs[0])
    scale = [max((abs(x[i]) for x in xs), default=0.0) or 1.0 for i in range(n)]
    weighted = [[x[i] / scale[i] / y for i in range(n)] for x, y in zip(xs, ys, strict=True)]
    best: tuple[float, list[float]] = (math.inf, [0.0] * n)
    for free in range(1, min(n, len(ys)) + 1):
        for chosen in itertools.combinations(range(n), free):
            coefficients = _solve([[row[i] for i in chosen] for row in weighted],
                                  [1.0] * len(ys))
            if coefficients is None or any(c < 0 for c in coefficients):
                continue
            full = [0.0] * n
            for i, c in zip(chosen, coefficients, strict=True):
                full[i] = c
            error = math.sqrt(sum((sum(r[i] * full[i] for i in range(n)) - 1.0) ** 2
                                  for r in weighted) / len(ys))
            if error < best[0] - 1e-9:
                best = (error, full)
    error, full = best
    return [c / s for c, s in zip(full, scale, strict=True)], error


def _rate_row(f: ModelFeatures) -> list[float]:
    return [float(f.operations), float(f.synapses), float(f.loop_objects),
            float(f.random_normals)]


def _fixed_row(f: ModelFeatures) -> list[float]:
    return [1.0, float(f.synapses), float(f.objects)]


def _cold_row(f: ModelFeatures) -> list[float]:
    return [1.0, float(f.objects)]


def _dot(row: Sequence[float], coefficients: Sequence[float]) -> float:
    return sum(x * c for x, c in zip(row, coefficients, strict=True))


def predict_cost(points: Sequence[tuple[ModelFeatures, CostModel]], features: ModelFeatures
                 ) -> CostModel:
    """One configuration's cost for a model with ``features``, fit on the suite's ``points``
    (features and measured cost of each member that measured it)."""
    rate_c, rate_error = fit_non_negative([_rate_row(f) for f, _ in points],
                                          [max(c.rate, 1e-6) for _, c in points])
    fixed_c, fixed_error = fit_non_negative([_fixed_row(f) for f, _ in points],
                                            [max(c.fixed, 1e-3) for _, c in points])
    spread = (max(c.spread for _, c in points) + max(rate_error, fixed_error)
              + TRANSFER_SPREAD)
    return CostModel(_dot(_fixed_row(features), fixed_c), _dot(_rate_row(features), rate_c),
                     0.0, len(points), 0, predict_cold(points, features), None, spread)


def predict_cold(points: Sequence[tuple[ModelFeatures, CostModel]], features: ModelFeatures
                 ) -> float:
    """One configuration's cold build extra seconds for a model with ``features``, fit on the
    members that saw one (0 when none did)."""
    colds = [(f, c) for f, c in points if c.cold_extra > 0]
    if not colds:
        return 0.0
    cold_c, _ = fit_non_negative([_cold_row(f) for f, _ in colds],
                                 [c.cold_extra for _, c in colds])
    return _dot(_cold_row(features), cold_c)


def _geometric_mean(values: Sequence[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def _half_range(ratios: Sequence[float]) -> float:
    """How far apart the members' ratios are, as a relative half-range (0.2 = ±20 %)."""
    return math.sqrt(max(ratios) / min(ratios)) - 1.0


def relative_cost(pairs: Sequence[tuple[CostModel, CostModel]], reference: CostModel,
                  cold_extra: float) -> CostModel:
    """One configuration's cost relative to the reference configuration's predicted
    ``reference``, from ``pairs`` of (its cost, the reference's cost) measured on the same
    member; ``cold_extra`` is its own cold build's prediction."""
    fixed_ratios = [max(c.fixed, 1e-3) / max(r.fixed, 1e-3) for c, r in pairs]
    rate_ratios = [max(c.rate, 1e-6) / max(r.rate, 1e-6) for c, r in pairs]
    spread = (reference.spread + max(c.spread for c, _ in pairs)
              + max(_half_range(fixed_ratios), _half_range(rate_ratios)))
    return CostModel(reference.fixed * _geometric_mean(fixed_ratios),
                     reference.rate * _geometric_mean(rate_ratios), 0.0, len(pairs), 0,
                     cold_extra, None, spread)


def loop_relations(members: Sequence[Member], features: ModelFeatures
                   ) -> dict[str, LoopRelation]:
    """Each threaded standalone configuration's loop rate relative to its single-thread twin
    (same precision and flags), fit across the members that measured both, for a model with
    ``features`` (its objects): what lets one measured rate of a script correct the other
    (:func:`autotune.learned.script_costs`)."""
    pairs: dict[RunConfig, list[tuple[float, float, float]]] = {}
    for member in members:
        rates = {e.config: e.cost.rate for e in member.profile.valid  # type: ignore[union-attr]
                 if e.config.device == "cpp_standalone"}
        for config, rate in rates.items():
            base = _single_thread(config)
            if config.threads > 0 and base in rates:
                pairs.setdefault(config, []).append((rates[base], float(
                    member.features.loop_objects), max(rate, 1e-6)))
    relations = {}
    for config, found in pairs.items():
        if len(found) < MIN_MODELS:
            continue
        (factor, per_object), _ = fit_non_negative([[b, o] for b, o, _ in found],
                                                   [r for _, _, r in found])
        if factor > 0:
            relations[config.key] = LoopRelation(_single_thread(config).key, factor, per_object,
                                                 features.loop_objects)
    return relations


def _single_thread(config: RunConfig) -> RunConfig:
    return RunConfig(config.device, config.target, 0, config.precision, config.flags)


def predicted_costs(members: Sequence[Member], features: ModelFeatures
                    ) -> dict[RunConfig, CostModel]:
    """Each configuration valid on at least :data:`MIN_MODELS` members, its cost for a model
    with ``features``: the reference's from the features, the others' relative to it where
    enough members measured both (from the features alone otherwise)."""
    points: dict[RunConfig, list[tuple[ModelFeatures, CostModel]]] = {}
    measured: dict[RunConfig, dict[int, CostModel]] = {}
    for index, member in enumerate(members):
        for entry in member.profile.valid:
            assert entry.cost is not None
            points.setdefault(entry.config, []).append((member.features, entry.cost))
            measured.setdefault(entry.config, {})[index] = entry.cost
    found = {config: found for config, found in points.items() if len(found) >= MIN_MODELS}
    reference = predict_cost(found[REFERENCE], features) if REFERENCE in found else None
    costs: dict[RunConfig, CostModel] = {}
    for config, its_points in found.items():
        pairs = [(cost, measured[REFERENCE][index]) for index, cost in measured[config].items()
                 if index in measured.get(REFERENCE, {})]
        if reference is not None and config != REFERENCE and len(pairs) >= MIN_MODELS:
            # only its cold build from the features: the rest follows the reference
            costs[config] = relative_cost(pairs, reference, predict_cold(its_points, features))
        elif reference is not None and config == REFERENCE:
            costs[config] = reference
        else:
            costs[config] = predict_cost(its_points, features)
    return costs


def loop_scale_error(members: Sequence[Member]) -> float:
    """How far off the reference's predicted loop rate may be, as a factor: the largest error
    when each model of the suite is predicted from the others (at least
    :data:`DEFAULT_SCALE_ERROR`, which is also the answer when fewer than three models leave
    too few to predict from)."""
    rates = [(m.profile.workload.get("name"), m.features, max(e.cost.rate, 1e-6))
             for m in members if (e := m.profile.entry(REFERENCE)) is not None
             and e.status == "valid" and e.cost is not None]
    errors = [DEFAULT_SCALE_ERROR]
    for left_out in {name for name, _, _ in rates}:
        rest = [(f, rate) for name, f, rate in rates if name != left_out]
        if len({name for name, _, _ in rates if name != left_out}) < MIN_MODELS:
            continue
        coefficients, _ = fit_non_negative([_rate_row(f) for f, _ in rest],
                                           [rate for _, rate in rest])
        for name, features, actual in rates:
            if name == left_out:
                predicted = max(_dot(_rate_row(features), coefficients), 1e-6)
                errors.append(max(predicted / actual, actual / predicted))
    return max(errors)


def robust_best(entries: Sequence[ProfileEntry], duration: float, scale_error: float
                ) -> ProfileEntry | None:
    """The entry of a prediction to run for ``duration``: the one whose worst slowdown
    against the fastest is least while every loop rate is scaled together by any factor
    from ``1/scale_error`` to ``scale_error`` (the reference's loop, which the others follow,
    may be that far off). On a tie within :data:`~autotune.profile.PREFERENCE_MARGIN` the
    reference wins (its cost carries no ratio of other models), then the fewest threads."""
    priced = [e for e in entries if e.cost is not None]
    if not priced:
        return None
    scales = [scale_error ** (2 * i / (SCALE_STEPS - 1) - 1) for i in range(SCALE_STEPS)]

    def at(entry: ProfileEntry, scale: float) -> float:
        return entry.cost.fixed + scale * entry.cost.rate * duration  # type: ignore[union-attr]

    fastest = {scale: max(min(at(e, scale) for e in priced), 1e-9) for scale in scales}
    worst = {e.config: max(at(e, s) / fastest[s] for s in scales) for e in priced}
    least = min(worst.values())
    close = [e for e in priced if worst[e.config] <= least * (1 + PREFERENCE_MARGIN)]
    return min(close, key=lambda e: (e.config != REFERENCE, e.config.threads,
                                     worst[e.config]))


def predicted_profile(members: Sequence[Member], features: ModelFeatures) -> Profile | None:
    """A profile for a model with ``features``: each configuration valid on at least
    :data:`MIN_MODELS` suite models, its cost predicted (None: the suite is too small)."""
    if not suite_ready(members):
        return None
    entries = tuple(ProfileEntry(config, "valid", cost)
                    for config, cost in predicted_costs(members, features).items())
    if not entries:
        return None
    newest = max(members, key=lambda m: m.profile.created_at).profile
    names = ", ".join(m.name for m in members)
    return Profile(
        fingerprint=newest.fingerprint, host_components=dict(newest.host_components),
        workload={"name": f"the suite's models ({names})", "kind": PREDICTION, "size": None,
                  "path": None, "signature": None, "model": features.to_dict(),
                  "loop_scale_error": loop_scale_error(members)},
        target_duration=newest.target_duration, tolerance=newest.tolerance, entries=entries,
        created_at=newest.created_at)


def scale_error_of(profile: Profile) -> float:
    """A prediction's loop scale error (:func:`loop_scale_error`), as stored with it."""
    value = profile.workload.get("loop_scale_error")
    return float(value) if isinstance(value, (int, float)) and value >= 1 else DEFAULT_SCALE_ERROR


def is_prediction(profile: Profile | None) -> bool:
    """Whether ``profile`` was predicted for a model rather than measured on it."""
    return profile is not None and profile.workload.get("kind") == PREDICTION
