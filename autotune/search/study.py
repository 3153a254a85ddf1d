"""The Optuna side of the search: the study in its RDB storage, shared by every worker.

One calibration is one study. Several processes may work on it at once (identical nodes of a
cluster against one PostgreSQL store): each *claims* the configuration it is about to measure
by marking its running trial with it, under the store's lock, so that no configuration is
measured twice; a running trial records a heartbeat (``RDBStorage.record_heartbeat``: Optuna's
own heartbeat runs inside ``optimize``, which this ask-and-tell search does not use), and a
trial whose heartbeat stopped (its node died) is failed and queued again
(``fail_stale_trials`` with the retry callback), to be measured by whichever worker asks next.
"""

from __future__ import annotations

import inspect
import logging
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from typing import Any

from autotune.config import RunConfig
from autotune.records import Evaluation
from autotune.store.location import SQLITE_BUSY_TIMEOUT

logger = logging.getLogger(__name__)

#: Seconds between heartbeats of a running trial; one silent for three of them is stale.
HEARTBEAT_SECONDS = 30
#: How often a stale trial is queued again before it counts as failed.
MAX_RETRIES = 2
#: The failure of a trial its worker gave up when interrupted (measured again on resume).
INTERRUPTED = "interrupted"


def _has_set_constraint() -> bool:
    import optuna

    return hasattr(optuna.trial.Trial, "set_constraint")


def _constraints(frozen: Any) -> Sequence[float]:
    return [float(frozen.user_attrs.get("constraint", 0.0))]


def open_study(storage_url: str, name: str, seed: int, n_startup: int,
               storage_lock: Callable[[], AbstractContextManager[Any]],
               heartbeat: int = HEARTBEAT_SECONDS, fail_running: bool = False) -> Any:
    """Open (or create) the study; ``fail_running`` fails every trial left running (an
    interrupted calibration resumed on purpose: nothing else works on it)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # This search records the heartbeats itself (see the module docstring).
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
    # Heartbeats and their retry callback have been "experimental" since Optuna 2.8/2.9.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # Optuna 5 records constraints on the trial itself; older versions need constraints_func.
    legacy = {} if _has_set_constraint() else {"constraints_func": _constraints}
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=n_startup, **legacy)
    with storage_lock():  # two calibrations may create Optuna's tables at once
        storage = optuna.storages.RDBStorage(storage_url,
                                             engine_kwargs=_engine_kwargs(storage_url),
                                             heartbeat_interval=heartbeat,
                                             grace_period=3 * heartbeat, **_retry_stale())
        study = optuna.create_study(study_name=name, storage=storage, sampler=sampler,
                                    direction="minimize", load_if_exists=True)
    if fail_running:
        for frozen in study.get_trials(deepcopy=False,
                                       states=(optuna.trial.TrialState.RUNNING,)):
            study.tell(frozen.number, state=optuna.trial.TrialState.FAIL)
    return study


def _retry_stale() -> dict[str, Any]:
    """The keyword that queues a stale trial again, in this Optuna's spelling."""
    import optuna

    parameters = inspect.signature(optuna.storages.RDBStorage.__init__).parameters
    if "heartbeat_stale_trial_callback" in parameters:  # Optuna >= 5
        return {"heartbeat_stale_trial_callback":
                optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES)}
    return {"failed_trial_callback":
            optuna.storages.RetryFailedTrialCallback(max_retry=MAX_RETRIES)}


def _engine_kwargs(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT}}
    return {"pool_size": 1, "max_overflow": 1, "pool_pre_ping": True}


@dataclass(frozen=True)
class StudyState:
    """What the study holds now, read in one pass over its trials.

    Attributes:
        known: every finished configuration's objective (None when it failed), for resume,
            duplicates and other workers' results. A trial given up by an interrupted worker, or
            queued again after its node died, is not finished.
        valid: (objective, rate) of the valid finished configurations.
        claimed: configurations workers are measuring now (running, claimed trials), and where.
        waiting: trials queued again after their node died, not yet taken by a worker.
    """

    known: dict[RunConfig, float | None]
    valid: dict[RunConfig, tuple[float, float | None]]
    claimed: dict[RunConfig, str]
    waiting: int


def read_state(study: Any) -> StudyState:
    """The study's :class:`StudyState`."""
    import optuna

    from autotune.search import config_from_params

    trials = study.get_trials(deepcopy=False)
    retried = {n for frozen in trials for n in frozen.system_attrs.get("retry_history", [])}
    state = StudyState({}, {}, {}, 0)
    for frozen in trials:
        if frozen.state == optuna.trial.TrialState.WAITING:
            state = replace(state, waiting=state.waiting + 1)
        if "config" not in frozen.user_attrs:
            continue  # a duplicate answered from an earlier trial, or not yet claimed
        config = config_from_params(frozen.params)
        if frozen.state == optuna.trial.TrialState.RUNNING:
            state.claimed[config] = str(frozen.user_attrs.get("node", "?"))
        elif frozen.state == optuna.trial.TrialState.COMPLETE:
            state.known[config] = frozen.value
            if float(frozen.user_attrs.get("constraint", 0.0)) <= 0:
                state.valid[config] = (frozen.value, frozen.user_attrs.get("rate"))
        elif (frozen.state == optuna.trial.TrialState.FAIL and frozen.number not in retried
              and frozen.user_attrs.get("failure") != INTERRUPTED):
            state.known.setdefault(config, None)
    return state


def fail_stale(study: Any) -> None:
    """Fail the running trials whose heartbeat stopped, queueing them again."""
    import optuna

    optuna.storages.fail_stale_trials(study)


def claim(study: Any, trial: Any, config: RunConfig, node: str) -> None:
    """Mark ``trial`` as this node's measurement of ``config``, with a first heartbeat (a claim
    whose node dies before its heartbeat thread starts must still go stale)."""
    trial.set_user_attr("config", config.key)
    trial.set_user_attr("node", node)
    study._storage.record_heartbeat(trial._trial_id)


def close_study(study: Any) -> None:
    """Close the study's database connections (the calibrating process goes on: a suite
    calibrates its next model, and open connections it no longer uses only hold locks)."""
    engine = getattr(study._storage, "engine", None)
    if engine is not None:
        engine.dispose()


@contextmanager
def heartbeat(study: Any, trial: Any, interval: float = HEARTBEAT_SECONDS) -> Iterator[None]:
    """Record the trial's heartbeat every ``interval`` seconds while the body runs."""
    storage = study._storage  # the study's RDBStorage (public method, no public accessor)
    trial_id = trial._trial_id
    stop = threading.Event()

    def beat() -> None:
        while not stop.is_set():
            try:
                storage.record_heartbeat(trial_id)
            except Exception as e:  # noqa: BLE001 - a missed beat must not stop the measurement
                logger.debug("heartbeat not recorded: %s", e)
            stop.wait(interval)

    thread = threading.Thread(target=beat, name="autotune-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=interval + 5)


def tell_known(study: Any, trial: Any, value: float | None, feasible: bool) -> None:
    """Answer a repeated proposal from the first measurement of that configuration."""
    import optuna

    if value is None:
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return
    _set_constraint(trial, 0.0 if feasible else 1.0)
    study.tell(trial, value)


def give_up(study: Any, trial: Any) -> None:
    """A trial this worker gave up (interrupted, or its store failed): failed, to be measured
    again. Best effort: with the store gone, the heartbeat marks it stale later."""
    import optuna

    try:
        trial.set_user_attr("failure", INTERRUPTED)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    except Exception as e:  # noqa: BLE001 - the original error is the one to report
        logger.debug("could not give the trial up: %s", e)


@contextmanager
def storage_errors(url: str) -> Iterator[None]:
    """Turn a failure of the study's database (a server restarted or gone mid-calibration)
    into one :class:`~autotune.errors.StoreError` line; the completed trials are kept."""
    import optuna

    from autotune.errors import StoreError
    from autotune.store.location import display_url

    try:
        yield
    except StoreError:
        raise
    except Exception as e:
        library = type(e).__module__.split(".")[0]
        if not isinstance(e, optuna.exceptions.StorageInternalError) and library not in (
                "sqlalchemy", "psycopg", "sqlite3"):
            raise
        message = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
        raise StoreError(f"lost the store {display_url(url)} mid-calibration ({message}); the "
                         "completed trials are kept: run the same calibrate again to go on") from e


def _set_constraint(trial: Any, violation: float) -> None:
    trial.set_user_attr("constraint", violation)
    if _has_set_constraint():
        trial.set_constraint("validation", violation)


def tell(study: Any, trial: Any, evaluation: Evaluation) -> None:
    """Record a measured configuration on its trial."""
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
