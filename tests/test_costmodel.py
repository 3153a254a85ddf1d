"""Cost models fit from measured trials."""

from __future__ import annotations

from dataclasses import replace

import pytest

from autotune.config import RunConfig, standalone_config
from autotune.costmodel import CostModel, estimates, fit_cost_model, loops_disagree
from tests.helpers import make_result

NUMPY = RunConfig("runtime", "numpy")


def test_fit_recovers_fixed_and_rate() -> None:
    # total = 2 + 3 * duration exactly; loop = 3 * duration
    trials = [make_result(NUMPY, d, 2 + 3 * d, 3 * d) for d in (0.1, 0.4)]
    model = fit_cost_model(trials)
    assert model.fixed == pytest.approx(2.0)
    assert model.rate == pytest.approx(3.0)
    assert model.residual == pytest.approx(0.0, abs=1e-9)
    assert model.predict(10) == pytest.approx(32.0)
    assert model.durations == 2


def test_cold_builds_are_kept_apart() -> None:
    config = standalone_config(0)
    trials = [make_result(config, 0.1, 12.0, 0.01, cold=True, compile=9.0),
              make_result(config, 0.1, 3.0, 0.01, compile=0.01),
              make_result(config, 0.4, 3.04, 0.04, compile=0.01)]
    model = fit_cost_model(trials)
    assert model.fixed == pytest.approx(2.99, abs=0.01)
    assert model.cold_extra == pytest.approx(9.0, abs=0.05)


def test_a_recompiled_main_does_not_count_as_fixed_cost() -> None:
    config = standalone_config(0)
    # The second duration recompiled main.cpp (2 s of make): a repeated run would not.
    trials = [make_result(config, 0.1, 3.0, 0.01, compile=0.01),
              make_result(config, 0.4, 5.04, 0.04, compile=2.01)]
    model = fit_cost_model(trials)
    assert model.predict(0.4) == pytest.approx(3.03, abs=0.01)


def _two_threads(*trials: tuple[float, float, bool]) -> list:
    """Wang & Buzsaki 300's 2-thread trials: (simulated s, loop s, cold), 3.2 s outside the
    loop, a cold one with its 11 s build timed apart."""
    return [make_result(standalone_config(2), duration, 3.2 + loop + (11.0 if cold else 0.0),
                        loop, cold=cold, compile=11.0 if cold else 0.01)
            for duration, loop, cold in trials]


def test_loops_stalled_alike_disagree_and_a_steady_rerun_sets_the_rate() -> None:
    """Both trials of a fresh calibration stalled about 0.4 s: their loops did not grow with
    the simulated time. Measured again, the steady loop decides the rate; the stalled ones,
    longer than a loop at their duration or a longer one, are left out."""
    stalled = _two_threads((0.1, 0.417, True), (0.4, 0.424, False))
    assert loops_disagree(stalled)
    steady = stalled + _two_threads((0.4, 0.143, False))
    assert not loops_disagree(steady)
    model = fit_cost_model(steady)
    assert model.rate == pytest.approx(0.143 / 0.4)  # pooled over all three: 1.09 s/s
    assert model.fixed == pytest.approx(3.2, abs=0.02)
    assert model.spread == 0.0 and model.residual == pytest.approx(0.0, abs=0.02)
    assert estimates(steady, 10.0) == [pytest.approx(3.2 + 10 * 0.143 / 0.4, abs=0.02)]


def test_loops_that_agree_within_jitter_are_all_kept() -> None:
    """Normal runs of the same builds: loops a few per cent apart, a short one too short to
    time on its own, none left out."""
    trials = _two_threads((0.1, 0.024, True), (0.4, 0.143, False), (0.4, 0.150, False))
    assert not loops_disagree(trials)
    model = fit_cost_model(trials)
    assert model.rate == pytest.approx((0.024 + 0.143 + 0.150) / 0.9)
    assert len(estimates(trials, 10.0)) == 3


@pytest.mark.parametrize(("short", "long", "disagree"), [
    (0.30, 1.20, False),  # proportional
    (0.30, 0.80, False),  # a per-run part inside the loop: grew 2.7x for 4x simulated
    (0.30, 0.50, True),   # grew 1.7x for 4x: one of them stalled
    (0.30, 2.60, True),   # grew 8.7x for 4x
    (0.10, 0.11, False),  # too short to time at 0.1 s: nothing to tell
])
def test_loops_disagree_when_they_do_not_grow_with_the_simulated_time(
        short: float, long: float, disagree: bool) -> None:
    trials = [make_result(NUMPY, 0.1, 2.0 + short, short),
              make_result(NUMPY, 0.4, 2.0 + long, long)]
    assert loops_disagree(trials) is disagree


def test_failed_trials_are_ignored_and_no_warm_trial_is_an_error() -> None:
    with pytest.raises(ValueError, match="no successful warm trial"):
        fit_cost_model([make_result(NUMPY, 0.1, 2.0, 0.3, status="failed")])


def test_interval_contains_prediction_and_round_trip() -> None:
    model = CostModel(2.0, 0.5, residual=0.2, samples=3, durations=2)
    low, high = model.interval(10)
    assert low < model.predict(10) < high
    assert CostModel.from_dict(model.to_dict()) == model
    with pytest.raises(ValueError, match="finite number"):
        CostModel.from_dict({"fixed": -1, "rate": 0})


def test_a_cold_standalone_run_counts_once_its_compilation_is_taken_out() -> None:
    config = standalone_config(0)
    # Cold at 0.1 s (9 s of make), then warm at 0.4 s recompiling main.cpp (2 s of make).
    trials = [make_result(config, 0.1, 12.01, 0.01, cold=True, compile=9.0),
              make_result(config, 0.4, 5.04, 0.04, compile=2.0)]
    model = fit_cost_model(trials)
    assert (model.samples, model.durations) == (2, 2)
    assert model.fixed == pytest.approx(3.0, abs=0.01)
    assert model.rate == pytest.approx(0.1)
    assert model.cold_extra == pytest.approx(9.0, abs=0.01)


def test_a_cold_cython_build_is_not_a_timing() -> None:
    config = RunConfig("runtime", "cython")
    # Cython compiles inside the run: the cold trial's 30 s say nothing about a repeat.
    trials = [make_result(config, 0.1, 33.0, 0.1, cold=True),
              make_result(config, 0.1, 3.1, 0.1), make_result(config, 0.4, 3.4, 0.4)]
    model = fit_cost_model(trials)
    assert model.samples == 2
    assert model.predict(0.4) == pytest.approx(3.4, abs=0.01)
    assert model.cold_extra == pytest.approx(33.0 - 0.1 - 3.0, abs=0.01)


def test_peak_memory_leaves_the_compiler_out() -> None:
    config = standalone_config(0)
    cold = replace(make_result(config, 0.1, 12.0, 0.01, cold=True, compile=9.0),
                   peak_rss=400 * 2**20)
    # main.cpp recompiled for a new duration
    recompiled = replace(make_result(config, 0.4, 5.0, 0.04, compile=2.0), peak_rss=300 * 2**20)
    repeated = replace(make_result(config, 0.4, 3.0, 0.04, compile=0.003), peak_rss=180 * 2**20)
    assert fit_cost_model([cold, recompiled, repeated]).peak_rss == 180 * 2**20
    # every trial compiled: the run's own peak is unknown
    assert fit_cost_model([cold, recompiled]).peak_rss is None


def test_a_family_shares_its_fixed_part_within_a_narrow_band() -> None:
    """The case measured on the development VM: 2-thread standalone fits came out 1.3 s above
    the others' 3.5 s (noise between measurements minutes apart), which chose the wrong
    configuration for 1 s runs."""
    from autotune.config import RunConfig, standalone_config
    from autotune.costmodel import SHARED_FIXED_BAND, shared_fixed, within_shared_fixed

    costs = {standalone_config(0): CostModel(3.5, 1.6), standalone_config(0, "float32"):
             CostModel(3.4, 1.55), standalone_config(2): CostModel(4.8, 0.8),
             RunConfig("runtime", "numpy"): CostModel(1.2, 9.0)}
    shared = shared_fixed(costs, lambda c: c.set_up_family)
    assert shared == {("cpp_standalone", "cpp"): 3.5, ("runtime", "numpy"): 1.2}
    pooled = {c: within_shared_fixed(m, shared[c.set_up_family]) for c, m in costs.items()}
    two, none = pooled[standalone_config(2)], pooled[standalone_config(0)]
    assert two.fixed == pytest.approx(3.5 * (1 + SHARED_FIXED_BAND)) and two.rate == 0.8
    assert none.fixed == 3.5 and pooled[RunConfig("runtime", "numpy")].fixed == 1.2
    assert two.predict(1.0) < none.predict(1.0)  # the loop decides, as it should
    assert costs[standalone_config(2)].predict(1.0) > costs[standalone_config(0)].predict(1.0)


def test_a_confirmed_level_moves_the_rate_once_the_fixed_part_is_at_its_band() -> None:
    from autotune.costmodel import SHARED_FIXED_BAND, at_level

    cost = CostModel(3.5, 0.5)
    small = at_level(cost, 8.6, 10.0, shared=3.5)  # 0.1 s more: within the band
    assert small.fixed == pytest.approx(3.6) and small.rate == 0.5
    large = at_level(cost, 10.0, 10.0, shared=3.5)  # 1.5 s more: the loop must be slower
    assert large.fixed == pytest.approx(3.5 * (1 + SHARED_FIXED_BAND))
    assert large.predict(10.0) == pytest.approx(10.0) and large.rate > 0.5
    assert at_level(cost, 10.0, 10.0, shared=None).fixed == pytest.approx(5.0)
