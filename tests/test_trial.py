"""Trials in real child processes: measurements, and every way a trial can fail."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from autotune.config import RunConfig
from autotune.records import TrialSpec
from autotune.trial import run_trial
from autotune.workloads import resolve_workload

HERE = Path(__file__).parent / "workloads"
NUMPY = RunConfig("runtime", "numpy")


def _spec(workload: str, duration: float = 0.02, size: int | None = None) -> TrialSpec:
    return TrialSpec(resolve_workload(workload, size), NUMPY, duration)


@pytest.mark.slow
def test_a_numpy_trial_reports_phases_observables_and_model_size() -> None:
    result = run_trial(_spec("cuba", 0.05, size=60), timeout=120)
    assert result.ok, result.error
    for phase in ("startup", "import", "build", "run", "total"):
        assert result.phases[phase] >= 0
    assert result.phases["total"] > result.phases["run"]
    assert result.observables["spikes"] > 0
    assert result.model["neurons"] == 60
    assert result.model["synapses"] > 0
    assert result.model["spikes_per_second"] == pytest.approx(result.observables["spikes"] / 0.05)
    assert result.peak_rss is not None and result.peak_rss > 50 * 2**20


@pytest.mark.slow
def test_the_synfire_chain_carries_its_volley_down_the_chain_over_its_noise() -> None:
    quiet = run_trial(_spec("synfire", 0.04, size=300), timeout=120)  # before the volley
    wave = run_trial(_spec("synfire", 0.08, size=300), timeout=120)
    assert quiet.ok and wave.ok, (quiet.error, wave.error)
    assert quiet.model["neurons"] == 300 + 85
    # before the volley (50 ms) noise alone fires a few; by 80 ms the wave has gone through
    # the three groups, nearly every neuron firing
    assert 0 < quiet.observables["spikes"] < 100
    assert wave.observables["spikes"] - quiet.observables["spikes"] >= 250


def test_a_workload_file_runs_in_the_child() -> None:
    result = run_trial(_spec(str(HERE / "tiny_ok.py")), timeout=120)
    assert result.ok, result.error
    assert result.model["neurons"] == 20
    assert set(result.observables) == {"spikes", "rate"}


def test_a_segfaulting_trial_is_recorded_as_failed() -> None:
    result = run_trial(_spec(str(HERE / "segfault.py")), timeout=120)
    assert result.status == "failed"
    assert result.exit_code is not None and result.exit_code < 0
    assert "SIGSEGV" in (result.error or "")


def test_a_hanging_trial_is_killed_at_its_timeout() -> None:
    started = time.monotonic()
    result = run_trial(_spec(str(HERE / "hangs.py")), timeout=4)
    assert result.status == "timeout"
    assert "timed out after 4 s" in (result.error or "")
    assert time.monotonic() - started < 30


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_sharing_memory_is_not_counted_twice() -> None:
    result = run_trial(_spec(str(HERE / "forks.py")), timeout=120)
    assert result.ok, result.error
    held = 256 * 2**20  # counted twice, the tree would read about 2 x (held + Python)
    assert result.peak_rss is not None and held < result.peak_rss < 2 * held


def test_a_trial_over_its_memory_cap_is_killed() -> None:
    result = run_trial(_spec(str(HERE / "hog.py")), timeout=120, memory_limit=400 * 2**20)
    assert result.status == "memory"
    assert "memory cap" in (result.error or "")


@pytest.mark.parametrize("name, message", [
    ("raises.py", "the model's parameters are wrong"),
    ("not_mapping.py", "must return a mapping"),
])
def test_workload_errors_are_told_apart_from_crashes(name: str, message: str) -> None:
    result = run_trial(_spec(str(HERE / name)), timeout=120)
    assert result.status == "workload_error"
    assert message in (result.error or "")


def test_no_process_and_no_file_outlives_a_killed_trial(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Brian2 leaves its debug log and script copy in the temporary folder when killed: they
    must go with the trial's own folder, not stay in the user's."""
    users_tmp, trials_tmp = tmp_path / "users", tmp_path / "trials"
    users_tmp.mkdir()
    trials_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(users_tmp))
    monkeypatch.setattr(tempfile, "tempdir", str(trials_tmp))
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    result = run_trial(_spec(str(HERE / "hangs.py")), timeout=3)
    after = {p.pid for p in psutil.Process().children(recursive=True)}
    assert result.status == "timeout"
    assert after <= before
    assert list(users_tmp.iterdir()) == [] and list(trials_tmp.iterdir()) == []


def test_the_interneuron_network_fires_under_its_inhibition() -> None:
    result = run_trial(_spec("wang-buzsaki", 0.05, size=20), timeout=120)
    assert result.ok, result.error
    assert result.model["neurons"] == 20
    # driven above rheobase, every neuron fires within 50 ms; inhibition keeps it below 200 Hz
    assert 20 <= result.observables["spikes"] < 20 * 200 * 0.05


def test_the_coba_network_fires_under_its_conductances() -> None:
    """COBA, the suite's second model whose loop is mostly synaptic events: its current
    drives every neuron above threshold, its inhibitory conductances hold the rate down."""
    result = run_trial(_spec("coba", 0.05, size=100), timeout=120)
    assert result.ok, result.error
    assert result.model["neurons"] == 100
    assert 60 * 100 <= result.model["synapses"] <= 100 * 100  # ~80 inputs per neuron
    # its current alone fires each neuron within 14 ms of its start (reset -60 mV, threshold
    # -50 mV, resting at -40 mV with tau 20 ms) and every 19 ms after (5 ms refractory): at
    # least twice in 50 ms; the inhibition brings it below that
    assert 0 < result.observables["spikes"] < 100 * 2
