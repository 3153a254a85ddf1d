"""Trustworthy measurements: repeats, ties, confirmation, load, real runs vs. predictions."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from autotune.calibrate import CalibrationSettings, calibrate
from autotune.config import RunConfig, standalone_config
from autotune.confirm import confirm_contenders
from autotune.costmodel import CostModel, estimates, fit_cost_model, relative_spread
from autotune.measure import Measurer, MeasureSettings
from autotune.profile import Profile, ProfileEntry
from autotune.records import TrialResult
from autotune.search import Budget
from autotune.store import open_store
from autotune.workloads import resolve_workload
from tests.conftest import run_cli
from tests.helpers import make_host

HERE = Path(__file__).parent
NUMPY = RunConfig("runtime", "numpy")


def _measurer(cache_root: Path, noise_target: float, max_repeats: int,
              recorded: list[tuple[TrialResult, str]], probe_loop: float | None = None,
              durations: tuple[float, ...] = (0.01, 0.03)) -> Measurer:
    from autotune.host import collect_host

    settings = MeasureSettings(durations, 10.0, 0.05, noise_target, max_repeats, 120.0,
                               probe_loop=probe_loop)
    return Measurer(collect_host(), resolve_workload("cuba", 40), settings, cache_root,
                    lambda r, p: recorded.append((r, p)))


@pytest.mark.slow
def test_adaptive_repeats_stop_at_the_bound_when_noise_never_settles(cache_root: Path) -> None:
    recorded: list[tuple[TrialResult, str]] = []
    results = _measurer(cache_root, 0.0, 2, recorded).measure(NUMPY)
    assert [r.duration for r in results] == [0.01, 0.03, 0.03, 0.03]
    assert len(recorded) == 4 and all(p == "search" for _, p in recorded)


@pytest.mark.slow
def test_a_loop_too_short_to_time_gets_a_longer_rate_probe(cache_root: Path) -> None:
    """Tiny CUBA's numpy loop at 0.03 s lasts milliseconds: one run is made long enough for a
    ~0.3 s loop, its repeats stay there, and the pooled rate is dominated by it. (With a 0.1 s
    probe the two short runs, whose first steps cost ~3x the probe's rate, still moved the
    pooled rate 15 % on a slow moment of CI.)"""
    recorded: list[tuple[TrialResult, str]] = []
    measurer = _measurer(cache_root, 0.0, 1, recorded, probe_loop=0.3)
    results = measurer.measure(NUMPY)
    probe = measurer.repeat_duration(NUMPY)
    assert 0.03 < probe <= 10.0
    assert [r.duration for r in results] == [0.01, 0.03, probe, probe]
    assert all(r.phases["run"] >= 0.02 for r in results[2:])  # long enough to time
    model = fit_cost_model(results, 10.0)
    probe_rates = [r.phases["run"] / r.duration for r in results[2:]]
    # The pooled rate weighs each run by its simulated time: the probes hold most of it. (A
    # bound of 10 % above the slower probe's rate failed beside a full test run, where the
    # short runs' first steps cost more still and moved the rate 11 %.)
    share = sum(r.duration for r in results[2:]) / sum(r.duration for r in results)
    assert share >= 0.75
    assert model.rate >= min(probe_rates) * 0.9


@pytest.mark.slow
def test_no_repeats_for_a_configuration_that_cannot_win(cache_root: Path) -> None:
    """Racing: noise would ask for repeats, but even the fastest estimate loses to the best."""
    recorded: list[tuple[TrialResult, str]] = []
    measurer = _measurer(cache_root, 0.0, 2, recorded)
    measurer.best_objective = 0.001  # a valid configuration predicted at 1 ms
    results = measurer.measure(NUMPY)
    assert [r.duration for r in results] == [0.01, 0.03]
    assert len(recorded) == 2


@pytest.mark.slow
def test_a_loop_timed_well_that_already_loses_skips_the_longer_durations(
        cache_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """numpy's COBA-HH at 1000 neurons ran a 44 s loop for 0.1 s simulated, then 200 s more at
    0.4 s to confirm it was 200 times slower than the best. A loop long enough to time on its
    own (here: any, the threshold lowered for a tiny model) that loses clearly stops there; the
    test above shows a short one does not."""
    from autotune import measure

    monkeypatch.setattr(measure, "LONG_LOOP", 0.0)
    recorded: list[tuple[TrialResult, str]] = []
    measurer = _measurer(cache_root, 0.0, 2, recorded)
    measurer.best_objective = 0.001
    results = measurer.measure(NUMPY)
    assert [r.duration for r in results] == [0.01]
    evaluation = measurer.evaluate(NUMPY)  # one duration still makes a cost model
    assert evaluation.cost is not None and evaluation.cost.rate > 0


@pytest.mark.slow
def test_loops_stalled_alike_at_both_durations_are_measured_again_and_left_out(
        cache_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh calibration's 2-thread trials of Wang & Buzsaki 300 both stalled about 0.4 s
    (loops of 0.417 and 0.424 s at 0.1 and 0.4 s simulated, 0.024 and 0.143 s minutes later),
    and racing kept them: slower than the best even at their fastest. Here the stall is real
    (a sleep inside the loop of the first two runs): the loops did not grow with the simulated
    time, so the configuration is measured again despite losing, and its rate is the
    undisturbed run's."""
    from autotune import measure
    from autotune.host import collect_host

    # On a busy host a trial disturbed by other work is run again, which would use up the
    # workload's stalls on the retry: one attempt per trial keeps their order.
    monkeypatch.setattr(measure, "DISTURBED_ATTEMPTS", 1)
    monkeypatch.setenv("HICCUP_COUNTER", str(tmp_path / "runs"))
    settings = MeasureSettings((0.01, 0.03), 10.0, 0.05, 0.0, 2, 120.0, probe_loop=None)
    recorded: list[tuple[TrialResult, str]] = []
    measurer = Measurer(collect_host(), resolve_workload(str(HERE / "workloads" / "hiccup.py")),
                        settings, cache_root, lambda r, p: recorded.append((r, p)))
    measurer.best_objective = 0.001  # racing alone would stop after the two stalled runs
    results = measurer.measure(NUMPY)
    assert [r.duration for r in results][:3] == [0.01, 0.03, 0.03]
    assert all(r.phases["run"] >= 0.4 for r in results[:2])
    steady = [r for r in results[2:] if r.phases["run"] < 0.2]
    assert steady, [r.phases["run"] for r in results]
    model = fit_cost_model(results, 10.0)
    assert model.rate <= max(r.phases["run"] for r in steady) / 0.03
    assert model.rate < 0.4 / 0.03 / 4  # the stalled loops' pooled rate is about 20 s/s


@pytest.mark.slow
def test_no_repeats_when_the_estimates_agree(cache_root: Path) -> None:
    recorded: list[tuple[TrialResult, str]] = []
    results = _measurer(cache_root, 10.0, 2, recorded).measure(NUMPY)
    assert [r.duration for r in results] == [0.01, 0.03]
    model = fit_cost_model(results, 10.0)
    assert model.samples == 2 and model.durations == 2
    # the model reproduces what it was fit on, within its own stated uncertainty
    for r in results:
        assert abs(model.predict(r.duration) - r.phases["total"]) <= 2 * model.uncertainty(
            r.duration) + model.residual
    assert model.spread == pytest.approx(relative_spread(estimates(results, 10.0)))


def _entry(config: RunConfig, fixed: float, rate: float, peak: int, spread: float = 0.0
           ) -> ProfileEntry:
    return ProfileEntry(config, "valid", CostModel(fixed, rate, 0.0, 3, 2, 0.0, peak, spread))


def _profile(*entries: ProfileEntry) -> Profile:
    host = make_host()
    return Profile(host.fingerprint, dict(host.components), resolve_workload("cuba").to_dict(),
                   10.0, 0.05, entries)


def test_a_statistical_tie_prefers_fewer_threads() -> None:
    two = _entry(standalone_config(2), 3.0, 0.1, 300 * 2**20)  # 4.00 s
    zero = _entry(standalone_config(0), 3.0, 0.105, 250 * 2**20)  # 4.05 s: within 2 % drift
    profile = _profile(two, zero)
    assert [e.config for e in profile.tied()] == [standalone_config(2), standalone_config(0)]
    assert profile.best().config == standalone_config(0)  # type: ignore[union-attr]


def test_a_clear_winner_is_not_a_tie() -> None:
    two = _entry(standalone_config(2), 3.0, 0.05, 300 * 2**20)  # 3.5 s
    zero = _entry(standalone_config(0), 3.0, 0.105, 250 * 2**20)  # 4.05 s
    profile = _profile(two, zero)
    assert profile.tied() == [two]
    assert profile.best() == two


def test_wide_spread_makes_a_tie_and_memory_breaks_it() -> None:
    a = _entry(RunConfig("runtime", "cython"), 3.0, 0.2, 400 * 2**20, spread=0.1)  # 5.0 s
    b = _entry(RunConfig("runtime", "cython", flags="O2"), 3.2, 0.2, 200 * 2**20)  # 5.2 s
    assert _profile(a, b).best() == b


@pytest.mark.slow
def test_confirmation_rounds_are_interleaved_paired_and_set_the_ranking(
        cache_root: Path) -> None:
    """Two real, near-identical configurations (tiny numpy runs in float64 and float32): the
    rounds alternate their order, every contender runs at least the minimum of rounds, and the
    refit predictions at the target length follow the paired gaps exactly. (One search
    duration each: the rounds, not the search, are what is tested.)"""
    recorded: list[tuple[TrialResult, str]] = []
    measurer = _measurer(cache_root, 0.05, 0, recorded, durations=(0.01,))
    f32 = RunConfig("runtime", "numpy", precision="float32")
    evaluations = {c: measurer.evaluate(c) for c in (NUMPY, f32)}
    assert all(e.feasible and e.objective for e in evaluations.values())
    searched = len(recorded)
    before = {c: e.objective for c, e in evaluations.items()}
    outcome = confirm_contenders(measurer, [NUMPY, f32], evaluations, 2, 3)
    confirm = [(r.config, p) for r, p in recorded[searched:]]
    assert all(p == "confirm" for _, p in confirm)
    assert 2 <= outcome.rounds <= 3 and len(confirm) == 2 * outcome.rounds
    assert [c for c, _ in confirm[:4]] == [NUMPY, f32, f32, NUMPY]  # rotated each round
    first, second = outcome.ranking
    gap = outcome.gaps[second]
    assert gap.rounds == outcome.rounds and gap.low <= gap.ratio <= gap.high
    # the gap is the geometric mean of the two configurations' round-by-round ratios
    timed = [estimates([r], 10.0)[0] for r, _ in recorded[searched:]]
    by_round = [dict(zip([c for c, _ in confirm[k:k + 2]], timed[k:k + 2], strict=True))
                for k in range(0, len(confirm), 2)]
    logs = [math.log(r[second] / r[first]) for r in by_round]
    assert gap.ratio == pytest.approx(math.exp(sum(logs) / len(logs)), rel=1e-9)
    # the leader keeps the search's level; the other sits at its paired gap from it
    assert evaluations[first].objective == pytest.approx(before[first])
    assert evaluations[second].objective == pytest.approx(
        before[first] * gap.ratio, rel=1e-9)  # type: ignore[operator]
    refit = evaluations[first].cost
    assert refit is not None
    assert refit.predict(10.0) == pytest.approx(evaluations[first].objective)


@pytest.mark.slow
def test_a_calibration_records_its_confirmation(db_url: str, cache_root: Path) -> None:
    """numpy in float64 and float32 on tiny CUBA, for 50 ms runs, both confirmed (anything
    within 10x of the best is, so a busy host's noise cannot leave one out): every confirmation
    trial is stored and the profile ranks them as the paired rounds did. (On PostgreSQL the
    fleet test checks the same, on a calibration two nodes share.)"""
    settings = CalibrationSettings(durations=(0.01, 0.03), target_duration=0.05,
                                   targets=("numpy",), max_threads=0,
                                   budget=Budget(trials=2), max_repeats=0, probe_loop=None,
                                   confirm_top=2, confirm_within=9.0, confirm_rounds=2,
                                   confirm_max_rounds=2)
    outcome = calibrate("cuba", size=40, db=db_url, cache_root=cache_root, settings=settings)
    profile = outcome.profile
    record = profile.confirmation
    with open_store(db_url) as store:
        confirm = store.trials(outcome.calibration_id, purpose="confirm")
    assert len(profile.confirmed) == 2 and record["rounds"] == 2 and record["within"] == 9.0
    assert len(confirm) == 4 and {r.config.key for r in confirm} == set(profile.confirmed)
    assert profile.confirmed[0] == profile.ranked()[0].config.key
    assert set(record["gaps"]) == {profile.confirmed[1]}
    stored = Profile.from_dict(json.loads(json.dumps(profile.to_dict())))
    assert stored.confirmation == record and stored.confirmed == profile.confirmed


@pytest.mark.slow
def test_a_trial_disturbed_by_other_processes_is_measured_again(cache_root: Path) -> None:
    """A short test run beside a calibration made CUBA 4000's 2-thread loop 16 times its
    single-thread one, and the load sampled before the configuration was quiet. Processes
    that keep the CPUs busy during a trial make it run again; the measurement keeps one
    result, and the load it saw."""
    from autotune.host import collect_host
    from autotune.measure import DISTURBED_ATTEMPTS

    recorded: list[tuple[TrialResult, str]] = []
    settings = MeasureSettings((0.01,), 10.0, 0.05, 1.0, 0, 120.0, probe_loop=None)
    host = collect_host()
    measurer = Measurer(host, resolve_workload("cuba", 30), settings, cache_root,
                        lambda r, p: recorded.append((r, p)))
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
               for _ in range(host.usable_cpus)]
    try:
        results = measurer.measure(NUMPY)
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
    assert len(results) == len(recorded) == 1 and results[0].ok
    disturbed = [load for load in measurer.loads if "during" in load]
    assert len(disturbed) == DISTURBED_ATTEMPTS
    assert all(load["busy"] and load["other_cpu"] > 0.5 for load in disturbed)



@pytest.mark.slow
def test_a_disturbed_cold_build_is_kept_not_replaced_by_a_warm_one(tmp_path: Path) -> None:
    """Measured again, a cold trial's second attempt finds its folder built: a warm trial
    would stand in for the cold build (two test runs side by side made the calibration
    fixture's first standalone trial warm). A disturbed cold trial is kept, its load noted."""
    from autotune.host import collect_host

    recorded: list[tuple[TrialResult, str]] = []
    settings = MeasureSettings((0.01,), 10.0, 0.05, 1.0, 0, 600.0, probe_loop=None)
    host = collect_host()
    measurer = Measurer(host, resolve_workload("cuba", 30), settings, tmp_path / "cache",
                        lambda r, p: recorded.append((r, p)))
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
               for _ in range(host.usable_cpus)]
    try:
        results = measurer.measure(standalone_config(0))
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
    assert len(results) == len(recorded) == 1 and results[0].ok and results[0].cold
    disturbed = [load for load in measurer.loads if "during" in load]
    assert len(disturbed) == 1 and disturbed[0]["busy"]

@pytest.mark.slow
def test_a_loaded_host_is_reported_as_busy(db_url: str, cache_root: Path) -> None:
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        outcome = calibrate("cuba", size=30, db=db_url, cache_root=cache_root,
                            settings=CalibrationSettings(durations=(0.01, 0.02),
                                                         targets=("numpy",), max_repeats=0,
                                                         budget=Budget(trials=1),
                                                         confirm_top=0, probe_loop=None))
    finally:
        burner.kill()
        burner.wait()
    assert outcome.profile.busy
    assert any("busy" in note for note in outcome.profile.notes)
    shown = run_cli("show", "--db", db_url)
    assert "MEASURED UNDER LOAD" in shown.stdout
    document = json.loads(run_cli("show", "--json", "--db", db_url).stdout)
    assert document["profiles"][0]["busy"] is True


@pytest.mark.slow
def test_real_runs_are_recorded_against_predictions_and_shown(calibrated: dict[str, object],
                                                               tmp_path: Path) -> None:
    url = str(calibrated["url"])
    script = tmp_path / "model.py"
    script.write_text("from brian2 import *\n"
                      "G = NeuronGroup(30, 'dv/dt = (1.2 - v)/(10*ms) : 1', threshold='v>1',"
                      " reset='v=0', method='exact')\nrun(50*ms)\n")
    for _ in range(2):
        result = run_cli("run", "--db", url, str(script))
        assert result.returncode == 0, result.stderr
        assert "predicted" in result.stderr and "took" in result.stderr
    with open_store(url) as store:
        runs = store.runs()
    assert len(runs) >= 2
    last = runs[-1]
    assert last.simulated == pytest.approx(0.05)
    assert last.predicted_total and last.actual_total and last.actual_loop is not None
    assert last.script == str(script.resolve())
    summary = json.loads(run_cli("show", "--json", "--db", url).stdout)["profiles"][0]
    assert summary["predictions"]["runs"] >= 2
    assert summary["predictions"]["median_abs_error"] is not None


def test_a_noisy_slower_configuration_does_not_win_a_tie_on_a_few_mebibytes() -> None:
    """Seen in the benchmark: a noisy float64 model tied with the fastest float32 one at 100 s
    (its own ±2.5 s uncertainty), then won on 2 MiB less memory and cost 20 %."""
    fast = _entry(standalone_config(0, "float32", "O3-unroll"), 3.57, 0.048, 184 * 2**20,
                  spread=0.07)
    noisy = ProfileEntry(standalone_config(0), "valid",
                         CostModel(3.81, 0.066, 0.63, 4, 2, 0.0, 182 * 2**20, 0.157))
    profile = _profile(fast, noisy)
    assert {e.config for e in profile.tied(100)} == {fast.config, noisy.config}
    assert profile.best(100) == fast


def test_a_wide_tie_does_not_trade_much_speed_for_memory() -> None:
    """Seen on a drifting host: spreads of ±17 % tied Cython (6.5 s) with standalone (5.1 s),
    and Cython's 11 % less memory chose it. Cheaper ties must be within 5 % of the fastest."""
    standalone = ProfileEntry(standalone_config(0, "float32"), "valid",
                              CostModel(4.18, 0.087, 0.6, 4, 2, 0.0, 185 * 2**20, 0.166))
    cython = _entry(RunConfig("runtime", "cython"), 4.12, 0.237, 160 * 2**20, spread=0.037)
    profile = _profile(standalone, cython)
    assert cython in profile.tied(10)
    assert profile.best(10) == standalone
