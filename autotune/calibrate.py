"""Calibrate a host: measure configurations of a workload, validate them, store a profile.

This module wires the data path together: :mod:`host` says what the machine allows,
:mod:`workloads` what to run, :mod:`measure` (through :mod:`trial`) measures and validates one
configuration, :mod:`search` decides what to measure next, :mod:`store` keeps every trial the
moment it is measured and the resulting :class:`~autotune.profile.Profile`.

The float64 reference (Brian2's default configuration) runs first; every other configuration's
observables must match it within ``tolerance``. After the search the configurations closest to
the best are re-measured in interleaved rounds and ranked on paired comparisons, and the profile
records that confirmed ranking with each gap, the host's load during the calibration, and every
configuration's cost model.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from autotune.buildslots import node_dir, node_name, try_lock
from autotune.config import RunConfig, all_configs, brian2_default_config, standalone_config
from autotune.confirm import Confirmation, confirm_finalists, share_fixed_parts
from autotune.drypass import workload_features
from autotune.errors import BadInput, CalibrationError, StoreError, WorkloadError
from autotune.features import ModelFeatures
from autotune.host import HostFingerprint, collect_host, collect_load, cython_available
from autotune.measure import Measurer, ProgressCallback
from autotune.paths import default_cache_root
from autotune.profile import Profile, ProfileEntry
from autotune.records import Evaluation, TrialResult
from autotune.search import reference_candidates, run_search, study_name
from autotune.settings import CalibrationSettings
from autotune.store import CalibrationInfo, Store, open_store
from autotune.workloads import WorkloadSpec, resolve_workload

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CalibrationOutcome:
    """What :func:`calibrate` returns.

    ``profile`` is None on a node that joined a calibration another node finished: that node
    confirmed the finalists and wrote the one profile.
    """

    profile: Profile | None
    calibration_id: int
    measured: int
    resumed: bool
    load: dict[str, Any]
    joined: bool = False


def read_features(spec: WorkloadSpec) -> ModelFeatures | None:
    """The workload's features, for suite predictions (None, with a warning, where its dry
    pass fails: the profile still serves its own workload)."""
    try:
        return workload_features(spec.to_dict())
    except WorkloadError as e:
        logger.warning("%s; this profile will not serve predictions for other models", e)
        return None


def first_configs(max_threads: int, cython: bool) -> list[RunConfig]:
    """The reference, then one configuration per family, measured before the sampler guesses."""
    first = [brian2_default_config(cython)]
    if cython:
        first.append(RunConfig("runtime", "numpy"))  # fallback reference if Cython fails
    first.append(standalone_config(0))
    if max_threads > 1:
        first.append(standalone_config(max_threads))
    return first


def _entry(config: RunConfig, evaluation: Evaluation) -> ProfileEntry:
    if evaluation.objective is None:
        status = "failed"
    else:
        status = "valid" if evaluation.feasible else "invalid"
    return ProfileEntry(config, status, evaluation.cost, evaluation.reason,
                        evaluation.max_deviation, dict(evaluation.phases),
                        dict(evaluation.phase_spread))


def confirmation_summary(confirmation: Confirmation | None, within: float) -> dict[str, Any]:
    """The profile's record of a confirmation: rounds run, how close to the best a contender
    had to be, and each confirmed configuration's paired gap to the fastest (empty when no
    confirmation was attempted)."""
    if confirmation is None:
        return {}
    return {"rounds": confirmation.rounds, "within": within,
            "gaps": {c.key: gap.to_dict() for c, gap in confirmation.gaps.items()}}


def unmeasured_pgo_note(space: Collection[RunConfig], measured: Collection[RunConfig],
                        budget_trials: int | None) -> str | None:
    """A note for the profile when profile-guided builds were in the space but the budget ran
    out before the climb reached one (it turns precision and flag presets first), so that a
    user on a host where PGO pays knows how to have it measured; None otherwise."""
    if not any(c.pgo for c in space) or any(c.pgo for c in measured):
        return None
    spent = f"the budget of {budget_trials} configurations" if budget_trials else "the budget"
    return (f"no profile-guided (PGO) build was measured: {spent} went to the device families, "
            "precision and flag presets first; calibrate again with a larger --trials to "
            "measure it (a PGO build costs an instrumented build and run, then a second cold "
            "build), or --no-pgo to leave it out")


def build_profile(host: HostFingerprint, workload: WorkloadSpec, settings: CalibrationSettings,
                  calibration_id: int, evaluations: dict[RunConfig, Evaluation],
                  notes: list[str], confirmation: Confirmation | None, busy: bool,
                  features: ModelFeatures | None = None) -> Profile:
    """Turn the evaluations of a calibration into a :class:`Profile` (with the workload's
    ``features`` where they were read: what a suite prediction fits on)."""
    baseline = brian2_default_config(cython_available(host))
    described = workload.to_dict() | ({"model": features.to_dict()} if features else {})
    return Profile(
        fingerprint=host.fingerprint, host_components=dict(host.components),
        workload=described, target_duration=settings.target_duration,
        tolerance=settings.tolerance,
        entries=tuple(_entry(c, e) for c, e in evaluations.items()),
        baseline=baseline if baseline in evaluations else None,
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        calibration_id=calibration_id, notes=tuple(notes),
        confirmed=tuple(c.key for c in confirmation.ranking) if confirmation else (),
        confirmation=confirmation_summary(confirmation, settings.confirm_within), busy=busy,
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
        progress: called with ``(event, data)`` as the calibration goes: ``trial`` (config,
            duration, purpose), ``evaluated`` (done, evaluation), ``busy`` (load), ``confirm``
            (contenders: the configurations about to be confirmed).

    Raises:
        WorkloadError: the workload is unknown or broken (also when its reference run raises).
        StoreError: the store cannot be used.
        CalibrationError: no configuration could be measured at all.
        KeyboardInterrupt: after the calibration was marked interrupted (trials are kept).
    """
    settings = settings or CalibrationSettings()
    spec = workload if isinstance(workload, WorkloadSpec) else resolve_workload(workload, size)
    host = host or collect_host()
    if settings.max_threads is not None and settings.max_threads > host.usable_cpus:
        raise BadInput(f"max threads {settings.max_threads} exceeds the {host.usable_cpus} usable "
                       "CPUs of this host")
    store = open_store(db)
    try:
        return _Calibration(store, spec, host, settings, cache_root or default_cache_root(),
                            progress).run(resume)
    finally:
        store.close()


class _Calibration:
    """One calibration from start (or resume) to stored profile."""

    def __init__(self, store: Store, spec: WorkloadSpec, host: HostFingerprint,
                 settings: CalibrationSettings, cache_root: Path,
                 progress: ProgressCallback | None) -> None:
        self.store, self.spec, self.host, self.settings = store, spec, host, settings
        self.cache_root, self.progress = cache_root, progress
        self.max_threads = (settings.max_threads if settings.max_threads is not None
                            else host.max_threads)
        self.cython = cython_available(host) and "cython" in settings.targets
        self.notes: list[str] = []

    def _notify(self, event: str, data: dict[str, Any]) -> None:
        if event == "busy" and not any("busy" in n for n in self.notes):
            load = data["load"]
            during = (f" during the trial of {load['during']}, which was measured again"
                      if "during" in load else "")
            self.notes.append(f"host was busy during calibration: other processes used "
                              f"{load['other_cpu']} CPUs of {load['usable_cpus']}{during}; "
                              "timings may be off")
            logger.warning(self.notes[-1])
        if self.progress is not None:
            self.progress(event, data)

    def _open(self, resume: bool, load: dict[str, Any]) -> tuple[CalibrationInfo, str]:
        """The calibration to work on and how: ``resumed``, ``joined`` (identical nodes
        started it and are at it: this node shares its study) or ``new``."""
        info = (self.store.resumable_calibration(self.host.fingerprint, self.spec.signature)
                if resume else None)
        if resume and info is None:
            logger.warning("nothing to resume for %s on this host; starting a new calibration",
                           self.spec.describe())
        if info is not None:
            # Keep the interrupted calibration's objective, or its trials would not compare.
            self.settings = replace(self.settings, target_duration=info.settings.get(
                "target_duration", self.settings.target_duration))
            return info, "resumed"
        with self.store.schema_lock():  # nodes starting together: one creates, the rest join
            info = self.store.joinable_calibration(self.host.fingerprint, self.spec.signature,
                                                   self.settings.to_dict())
            if info is not None:
                logger.info("joining calibration %d of %s, running on other nodes with this "
                            "host's fingerprint", info.id, self.spec.describe())
                return info, "joined"
            info = self.store.start_calibration(self.host, self.spec, self.settings.to_dict(),
                                                {"start": load})
            name = study_name(self.host.fingerprint, self.spec.signature, info.id)
            self.store.set_study_name(info.id, name)
        return replace(info, study_name=name), "new"

    def run(self, resume: bool) -> CalibrationOutcome:
        lock = try_lock(self._node_lock_path(), f"{os.getpid()}\n")
        if lock is None:
            raise BadInput(f"a calibration of {self.spec.describe()} is already running on this "
                           "node; wait for it (two at once would time each other's runs)")
        try:
            return self._run(resume)
        finally:
            lock.release()

    def _node_lock_path(self) -> Path:
        folder = node_dir(self.cache_root, self.host.fingerprint)
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"calibrating-{self.spec.signature[:16]}.lock"

    def _run(self, resume: bool) -> CalibrationOutcome:
        load = collect_load()
        if load["busy"]:
            self._notify("busy", {"load": load})
        info, how = self._open(resume, load)

        def record(result: TrialResult, purpose: str) -> None:
            self.store.record_trial(info.id, result, purpose)

        measurer = Measurer(self.host, self.spec, self.settings.measure_settings(self.host),
                            self.cache_root, record, self.store.trials(info.id), self._notify)
        evaluations: dict[RunConfig, Evaluation] = {}
        resumed, joined = how == "resumed", how == "joined"
        try:
            measured = self._search(info, measurer, evaluations, resumed)
            if not self.store.claim_finalization(info.id):
                logger.info("another node confirms the finalists and writes the profile of "
                            "calibration %d; this node's trials are stored", info.id)
                return CalibrationOutcome(None, info.id, measured, resumed,
                                          {"during": measurer.loads}, joined=joined)
            confirmation = self._finalists(info, measurer, evaluations)
        except KeyboardInterrupt:
            self.store.finish_calibration(info.id, "interrupted")
            raise
        except WorkloadError:
            self.store.finish_calibration(info.id, "failed")
            raise
        except StoreError as e:  # the store went away: it cannot be told; a rerun goes on
            if "run the same calibrate again" in str(e):
                raise
            raise StoreError(f"{e}; the completed trials are kept: run the same calibrate "
                             "again to go on") from e
        finally:
            measurer.close()
        end_load = collect_load()
        if end_load["busy"]:
            self._notify("busy", {"load": end_load})
        loads = {"start": load, "end": end_load, "during": measurer.loads}
        busy = any(x["busy"] for x in [load, end_load, *measurer.loads])
        if not any(e.objective is not None for e in evaluations.values()):
            self.store.finish_calibration(info.id, "failed", loads)
            reasons = "; ".join(f"{c.key}: {(e.reason or 'failed').splitlines()[0]}"
                                for c, e in evaluations.items())
            raise CalibrationError(f"no configuration could be measured: {reasons}")
        pgo_note = unmeasured_pgo_note(self._space(), evaluations,
                                       self.settings.budget.trials)
        if pgo_note is not None:
            self.notes.append(pgo_note)
        profile = build_profile(self.host, self.spec, self.settings, info.id, evaluations,
                                self.notes, confirmation, busy, read_features(self.spec))
        self.store.save_profile(profile, self.host, self.spec)
        self.store.finish_calibration(info.id, "finished", loads)
        return CalibrationOutcome(profile, info.id, measured, resumed, loads, joined=joined)

    def _search(self, info: CalibrationInfo, measurer: Measurer,
                evaluations: dict[RunConfig, Evaluation], resumed: bool) -> int:
        first = [c for c in first_configs(self.max_threads, self.cython) if c in self._space()]
        references = reference_candidates(first)

        def evaluate(config: RunConfig) -> Evaluation:
            if measurer.reference is None and config not in references:
                self._adopt_reference(info, measurer, evaluations, references)
            evaluations[config] = measurer.evaluate(config)
            return evaluations[config]

        def on_progress(done: int, evaluation: Evaluation) -> None:
            self._notify("evaluated", {"done": done, "evaluation": evaluation})

        for config in first:  # on resume the reference again comes from the stored trials
            if config in measurer.previous:
                evaluate(config)
        assert info.study_name is not None
        return run_search(
            evaluate, storage_url=self.store.url, name=info.study_name, space=self._space(),
            max_threads=self.max_threads, cython_available=self.cython, first=first,
            budget=self.settings.budget, seed=self.settings.seed, on_progress=on_progress,
            storage_lock=self.store.schema_lock, node=node_name(),
            heartbeat=self.settings.heartbeat, resume_interrupted=resumed)

    def _space(self) -> list[RunConfig]:
        return [c for c in all_configs(self.max_threads, self.cython)
                if c.target in self.settings.targets and (self.settings.pgo or not c.pgo)]

    def _adopt_reference(self, info: CalibrationInfo, measurer: Measurer,
                         evaluations: dict[RunConfig, Evaluation],
                         references: list[RunConfig]) -> None:
        """Validate against the reference another node measured (the search measures nothing
        else before a reference succeeded)."""
        measurer.adopt(self.store.trials(info.id))
        for reference in references:
            if reference in measurer.previous:
                evaluations[reference] = measurer.evaluate(reference)
            if measurer.reference is not None:
                return

    def _finalists(self, info: CalibrationInfo, measurer: Measurer,
                   evaluations: dict[RunConfig, Evaluation]) -> Confirmation | None:
        """Model every configuration any node measured (from the stored trials), with the
        fixed part each set-up family shares, then confirm the finalists here: their paired
        rounds all run on this one node."""
        measurer.adopt(self.store.trials(info.id))
        for config in measurer.previous:
            if config not in evaluations:
                evaluations[config] = measurer.evaluate(config)
        share_fixed_parts(evaluations, self.settings.target_duration)
        if self.settings.confirm_top < 2 or self.settings.confirm_max_rounds < 1:
            return None
        return confirm_finalists(measurer, evaluations, self.settings.confirm_top,
                                 self.settings.confirm_rounds, self.settings.confirm_max_rounds,
                                 self.settings.confirm_within)
