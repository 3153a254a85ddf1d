"""The Optuna study over the conditional configuration space.

The space (define-by-run): ``device`` ∈ {runtime, cpp_standalone}; runtime → ``target`` ∈
{numpy, cython} (cython → a flag preset); cpp_standalone → ``threads`` ∈ 0..max threads and a flag
preset; ``precision`` ∈ {float64, float32} everywhere. Optuna's TPE sampler proposes, with
infeasible (failed-validation) configurations reported through ``constraints_func``.

This module knows nothing of trials or the store: it asks an ``evaluate`` callback for the
predicted full-run time of each configuration it proposes and keeps the study in an Optuna RDB
storage, so an interrupted calibration resumes with the same study. A configuration proposed
twice is answered from the first answer, not measured again, and does not count against the
budget.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from autotune.config import FLAG_PRESETS, PRECISIONS, RunConfig, standalone_config

logger = logging.getLogger(__name__)

#: Prefix of every study brian2-autotune creates (so ``optuna-dashboard`` lists them clearly).
STUDY_PREFIX = "brian2-autotune"
_MAX_REPEATED_ASKS = 8


@dataclass(frozen=True)
class Evaluation:
    """The search's view of one measured configuration.

    Attributes:
        config: the configuration.
        objective: predicted wall seconds of a full run, or None when the trial failed.
        feasible: False when the results failed validation against the reference.
        reason: why the configuration failed or is infeasible.
        attrs: extra facts stored on the Optuna trial (phases, cost model) for dashboards.
    """

    config: RunConfig
    objective: float | None
    feasible: bool = True
    reason: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Budget:
    """When to stop: after ``trials`` measured configurations and/or ``minutes`` of wall time."""

    trials: int | None = 12
    minutes: float | None = None

    def __post_init__(self) -> None:
        from autotune.errors import BadInput

        if self.trials is not None and (isinstance(self.trials, bool) or self.trials < 1):
            raise BadInput(f"--trials must be at least 1, got {self.trials}")
        if self.minutes is not None and not (math.isfinite(self.minutes) and self.minutes > 0):
            raise BadInput(f"--minutes must be a positive number, got {self.minutes}")
        if self.trials is None and self.minutes is None:
            raise BadInput("give a budget: --trials N and/or --minutes M")


def config_from_params(params: dict[str, Any]) -> RunConfig:
    """Turn an Optuna trial's parameters into a :class:`RunConfig`."""
    precision = params["precision"]
    if params["device"] == "cpp_standalone":
        return standalone_config(int(params["threads"]), precision, params["cpp_flags"])
    target = params["target"]
    flags = params.get("cython_flags", "default") if target == "cython" else "default"
    return RunConfig("runtime", target, 0, precision, flags)


def params_from_config(config: RunConfig) -> dict[str, Any]:
    """The Optuna parameters that select ``config`` (for ``enqueue_trial``)."""
    params: dict[str, Any] = {"device": config.device, "precision": config.precision}
    if config.device == "cpp_standalone":
        params.update(threads=config.threads, cpp_flags=config.flags)
    else:
        params["target"] = config.target
        if config.target == "cython":
            params["cython_flags"] = config.flags
    return params


def suggest_config(trial: Any, max_threads: int, cython_available: bool,
                   devices: Sequence[str] = ("runtime", "cpp_standalone"),
                   runtime_targets: Sequence[str] = ("numpy", "cython")) -> RunConfig:
    """Define-by-run: ask ``trial`` for one configuration of the conditional space."""
    device = trial.suggest_categorical("device", list(devices))
    params: dict[str, Any] = {"device": device}
    if device == "runtime":
        targets = [t for t in runtime_targets if t != "cython" or cython_available]
        params["target"] = trial.suggest_categorical("target", targets)
        if params["target"] == "cython":
            params["cython_flags"] = trial.suggest_categorical("cython_flags", list(FLAG_PRESETS))
    else:
        params["threads"] = trial.suggest_int("threads", 0, max_threads)
        params["cpp_flags"] = trial.suggest_categorical("cpp_flags", list(FLAG_PRESETS))
    params["precision"] = trial.suggest_categorical("precision", list(PRECISIONS))
    return config_from_params(params)


def _HAS_SET_CONSTRAINT() -> bool:  # noqa: N802 - reads like the constant it is
    import optuna

    return hasattr(optuna.trial.Trial, "set_constraint")


def _constraints(frozen: Any) -> Sequence[float]:
    return [float(frozen.user_attrs.get("constraint", 0.0))]


def study_name(fingerprint: str, workload_signature: str, calibration_id: int) -> str:
    """The study's name: readable in optuna-dashboard, unique per calibration."""
    return f"{STUDY_PREFIX}:{fingerprint}:{workload_signature}:{calibration_id}"


def _open_study(storage_url: str, name: str, seed: int, n_startup: int,
                storage_lock: Callable[[], AbstractContextManager[Any]]) -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Optuna 5 records constraints on the trial itself; older versions need constraints_func.
    legacy = {} if _HAS_SET_CONSTRAINT() else {"constraints_func": _constraints}
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=n_startup, **legacy)
    with storage_lock():  # two calibrations may create Optuna's tables at once
        storage = optuna.storages.RDBStorage(storage_url,
                                             engine_kwargs=_engine_kwargs(storage_url))
    study = optuna.create_study(study_name=name, storage=storage, sampler=sampler,
                                direction="minimize", load_if_exists=True)
    for frozen in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        # Left running by an interrupted calibration: it never finished, so it failed.
        study.tell(frozen.number, state=optuna.trial.TrialState.FAIL)
    return study


def _engine_kwargs(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 60}}
    return {}


def _known_evaluations(study: Any) -> dict[RunConfig, float | None]:
    """Objective values of configurations the study already finished (for resume/duplicates)."""
    import optuna

    known: dict[RunConfig, float | None] = {}
    for frozen in study.get_trials(deepcopy=False):
        if frozen.state == optuna.trial.TrialState.COMPLETE:
            known[config_from_params(frozen.params)] = frozen.value
        elif frozen.state == optuna.trial.TrialState.FAIL and "config" in frozen.user_attrs:
            known.setdefault(config_from_params(frozen.params), None)
    return known


def run_search(
    evaluate: Callable[[RunConfig], Evaluation],
    *,
    storage_url: str,
    name: str,
    space: Sequence[RunConfig],
    max_threads: int,
    cython_available: bool,
    first: Sequence[RunConfig] = (),
    budget: Budget = Budget(),
    seed: int = 0,
    clock: Callable[[], float] = time.monotonic,
    on_progress: Callable[[int, Evaluation], None] | None = None,
    storage_lock: Callable[[], AbstractContextManager[Any]] = nullcontext,
) -> int:
    """Run (or resume) the study until the budget is spent or the space is exhausted.

    Args:
        evaluate: measures a configuration (called once per distinct configuration).
        storage_url: SQLAlchemy URL of the Optuna storage.
        name: study name (see :func:`study_name`); an existing study is resumed.
        space: every configuration that may be proposed (to know when all were tried).
        max_threads: largest thread count to propose.
        cython_available: whether to propose the Cython target.
        first: configurations to try first, in order (the reference, one per family).
        budget: when to stop; configurations measured before a resume count too.
        seed: sampler seed.
        clock: monotonic clock (passed in so tests can control time).
        on_progress: called after each newly measured configuration.
        storage_lock: serialises the creation of Optuna's tables with other processes.

    Returns:
        The number of configurations measured in this call.
    """
    import optuna

    study = _open_study(storage_url, name, seed, max(4, len(first)), storage_lock)
    known = _known_evaluations(study)
    for config in first:
        if config not in known:
            study.enqueue_trial(params_from_config(config), skip_if_exists=True)
    start, measured_now = clock(), 0
    remaining = set(space) - set(known)
    rng = random.Random(seed)
    asks_without_news = 0
    devices = sorted({c.device for c in space}, reverse=True)
    runtime_targets = sorted({c.target for c in space if c.device == "runtime"})
    while remaining:
        if budget.trials is not None and len(known) >= budget.trials:
            break
        if budget.minutes is not None and clock() - start >= budget.minutes * 60:
            break
        trial = study.ask()
        config = suggest_config(trial, max_threads, cython_available, devices, runtime_targets)
        if config in known:
            asks_without_news += 1
            if asks_without_news >= _MAX_REPEATED_ASKS:
                # The sampler has converged on what it knows; make it look elsewhere.
                unexplored = rng.choice(sorted(remaining))
                study.enqueue_trial(params_from_config(unexplored), skip_if_exists=True)
                asks_without_news = 0
            value = known[config]
            if value is None:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            else:
                study.tell(trial, value)
            continue
        asks_without_news = 0
        evaluation = evaluate(config)
        _tell(study, trial, evaluation)
        known[config] = evaluation.objective
        remaining.discard(config)
        measured_now += 1
        if on_progress is not None:
            on_progress(len(known), evaluation)
    return measured_now


def _tell(study: Any, trial: Any, evaluation: Evaluation) -> None:
    import optuna

    trial.set_user_attr("config", evaluation.config.key)
    for key, value in evaluation.attrs.items():
        trial.set_user_attr(key, value)
    if evaluation.objective is None:
        trial.set_user_attr("failure", evaluation.reason or "failed")
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return
    violation = 0.0 if evaluation.feasible else 1.0
    trial.set_user_attr("constraint", violation)
    if _HAS_SET_CONSTRAINT():
        trial.set_constraint("validation", violation)
    if not evaluation.feasible:
        trial.set_user_attr("infeasible", evaluation.reason or "failed validation")
    study.tell(trial, evaluation.objective)
