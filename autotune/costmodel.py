"""Cost models: predicted wall time of a full run as ``fixed + rate × simulated seconds``.

``fixed`` is what a run pays whatever its length (interpreter start, Brian2 import, model set-up,
code generation, warm compilation, binary start) and ``rate`` the wall seconds per simulated
second of the loop. Both come from measured trials: ``rate`` from the loop's own timer, pooled
over the trials so that the longest loops, timed best, weigh most (robust even when the fixed
part is noisy), ``fixed`` from end-to-end wall
time minus the loop and minus compilation timed apart (a repeated run compiles nothing). The
residual of the line through those trials says how well the model fits; a cold build (first
compilation) is kept apart as ``cold_extra`` since later runs reuse it; for a profile-guided
configuration it includes the instrumented run that takes the profile before the build with it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # records imports this module
    from autotune.records import TrialResult

K = TypeVar("K")

#: Machine drift between measurements taken minutes apart, below which nothing is resolvable.
DRIFT_FLOOR = 0.02
#: A loop shorter than this (wall seconds) is timed too coarsely to give a rate of its own:
#: a few milliseconds of jitter on CUBA's 20 ms standalone loop at 0.4 s is ±30 %.
MIN_TIMED_LOOP = 0.25
#: A standalone ``make`` that took less than this found nothing to recompile.
_NO_COMPILE = 0.1
#: Configurations of one set-up family (:attr:`RunConfig.set_up_family`) pay the same outside
#: their loop; their fixed parts are kept within this fraction of the family's shared one. Each
#: configuration's fixed part is fit from its own few short runs, measured minutes apart, and on
#: the 2-CPU development VM the 2-thread standalone ones came out 1.3 s above the others (4.8 vs
#: 3.5 s), which flipped the choice for 1 s runs where the loops differed by 0.8 s.
SHARED_FIXED_BAND = 0.05
#: A loop longer than the shortest one timed at its simulated duration by more than this
#: fraction (and :data:`LOOP_JITTER`), or longer than one at a longer duration, was slowed by
#: something outside the configuration (see :func:`undisturbed`).
DISTURBED_LOOP = 0.25
#: Seconds of scheduler and timer jitter a loop may show without being called disturbed.
LOOP_JITTER = 0.05
#: Wall seconds a rate probe's loop should last (see :mod:`autotune.measure`): long enough that
#: timer and scheduler jitter (milliseconds) is about 1 %, short enough to cost little.
PROBE_LOOP = 0.5


@dataclass(frozen=True)
class CostModel:
    """A configuration's cost: ``fixed + rate * duration`` seconds.

    Attributes:
        fixed: seconds paid once per run with a warm build.
        rate: wall seconds per simulated second.
        residual: root-mean-square error of the model over the trials it was fit from
            (seconds).
        samples: number of trials the model was fit from (warm ones, and cold ones whose
            compilation was timed apart).
        durations: distinct simulated durations among them.
        cold_extra: extra seconds of a cold (first) build, or 0 when none was seen.
        peak_rss: largest peak resident memory seen in the warm trials (bytes).
        spread: relative half-range of the per-trial estimates of a target-length run: how
            much repeated measurements of this configuration disagree (0.03 = ±3 %).
    """

    fixed: float
    rate: float
    residual: float = 0.0
    samples: int = 0
    durations: int = 0
    cold_extra: float = 0.0
    peak_rss: int | None = None
    spread: float = 0.0

    def predict(self, duration: float) -> float:
        """Predicted wall seconds of a warm run of ``duration`` simulated seconds."""
        return self.fixed + self.rate * duration

    def uncertainty(self, duration: float) -> float:
        """Seconds within which two predictions cannot be told apart (noise, misfit, drift).

        The residual of the fit, the spread of repeated measurements, and a 2 % floor for
        machine drift between measurements.
        """
        centre = self.predict(duration)
        return self.residual + (self.spread + DRIFT_FLOOR) * centre

    def tied_with(self, other: CostModel, duration: float) -> bool:
        """Whether this prediction and ``other``'s for ``duration`` cannot be told apart: they
        differ by less than the larger of their uncertainties."""
        return abs(self.predict(duration) - other.predict(duration)) <= max(
            self.uncertainty(duration), other.uncertainty(duration))

    def interval(self, duration: float, z: float = 2.0) -> tuple[float, float]:
        """Prediction interval: ± ``z`` uncertainties."""
        centre = self.predict(duration)
        half = z * self.uncertainty(duration)
        return max(0.0, centre - half), centre + half

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"fixed": self.fixed, "rate": self.rate, "residual": self.residual,
                "samples": self.samples, "durations": self.durations,
                "cold_extra": self.cold_extra, "peak_rss": self.peak_rss, "spread": self.spread}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CostModel:
        """Inverse of :meth:`to_dict`; rejects negative or non-finite numbers.

        Raises:
            ValueError: on a missing, negative or non-finite number.
        """
        fixed, rate = float(data["fixed"]), float(data["rate"])
        residual, cold = float(data.get("residual", 0.0)), float(data.get("cold_extra", 0.0))
        spread = float(data.get("spread", 0.0))
        for name, value in (("fixed", fixed), ("rate", rate), ("residual", residual),
                            ("cold_extra", cold), ("spread", spread)):
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"cost model {name} must be a finite number >= 0, got {value}")
        peak = data.get("peak_rss")
        return cls(fixed, rate, residual, int(data.get("samples", 0)),
                   int(data.get("durations", 0)), cold,
                   None if peak is None else int(peak), spread)


def shared_fixed(costs: Mapping[K, CostModel], family: Callable[[K], Hashable]
                 ) -> dict[Hashable, float]:
    """The fixed part each family of configurations shares: the median of their own fits."""
    by_family: dict[Hashable, list[float]] = {}
    for config, cost in costs.items():
        by_family.setdefault(family(config), []).append(cost.fixed)
    return {name: statistics.median(values) for name, values in by_family.items()}


def within_shared_fixed(cost: CostModel, shared: float) -> CostModel:
    """``cost`` with its fixed part brought within :data:`SHARED_FIXED_BAND` of ``shared``."""
    low, high = shared * (1 - SHARED_FIXED_BAND), shared * (1 + SHARED_FIXED_BAND)
    return replace(cost, fixed=min(max(cost.fixed, low), high))


def at_level(cost: CostModel, level: float, duration: float, shared: float | None) -> CostModel:
    """``cost`` moved so that it predicts ``level`` seconds for ``duration``: by its fixed part
    as far as :data:`SHARED_FIXED_BAND` around ``shared`` allows, the rest by its rate (without
    a shared part, by its fixed part alone)."""
    fixed = max(0.0, level - cost.rate * duration)
    if shared is None:
        return replace(cost, fixed=fixed)
    fixed = min(max(fixed, shared * (1 - SHARED_FIXED_BAND)), shared * (1 + SHARED_FIXED_BAND),
                level)
    return replace(cost, fixed=fixed, rate=max(0.0, (level - fixed) / duration))


def fit_cost_model(trials: Iterable[TrialResult], target: float = 10.0) -> CostModel:
    """Fit a cost model from a configuration's successful trials.

    ``target`` is the run length whose per-trial estimates give the model's ``spread``.

    Raises:
        ValueError: when no successful warm trial is given.
    """
    given = [t for t in trials if t.ok and "total" in t.phases]
    ok = [t for t in given if not t.training]
    timed = [t for t in ok if _timeable(t)]
    if not any(not t.cold for t in timed):
        raise ValueError("no successful warm trial to fit a cost model from")
    fixed = max(0.0, statistics.median(_repeat_total(t) - t.phases["run"] for t in timed))
    timed = undisturbed(timed)
    rate = pooled_rate(timed)
    residual = _rms([_repeat_total(t) - (fixed + rate * t.duration) for t in timed])
    cold = [t.phases["total"] - t.phases["run"] - fixed for t in ok if t.cold]
    training = [t.phases["total"] for t in given if t.training]
    cold_extra = max(0.0, statistics.median(cold)) if cold else 0.0
    if training:  # a profile-guided build's first run takes the profile before it can build
        cold_extra += statistics.median(training)
    return CostModel(fixed, rate, residual, len(timed), len({t.duration for t in timed}),
                     cold_extra,
                     _run_peak(timed), relative_spread(estimates(timed, target)))


def pooled_rate(trials: Sequence[TrialResult]) -> float:
    """Wall seconds per simulated second over all ``trials``' loops together: total loop time
    over total simulated time, so the longest loops, timed most precisely, weigh most."""
    simulated = sum(t.duration for t in trials if t.duration > 0)
    return sum(t.phases["run"] for t in trials if t.duration > 0) / simulated if simulated else 0.0


def estimates(trials: Sequence[TrialResult], target: float) -> list[float]:
    """Each timeable trial's own estimate of a ``target``-second run: its fixed part plus its
    rate (the pooled rate when its loop was too short to time, :data:`MIN_TIMED_LOOP`).
    Their disagreement is the measurement noise of the configuration."""
    timed = undisturbed([t for t in trials if t.ok and _timeable(t) and t.duration > 0])
    pooled = pooled_rate(timed)
    return [_repeat_total(t) - t.phases["run"] + _own_rate(t, pooled) * target for t in timed]


def undisturbed(trials: Sequence[TrialResult]) -> list[TrialResult]:
    """``trials`` without those whose loop something else slowed: a loop longer, beyond
    :data:`DISTURBED_LOOP` and :data:`LOOP_JITTER`, than the shortest at its simulated
    duration, or longer (beyond jitter) than one at a longer duration. Sharing the CPUs only
    adds time, and a longer simulation of the same model cannot loop for less.

    A fresh calibration of Wang & Buzsaki 300 had both 2-thread trials slowed by about 0.4 s
    that no other process's CPU use explained: loops of 0.417 s at 0.1 s simulated and 0.424 s
    at 0.4 s, where the same builds looped 0.024 and 0.143 s minutes later. Pooled, they made
    the 2-thread rate three times its own, and the member's thread speed-up read 0.24x.
    The trial with the shortest loop at the longest duration is always kept."""
    def floor(among: Iterable[TrialResult]) -> float:
        return min((t.phases["run"] for t in among), default=math.inf)

    def slowed(trial: TrialResult) -> bool:
        loop = trial.phases["run"]
        same = floor(t for t in trials if t.duration == trial.duration)
        longer = floor(t for t in trials if t.duration > trial.duration)
        return (loop - same > max(DISTURBED_LOOP * same, LOOP_JITTER)
                or loop - longer > LOOP_JITTER)

    return [t for t in trials if not slowed(t)]


def loops_disagree(trials: Sequence[TrialResult]) -> bool:
    """Whether the undisturbed trials' loops contradict a rate: a loop timed at a shorter
    duration (at least :data:`MIN_TIMED_LOOP`) that grew less than half as much as the
    simulated time did, or more than twice as much, by the longest duration. Only measuring
    again tells which of them was slowed; racing must not skip that
    (:meth:`autotune.measure.Measurer.measure`)."""
    timed = undisturbed([t for t in trials if t.ok and _timeable(t) and t.duration > 0])
    floors: dict[float, float] = {}
    for t in timed:
        floors[t.duration] = min(floors.get(t.duration, math.inf), t.phases["run"])
    if len(floors) < 2:
        return False
    longest = max(floors)
    for duration, loop in floors.items():
        if duration == longest or loop < MIN_TIMED_LOOP:
            continue
        proportional = longest / duration
        grown = floors[longest] / loop
        if grown < 1 + (proportional - 1) / 2 or grown > 2 * proportional:
            return True
    return False


def _own_rate(trial: TrialResult, pooled: float) -> float:
    loop = trial.phases["run"]
    return loop / trial.duration if loop >= MIN_TIMED_LOOP else pooled


def _timeable(trial: TrialResult) -> bool:
    """Whether a trial tells what a repeated run costs: a warm one, or a cold one whose
    compilation was timed apart (cpp_standalone's ``make``) and can be taken out. A cold
    Cython build compiles inside the run and cannot. A profile-guided build's instrumented
    run (:attr:`TrialResult.training`) says nothing of a run with the profile."""
    return not trial.training and (not trial.cold or "compile" in trial.phases)


def relative_spread(values: Sequence[float]) -> float:
    """Half the range of ``values`` relative to their median (0 for fewer than two values)."""
    if len(values) < 2:
        return 0.0
    middle = statistics.median(values)
    return (max(values) - min(values)) / (2 * middle) if middle > 0 else 0.0


def _repeat_total(trial: TrialResult) -> float:
    """End-to-end time of ``trial`` had it compiled nothing, as a repeated run does.

    A standalone run at a new duration recompiles main.cpp (the duration is a literal there) and
    a cold one everything; rerunning the same script reuses the build (``make`` finds nothing to
    do, ~3 ms). Its compilation was timed apart, so it is taken out.
    """
    return trial.phases["total"] - trial.phases.get("compile", 0.0)


def _run_peak(trials: Sequence[TrialResult]) -> int | None:
    """Peak memory of a repeated run: the largest peak of the trials that compiled nothing,
    or None when every trial compiled.

    The peak covers the whole process tree, so a trial that recompiled (cold, or standalone's
    main.cpp at a new duration) counts the compiler's memory (~100 MiB for CUBA), which a
    repeated run does not use; unknown is more honest than that.
    """
    quiet = [t.peak_rss for t in trials
             if t.peak_rss and not t.cold and t.phases.get("compile", 0.0) < _NO_COMPILE]
    return max(quiet) if quiet else None


def _rms(values: Sequence[float]) -> float:
    return math.sqrt(sum(v * v for v in values) / len(values)) if values else 0.0


@dataclass(frozen=True)
class LoopRelation:
    """One configuration's loop rate as a function of another's on the same model:
    ``factor × base rate + per_object × objects``.

    Fit across a suite (:func:`autotune.transfer.loop_relations`) for a threaded standalone
    configuration against its single-thread twin: the threads share the work (``factor``) and
    pay their synchronisation per object and step (``per_object``). On the development VM,
    fit on COBA-HH 400 and STDP 1000: 0.47 and 0.025 s, which gives CUBA 1000's 2-thread rate
    as 0.168 s per simulated second from its single-thread 0.036 (0.169 measured), though the
    suite's features had predicted both rates 10-50 times too high. So one measured rate of a
    script tells the other, where scaling both by one factor would keep a wrong ranking.

    Attributes:
        base: the key of the configuration it is relative to.
        factor: multiplies the base configuration's rate.
        per_object: seconds per simulated second per object running code each step (at the
            default time step).
        objects: the model's objects, each counted by its steps per 0.1 ms simulated
            (:attr:`autotune.features.ModelFeatures.loop_objects`).
    """

    base: str
    factor: float
    per_object: float
    objects: int

    def from_base(self, base_rate: float) -> float:
        """This configuration's rate, given the base configuration's."""
        return self.factor * base_rate + self.per_object * self.objects

    def to_base(self, rate: float) -> float | None:
        """The base configuration's rate, given this one's (None where it cannot tell: no
        share of the work, or a rate the synchronisation alone explains)."""
        if self.factor <= 0:
            return None
        base = (rate - self.per_object * self.objects) / self.factor
        return base if base > 0 else None
