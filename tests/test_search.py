"""The Optuna search: order, budget, duplicates, constraints and resume (real Optuna, SQLite)."""

from __future__ import annotations

import optuna
import pytest

from autotune.config import RunConfig, all_configs, standalone_config
from autotune.errors import BadInput
from autotune.search import Budget, Evaluation, run_search

REFERENCE = RunConfig("runtime", "cython")


def _cost(config: RunConfig) -> float:
    """A made-up but deterministic landscape: standalone with 1 thread is best."""
    base = {"numpy": 10.0, "cython": 6.0, "cpp": 4.0}[config.target]
    return base + abs(config.threads - 1) * 0.5 + (0.1 if config.precision == "float32" else 0)


class Recorder:
    def __init__(self, infeasible: set[RunConfig] = frozenset()) -> None:  # type: ignore[assignment]
        self.calls: list[RunConfig] = []
        self.infeasible = infeasible

    def __call__(self, config: RunConfig) -> Evaluation:
        self.calls.append(config)
        if config.flags == "O2" and config.target == "cython":
            return Evaluation(config, None, reason="failed: compile error")
        return Evaluation(config, _cost(config), feasible=config not in self.infeasible,
                          reason="differs" if config in self.infeasible else None)


def _search(url: str, recorder: Recorder, budget: Budget, name: str = "s") -> int:
    return run_search(recorder, storage_url=url, name=name, space=all_configs(2), max_threads=2,
                      cython_available=True, first=[REFERENCE, standalone_config(0)],
                      budget=budget, seed=1)


def test_reference_first_then_budget_respected_without_duplicates(db_url: str) -> None:
    recorder = Recorder()
    measured = _search(db_url, recorder, Budget(trials=8))
    assert recorder.calls[:2] == [REFERENCE, standalone_config(0)]
    assert measured == 8 == len(recorder.calls) == len(set(recorder.calls))


def test_the_whole_space_is_covered_then_the_search_stops(db_url: str) -> None:
    recorder = Recorder()
    measured = _search(db_url, recorder, Budget(trials=1000))
    assert set(recorder.calls) == set(all_configs(2))
    assert measured == len(all_configs(2))


def test_infeasible_and_failed_configs_are_recorded_in_the_study(db_url: str) -> None:
    bad = standalone_config(0)
    _search(db_url, Recorder({bad}), Budget(trials=6))
    study = optuna.load_study(study_name="s", storage=db_url)
    by_config = {t.user_attrs.get("config"): t for t in study.trials if "config" in t.user_attrs}
    assert by_config[bad.key].user_attrs["infeasible"] == "differs"
    assert by_config[bad.key].user_attrs["constraint"] == 1.0


def test_resume_continues_without_measuring_again(db_url: str) -> None:
    first = Recorder()
    _search(db_url, first, Budget(trials=5))
    second = Recorder()
    _search(db_url, second, Budget(trials=9))
    assert len(second.calls) == 4
    assert not set(first.calls) & set(second.calls)


def test_minutes_budget_uses_the_clock_passed_in(db_url: str) -> None:
    ticks = iter(range(0, 10_000, 30))  # every clock reading advances 30 s
    recorder = Recorder()
    run_search(recorder, storage_url=db_url, name="timed", space=all_configs(2), max_threads=2,
               cython_available=True, first=[REFERENCE], budget=Budget(trials=None, minutes=1),
               seed=0, clock=lambda: float(next(ticks)))
    assert 1 <= len(recorder.calls) <= 2


@pytest.mark.parametrize("kwargs", [{"trials": 0}, {"trials": None, "minutes": None},
                                    {"minutes": -1.0}])
def test_bad_budgets_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(BadInput):
        Budget(**kwargs)  # type: ignore[arg-type]


def test_the_study_reads_well_in_optuna_dashboard(db_url: str) -> None:
    """optuna-dashboard lists studies by name and shows params and user attrs per trial."""
    recorder = Recorder({standalone_config(0)})
    name = "brian2-autotune:abcdef0123456789:0123456789abcdef:1"
    run_search(recorder, storage_url=db_url, name=name, space=all_configs(1), max_threads=1,
               cython_available=True, first=[REFERENCE, standalone_config(0)],
               budget=Budget(trials=4), seed=0)
    summaries = optuna.get_all_study_summaries(storage=db_url)
    assert [s.study_name for s in summaries] == [name]
    study = optuna.load_study(study_name=name, storage=db_url)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert complete and all(t.user_attrs["config"] for t in complete)
    first = complete[0]
    assert first.params == {"device": "runtime", "target": "cython", "cython_flags": "default",
                            "precision": "float64"}
    assert first.value == pytest.approx(_cost(REFERENCE))
    infeasible = next(t for t in complete if t.user_attrs["config"] == standalone_config(0).key)
    assert infeasible.user_attrs["infeasible"] == "differs"
