"""Calibrate a host: measure configurations of a workload, validate them, store a profile.

This module wires the data path together: :mod:`host` says what the machine allows,
:mod:`workloads` what to run, :mod:`trial` measures one configuration in a child process,
:mod:`search` decides what to measure next, :mod:`store` keeps every trial the moment it is
measured and the resulting :class:`~autotune.profile.Profile`.

Each configuration is measured at several short simulated durations (plus a warm-up run for
compiled configurations, whose first build is recorded as cold), so its cost model
``fixed + rate × duration`` can predict a full run of ``target_duration``. The float64 reference
(Brian2's default configuration) runs first; every other configuration's observables must match
it within ``tolerance``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from autotune.config import RunConfig, all_configs, brian2_default_config, standalone_config
from autotune.costmodel import fit_cost_model
from autotune.errors import BadInput, CalibrationError, WorkloadError
from autotune.host import HostFingerprint, collect_host, collect_load
from autotune.paths import cython_cache_dir, default_cache_root, standalone_build_dir
from autotune.profile import Profile, ProfileEntry
from autotune.search import Budget, Evaluation, run_search, study_name
from autotune.store import CalibrationInfo, Store, open_store
from autotune.trial import TrialResult, TrialSpec, run_trial
from autotune.validate import DEFAULT_TOLERANCE, compare_observables
from autotune.workloads import WorkloadSpec, resolve_workload

logger = logging.getLogger(__name__)
def cython_available(host: HostFingerprint) -> bool:
    """Whether the Cython target can work here: Cython importable and a C++ compiler found."""
    import importlib.util

    return host.components.get("compiler", "none") != "none" and bool(
        importlib.util.find_spec("Cython"))


@dataclass(frozen=True)
class CalibrationSettings:
    """How to calibrate.

    Attributes:
        target_duration: simulated seconds of the full runs to optimise for.
        tolerance: relative deviation from the reference allowed for each observable.
        durations: simulated seconds of the calibration runs (at least two, for the fit).
        budget: how many configurations / minutes to spend.
        trial_timeout: wall seconds before a trial is killed.
        memory_limit: bytes a trial's process tree may use (None: 80 % of usable memory).
        max_threads: most OpenMP threads to try (None: the host's memory-aware maximum).
        seed: Optuna sampler seed.
        targets: code-generation targets to consider (``numpy``, ``cython``, ``cpp`` =
            cpp_standalone); leaving one out shortens the calibration.
    """

    target_duration: float = 10.0
    tolerance: float = DEFAULT_TOLERANCE
    durations: tuple[float, ...] = (0.1, 0.4)
    budget: Budget = field(default_factory=Budget)
    trial_timeout: float = 900.0
    memory_limit: int | None = None
    max_threads: int | None = None
    seed: int = 0
    targets: tuple[str, ...] = ("numpy", "cython", "cpp")

    def __post_init__(self) -> None:
        unknown = set(self.targets) - {"numpy", "cython", "cpp"}
        if unknown or not self.targets:
            raise BadInput(f"targets must be among numpy, cython, cpp; got "
                           f"{', '.join(self.targets) or 'none'}")
        if not _positive(self.target_duration):
            raise BadInput(f"--target-duration must be a positive number of simulated seconds, "
                           f"got {self.target_duration}")
        if not _positive(self.tolerance):
            raise BadInput(f"--tolerance must be a positive fraction (0.05 = 5 %), got "
                           f"{self.tolerance}")
        if len(self.durations) < 2 or not all(_positive(d) for d in self.durations):
            raise BadInput("calibration durations must be at least two positive numbers")
        if len(set(self.durations)) < 2:
            raise BadInput("calibration durations must differ, to fit the cost model")
        if not _positive(self.trial_timeout):
            raise BadInput(f"trial timeout must be positive, got {self.trial_timeout}")
        if self.max_threads is not None and self.max_threads < 0:
            raise BadInput(f"max threads must be >= 0, got {self.max_threads}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, stored with the calibration."""
        return {"target_duration": self.target_duration, "tolerance": self.tolerance,
                "durations": list(self.durations), "trials": self.budget.trials,
                "minutes": self.budget.minutes, "trial_timeout": self.trial_timeout,
                "memory_limit": self.memory_limit, "max_threads": self.max_threads,
                "seed": self.seed, "targets": list(self.targets)}


def _positive(x: float) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


@dataclass(frozen=True)
class CalibrationOutcome:
    """What :func:`calibrate` returns."""

    profile: Profile
    calibration_id: int
    measured: int
    resumed: bool
    load: dict[str, Any]


ProgressCallback = Callable[[str, dict[str, Any]], None]


class _Calibrator:
    """State of one calibration: reference observables, measurements, store writes."""

    def __init__(self, store: Store, info: CalibrationInfo, host: HostFingerprint,
                 workload: WorkloadSpec, settings: CalibrationSettings, cache_root: Path,
                 progress: ProgressCallback | None) -> None:
        self.store, self.info, self.host = store, info, host
        self.workload, self.settings, self.cache_root = workload, settings, cache_root
        self.progress = progress
        self.reference: RunConfig | None = None
        self.reference_observables: dict[float, dict[str, float]] = {}
        self.memory_limit = settings.memory_limit or int(host.usable_memory * 0.8)
        self.previous: dict[RunConfig, list[TrialResult]] = {}
        for result in store.trials(info.id):
            self.previous.setdefault(result.config, []).append(result)

    def _notify(self, event: str, **data: Any) -> None:
        if self.progress is not None:
            self.progress(event, data)

    def _spec(self, config: RunConfig, duration: float) -> TrialSpec:
        build = (standalone_build_dir(self.cache_root, self.host.fingerprint,
                                      self.workload.signature, config)
                 if config.device == "cpp_standalone" else None)
        cache = (cython_cache_dir(self.cache_root, self.host.fingerprint, config)
                 if config.target == "cython" else None)
        return TrialSpec(self.workload, config, duration, build, cache)

    def _plan(self, config: RunConfig) -> list[float]:
        durations = sorted(self.settings.durations)
        # Compiled configurations get a warm-up run: the first build may be cold.
        return [durations[0], *durations] if config.compiled else durations

    def measure(self, config: RunConfig) -> list[TrialResult]:
        """Measure ``config`` at every calibration duration (reusing a resumed calibration's)."""
        previous = self.previous.get(config, [])
        if previous and (any(not r.ok for r in previous) or
                         {r.duration for r in previous if r.ok} >= set(self.settings.durations)):
            logger.info("reusing %d stored trials of %s", len(previous), config.key)
            return previous
        results: list[TrialResult] = []
        for duration in self._plan(config):
            self._notify("trial", config=config, duration=duration)
            result = run_trial(self._spec(config, duration), self.settings.trial_timeout,
                               self.memory_limit)
            self.store.record_trial(self.info.id, result)
            results.append(result)
            if not result.ok:
                break
        return results

    def evaluate(self, config: RunConfig) -> Evaluation:
        """Measure, validate and model one configuration (the search's callback)."""
        results = self.measure(config)
        failed = next((r for r in results if not r.ok), None)
        if failed is not None:
            if failed.status == "workload_error":
                raise WorkloadError(failed.error or "the workload failed")
            return Evaluation(config, None, reason=f"{failed.status}: {failed.error}")
        cost = fit_cost_model(results)
        objective = cost.predict(self.settings.target_duration)
        attrs = {"cost": cost.to_dict(), "phases": _median_phases(results)}
        if self.reference is None and config.precision != "float64":
            return Evaluation(config, objective, feasible=False, attrs=attrs,
                              reason="no float64 reference succeeded to validate against")
        if self.reference is None:
            self.reference = config
            self.reference_observables = _observables_by_duration(results)
            return Evaluation(config, objective, attrs={**attrs, "reference": True})
        verdict = self._validate(results)
        attrs["max_deviation"] = verdict.max_deviation if math.isfinite(
            verdict.max_deviation) else None
        return Evaluation(config, objective, feasible=verdict.ok, reason=verdict.reason,
                          attrs=attrs)

    def _validate(self, results: list[TrialResult]) -> Any:
        worst = None
        for duration, observables in _observables_by_duration(results).items():
            reference = self.reference_observables.get(duration)
            if reference is None:
                continue
            verdict = compare_observables(observables, reference, self.settings.tolerance)
            if worst is None or verdict.max_deviation > worst.max_deviation:
                worst = verdict
        from autotune.validate import Verdict

        return worst or Verdict(False, math.inf, "no duration in common with the reference")


def _observables_by_duration(results: list[TrialResult]) -> dict[float, dict[str, float]]:
    by_duration: dict[float, dict[str, float]] = {}
    for result in results:
        if result.ok and not result.cold:
            by_duration[result.duration] = dict(result.observables)
    for result in results:  # a cold run's observables are as good as a warm one's
        if result.ok:
            by_duration.setdefault(result.duration, dict(result.observables))
    return by_duration


def _median_phases(results: list[TrialResult]) -> dict[str, float]:
    import statistics

    warm = [r for r in results if r.ok and not r.cold] or [r for r in results if r.ok]
    names = sorted({k for r in warm for k in r.phases})
    return {n: statistics.median(r.phases[n] for r in warm if n in r.phases) for n in names}


def first_configs(host: HostFingerprint, max_threads: int, cython: bool) -> list[RunConfig]:
    """The reference, then one configuration per family, measured before the sampler guesses."""
    first = [brian2_default_config(cython)]
    if cython:
        first.append(RunConfig("runtime", "numpy"))  # fallback reference if Cython fails
    first.append(standalone_config(0))
    if max_threads > 1:
        first.append(standalone_config(max_threads))
    return first


def build_profile(host: HostFingerprint, workload: WorkloadSpec, settings: CalibrationSettings,
                  calibration_id: int, evaluations: dict[RunConfig, Evaluation],
                  notes: list[str]) -> Profile:
    """Turn the evaluations of a calibration into a :class:`Profile`."""
    entries = []
    for config, evaluation in evaluations.items():
        cost_data = evaluation.attrs.get("cost")
        cost = None
        if cost_data:
            from autotune.costmodel import CostModel

            cost = CostModel.from_dict(cost_data)
        if evaluation.objective is None:
            status = "failed"
        else:
            status = "valid" if evaluation.feasible else "invalid"
        entries.append(ProfileEntry(config, status, cost, evaluation.reason,
                                    evaluation.attrs.get("max_deviation")))
    baseline = brian2_default_config(cython_available(host))
    return Profile(
        fingerprint=host.fingerprint, host_components=dict(host.components),
        workload=workload.to_dict(), target_duration=settings.target_duration,
        tolerance=settings.tolerance, entries=tuple(entries),
        baseline=baseline if baseline in evaluations else None,
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        calibration_id=calibration_id, notes=tuple(notes),
    )


def calibrate(
    workload: str | WorkloadSpec,
    *,
    size: int | None = None,
    settings: CalibrationSettings | None = None,
    db: str | None = None,
    resume: bool = False,
    cache_root: Path | None = None,
    host: HostFingerprint | None = None,
    progress: ProgressCallback | None = None,
) -> CalibrationOutcome:
    """Calibrate this host on ``workload`` and store the resulting profile.

    Args:
        workload: built-in name, path of a workload file, or a resolved spec.
        size: size of a built-in workload (None: its default).
        settings: target duration, tolerance, budget, ... (None: defaults).
        db: store URL (None: ``$BRIAN2_AUTOTUNE_DB`` or the default file).
        resume: continue the newest unfinished calibration of this host and workload.
        cache_root: where build folders live (None: :func:`default_cache_root`).
        host: this host's fingerprint (None: collect it).
        progress: called with ``(event, data)`` as the calibration goes.

    Raises:
        WorkloadError: the workload is unknown or broken (also when its reference run raises).
        StoreError: the store cannot be used.
        CalibrationError: no configuration could be measured at all.
        KeyboardInterrupt: after the calibration was marked interrupted (trials are kept).
    """
    settings = settings or CalibrationSettings()
    spec = workload if isinstance(workload, WorkloadSpec) else resolve_workload(workload, size)
    host = host or collect_host()
    max_threads = settings.max_threads if settings.max_threads is not None else host.max_threads
    if settings.max_threads is not None and settings.max_threads > host.usable_cpus:
        raise BadInput(f"max threads {settings.max_threads} exceeds the {host.usable_cpus} usable "
                       "CPUs of this host")
    cython = cython_available(host) and "cython" in settings.targets
    store = open_store(db)
    try:
        return _calibrate(store, spec, host, settings, max_threads, cython, resume,
                          cache_root or default_cache_root(), progress)
    finally:
        store.close()


def _calibrate(store: Store, spec: WorkloadSpec, host: HostFingerprint,
               settings: CalibrationSettings, max_threads: int, cython: bool, resume: bool,
               cache_root: Path, progress: ProgressCallback | None) -> CalibrationOutcome:
    load = collect_load()
    notes = []
    if load["busy"]:
        notes.append(f"host was busy at the start: other processes used {load['other_cpu']} "
                     f"CPUs of {load['usable_cpus']}; timings may be off")
        logger.warning(notes[-1])
    info = store.resumable_calibration(host.fingerprint, spec.signature) if resume else None
    if resume and info is None:
        logger.warning("nothing to resume for %s on this host; starting a new calibration",
                       spec.describe())
    resumed = info is not None
    if info is None:
        info = store.start_calibration(host, spec, settings.to_dict(), {"start": load})
        store.set_study_name(info.id, study_name(host.fingerprint, spec.signature, info.id))
        info = replace(info, study_name=study_name(host.fingerprint, spec.signature, info.id))
    else:
        settings = replace(settings, target_duration=info.settings.get(
            "target_duration", settings.target_duration))
    calibrator = _Calibrator(store, info, host, spec, settings, cache_root, progress)
    evaluations: dict[RunConfig, Evaluation] = {}

    def evaluate(config: RunConfig) -> Evaluation:
        evaluation = calibrator.evaluate(config)
        evaluations[config] = evaluation
        return evaluation

    def on_progress(done: int, evaluation: Evaluation) -> None:
        calibrator._notify("evaluated", done=done, evaluation=evaluation)

    space = [c for c in all_configs(max_threads, cython) if c.target in settings.targets]
    first = [c for c in first_configs(host, max_threads, cython) if c in space]
    assert info.study_name is not None
    try:
        for config in first:  # on resume: the reference again comes from the stored trials
            if config in calibrator.previous:
                evaluate(config)
        measured = run_search(
            evaluate, storage_url=store.url, name=info.study_name, space=space,
            max_threads=max_threads, cython_available=cython, first=first,
            budget=settings.budget, seed=settings.seed, on_progress=on_progress)
        _evaluate_stored_leftovers(calibrator, evaluations)
    except KeyboardInterrupt:
        store.finish_calibration(info.id, "interrupted")
        raise
    except WorkloadError:
        store.finish_calibration(info.id, "failed")
        raise
    end_load = collect_load()
    if end_load["busy"]:
        notes.append(f"host was busy at the end: other processes used {end_load['other_cpu']} "
                     f"CPUs of {end_load['usable_cpus']}; timings may be off")
        logger.warning(notes[-1])
    if not any(e.objective is not None for e in evaluations.values()):
        store.finish_calibration(info.id, "failed", {"start": load, "end": end_load})
        reasons = "; ".join(f"{c.key}: {e.reason}" for c, e in evaluations.items())
        raise CalibrationError(f"no configuration could be measured: {reasons}")
    profile = build_profile(host, spec, settings, info.id, evaluations, notes)
    store.save_profile(profile, host, spec)
    store.finish_calibration(info.id, "finished", {"start": load, "end": end_load})
    return CalibrationOutcome(profile, info.id, measured, resumed, {"start": load,
                                                                     "end": end_load})


def _evaluate_stored_leftovers(calibrator: _Calibrator,
                               evaluations: dict[RunConfig, Evaluation]) -> None:
    """Configurations measured before a resume: evaluate them from their stored trials."""
    for config in calibrator.previous:
        if config not in evaluations:
            evaluations[config] = calibrator.evaluate(config)
