"""The Optuna search: order, budget, duplicates, constraints and resume (real Optuna, SQLite)."""

from __future__ import annotations

import optuna
import pytest

from autotune.config import RunConfig, all_configs, standalone_config
from autotune.errors import BadInput
from autotune.records import Evaluation
from autotune.search import Budget, neighbours, run_search

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


@pytest.mark.slow
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


# Cost models (fixed s, s per simulated s) of CUBA 4000 on a 2-CPU host from an exhaustive
# calibration (benchmarks/alternatives.py), noise included: the family scan ranks Cython (6.0 s
# at 10 s) ahead of standalone (6.2 s), yet float32 with -funroll-loops without OpenMP is best
# (4.2 s), a corner a random 8-trial search often missed.
MEASURED = {
    "numpy-float32": (3.36, 1.071), "numpy-float64": (3.61, 0.94),
    "cython-float32-O2": (3.67, 0.243), "cython-float32-O3-unroll": (3.72, 0.243),
    "cython-float32-default": (4.19, 0.237), "cython-float64-O2": (4.66, 0.369),
    "cython-float64-O3-unroll": (3.92, 0.218), "cython-float64-default": (3.89, 0.215),
    "cpp_standalone-t0-float32-O2": (4.24, 0.133),
    "cpp_standalone-t0-float32-O3-unroll": (3.65, 0.053),
    "cpp_standalone-t0-float32-default": (3.85, 0.053),
    "cpp_standalone-t0-float64-O2": (3.38, 0.102),
    "cpp_standalone-t0-float64-O3-unroll": (3.91, 0.075),
    "cpp_standalone-t0-float64-default": (5.1, 0.105),
    "cpp_standalone-t1-float32-O2": (3.45, 0.124),
    "cpp_standalone-t1-float32-O3-unroll": (3.89, 0.083),
    "cpp_standalone-t1-float32-default": (3.89, 0.08),
    "cpp_standalone-t1-float64-O2": (3.99, 0.128),
    "cpp_standalone-t1-float64-O3-unroll": (4.01, 0.092),
    "cpp_standalone-t1-float64-default": (3.41, 0.086),
    "cpp_standalone-t2-float32-O2": (3.73, 0.228),
    "cpp_standalone-t2-float32-O3-unroll": (3.73, 0.149),
    "cpp_standalone-t2-float32-default": (3.64, 0.113),
    "cpp_standalone-t2-float64-O2": (3.63, 0.214),
    "cpp_standalone-t2-float64-O3-unroll": (4.31, 0.167),
    "cpp_standalone-t2-float64-default": (4.88, 0.185),
}


def test_neighbours_change_one_knob_and_stay_in_the_family() -> None:
    config = standalone_config(4, "float64", "default")
    around = neighbours(config, max_threads=8)
    assert around[0] == standalone_config(4, "float32", "default")
    assert around[1:3] == [standalone_config(4, "float64", "O3-unroll"),
                           standalone_config(4, "float64", "O2")]
    assert around[3] == standalone_config(4, "float64", "default", pgo=True)
    assert [c.threads for c in around[4:]] == [2, 8, 3, 5]
    assert not any(c.pgo for c in around[4:])
    assert neighbours(RunConfig("runtime", "numpy"), 8) == [
        RunConfig("runtime", "numpy", precision="float32")]
    assert [c.threads for c in neighbours(standalone_config(0), 2)[4:]] == [1]
    assert standalone_config(0) in neighbours(standalone_config(0, pgo=True), 2)
    assert all(c.device == config.device for c in around)


@pytest.mark.parametrize("seed", range(4))
def test_the_climb_finds_the_best_corner_within_the_default_budget(db_url: str, seed: int
                                                                   ) -> None:
    calls: list[RunConfig] = []

    def evaluate(config: RunConfig) -> Evaluation:
        calls.append(config)
        fixed, rate = MEASURED[config.key]
        return Evaluation(config, fixed + 10 * rate, rate=rate)

    first = [REFERENCE, RunConfig("runtime", "numpy"), standalone_config(0), standalone_config(2)]
    run_search(evaluate, storage_url=db_url, name=f"climb{seed}", space=all_configs(2),
               max_threads=2, cython_available=True, first=first, budget=Budget(), seed=seed)
    assert calls[:4] == first and len(calls) == 8
    best = standalone_config(0, "float32", "O3-unroll")
    assert best in calls
    # the climb reached it from the runner-up family, not by the sampler's luck
    assert calls.index(best) < 7


def test_the_climb_never_starts_from_an_invalid_configuration(db_url: str) -> None:
    fast_but_wrong = standalone_config(0)
    recorder = Recorder({fast_but_wrong})
    run_search(recorder, storage_url=db_url, name="s", space=all_configs(2), max_threads=2,
               cython_available=True, first=[REFERENCE, fast_but_wrong], budget=Budget(trials=4),
               seed=0)
    # The reference is the best valid configuration, so its neighbours come next.
    assert recorder.calls[2:4] == neighbours(REFERENCE, 2)[:2]
