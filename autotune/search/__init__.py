"""The Optuna study over the conditional configuration space.

The space (define-by-run): ``device`` ∈ {runtime, cpp_standalone}; runtime → ``target`` ∈
{numpy, cython} (cython → a flag preset); cpp_standalone → ``threads`` ∈ 0..max threads, a flag
preset and ``pgo`` (a profile-guided build, :mod:`autotune.pgo`) ∈ {no, yes}; ``precision`` ∈
{float64, float32} everywhere. Optuna's TPE sampler proposes, with infeasible
(failed-validation) configurations reported through ``constraints_func``.

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
from autotune.search import study as study_side

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
        return standalone_config(int(params["threads"]), precision, params["cpp_flags"],
                                 bool(params.get("cpp_pgo", False)))
    target = params["target"]
    flags = params.get("cython_flags", "default") if target == "cython" else "default"
    return RunConfig("runtime", target, 0, precision, flags)


def params_from_config(config: RunConfig) -> dict[str, Any]:
    """The Optuna parameters that select ``config`` (for ``enqueue_trial``)."""
    params: dict[str, Any] = {"device": config.device, "precision": config.precision}
    if config.device == "cpp_standalone":
        params.update(threads=config.threads, cpp_flags=config.flags, cpp_pgo=config.pgo)
    else:
        params["target"] = config.target
        if config.target == "cython":
            params["cython_flags"] = config.flags
    return params


def suggest_config(trial: Any, max_threads: int, cython_available: bool,
                   devices: Sequence[str] = ("runtime", "cpp_standalone"),
                   runtime_targets: Sequence[str] = ("numpy", "cython"),
                   pgo_choices: Sequence[bool] = (False, True)) -> RunConfig:
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
        params["cpp_pgo"] = trial.suggest_categorical("cpp_pgo", list(pgo_choices))
    params["precision"] = trial.suggest_categorical("precision", list(PRECISIONS))
    return config_from_params(params)


#: The knobs the climb turns, in the order it turns them (the gains measured on CUBA; a
#: profile-guided build gained 1.33x on CUBA's loop on an EPYC host, nothing beyond noise on the
#: development VM, so it comes after the cheaper knobs: it costs two cold builds to measure).
_KNOBS = ("precision", "flags", "pgo", "threads")
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
    pgo = [replace(config, pgo=not config.pgo)] if config.device == "cpp_standalone" else []
    return {"precision": [replace(config, precision=other_precision)], "flags": flags,
            "pgo": pgo, "threads": threads}


def neighbours(config: RunConfig, max_threads: int) -> list[RunConfig]:
    """Configurations one knob away from ``config``, in the order the search tries them:
    the other precision, the other flag presets, the build with(out) a profile, then
    neighbouring thread counts.

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


def study_name(fingerprint: str, workload_signature: str, calibration_id: int) -> str:
    """The study's name: readable in optuna-dashboard, unique per calibration."""
    return f"{STUDY_PREFIX}:{fingerprint}:{workload_signature}:{calibration_id}"


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
    node: str = "",
    heartbeat: int = study_side.HEARTBEAT_SECONDS,
    resume_interrupted: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Run (or resume, or join) the study until the budget is spent or the space is exhausted,
    and no other worker is still measuring.

    Args:
        evaluate: measures a configuration (called once per distinct configuration, over all
            the workers of the study).
        storage_url: SQLAlchemy URL of the Optuna storage.
        name: study name (see :func:`study_name`); an existing study is resumed or joined.
        space: every configuration that may be proposed (to know when all were tried).
        max_threads: largest thread count to propose.
        cython_available: whether to propose the Cython target.
        first: configurations to try first, in order (the reference, one per family); the
            search then climbs from the best valid one before the sampler proposes.
        budget: when to stop; configurations measured before a resume, or by other workers,
            count too.
        seed: sampler seed.
        clock: monotonic clock (passed in so tests can control time).
        on_progress: called after each configuration this worker measured.
        storage_lock: serialises table creation and the choice of each next configuration
            between workers (the store's lock).
        node: this worker's name, recorded on its trials.
        heartbeat: seconds between heartbeats of a running trial.
        resume_interrupted: fail the trials left running first (an explicit resume).
        sleep: waits between looks at other workers' running trials.

    Returns:
        The number of configurations this call measured.
    """
    with study_side.storage_errors(storage_url):
        study = study_side.open_study(storage_url, name, seed, max(4, len(first)),
                                      storage_lock, heartbeat, fail_running=resume_interrupted)
        try:
            return _search_loop(study, evaluate, _Picker(space, first, max_threads,
                                                         cython_available, seed),
                                budget, clock, on_progress, storage_lock, node, heartbeat,
                                sleep)
        finally:
            study_side.close_study(study)


def _search_loop(study: Any, evaluate: Callable[[RunConfig], Evaluation], picker: _Picker,
                 budget: Budget, clock: Callable[[], float],
                 on_progress: Callable[[int, Evaluation], None] | None,
                 storage_lock: Callable[[], AbstractContextManager[Any]], node: str,
                 heartbeat: int, sleep: Callable[[float], None]) -> int:
    start, measured_now = clock(), 0
    while budget.minutes is None or clock() - start < budget.minutes * 60:
        with storage_lock():
            step = picker.next_step(study, budget, node)
        if step == "repeat":
            continue
        if step == "done":
            break
        if step == "wait":  # others are measuring what is left: their results, or a retry
            sleep(max(1.0, heartbeat / 3))
            continue
        trial, config = step  # type: ignore[misc]
        try:
            with study_side.heartbeat(study, trial, heartbeat):
                evaluation = evaluate(config)
        except BaseException:
            study_side.give_up(study, trial)
            raise
        study_side.tell(study, trial, evaluation)
        measured_now += 1
        if on_progress is not None:
            on_progress(len(study_side.read_state(study).known), evaluation)
    return measured_now


def reference_candidates(first: Sequence[RunConfig]) -> list[RunConfig]:
    """The configurations of ``first`` that may be the float64 reference, in order: every other
    configuration is validated against the first of them to succeed."""
    return [c for c in first if c.device == "runtime" and c.precision == "float64"]


class _Picker:
    """Chooses each next configuration from what the study knows (all workers' results)."""

    def __init__(self, space: Sequence[RunConfig], first: Sequence[RunConfig], max_threads: int,
                 cython_available: bool, seed: int) -> None:
        self.space, self.queue = set(space), list(first)
        self.references = reference_candidates(first)
        self.max_threads, self.cython_available = max_threads, cython_available
        self.rng = random.Random(seed)
        self.asks_without_news = 0
        self.devices = sorted({c.device for c in space}, reverse=True)
        self.runtime_targets = sorted({c.target for c in space if c.device == "runtime"})
        self.pgo_choices = sorted({c.pgo for c in space if c.device == "cpp_standalone"})

    def next_step(self, study: Any, budget: Budget, node: str) -> Any:
        """``(trial, config)`` claimed for this worker, or ``"repeat"`` (the sampler proposed
        a known configuration: answered from it), ``"wait"`` (others measure what is left) or
        ``"done"``."""
        study_side.fail_stale(study)
        state = study_side.read_state(study)
        known, valid, claimed, retries = state.known, state.valid, state.claimed, state.waiting
        remaining = self.space - set(known) - set(claimed)
        spent = budget.trials is not None and len(known) + len(claimed) >= budget.trials
        if not retries and (spent or not remaining):
            return "wait" if claimed else "done"
        wanted = self._reference_to_measure(known, remaining)
        if wanted == "wait":
            return "wait"  # another worker measures the reference the others need
        if wanted is None and not retries:
            self.queue = [c for c in self.queue if c in remaining]
            wanted = (self.queue.pop(0) if self.queue
                      else _next_to_climb(valid, remaining, self.max_threads))
        if wanted is not None:
            study.enqueue_trial(params_from_config(wanted))
        trial = study.ask()
        config = suggest_config(trial, self.max_threads, self.cython_available, self.devices,
                                self.runtime_targets, self.pgo_choices or (False,))
        if config in known or config in claimed:
            self._answer_repeat(study, trial, config, known, valid, remaining)
            return "repeat"
        self.asks_without_news = 0
        study_side.claim(study, trial, config, node)
        return trial, config

    def _reference_pending(self, known: dict[RunConfig, float | None]) -> bool:
        return bool(self.references) and all(known.get(r) is None for r in self.references) \
            and any(r not in known for r in self.references)

    def _reference_to_measure(self, known: dict[RunConfig, float | None],
                              remaining: set[RunConfig]) -> Any:
        """The reference configuration to measure now, ``"wait"`` while another worker
        measures it, or None once one reference succeeded (or all failed)."""
        if not self._reference_pending(known):
            return None
        pending = next(r for r in self.references if r not in known)
        return pending if pending in remaining else "wait"

    def _answer_repeat(self, study: Any, trial: Any, config: RunConfig,
                       known: dict[RunConfig, float | None],
                       valid: dict[RunConfig, tuple[float, float | None]],
                       remaining: set[RunConfig]) -> None:
        self.asks_without_news += 1
        if self.asks_without_news >= _MAX_REPEATED_ASKS and remaining:
            # The sampler has converged on what it knows; make it look elsewhere.
            self.queue.append(self.rng.choice(sorted(remaining)))
            self.asks_without_news = 0
        # a configuration another worker is measuring now counts as failed for the sampler
        study_side.tell_known(study, trial, known.get(config), feasible=config in valid)
