"""Profile-guided builds: the phases of a build folder, their validity, and their measurement.

Real Brian2 standalone builds of tiny models (marked slow: each phase change is a full build).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from autotune import pgo
from autotune.calibrate import unmeasured_pgo_note
from autotune.config import RunConfig, all_configs, standalone_config
from autotune.costmodel import fit_cost_model
from autotune.errors import ConfigError
from autotune.learned import learn
from autotune.measure import Measurer, MeasureSettings
from autotune.records import TRAINING_PHASE, TrialResult
from autotune.runrecord import RunRecord
from autotune.workloads import resolve_workload
from tests.test_run_scripts import SWEEP

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = """
import json, sys
from dataclasses import replace
from pathlib import Path
from brian2 import NeuronGroup, SpikeMonitor, Synapses, device, ms, run, second, seed
from autotune.brianprefs import configure_brian2
from autotune.config import standalone_config

size, duration, folder = int(sys.argv[1]), float(sys.argv[2]), Path(sys.argv[3])
guided = configure_brian2(standalone_config(int(sys.argv[4]), pgo=True), folder)
seed(7)
group = NeuronGroup(size, "dv/dt = (1.1 - v) / (10*ms) : 1", threshold="v > 1",
                    reset="v = 0", method="exact")
group.v = "rand()"
synapses = Synapses(group, group, on_pre="v += 0.01")
synapses.connect(p=0.1)
spikes = SpikeMonitor(group)
run(duration * second)
print(json.dumps({"phase": guided.phase, "rebuilt": guided.rebuilt,
                  "spikes": int(spikes.num_spikes)}))
"""


def _run_script(tmp_path: Path, size: int, duration: float, folder: Path,
                threads: int = 0) -> dict[str, object]:
    script = tmp_path / "guided.py"
    script.write_text(SCRIPT)
    done = subprocess.run([sys.executable, str(script), str(size), str(duration), str(folder),
                           str(threads)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_profile_guided_configuration_round_trips_and_is_standalone_only() -> None:
    config = standalone_config(2, "float32", "O2", pgo=True)
    assert config.key == "cpp_standalone-t2-float32-O2-pgo"
    assert "profile-guided" in config.describe()
    assert RunConfig.from_dict(config.to_dict()) == config
    plain = standalone_config(2)
    assert "pgo" not in plain.to_dict()  # configurations stored before PGO keep their form
    assert RunConfig.from_dict({"device": "cpp_standalone", "target": "cpp"}).pgo is False
    with pytest.raises(ConfigError, match="cpp_standalone only"):
        RunConfig("runtime", "cython", pgo=True)
    with pytest.raises(ConfigError, match="true or false"):
        RunConfig.from_dict({"device": "cpp_standalone", "target": "cpp", "pgo": "yes"})


def test_the_digest_ignores_the_run_length_and_sees_the_model(tmp_path: Path) -> None:
    (tmp_path / "code_objects").mkdir()
    (tmp_path / "code_objects" / "loop.cpp").write_text("for (;;) {}")
    (tmp_path / "main.cpp").write_text("run(0.1);")
    (tmp_path / "makefile").write_text("OPTIMISATIONS = -O3")
    before = pgo.code_digest(tmp_path)
    (tmp_path / "main.cpp").write_text("run(0.2);")
    (tmp_path / "pgo").mkdir()
    (tmp_path / "pgo" / "x.gcda").write_text("counters")
    assert pgo.code_digest(tmp_path) == before
    (tmp_path / "code_objects" / "loop.cpp").write_text("for (int i = 0;;) {}")
    assert pgo.code_digest(tmp_path) != before
    trained = pgo.PgoState(before, pgo.GENERATE, trained=True)
    assert pgo.next_phase(trained, before, profiles_present=True) == pgo.USE
    assert pgo.next_phase(trained, "other", profiles_present=True) == pgo.GENERATE
    assert pgo.next_phase(trained, before, profiles_present=False) == pgo.GENERATE
    assert "-fprofile-update=atomic" in pgo.phase_flags(pgo.GENERATE, tmp_path, threads=2)
    assert "-fprofile-update=atomic" not in pgo.phase_flags(pgo.GENERATE, tmp_path, threads=0)


@pytest.mark.slow
def test_a_build_folder_goes_through_the_phases_and_retrains_when_the_code_changes(
        tmp_path: Path) -> None:
    """Instrumented run, rebuild with the profile, warm reuse; a new run length keeps the
    profile, a new model takes a fresh one. Every phase computes the same spikes."""
    folder = tmp_path / "build"
    first = _run_script(tmp_path, 80, 0.05, folder)
    assert (first["phase"], first["rebuilt"]) == (pgo.GENERATE, True)
    assert pgo.read_state(folder).trained
    assert list((folder / "pgo" / "profiles").glob("*.gcda"))
    second = _run_script(tmp_path, 80, 0.05, folder)
    assert (second["phase"], second["rebuilt"]) == (pgo.USE, True)
    third = _run_script(tmp_path, 80, 0.05, folder)
    assert (third["phase"], third["rebuilt"]) == (pgo.USE, False)
    assert first["spikes"] == second["spikes"] == third["spikes"] > 0
    longer = _run_script(tmp_path, 80, 0.1, folder)
    assert (longer["phase"], longer["rebuilt"]) == (pgo.USE, False)
    bigger = _run_script(tmp_path, 90, 0.05, folder)
    assert (bigger["phase"], bigger["rebuilt"]) == (pgo.GENERATE, True)
    assert _run_script(tmp_path, 90, 0.05, folder)["phase"] == pgo.USE


@pytest.mark.slow
def test_threads_are_profiled_and_give_the_same_results(tmp_path: Path) -> None:
    folder = tmp_path / "build"
    phases = [_run_script(tmp_path, 80, 0.05, folder, threads=2) for _ in range(2)]
    assert [p["phase"] for p in phases] == [pgo.GENERATE, pgo.USE]
    assert phases[0]["spikes"] == phases[1]["spikes"]
    assert list((folder / "pgo" / "profiles").glob("*.gcda"))


@pytest.mark.slow
def test_measuring_a_profile_guided_configuration_counts_its_training(cache_root: Path
                                                                      ) -> None:
    """The first trial is the instrumented one: recorded, counted in the cold cost, never in
    the loop's rate; the trials after it run the build with the profile."""
    from autotune.host import collect_host

    recorded: list[TrialResult] = []
    settings = MeasureSettings((0.01, 0.03), 10.0, 0.05, 1.0, 0, 600.0, probe_loop=None)
    measurer = Measurer(collect_host(), resolve_workload("cuba", 40), settings, cache_root,
                        lambda r, p: recorded.append(r))
    config = standalone_config(0, pgo=True)
    try:
        results = measurer.measure(config)
    finally:
        measurer.close()
    assert [r.duration for r in results] == [0.01, 0.01, 0.03]
    assert all(r.ok for r in results), [r.error for r in results]
    assert results[0].training and results[0].cold
    assert results[1].cold and not results[1].training  # rebuilt with the profile
    assert not any(r.training for r in results[1:])
    assert results[0].observables == results[1].observables
    model = fit_cost_model(results, 10.0)
    assert model.cold_extra >= results[0].phases[TRAINING_PHASE]
    warm = fit_cost_model(results[1:], 10.0)
    assert model.rate == warm.rate and model.fixed == warm.fixed
    assert recorded == results


def _record(loop: float, phase: str | None, cold: bool = False) -> RunRecord:
    return RunRecord("f", None, None, "cpp_standalone-t0-float64-default-pgo", "profile",
                     "s.py", 1.0, None, None, 3.0 + loop, 3.0, loop, None, 0,
                     "2026-11-30T00:00:00+00:00", "digest", cold, 10, 10, phase)


def test_a_script_learns_nothing_from_its_instrumented_run() -> None:
    own = learn([_record(9.0, pgo.GENERATE, cold=True), _record(1.0, pgo.USE, cold=True),
                 _record(1.1, pgo.USE)])
    times = own["cpp_standalone-t0-float64-default-pgo"]
    assert times.runs == 2 and times.rate == pytest.approx(1.05)




def _run_cli(script: Path, *args: str, db: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(ROOT / "cli.py"), "run", "--pgo",
                             "--no-profile", "--db", db, str(script), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_profile_guided_runs_of_a_parallel_sweep_stay_apart_and_reuse_their_profile(
        tmp_path: Path, db_url: str) -> None:
    """Three runs of one script started together with --pgo each take a profile in a build
    folder of their own and print their own answer; a later run builds with a profile (after
    retaking it if slot 0's was taken from another drive, which Brian2 writes into the code)."""
    import sqlite3

    script = tmp_path / "sweep.py"
    script.write_text(SWEEP)
    drives = ("11", "13", "15")
    plain = {d: subprocess.run([sys.executable, str(script), d], capture_output=True,
                               text=True, check=True, timeout=300).stdout.splitlines()[-1]
             for d in drives}
    assert len(set(plain.values())) == 3
    procs = {d: _run_cli(script, d, db=db_url) for d in drives}
    for d, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=900)
        assert proc.returncode == 0, stderr
        assert stdout.splitlines()[-1] == plain[d], stderr
        assert "profile-guided" in stderr and "instrumented" in stderr
    # The drive is a constant Brian2 writes into the code: slot 0's profile matches the next
    # run only if that run had its drive; one that did not takes a fresh profile first.
    for _ in range(2):
        rerun = _run_cli(script, "13", db=db_url)
        stdout, stderr = rerun.communicate(timeout=600)
        assert rerun.returncode == 0 and stdout.splitlines()[-1] == plain["13"], stderr
    assert "built with the profile" in stderr
    with sqlite3.connect(db_url.removeprefix("sqlite:///")) as connection:
        phases = [row[0] for row in connection.execute(
            "SELECT pgo_phase FROM autotune_runs ORDER BY id")]
        keys = {row[0] for row in connection.execute("SELECT config_key FROM autotune_runs")}
    assert sorted(phases[:3]) == [pgo.GENERATE] * 3 and phases[-1] == pgo.USE
    assert all(key.endswith("-pgo") for key in keys)


def test_pgo_asked_of_the_runtime_device_is_one_clear_error(tmp_path: Path, db_url: str
                                                            ) -> None:
    script = tmp_path / "sweep.py"
    script.write_text(SWEEP)
    done = subprocess.run([sys.executable, str(ROOT / "cli.py"), "run", "--pgo", "--device",
                           "runtime", "--db", db_url, str(script), "11"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "--pgo applies to cpp_standalone" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_a_profile_guided_build_is_applied_to_a_script_only_where_it_pays_back() -> None:
    """Warm, the PGO build saves 3 s of a 100 s run; its profile and rebuild cost 25 s. A
    script's first run keeps the plain build; one that has run 20 times takes the PGO one,
    and the prediction of that run includes its cold cost."""
    from dataclasses import replace

    from autotune.choice import choose
    from autotune.costmodel import CostModel
    from autotune.profile import ProfileEntry
    from tests.helpers import make_host, make_profile

    host = make_host()
    guided = standalone_config(0, pgo=True)
    base = make_profile(host)
    profile = replace(base, entries=(*base.entries, ProfileEntry(
        guided, "valid", CostModel(3.5, 0.07, 0.01, 2, 2, 25.0))))
    assert choose(host, profile, duration=100.0)[0] == guided  # warm, it is the fastest
    first = choose(host, profile, duration=100.0, cold={guided.key})
    assert first[0] == standalone_config(0)
    assert "cold build (+25.0 s) does not pay back over 1 run" in first[2]
    plain = standalone_config(0)
    often = learn([RunRecord("fp", None, None, plain.key, "profile", "s.py", 100.0, None, None,
                             3.5 + 10.0, 3.5, 10.0, None, 0, "2026-11-30T00:00:00+00:00",
                             "d", False) for _ in range(20)])
    config, _, _, predicted = choose(host, profile, duration=100.0, cold={guided.key},
                                     history=often)
    assert config == guided
    assert predicted == pytest.approx(3.5 + 0.07 * 100 + 25.0)
    assert choose(host, profile, duration=100.0, pgo=False)[0] == plain


def test_a_script_whose_code_changes_every_run_counts_its_profile_as_a_cold_build() -> None:
    """A sweep whose parameter Brian2 writes into the code retakes the profile on every run:
    the payback rule must see that cost each time, not only on the first run."""
    from autotune.apply import _retrained

    key = "cpp_standalone-t0-float64-default-pgo"
    sweep = [_record(9.0, pgo.GENERATE, cold=True) for _ in range(3)]
    assert _retrained(sweep) == {key}
    settled = [*sweep[:2], *(_record(1.0, pgo.USE) for _ in range(3))]
    assert _retrained(settled) == frozenset()
    assert _retrained(sweep[:1]) == frozenset()  # one profile taken is the normal start


def test_a_calibration_that_never_reached_pgo_says_how_to_measure_it() -> None:
    space = all_configs(2, True)
    plain = {c for c in space if not c.pgo}
    one_profiled = {standalone_config(0), replace(standalone_config(0), pgo=True)}
    note = unmeasured_pgo_note(space, set(list(plain)[:8]), 8)
    assert note is not None and "budget of 8 configurations" in note
    assert "--trials" in note and "--no-pgo" in note
    assert unmeasured_pgo_note(space, one_profiled, 8) is None  # measured: nothing to say
    assert unmeasured_pgo_note(sorted(plain, key=str), set(), 8) is None  # --no-pgo: not in it
