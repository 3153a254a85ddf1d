"""Predict a never-calibrated model's costs from the host's suite calibration.

Each calibration of a built-in workload measures every configuration's ``fixed`` and ``rate``
(:mod:`autotune.costmodel`) on one model whose features (:mod:`autotune.features`) the profile
keeps. Across the suite (several models, several sizes) each configuration's costs are fit as
non-negative combinations of those features, weighted for relative error:

* loop seconds per simulated second: ``operations`` and ``function_calls`` (of the equations
  integrated each step), ``random_normals`` and ``random_uniforms`` (random numbers drawn each
  step, noise and Poisson inputs: one kind of work, a uniform draw at
  :data:`UNIFORM_DRAW_COST` of a normal one), ``synapses``, ``plastic_synapses`` and
  ``object_steps`` (every object's code runs each step: Python's
  per-object overhead is most of numpy's small models), the per-step counts per 0.1 ms
  simulated, so that a finer time step costs what it does;
* fixed seconds: a constant (interpreter, Brian2's import), ``synapses`` (created at set-up) and
  ``objects`` (code generated and compiled);
* a cold build's extra seconds: a constant and ``objects``.

Which kinds of work the loop's fit may use is chosen by predicting each model of the suite from
the others (:func:`reference_kinds`, :func:`autotune.fit.fit_held_out`): the fit with the least
error on the members priced only the kinds one member each had, and gave a CUBA network left
out no loop at all. A model the chosen fit still gives no loop gets no prediction.

Those fits predict the *reference* configuration (standalone without OpenMP, float64, default
flags). Every other configuration is predicted *relative to it*: its fixed part is the
reference's times the geometric mean of the same ratio over the members; its loop is fit, across
the members, from the reference's loop split by kind of work (:func:`work_split`: the
equations' part and the events' part, by the reference fit's terms) and the object steps, as
``a * equations + b * events + c * object steps + d * vector operations``
(:func:`fit_loop_mix`; the last, ``vector_operations``, is what numpy pays a call for, which the
reference's loop does not contain): 2 OpenMP threads
split the equations' work, deliver synaptic events worse than one and synchronise at every
object's step, so whether they pay depends on the model's mix (on the development VM a
Hodgkin-Huxley network of 400 neurons ran 0.61 of its single-thread loop with them, CUBA 2.07
times). One average ratio over the members gave every model the same answer. The features miss
firing rates, so an absolute loop predicted for a model unlike the members can be far off (CUBA's
three times too heavy when it is left out of the suite), and a handful of members can credit a
cost to the wrong kind of work: the whole suite's fit and those with any one member left out
each give every configuration's ratio to the reference (:func:`loop_ratio_scenarios`); a
prediction states each configuration at its least favourable ratio (:func:`bounded_costs`), and
the choice is the one whose worst slowdown against the best, over those fits, is least. The
reference's own error moves every configuration together, and the choice is made robust to it
as well (:func:`robust_best`); a script's first run corrects that scale
(:func:`autotune.learned.scale_to_script`).

:func:`predicted_profile` turns the fits into a :class:`~autotune.profile.Profile` for one model,
so that choosing, learning from the script's own runs and pricing cold builds work on it as on
a calibrated profile. Pure Python (no numpy): :func:`autotune.apply` runs it before every run.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from autotune import costmodel as costmodel_module
from autotune import features as features_module
from autotune import fit as fit_module
from autotune.config import RunConfig
from autotune.costmodel import CostModel, LoopRelation
from autotune.errors import ProfileError
from autotune.features import ModelFeatures
from autotune.fit import Fit, fit_allowed, fit_held_out, fit_non_negative
from autotune.paths import write_json_atomically
from autotune.profile import PREFERENCE_MARGIN, Profile, ProfileEntry

logger = logging.getLogger(__name__)

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
#: Where a prediction's profile keeps its loop ratio scenarios (:func:`loop_ratio_scenarios`).
LOOP_RATIOS = "loop_ratios"


@dataclass(frozen=True)
class Member:
    """One calibrated suite model: its features and profile."""

    features: ModelFeatures
    profile: Profile

    @property
    def name(self) -> str:
        return _member_name(self.profile)


def _member_name(profile: Profile) -> str:
    size = profile.workload.get("size")
    name = profile.workload.get("name")
    return f"{name} {size}" if size else str(name)


def members_of(profiles: Sequence[Profile]) -> list[Member]:
    """The profiles that can serve a suite: the newest of each workload whose features are
    known (newest first)."""
    members, seen, outdated = [], set(), {}
    for profile in sorted(profiles, key=lambda p: p.created_at, reverse=True):
        signature = profile.workload.get("signature")
        if "model" not in profile.workload or signature in seen:
            continue
        try:
            members.append(Member(ModelFeatures.from_dict(profile.workload["model"]), profile))
        except ProfileError:
            outdated.setdefault(signature, _member_name(profile))
            continue
        seen.add(signature)
    if names := [name for signature, name in outdated.items() if signature not in seen]:
        logger.warning("this host's profiles of %s hold features counted by an older version "
                       "and cannot serve predictions: `brian2-autotune calibrate --suite` "
                       "counts them again (no trial is run again)", ", ".join(names))
    return members


def suite_ready(members: Sequence[Member]) -> bool:
    """Whether the members can predict: at least :data:`MIN_MODELS` different models."""
    return len({m.profile.workload.get("name") for m in members}) >= MIN_MODELS


#: How many of :func:`_rate_row`'s first kinds of work are the equations' (integrated for
#: every neuron or synapse each step, which threads split); the rest are events' and objects'
#: (spikes delivered, plasticity, each object's overhead per step).
EQUATION_KINDS = 3


#: What one uniform random draw costs, in normal draws: 2.6 ns against 13 ns per draw in
#: standalone without OpenMP (4000 neurons drawing ``rand()`` or ``xi`` each step, 5 s
#: simulated, on the development VM), 0.23 in numpy's ``rand`` against ``randn``. Both kinds
#: are one kind of work in the loop's fit, so that a model whose Poisson inputs draw uniform
#: numbers (STDP's) is predicted from one whose noise draws normal ones (the synfire chain's),
#: where a kind of work of its own would be priced by no other member.
UNIFORM_DRAW_COST = 0.2


def _random_draws(f: ModelFeatures) -> float:
    """The random numbers drawn per step, in normal draws' worth."""
    return float(f.random_normals) + UNIFORM_DRAW_COST * float(f.random_uniforms)


def _rate_row(f: ModelFeatures) -> list[float]:
    return [float(f.operations), float(f.function_calls), _random_draws(f),
            float(f.synapses), float(f.plastic_synapses), float(f.loop_objects)]


#: The kinds of work of :func:`_rate_row` every model has (its equations' operations, its
#: objects' steps): the loop's fit must price one of them.
GENERAL_KINDS = (0, 5)


def _fixed_row(f: ModelFeatures) -> list[float]:
    return [1.0, float(f.synapses), float(f.objects)]


#: A member whose Cython cold build cost at least this share of the members' highest per
#: object compiled all its code; one below it found part of its code compiled by an earlier
#: member (the ninth suite's: 3.6, 2.9 and 2.5 s per object, then 1.0, 0.9 and 0.3 s).
WHOLE_COMPILE = 0.5


def _cold_row(f: ModelFeatures) -> list[float]:
    return [1.0, float(f.objects)]


def _dot(row: Sequence[float], coefficients: Sequence[float]) -> float:
    return sum(x * c for x, c in zip(row, coefficients, strict=True))


def rate_coefficients(points: Sequence[tuple[ModelFeatures, CostModel]],
                      models: Sequence[str] | None = None,
                      allowed: Sequence[int] | None = None) -> Fit:
    """The loop rate's fit over :func:`_rate_row` on ``points``. With ``models`` (each
    point's model), the kinds of work it may use are chosen by predicting each model from the
    others (:func:`autotune.fit.fit_held_out`), among those that price a kind of work every
    model has (:data:`GENERAL_KINDS`); with ``allowed``, they are those."""
    xs = [_rate_row(f) for f, _ in points]
    ys = [max(c.rate, 1e-6) for _, c in points]
    if models is None:
        return fit_allowed(xs, ys, allowed)
    return fit_held_out(xs, ys, models, allowed, general=GENERAL_KINDS)


def predict_cost(points: Sequence[tuple[ModelFeatures, CostModel]], features: ModelFeatures,
                 config: RunConfig, rate_fit: Fit | None = None) -> CostModel:
    """One configuration's cost for a model with ``features``, fit on the suite's ``points``
    (features and measured cost of each member that measured it); ``rate_fit``, the loop's
    :func:`rate_coefficients` when already fit."""
    rate_fit = rate_fit or rate_coefficients(points)
    fixed_c, fixed_error = fit_non_negative([_fixed_row(f) for f, _ in points],
                                            [max(c.fixed, 1e-3) for _, c in points])
    spread = (max(c.spread for _, c in points) + max(rate_fit.error, fixed_error)
              + TRANSFER_SPREAD)
    return CostModel(_dot(_fixed_row(features), fixed_c),
                     _dot(_rate_row(features), rate_fit.coefficients),
                     0.0, len(points), 0, predict_cold(points, features, config), None, spread)


def predict_cold(points: Sequence[tuple[ModelFeatures, CostModel]], features: ModelFeatures,
                 config: RunConfig) -> float:
    """One configuration's cold build extra seconds for a model with ``features``, fit on the
    members that saw one (0 when none did).

    For runtime Cython the members compiled into one cache, one after the other: a member
    whose modules an earlier one had compiled measured only the rest, so only the members
    that paid at least half the highest cost per object (:data:`WHOLE_COMPILE`) are taken to
    have compiled all their code, and the median of their costs per object prices each of the
    model's objects, on every path that predicts a Cython configuration. Fit on them all,
    COBA's 2.0 s and Wang & Buzsaki 300's 3.5 s beside CUBA 1000's 21.7 s priced Brian2's
    ``Rossant_et_al_2011bis.py`` (10 objects) at 3.0 s, and it got Cython, which compiled for
    19 s where a standalone build took 3.6 s."""
    colds = [(f, c) for f, c in points if c.cold_extra > 0]
    if not colds:
        return 0.0
    if config.target == "cython":
        per_object = [c.cold_extra / max(f.objects, 1) for f, c in colds]
        whole = [x for x in per_object if x >= WHOLE_COMPILE * max(per_object)]
        return float(features.objects) * statistics.median(whole)
    cold_c, _ = fit_non_negative([_cold_row(f) for f, _ in colds],
                                 [c.cold_extra for _, c in colds])
    return _dot(_cold_row(features), cold_c)


def _geometric_mean(values: Sequence[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def _half_range(ratios: Sequence[float]) -> float:
    """How far apart the members' ratios are, as a relative half-range (0.2 = ±20 %)."""
    return math.sqrt(max(ratios) / min(ratios)) - 1.0


@dataclass(frozen=True)
class WorkSplit:
    """A model's reference loop split as the reference fit attributes it.

    Attributes:
        equations: seconds per simulated second integrating equations (operations, costly
            calls, noise draws).
        events: seconds per simulated second on synapses, plasticity and objects.
        object_steps: the model's object steps per 0.1 ms simulated.
        vector_operations: the model's operations per 0.1 ms simulated counted once per group
            (:attr:`ModelFeatures.vector_operations`): numpy pays a call for each, which
            compiled code does not, so the reference's loop cannot say what they cost it.
    """

    equations: float
    events: float
    object_steps: float
    vector_operations: float = 0.0

    def row(self, calls: bool) -> list[float]:
        """The mix's terms; with ``calls``, those of a configuration that pays a call per
        operation on an array (numpy), which the vector operations' term prices."""
        row = [self.equations, self.events, self.object_steps]
        return [*row, self.vector_operations] if calls else row


def work_split(features: ModelFeatures, coefficients: Sequence[float], loop: float
               ) -> WorkSplit | None:
    """``loop`` (a reference loop rate of the model with ``features``) split in the
    proportions of the reference fit's ``coefficients``; None when the fit gives it no loop."""
    terms = [x * c for x, c in zip(_rate_row(features), coefficients, strict=True)]
    total = sum(terms)
    if total <= 0:
        return None
    equations = sum(terms[:EQUATION_KINDS]) / total
    return WorkSplit(loop * equations, loop * (1 - equations), float(features.loop_objects),
                     float(features.vector_operations))


def fit_loop_mix(found: Sequence[tuple[WorkSplit, float]], calls: bool = False
                 ) -> list[float] | None:
    """One configuration's loop rate as ``a * equations + b * events + c * object steps +
    d * vector operations`` (non-negative), from the members' reference splits and its
    measured rates: threads split the equations' work, deliver events less well and
    synchronise at every object's step; numpy (``calls``) pays a call for every operation on
    an array. Compiled code pays none, and a fourth term there only fit noise: left out of
    the fit, COBA-HH 100's Cython loop came out 2.24 times its own with it, 1.19 without.
    None with fewer than :data:`MIN_MODELS` members."""
    if len(found) < MIN_MODELS:
        return None
    coefficients, _ = fit_non_negative([split.row(calls) for split, _ in found],
                                       [max(rate, 1e-6) for _, rate in found])
    return coefficients


def relative_cost(pairs: Sequence[tuple[CostModel, CostModel]], reference: CostModel,
                  cold_extra: float, loop_ratio: float | None = None) -> CostModel:
    """One configuration's cost relative to the reference configuration's predicted
    ``reference``, from ``pairs`` of (its cost, the reference's cost) measured on the same
    member; ``cold_extra`` is its own cold build's prediction; ``loop_ratio``, its loop rate
    over the reference's for this model (the members' geometric mean when None)."""
    fixed_ratios = [max(c.fixed, 1e-3) / max(r.fixed, 1e-3) for c, r in pairs]
    rate_ratios = [max(c.rate, 1e-6) / max(r.rate, 1e-6) for c, r in pairs]
    spread = (reference.spread + max(c.spread for c, _ in pairs)
              + max(_half_range(fixed_ratios), _half_range(rate_ratios)))
    ratio = _geometric_mean(rate_ratios) if loop_ratio is None else loop_ratio
    return CostModel(reference.fixed * _geometric_mean(fixed_ratios), reference.rate * ratio,
                     0.0, len(pairs), 0, cold_extra, None, spread)


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


def reference_kinds(members: Sequence[Member]) -> tuple[int, ...] | None:
    """The kinds of work (indices of :func:`_rate_row`) the reference's loop fit may use,
    chosen by predicting each model of the suite from the others
    (:func:`autotune.fit.fit_held_out`); None when fewer than :data:`MIN_MODELS` members
    measured the reference."""
    points = [(m.features, e.cost, str(m.profile.workload.get("name"))) for m in members
              for e in m.profile.valid if e.config == REFERENCE and e.cost is not None]
    if len(points) < MIN_MODELS:
        return None
    return rate_coefficients([(f, c) for f, c, _ in points], [name for *_, name in points]
                             ).allowed


def _costs(members: Sequence[Member], features: ModelFeatures,
           kinds: Sequence[int] | None = None) -> dict[RunConfig, CostModel]:
    """Each configuration's cost for a model with ``features`` as one set of members predicts
    it: the reference's from the features (the kinds of work its fit may use: ``kinds``, or
    :func:`reference_kinds` of these members when None), the others' relative to it where
    enough members measured both (each loop from its fitted mix, :func:`fit_loop_mix`), from
    the features alone otherwise."""
    points: dict[RunConfig, list[tuple[ModelFeatures, CostModel]]] = {}
    measured: dict[RunConfig, dict[int, CostModel]] = {}
    for index, member in enumerate(members):
        for entry in member.profile.valid:
            assert entry.cost is not None
            points.setdefault(entry.config, []).append((member.features, entry.cost))
            measured.setdefault(entry.config, {})[index] = entry.cost
    found = {config: found for config, found in points.items() if len(found) >= MIN_MODELS}
    if REFERENCE not in found:
        return {config: predict_cost(its, features, config) for config, its in found.items()}
    kinds = reference_kinds(members) if kinds is None else kinds
    rate_fit = rate_coefficients(found[REFERENCE], allowed=kinds)
    reference = predict_cost(found[REFERENCE], features, REFERENCE, rate_fit)
    coefficients = rate_fit.coefficients
    split = work_split(features, coefficients, reference.rate)
    member_splits = {index: found_split for index, cost in measured[REFERENCE].items()
                     if (found_split := work_split(members[index].features, coefficients,
                                                   cost.rate)) is not None}
    costs: dict[RunConfig, CostModel] = {REFERENCE: reference}
    for config, its_points in found.items():
        if config == REFERENCE:
            continue
        paired = {index: (cost, measured[REFERENCE][index])
                  for index, cost in measured[config].items() if index in measured[REFERENCE]}
        if len(paired) < MIN_MODELS:
            costs[config] = predict_cost(its_points, features, config)
            continue
        ratio = None
        if split is not None:
            calls = config.target == "numpy"
            mix = fit_loop_mix([(member_splits[index], cost.rate)
                                for index, (cost, _) in paired.items() if index in member_splits],
                               calls)
            if mix is not None and reference.rate > 0:
                ratio = _dot(split.row(calls), mix) / reference.rate
        # only its cold build from the features: the rest follows the reference
        costs[config] = relative_cost(list(paired.values()), reference,
                                      predict_cold(its_points, features, config), ratio)
    return costs


def loop_ratio_scenarios(members: Sequence[Member], features: ModelFeatures,
                         costs: dict[RunConfig, CostModel] | None = None,
                         kinds: Sequence[int] | None = None) -> list[dict[RunConfig, float]]:
    """Each configuration's loop rate over the reference's for a model with ``features``: as
    the whole suite's fit gives them (``costs``, :func:`_costs` of all members, when already
    computed), then as each fit with one member left out does, on the same kinds of work
    (``kinds``: :func:`reference_kinds` of all members when None). Each is one consistent
    account of the model's work, for every configuration at once (empty when the reference
    cannot be predicted, or the suite has too few members to leave one out)."""
    kinds = reference_kinds(members) if kinds is None else kinds
    costs = _costs(members, features, kinds) if costs is None else costs
    whole = _loop_ratios(costs)
    if whole is None or len(members) <= MIN_MODELS:
        return []
    scenarios = [whole]
    for left_out in range(len(members)):
        rest = [m for index, m in enumerate(members) if index != left_out]
        if suite_ready(rest) and (ratios := _loop_ratios(_costs(rest, features, kinds))
                                  ) is not None:
            scenarios.append(ratios)
    return scenarios


def _loop_ratios(costs: dict[RunConfig, CostModel]) -> dict[RunConfig, float] | None:
    reference = costs.get(REFERENCE)
    if reference is None or reference.rate <= 0:
        return None
    return {config: cost.rate / reference.rate for config, cost in costs.items()}


def bounded_costs(costs: dict[RunConfig, CostModel],
                  scenarios: Sequence[dict[RunConfig, float]]) -> dict[RunConfig, CostModel]:
    """``costs`` with each configuration's loop at its least favourable ratio to the
    reference's over ``scenarios`` (unchanged without any): the times a prediction states.

    With a handful of members the fit can credit one member's cost to the wrong kind of work
    (left without CUBA, the suite credited the noise of the synfire chain to operations,
    predicted CUBA's loop three times too heavy and mostly equations, and gave it 2 threads,
    2.07 times slower), so no configuration is promised more than every fit gives it. The
    choice weighs the scenarios whole (:func:`robust_best`)."""
    if not scenarios:
        return costs
    reference = costs[REFERENCE]
    return {config: cost if config == REFERENCE else replace(
        cost, rate=reference.rate * max(s[config] for s in scenarios if config in s))
        for config, cost in costs.items()}


def loop_scale_error(members: Sequence[Member], kinds: Sequence[int] | None = None) -> float:
    """How far off the reference's predicted loop rate may be, as a factor: the largest error
    when each model of the suite is predicted from the others, on the kinds of work ``kinds``
    (:func:`reference_kinds` when None; at least :data:`DEFAULT_SCALE_ERROR`, which is also
    the answer when fewer than three models leave too few to predict from). A model the
    others' fit gives no loop is not counted: such a model gets no prediction (:func:`_predict`),
    so it says nothing of how far off one is (counted against the fit's floor, CUBA left out of
    a suite whose other members had no work of its kinds made the error 203514)."""
    kinds = reference_kinds(members) if kinds is None else kinds
    rates = [(m.profile.workload.get("name"), m.features, max(e.cost.rate, 1e-6))
             for m in members if (e := m.profile.entry(REFERENCE)) is not None
             and e.status == "valid" and e.cost is not None]
    errors = [DEFAULT_SCALE_ERROR]
    for left_out in {name for name, _, _ in rates}:
        rest = [(f, rate) for name, f, rate in rates if name != left_out]
        if len({name for name, _, _ in rates if name != left_out}) < MIN_MODELS:
            continue
        coefficients, _ = fit_non_negative([_rate_row(f) for f, _ in rest],
                                           [rate for _, rate in rest], kinds)
        for name, features, actual in rates:
            predicted = _dot(_rate_row(features), coefficients)
            if name == left_out and predicted > 0:
                errors.append(max(predicted / actual, actual / predicted))
    return max(errors)


def robust_best(entries: Sequence[ProfileEntry], duration: float, scale_error: float,
                scenarios: Sequence[Mapping[str, float]] = (),
                baseline: RunConfig | None = None) -> ProfileEntry | None:
    """The entry of a prediction to run for ``duration``: the one whose worst slowdown
    against the fastest is least, over every loop scale from ``1/scale_error`` to
    ``scale_error`` (the reference's loop, which the others follow, may be that far off) and
    every one of ``scenarios`` (each configuration's loop over the reference's, by key, as
    the whole suite's fit and then each fit with one member left out give them:
    :func:`loop_ratio_scenarios`; without them, each entry's own rate). A fit with a member
    left out may make a configuration look worse than the whole suite's fit does, never better
    (:func:`_pessimistic_worlds`). On a tie within :data:`~autotune.profile.PREFERENCE_MARGIN`
    ``baseline`` wins (the fixed rule's configuration, what the run gets without a
    calibration: a prediction that cannot tell the two apart is no reason to risk losing to
    it), then the reference (its cost carries no ratio of other models), then the fewest
    threads. With the reference first, Brunel (2000) at 1 s kept no OpenMP (at worst 1.107
    times the fastest, 2 threads 1.086) and ran 3 % slower than the fixed rule's 2 threads.

    So the reference is weighed at the whole suite's fit and the others at their worst, and a
    configuration wins when even its worst slows a run less than keeping the reference would
    at the fit's best estimate. Each configuration at its worst against a reference that could
    not lose kept Wang & Buzsaki 1000, left out of the third suite, without OpenMP: the whole
    suite put 2 threads at 0.71 of the single-thread loop, the worst fit at 1.09, and its own
    calibration at 0.72 (1.37 times faster at 100 s)."""
    priced = [e for e in entries if e.cost is not None]
    if not priced:
        return None
    scales = [scale_error ** (2 * i / (SCALE_STEPS - 1) - 1) for i in range(SCALE_STEPS)]
    reference = next((e.cost for e in priced if e.config == REFERENCE), None)
    worlds: list[Mapping[str, float] | None] = [None]  # each entry's own rate
    if scenarios and reference is not None:
        worlds = list(_pessimistic_worlds(scenarios))

    def at(entry: ProfileEntry, world: Mapping[str, float] | None, scale: float) -> float:
        cost = entry.cost
        assert cost is not None
        rate = cost.rate
        if world is not None and reference is not None and entry.config.key in world:
            rate = reference.rate * world[entry.config.key]
        return cost.fixed + scale * rate * duration

    worst = {e.config: 0.0 for e in priced}
    for world in worlds:
        for scale in scales:
            fastest = max(min(at(e, world, scale) for e in priced), 1e-9)
            for e in priced:
                worst[e.config] = max(worst[e.config], at(e, world, scale) / fastest)
    least = min(worst.values())
    close = [e for e in priced if worst[e.config] <= least * (1 + PREFERENCE_MARGIN)]
    return min(close, key=lambda e: (e.config != baseline, e.config != REFERENCE,
                                     e.config.threads, worst[e.config]))


def _pessimistic_worlds(scenarios: Sequence[Mapping[str, float]]) -> list[Mapping[str, float]]:
    """The whole suite's fit (the first scenario), then each other scenario with no
    configuration more favourable than the whole suite's fit makes it: leaving a member out
    tests a choice against one member misleading the fit, and a fit of the few left can be as
    wild one way as the other (three members, one left out: 2 threads at 0.59 of the
    single-thread loop where the whole fit said 1.27)."""
    whole = scenarios[0]
    return [whole, *({key: max(ratio, whole.get(key, ratio)) for key, ratio in s.items()}
                     for s in scenarios[1:])]


@dataclass(frozen=True)
class _Prediction:
    """What :func:`predicted_profile` computes for one model: each configuration's entry, the
    loop scale error and the loop ratio scenarios (by configuration key)."""

    entries: tuple[ProfileEntry, ...]
    scale_error: float
    scenarios: list[dict[str, float]]

    def to_dict(self) -> dict[str, Any]:
        return {"entries": [e.to_dict() for e in self.entries],
                "scale_error": self.scale_error, "scenarios": self.scenarios}

    @classmethod
    def from_dict(cls, data: Any) -> _Prediction:
        scale_error = float(data["scale_error"])
        if not math.isfinite(scale_error) or scale_error < 1:
            raise ValueError(f"scale error {scale_error!r}")
        scenarios = [{str(k): float(r) for k, r in scenario.items()}
                     for scenario in data["scenarios"]]
        return cls(tuple(ProfileEntry.from_dict(e) for e in data["entries"]), scale_error,
                   scenarios)


def predicted_profile(members: Sequence[Member], features: ModelFeatures,
                      cache_dir: Path | None = None) -> Profile | None:
    """A profile for a model with ``features``: each configuration valid on at least
    :data:`MIN_MODELS` suite models, its cost predicted (None: the suite is too small).

    With ``cache_dir``, a prediction made before from the same members' profiles for the same
    features, by the same code, is read from there, and a new one is kept there: it took 35 ms
    with eight members, and :func:`autotune.apply` runs before every run of a script."""
    if not suite_ready(members):
        return None
    path = None if cache_dir is None else cache_dir / f"prediction-{_key(members, features)}.json"
    prediction = _read_prediction(path) if path is not None else None
    if prediction is None:
        prediction = _predict(members, features)
        if prediction is None:
            return None
        if path is not None:
            write_json_atomically(path, prediction.to_dict())
    newest = max(members, key=lambda m: m.profile.created_at).profile
    names = ", ".join(m.name for m in members)
    return Profile(
        fingerprint=newest.fingerprint, host_components=dict(newest.host_components),
        workload={"name": f"the suite's models ({names})", "kind": PREDICTION, "size": None,
                  "path": None, "signature": None, "model": features.to_dict(),
                  "loop_scale_error": prediction.scale_error,
                  LOOP_RATIOS: prediction.scenarios},
        target_duration=newest.target_duration, tolerance=newest.tolerance,
        entries=prediction.entries, created_at=newest.created_at)


def _predict(members: Sequence[Member], features: ModelFeatures) -> _Prediction | None:
    kinds = reference_kinds(members)
    costs = _costs(members, features, kinds)
    if REFERENCE in costs and costs[REFERENCE].rate <= 0:
        logger.warning("the suite's fit gives this model (%s) no loop time, so it cannot rank "
                       "configurations for it: calibrate the model itself", features.describe())
        return None
    scenarios = loop_ratio_scenarios(members, features, costs, kinds)
    entries = tuple(ProfileEntry(config, "valid", cost)
                    for config, cost in bounded_costs(costs, scenarios).items())
    if not entries:
        return None
    return _Prediction(entries, loop_scale_error(members, kinds),
                       [{c.key: ratio for c, ratio in scenario.items()}
                        for scenario in scenarios])


@functools.cache
def _code_digest() -> str:
    """The prediction's code (this module, the fit's, the cost model's and the features'): a
    cached prediction made by other code is not used."""
    digest = hashlib.sha256()
    for module in (__file__, fit_module.__file__, costmodel_module.__file__,
                   features_module.__file__):
        digest.update(Path(module).read_bytes())
    return digest.hexdigest()


def _key(members: Sequence[Member], features: ModelFeatures) -> str:
    """What a prediction depends on, hashed: the code, the members' profiles and the
    features (what reading them cost aside)."""
    document = {"code": _code_digest(),
                "features": {k: v for k, v in features.to_dict().items() if k != "seconds"},
                "members": [m.profile.to_dict() for m in members]}
    return hashlib.sha256(json.dumps(document, sort_keys=True, default=str).encode()
                          ).hexdigest()[:32]


def _read_prediction(path: Path) -> _Prediction | None:
    try:
        return _Prediction.from_dict(json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, ProfileError) as e:
        logger.debug("ignoring the unreadable cached prediction %s: %s", path, e)
        return None


def scale_error_of(profile: Profile) -> float:
    """A prediction's loop scale error (:func:`loop_scale_error`), as stored with it."""
    value = profile.workload.get("loop_scale_error")
    return float(value) if isinstance(value, (int, float)) and value >= 1 else DEFAULT_SCALE_ERROR


def scenarios_of(profile: Profile) -> list[dict[str, float]]:
    """A prediction's loop ratio scenarios (:func:`loop_ratio_scenarios`, by configuration
    key), as stored with it; empty for one stored without them."""
    value = profile.workload.get(LOOP_RATIOS)
    if not isinstance(value, list):
        return []
    return [{str(k): float(r) for k, r in scenario.items()
             if isinstance(r, (int, float)) and r > 0}
            for scenario in value if isinstance(scenario, dict)]


def is_prediction(profile: Profile | None) -> bool:
    """Whether ``profile`` was predicted for a model rather than measured on it."""
    return profile is not None and profile.workload.get("kind") == PREDICTION
