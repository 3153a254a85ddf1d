"""Measure one configuration well: repeats, validation, cost model.

A :class:`Measurer` belongs to one calibration. For each configuration the search proposes it runs
trials at every calibration duration (Cython configurations get a warm-up run first, recorded as
cold when it compiled; cpp_standalone times its compilation apart, so its first, cold, run counts),
then, when the loop there was too short to time well, once at a longer "rate probe" duration, and
repeats at that duration while the trials' estimates of a full run disagree by more than the
noise target (adaptive repeats, bounded), unless even its fastest estimate loses to the
best valid configuration so far by more than that (racing: a loser's time need not be known
precisely). Every trial goes to the store the moment it finishes. The first float64 configuration
that succeeds is the reference; later ones must match its observables within the tolerance. The
confirmation that compares the finalists after the search (:mod:`autotune.confirm`) runs its
rounds through :meth:`Measurer.confirmation_trial` and :meth:`Measurer.refit`.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from autotune.buildslots import BuildSlot, acquire_build_slot
from autotune.config import RunConfig
from autotune.costmodel import (
    MIN_TIMED_LOOP,
    PROBE_LOOP,
    estimates,
    fit_cost_model,
    loops_disagree,
    relative_spread,
)
from autotune.errors import WorkloadError
from autotune.host import (
    HostFingerprint,
    collect_load,
    is_busy,
    other_cpu_snapshot,
    other_cpus_since,
)
from autotune.paths import cython_cache_dir, standalone_build_dir
from autotune.records import Evaluation, TrialResult, TrialSpec
from autotune.trial import run_trial
from autotune.validate import Verdict, compare_observables
from autotune.workloads import WorkloadSpec

logger = logging.getLogger(__name__)

#: A loop at least this long (wall seconds) is timed well enough on its own that a clearly
#: losing configuration need not be measured at longer durations (see
#: :meth:`Measurer._already_losing`): many times :data:`MIN_TIMED_LOOP`.
LONG_LOOP = 8 * MIN_TIMED_LOOP
#: Attempts at a trial while other processes keep the host busy during it: one more catches a
#: passing disturbance (a user's short command); a lasting one would disturb any number.
DISTURBED_ATTEMPTS = 2

#: Called with (event, data): ``trial`` before each trial, ``busy`` when the host is loaded,
#: ``confirm`` (contenders) before the confirmation rounds.
ProgressCallback = Callable[[str, dict[str, Any]], None]
RecordTrial = Callable[[TrialResult, str], None]


@dataclass(frozen=True)
class MeasureSettings:
    """How hard to measure each configuration.

    Attributes:
        durations: simulated seconds of the calibration runs.
        target_duration: the run length whose prediction is the objective.
        tolerance: relative tolerance of observables against the reference.
        noise_target: keep repeating while trial estimates disagree by more than this.
        max_repeats: most extra runs (at the longest duration) per configuration.
        trial_timeout: seconds before a trial is killed.
        memory_limit: bytes a trial's process tree may use.
        probe_loop: wall seconds a rate probe's loop should last (None: no probes).
    """

    durations: tuple[float, ...]
    target_duration: float
    tolerance: float
    noise_target: float = 0.05
    max_repeats: int = 2
    trial_timeout: float = 900.0
    memory_limit: int | None = None
    probe_loop: float | None = PROBE_LOOP


class Measurer:
    """Measures, validates and models configurations for one calibration."""

    def __init__(self, host: HostFingerprint, workload: WorkloadSpec, settings: MeasureSettings,
                 cache_root: Path, record: RecordTrial,
                 previous: Iterable[TrialResult] = (),
                 progress: ProgressCallback | None = None) -> None:
        self.host, self.workload, self.settings = host, workload, settings
        self.cache_root, self.record, self.progress = cache_root, record, progress
        self.reference: RunConfig | None = None
        self.reference_observables: dict[float, dict[str, float]] = {}
        self.results: dict[RunConfig, list[TrialResult]] = {}
        self.previous: dict[RunConfig, list[TrialResult]] = {}
        self.loads: list[dict[str, Any]] = []
        #: Best predicted target-length time of a valid configuration so far (for racing).
        self.best_objective: float | None = None
        #: Build folders held for this calibration (a concurrent one gets others).
        self.slots: dict[RunConfig, BuildSlot] = {}
        for result in previous:
            self.previous.setdefault(result.config, []).append(result)

    def _notify(self, event: str, **data: Any) -> None:
        if self.progress is not None:
            self.progress(event, data)

    def adopt(self, trials: Iterable[TrialResult]) -> None:
        """Take the calibration's stored trials (other workers' included) as measured before,
        so that :meth:`evaluate` models their configurations without measuring them again."""
        self.previous = {}
        for result in trials:
            self.previous.setdefault(result.config, []).append(result)

    def close(self) -> None:
        """Release the build folders this calibration held."""
        for slot in self.slots.values():
            slot.release()
        self.slots.clear()

    def _build_dir(self, config: RunConfig) -> Path | None:
        if config.device != "cpp_standalone":
            return None
        if config not in self.slots:
            self.slots[config] = acquire_build_slot(standalone_build_dir(
                self.cache_root, self.host.fingerprint, self.workload.signature, config))
        return self.slots[config].path

    def _spec(self, config: RunConfig, duration: float) -> TrialSpec:
        build = self._build_dir(config)
        cache = (cython_cache_dir(self.cache_root, self.host.fingerprint, config)
                 if config.target == "cython" else None)
        return TrialSpec(self.workload, config, duration, build, cache)

    def _run(self, config: RunConfig, duration: float, purpose: str = "search") -> TrialResult:
        self._notify("trial", config=config, duration=duration, purpose=purpose)
        result = self._undisturbed_trial(config, duration)
        self.record(result, purpose)
        self.results.setdefault(config, []).append(result)
        return result

    def _undisturbed_trial(self, config: RunConfig, duration: float) -> TrialResult:
        """One trial of ``config``, measured again when other processes kept the host busy
        during it (:func:`~autotune.host.is_busy`), up to :data:`DISTURBED_ATTEMPTS` attempts
        in all; if every attempt was disturbed, the quickest (sharing only slows a run). A
        cold trial is kept as it is: its folder is built now, so a second attempt would be a
        warm trial standing in for the cold build.

        A short test run beside the calibration made CUBA 4000's 2-thread loop 16 times its
        single-thread one (1.1-3.2 times with nothing else running): OpenMP threads that spin
        at every step's barrier lose their core to any other process, and the load sampled
        before each configuration was quiet."""
        attempts: list[TrialResult] = []
        for attempt in range(DISTURBED_ATTEMPTS):
            before = other_cpu_snapshot()
            result = run_trial(self._spec(config, duration), self.settings.trial_timeout,
                               self.settings.memory_limit)
            others = other_cpus_since(before)
            if not result.ok or not is_busy(others, self.host.usable_cpus):
                return result
            attempts.append(result)
            load = {"other_cpu": round(others, 2), "usable_cpus": self.host.usable_cpus,
                    "busy": True, "during": f"{config.key} at {duration:g} s"}
            self.loads.append(load)
            self._notify("busy", load=load)
            last = attempt + 1 == DISTURBED_ATTEMPTS
            logger.warning("other processes used %.1f of %d CPUs during %s at %g s simulated%s",
                           others, self.host.usable_cpus, config.key, duration,
                           "; keeping it (a cold build cannot be measured again)" if result.cold
                           else "; keeping its quickest attempt" if last
                           else "; measuring it again")
            if result.cold:
                return result
        return min(attempts, key=lambda r: r.phases.get("total", math.inf))

    def check_load(self) -> dict[str, Any]:
        """Sample the host's load between trials; report it when busy."""
        load = collect_load(sample_seconds=0.2)
        self.loads.append(load)
        if load["busy"]:
            self._notify("busy", load=load)
        return load

    def _plan(self, config: RunConfig) -> list[float]:
        durations = sorted(self.settings.durations)
        # A first Cython build compiles inside the run, which then says nothing about a repeated
        # run: warm up first. Standalone times its `make` apart (see costmodel), so no need,
        # but a profile-guided one's first run is instrumented to take the profile.
        warm_up = config.target == "cython" or (config.pgo and not self._trained(config))
        return [durations[0], *durations] if warm_up else durations

    def _trained(self, config: RunConfig) -> bool:
        """Whether ``config``'s build folder holds a profile already (a repeated calibration),
        so that its first run builds with it."""
        from autotune.pgo import read_state

        build = self._build_dir(config)
        return build is not None and read_state(build).trained

    def measure(self, config: RunConfig) -> list[TrialResult]:
        """Measure ``config`` at every duration, repeating while the estimates disagree.

        A resumed calibration's stored trials of ``config`` are reused, not measured again.
        """
        previous = self.previous.get(config, [])
        if previous and (any(not r.ok for r in previous) or
                         {r.duration for r in previous if r.ok} >= set(self.settings.durations)):
            logger.info("reusing %d stored trials of %s", len(previous), config.key)
            self.results[config] = list(previous)
            return previous
        self.check_load()
        for duration in self._plan(config):
            result = self._run(config, duration)
            if not result.ok or self._already_losing(config, result):
                return self.results[config]
        longest = self.repeat_duration(config)
        if longest > max(self.settings.durations) and not self._run(config, longest).ok:
            return self.results[config]
        for _ in range(self.settings.max_repeats):
            guesses = estimates(self.results[config], self.settings.target_duration)
            spread = relative_spread(guesses)
            if spread <= self.settings.noise_target:
                break
            if loops_disagree(self.results[config]):
                logger.info("%s: its loops did not grow with the simulated time as one rate "
                            "would; measuring again", config.key)
            elif self._clearly_slower(guesses):
                logger.info("%s: slower than the best so far even at its fastest; no repeats",
                            config.key)
                break
            logger.info("%s: estimates disagree by ±%.1f %%, measuring again", config.key,
                        100 * spread)
            if not self._run(config, longest).ok:
                break
        return self.results[config]

    def repeat_duration(self, config: RunConfig) -> float:
        """Simulated seconds at which to repeat ``config``: the longest calibration duration, or
        a longer "rate probe" when the loop ran shorter than :data:`MIN_TIMED_LOOP` there, so
        that it lasts about ``probe_loop`` seconds (at most the target run length).

        Without it a standalone CUBA loop of 20 ms decides the rate of a 100 s run.
        """
        longest = max(self.settings.durations)
        loops = [r.phases["run"] for r in self.results.get(config, [])
                 if r.ok and not r.training and r.duration == longest and "run" in r.phases]
        probe_loop = self.settings.probe_loop
        loop = statistics.median(loops) if loops else None
        if not probe_loop or loop is None or loop >= MIN_TIMED_LOOP:
            return longest
        wanted = longest * probe_loop / max(loop, 1e-3)
        return max(longest, min(self.settings.target_duration, _two_digits(wanted)))

    def _already_losing(self, config: RunConfig, result: TrialResult) -> bool:
        """Whether a warm trial's loop was long enough to time on its own (a rate needs no
        second duration) and already loses clearly to the best so far: then the longer
        durations are skipped. numpy's COBA-HH loop at 1000 neurons ran 44 s for 0.1 s
        simulated; its 0.4 s trial took 200 s more, to confirm a configuration 200 times
        slower than the best."""
        if result.cold or result.phases.get("run", 0.0) < LONG_LOOP:
            return False
        if not self._clearly_slower(estimates(self.results[config],
                                              self.settings.target_duration)):
            return False
        logger.info("%s: its %.1f s loop already loses clearly to the best so far; not "
                    "measured at longer durations", config.key, result.phases["run"])
        return True

    def _clearly_slower(self, guesses: list[float]) -> bool:
        """Racing: a configuration whose fastest estimate loses to the best valid one so far by
        more than the noise target cannot win, so repeating it would only refine a loser."""
        if self.best_objective is None or not guesses:
            return False
        return min(guesses) > self.best_objective * (1 + self.settings.noise_target)

    def evaluate(self, config: RunConfig) -> Evaluation:
        """Measure, validate and model one configuration (the search's callback).

        Raises:
            WorkloadError: the workload itself failed (its code raised or returned garbage).
        """
        results = self.measure(config)
        failed = next((r for r in results if not r.ok), None)
        if failed is not None:
            if failed.status == "workload_error":
                first_line = (failed.error or "the workload failed").splitlines()[0]
                raise WorkloadError(f"workload {self.workload.name} failed under "
                                    f"{config.key}: {first_line}")
            return Evaluation(config, None, reason=f"{failed.status}: {failed.error}")
        return self._model(config, results)

    def _model(self, config: RunConfig, results: list[TrialResult]) -> Evaluation:
        cost = fit_cost_model(results, self.settings.target_duration)
        objective = cost.predict(self.settings.target_duration)
        medians, spreads = phase_statistics(results)
        measured = Evaluation(config, objective, cost=cost, phases=medians, phase_spread=spreads)
        if self.reference is None and config.precision != "float64":
            return replace(measured, feasible=False,
                           reason="no float64 reference succeeded to validate against")
        if self.reference is None or self.reference == config:
            self.reference = config
            self.reference_observables = observables_by_duration(results)
            self._note_valid(objective)
            return replace(measured, reference=True)
        verdict = self._validate(results)
        if verdict.ok:
            self._note_valid(objective)
        return replace(measured, feasible=verdict.ok, reason=verdict.reason,
                       max_deviation=verdict.max_deviation)

    def _note_valid(self, objective: float) -> None:
        if self.best_objective is None or objective < self.best_objective:
            self.best_objective = objective

    def _validate(self, results: list[TrialResult]) -> Verdict:
        """Compare with the reference at the longest duration both ran (most events, least
        noise in rates and counts)."""
        observed = observables_by_duration(results)
        common = sorted(set(observed) & set(self.reference_observables))
        if not common:
            return Verdict(False, math.inf, "no duration in common with the reference")
        longest = common[-1]
        return compare_observables(observed[longest], self.reference_observables[longest],
                                   self.settings.tolerance)

    def confirmation_trial(self, config: RunConfig) -> TrialResult:
        """One run of ``config`` at its repeat duration for the confirmation rounds (a
        profile-guided configuration without a profile here, measured on another node, takes
        it first: the instrumented run is no round's time)."""
        if config.pgo and not self._trained(config):
            self._run(config, min(self.settings.durations))
        return self._run(config, self.repeat_duration(config), purpose="confirm")

    def announce_confirmation(self, contenders: list[RunConfig]) -> None:
        """Tell the progress callback which configurations are about to be confirmed."""
        self._notify("confirm", contenders=contenders)

    def refit(self, config: RunConfig) -> Evaluation:
        """``config``'s evaluation from all its trials so far (confirmation rounds included)."""
        return self._model(config, self.results[config])


def _two_digits(x: float) -> float:
    """``x`` rounded to two significant digits (probe durations stay few and readable)."""
    return float(f"{x:.2g}")


def observables_by_duration(results: list[TrialResult]) -> dict[float, dict[str, float]]:
    """Observables per simulated duration (a warm run's where there is one)."""
    by_duration: dict[float, dict[str, float]] = {}
    for result in results:
        if result.ok and not result.cold:
            by_duration.setdefault(result.duration, dict(result.observables))
    for result in results:  # a cold run's observables are as good as a warm one's
        if result.ok:
            by_duration.setdefault(result.duration, dict(result.observables))
    return by_duration


def phase_statistics(results: list[TrialResult]) -> tuple[dict[str, float], dict[str, float]]:
    """Median and relative half-range of each phase over the warm trials."""
    warm = [r for r in results if r.ok and not r.cold] or [r for r in results if r.ok]
    names = sorted({k for r in warm for k in r.phases})
    medians, spreads = {}, {}
    for name in names:
        values = [r.phases[name] for r in warm if name in r.phases]
        medians[name] = statistics.median(values)
        spreads[name] = relative_spread(values)
    return medians, spreads
