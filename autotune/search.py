"""The Optuna study over the conditional configuration space.

The space (define-by-run): ``device`` ∈ {runtime, cpp_standalone}; runtime → ``target`` ∈
{numpy, cython} (cython → a flag preset); cpp_standalone → ``threads`` ∈ 0..max threads and a flag
preset; ``precision`` ∈ {float64, float32} everywhere. Optuna's TPE sampler proposes, with
infeasible (failed-validation) configurations reported through ``constraints_func``.

Before the sampler guesses, the search measures one configuration per family (``first``), then
climbs: it measures the untried neighbours (the same configuration with the other precision,
another flag preset, a neighbouring thread count) of every *contender*, a valid configuration
within :data:`CLIMB_MARGIN` of the best so far, either for target-length runs or for much longer
ones. A new best changes the contenders at once. Only when no contender has an untried neighbour
does TPE propose. Knobs interact (float32 and unrolling paid off only in standalone without
OpenMP on CUBA, by ~18 % at 100 s), and the family scan's ranking is within noise of a tie more
often than not, so a small budget is better spent refining every near-best family than sampling
random corners. Every configuration, climbed or sampled, is a trial of the one Optuna study.

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
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from typing import Any

from autotune.config import FLAG_PRESETS, PRECISIONS, RunConfig, standalone_config
from autotune.records import Evaluation
from autotune.store.location import SQLITE_BUSY_TIMEOUT

logger = logging.getLogger(__name__)

#: Prefix of every study brian2-autotune creates (so ``optuna-dashboard`` lists them clearly).
STUDY_PREFIX = "brian2-autotune"
_MAX_REPEATED_ASKS = 8
#: Configurations a calibration measures unless told otherwise: the family scan plus a climb
#: (README "Performance": this finds the exhaustive search's best at about 1/3 of its cost).
DEFAULT_TRIALS = 8


@dataclass(frozen=True)
class Budget:
    """When to stop: after ``trials`` measured configurations and/or ``minutes`` of wall time."""

    trials: int | None = DEFAULT_TRIALS
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


#: The knobs the climb turns, in the order it turns them (the gains measured on CUBA).
_KNOBS = ("precision", "flags", "threads")
#: Order in which flag presets are tried around a configuration: nearest Brian2's own flags first.
_FLAG_ORDER = ("default", "O3-unroll", "O2")
assert set(_FLAG_ORDER) == set(FLAG_PRESETS)


def _thread_neighbours(threads: int, max_threads: int) -> list[int]:
    """Thread counts next to ``threads``: halved and doubled first (big steps on big hosts),
    then one fewer and one more."""
    candidates = [threads // 2, threads * 2 if threads else 1, threads - 1, threads + 1]
    seen: list[int] = []
    for t in candidates:
        if 0 <= t <= max_threads and t != threads and t not in seen:
            seen.append(t)
    return seen


def _neighbours_by_knob(config: RunConfig, max_threads: int) -> dict[str, list[RunConfig]]:
    """``config``'s neighbours grouped by the one knob that differs (in :data:`_KNOBS`
    order), each group in trying order."""
    other_precision = next(p for p in PRECISIONS if p != config.precision)
    flags = ([replace(config, flags=f) for f in _FLAG_ORDER if f != config.flags]
             if config.compiled else [])
    threads = ([replace(config, threads=t)
                for t in _thread_neighbours(config.threads, max_threads)]
               if config.device == "cpp_standalone" else [])
    return {"precision": [replace(config, precision=other_precision)], "flags": flags,
            "threads": threads}


def neighbours(config: RunConfig, max_threads: int) -> list[RunConfig]:
    """Configurations one knob away from ``config``, in the order the search tries them:
    the other precision, the other flag presets, then neighbouring thread counts.

    The device and code-generation target stay: the family scan has compared those already.
    """
    return [near for group in _neighbours_by_knob(config, max_threads).values() for near in group]


#: A configuration within this fraction of the best is still climbed from: one knob (precision,
#: flags) moves CUBA's time by up to ~20 %, more than the gap between families seen in noise.
CLIMB_MARGIN = 0.25


def contenders(valid: Mapping[RunConfig, tuple[float, float | None]]) -> list[RunConfig]:
    """Valid configurations worth climbing from, best first: those within
    :data:`CLIMB_MARGIN` of the best predicted time of a target-length run, then those within
    it of the best rate (wall seconds per simulated second, which ranks much longer runs).

    ``valid`` maps each valid configuration to its (objective, rate).
    """
    order: list[RunConfig] = []
    for position in (0, 1):
        scored = {c: v[position] for c, v in valid.items() if v[position] is not None}
        if not scored:
            continue
        best = min(scored.values())
        for config in sorted(scored, key=lambda c: (scored[c], c)):
            if scored[config] <= best * (1 + CLIMB_MARGIN) and config not in order:
                order.append(config)
    return order


def _next_to_climb(valid: Mapping[RunConfig, tuple[float, float | None]],
                   remaining: set[RunConfig], max_threads: int) -> RunConfig | None:
    """The next untried neighbour of a contender: every contender's other precision first,
    then their other flag presets, then their neighbouring thread counts (the knobs in the order
    of the gains measured on CUBA, so a small budget goes where it pays)."""
    grouped = [_neighbours_by_knob(config, max_threads) for config in contenders(valid)]
    for knob in _KNOBS:
        for by_knob in grouped:
            near = next((c for c in by_knob[knob] if c in remaining), None)
            if near is not None:
                return near
    return None


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
        return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT}}
    return {}


def _known_evaluations(study: Any) -> tuple[dict[RunConfig, float | None],
                                            dict[RunConfig, tuple[float, float | None]]]:
    """What the study already finished (for resume and duplicates): every configuration's
    objective (None when it failed) and the (objective, rate) of the valid ones."""
    import optuna

    known: dict[RunConfig, float | None] = {}
    valid: dict[RunConfig, tuple[float, float | None]] = {}
    for frozen in study.get_trials(deepcopy=False):
        if "config" not in frozen.user_attrs:
            continue  # a duplicate answered from an earlier trial, or never evaluated
        config = config_from_params(frozen.params)
        if frozen.state == optuna.trial.TrialState.COMPLETE:
            known[config] = frozen.value
            if float(frozen.user_attrs.get("constraint", 0.0)) <= 0:
                valid[config] = (frozen.value, frozen.user_attrs.get("rate"))
        elif frozen.state == optuna.trial.TrialState.FAIL:
            known.setdefault(config, None)
    return known, valid


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
        first: configurations to try first, in order (the reference, one per family); the
            search then climbs from the best valid one before the sampler proposes.
        budget: when to stop; configurations measured before a resume count too.
        seed: sampler seed.
        clock: monotonic clock (passed in so tests can control time).
        on_progress: called after each newly measured configuration.
        storage_lock: serialises the creation of Optuna's tables with other processes.

    Returns:
        The number of configurations measured in this call.
    """
    study = _open_study(storage_url, name, seed, max(4, len(first)), storage_lock)
    known, valid = _known_evaluations(study)
    queue = [c for c in first if c not in known]
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
        queue = [c for c in queue if c in remaining]
        wanted = queue.pop(0) if queue else _next_to_climb(valid, remaining, max_threads)
        if wanted is not None:
            study.enqueue_trial(params_from_config(wanted))
        trial = study.ask()
        config = suggest_config(trial, max_threads, cython_available, devices, runtime_targets)
        if config in known:
            asks_without_news += 1
            if asks_without_news >= _MAX_REPEATED_ASKS:
                # The sampler has converged on what it knows; make it look elsewhere.
                queue.append(rng.choice(sorted(remaining)))
                asks_without_news = 0
            _tell_known(study, trial, known[config], feasible=config in valid)
            continue
        asks_without_news = 0
        evaluation = evaluate(config)
        _tell(study, trial, evaluation)
        known[config] = evaluation.objective
        if evaluation.objective is not None and evaluation.feasible:
            valid[config] = (evaluation.objective, evaluation.rate)
        remaining.discard(config)
        measured_now += 1
        if on_progress is not None:
            on_progress(len(known), evaluation)
    return measured_now


def _tell_known(study: Any, trial: Any, value: float | None, feasible: bool) -> None:
    """Answer a repeated proposal from the first measurement of that configuration."""
    import optuna

    if value is None:
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return
    _set_constraint(trial, 0.0 if feasible else 1.0)
    study.tell(trial, value)


def _set_constraint(trial: Any, violation: float) -> None:
    trial.set_user_attr("constraint", violation)
    if _HAS_SET_CONSTRAINT():
        trial.set_constraint("validation", violation)


def _tell(study: Any, trial: Any, evaluation: Evaluation) -> None:
    import optuna

    trial.set_user_attr("config", evaluation.config.key)
    if evaluation.rate is not None:
        trial.set_user_attr("rate", evaluation.rate)
    for key, value in evaluation.user_attrs().items():
        trial.set_user_attr(key, value)
    if evaluation.objective is None:
        trial.set_user_attr("failure", evaluation.reason or "failed")
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return
    _set_constraint(trial, 0.0 if evaluation.feasible else 1.0)
    if not evaluation.feasible:
        trial.set_user_attr("infeasible", evaluation.reason or "failed validation")
    study.tell(trial, evaluation.objective)
