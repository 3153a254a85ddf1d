"""Whole calibrations with real Brian2, real subprocesses and a real SQLite store."""

from __future__ import annotations

from pathlib import Path

import pytest

from autotune.calibrate import CalibrationSettings, calibrate
from autotune.config import RunConfig, standalone_config
from autotune.errors import BadInput, WorkloadError
from autotune.search import Budget
from autotune.store import open_store

HERE = Path(__file__).parent / "workloads"
FAST = dict(durations=(0.01, 0.03), max_threads=0, targets=("numpy", "cpp"), probe_loop=0.05)


@pytest.mark.slow
def test_validation_rejects_wrong_results_and_crashes_do_not_stop_it(db_url: str,
                                                                     cache_root: Path) -> None:
    outcome = calibrate(str(HERE / "picky.py"), db=db_url, cache_root=cache_root,
                        settings=CalibrationSettings(budget=Budget(trials=8), **FAST))
    profile = outcome.profile
    statuses = {e.config.key: e.status for e in profile.entries}
    assert statuses["numpy-float64"] == "valid"
    assert statuses["numpy-float32"] == "invalid"
    assert "answer" in (profile.entry(RunConfig("runtime", "numpy", 0, "float32")).reason or "")
    assert statuses["cpp_standalone-t0-float64-default"] == "failed"
    assert "SIGSEGV" in (profile.entry(standalone_config(0)).reason or "")
    assert len(statuses) == 8  # the whole restricted space, every crash recorded
    assert profile.best() is not None and profile.best().config == RunConfig("runtime", "numpy")
    with open_store(db_url) as store:
        trials = store.trials(outcome.calibration_id)
        assert sum(t.status == "failed" for t in trials) == 6
        assert store.latest_profile(profile.fingerprint, profile.workload["signature"])


def test_a_workload_that_raises_is_bad_input(db_url: str, cache_root: Path) -> None:
    with pytest.raises(WorkloadError, match="parameters are wrong"):
        calibrate(str(HERE / "raises.py"), db=db_url, cache_root=cache_root,
                  settings=CalibrationSettings(budget=Budget(trials=2), **FAST))


def test_settings_are_validated() -> None:
    with pytest.raises(BadInput, match="target-duration"):
        CalibrationSettings(target_duration=0)
    with pytest.raises(BadInput, match="tolerance"):
        CalibrationSettings(tolerance=-0.1)
    with pytest.raises(BadInput, match="durations must differ"):
        CalibrationSettings(durations=(0.1, 0.1))
    with pytest.raises(BadInput, match="targets"):
        CalibrationSettings(targets=("gpu",))
    with pytest.raises(BadInput, match="confirm-within"):
        CalibrationSettings(confirm_within=-0.1)


@pytest.mark.slow
def test_calibrated_profile_is_stored_with_cost_models(calibrated: dict[str, object]) -> None:
    outcome = calibrated["outcome"]
    profile = outcome.profile  # type: ignore[attr-defined]
    keys = [e.config.key for e in profile.entries]
    assert keys[:3] == ["cython-float64-default", "numpy-float64",
                        "cpp_standalone-t0-float64-default"]
    assert profile.baseline == RunConfig("runtime", "cython")
    best = profile.best()
    assert best is not None and best.cost is not None
    assert best.cost.predict(10) <= profile.entry(profile.baseline).cost.predict(10)
    with open_store(calibrated["url"]) as store:  # type: ignore[arg-type]
        trials = store.trials(outcome.calibration_id)  # type: ignore[attr-defined]
    compiled = [t for t in trials if t.config.compiled]
    assert compiled and all(t.ok for t in trials)
    # One warm-up run per compiled config; the first build in a fresh folder is cold.
    standalone = [t for t in trials if t.config == standalone_config(0)]
    assert standalone[0].cold and not standalone[-1].cold
    assert standalone[-1].phases["compile"] < standalone[0].phases["compile"]
    assert all(t.model["neurons"] == 60 for t in trials)
    # A budget of 3 never reaches the climb's PGO step: the profile says how to measure it.
    assert any("no profile-guided (PGO) build was measured" in n for n in profile.notes)


@pytest.mark.slow
def test_study_trials_carry_config_phases_and_cost(calibrated: dict[str, object]) -> None:
    import optuna

    outcome = calibrated["outcome"]
    url = str(calibrated["url"])
    names = [s.study_name for s in optuna.get_all_study_summaries(storage=url)]
    assert len(names) == 1 and names[0].startswith("brian2-autotune:")
    assert names[0].endswith(f":{outcome.calibration_id}")  # type: ignore[attr-defined]
    study = optuna.load_study(study_name=names[0], storage=url)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 3
    for trial in done:
        assert trial.user_attrs["phases"]["total"] > 0
        assert trial.user_attrs["cost"]["rate"] >= 0
        assert trial.user_attrs["config"] in {e.config.key for e in outcome.profile.entries}  # type: ignore[attr-defined]
