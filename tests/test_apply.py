"""Choosing and applying a configuration: profile, override, fallback, stale profiles."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from autotune.choice import choose, fallback_config
from autotune.config import Allowed, RunConfig, standalone_config
from autotune.costmodel import CostModel
from autotune.errors import ConfigError
from autotune.profile import ProfileEntry
from autotune.runrecord import RunRecord
from autotune.store import open_store
from tests.helpers import make_host, make_profile


def test_profile_best_depends_on_run_length() -> None:
    host = make_host()
    profile = make_profile(host)
    long_run = choose(host, profile, duration=100.0)
    assert long_run[0] == standalone_config(0) and long_run[1] == "profile"
    assert long_run[3] == pytest.approx(3.5 + 0.1 * 100)
    short_run = choose(host, profile, duration=0.5)
    assert short_run[0] == RunConfig("runtime", "numpy")


def test_invalid_and_failed_entries_are_never_chosen() -> None:
    host = make_host()
    profile = make_profile(host)
    for duration in (0.1, 1, 10, 1000):
        config = choose(host, profile, duration=duration)[0]
        assert profile.entry(config).status == "valid"  # type: ignore[union-attr]


def test_a_script_standalone_cannot_serve_gets_the_best_runtime_config() -> None:
    host = make_host()
    config, source, reason, _ = choose(host, make_profile(host), duration=100.0,
                                       allowed=Allowed(standalone=False))
    assert config == RunConfig("runtime", "cython") and source == "profile"
    assert "runtime can serve" in reason


def test_a_script_numpy_cannot_run_never_gets_numpy() -> None:
    """At 0.5 s numpy wins this profile (2.1 s); a script whose numpy code would fail gets
    the fastest other configuration, new builds counted, and so does one the fallback rule
    serves."""
    host = make_host()
    profile = make_profile(host)
    assert choose(host, profile, duration=0.5, allowed=Allowed(standalone=False))[0] == RunConfig(
        "runtime", "numpy")
    config, source, _, _ = choose(host, profile, duration=0.5,
                                  allowed=Allowed(standalone=False, numpy=False))
    assert config == RunConfig("runtime", "cython") and source == "profile"
    new_builds = {RunConfig("runtime", "cython").key, standalone_config(0).key}
    config = choose(host, profile, duration=0.5, allowed=Allowed(numpy=False), cold=new_builds)[0]
    assert config == standalone_config(0)  # 11.55 s with its build, Cython's 43.25 s
    assert choose(host, None, allowed=Allowed(standalone=False, cython=False,
                                               numpy=False))[0] == RunConfig("runtime", "cython")


def test_overrides_win_and_keep_what_they_do_not_name() -> None:
    host = make_host()
    profile = make_profile(host)
    config, source, _, _ = choose(host, profile, duration=100.0, threads=2)
    assert config == standalone_config(2) and source == "override"
    config = choose(host, profile, duration=100.0, precision="float32")[0]
    assert config == standalone_config(0, "float32")
    config = choose(host, profile, duration=100.0, device="runtime")[0]
    assert config.device == "runtime"


@pytest.mark.parametrize("kwargs, message", [
    ({"threads": -1}, "must be an integer >= 0"),
    ({"threads": 5}, "exceeds the 4 usable CPUs"),
    ({"device": "gpu"}, "unknown device"),
    ({"precision": "float16"}, "unknown precision"),
    ({"device": "runtime", "threads": 2}, "applies to cpp_standalone"),
])
def test_bad_overrides_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        choose(make_host(cpus=4), None, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("override", [{"device": "cpp_standalone"}, {"threads": 0},
                                      {"threads": 2}, {"threads": 0, "precision": "float32"}])
def test_every_override_implying_standalone_is_refused_for_a_script_it_cannot_serve(
        override: dict[str, object]) -> None:
    """``--num-threads 0`` means standalone without OpenMP: it must pass the same check as any
    other standalone choice (it used to slip through and crash after the first run)."""
    host = make_host()
    for profile in (None, make_profile(host)):
        with pytest.raises(ConfigError, match="cannot run this script.*calls run"):
            choose(host, profile, allowed=Allowed(standalone=False),
                   why_not_standalone="calls run() 2 times", **override)  # type: ignore[arg-type]


def test_cores_taken_by_other_runs_bound_the_threads() -> None:
    host = make_host(cpus=4)
    profile = make_profile(host)
    fast_threads = ProfileEntry(standalone_config(4), "valid", CostModel(3.5, 0.02, 0.01, 2, 2))
    busy_profile = replace(profile, entries=(*profile.entries, fast_threads))
    assert choose(host, busy_profile, duration=100.0)[0] == standalone_config(4)
    one_core = Allowed(max_threads=1)
    assert choose(host, busy_profile, duration=100.0, allowed=one_core)[0] == standalone_config(0)
    assert choose(host, None, allowed=Allowed(max_threads=3))[0] == standalone_config(3)
    assert choose(host, None, allowed=Allowed(max_threads=1))[0] == standalone_config(0)
    # an explicit thread count is the user's call
    assert choose(host, None, threads=4, allowed=Allowed(max_threads=1))[0] == standalone_config(4)


def test_fallback_rule_without_a_profile() -> None:
    host = make_host(cpus=4)
    config, source, reason, predicted = choose(host, None)
    assert config == standalone_config(4) and source == "fallback" and predicted is None
    assert "no profile" in reason
    assert fallback_config(make_host(cpus=1)) == standalone_config(0)
    assert fallback_config(host, Allowed(standalone=False)) == RunConfig("runtime", "cython")
    numpy_only = Allowed(standalone=False, cython=False)
    assert fallback_config(host, numpy_only) == RunConfig("runtime", "numpy")


def _apply_in_child(db_url: str, *args: str) -> dict[str, object]:
    code = (
        "import json, sys, autotune\n"
        "from brian2 import prefs, get_device\n"
        f"a = autotune.apply({', '.join(args)}db={db_url!r})\n"
        "print(json.dumps({'applied': a.to_dict(), 'device': type(get_device()).__name__,\n"
        "  'target': prefs.codegen.target, 'dtype': prefs.core.default_float_dtype.__name__,\n"
        "  'threads': prefs.devices.cpp_standalone.openmp_threads}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_apply_sets_brian2_from_the_stored_profile(store_url: str) -> None:
    from autotune.host import collect_host

    host = collect_host()
    profile = make_profile(host)
    with open_store(store_url) as store:
        store.save_profile(profile)
    # the code runs from `python -c`: no script file tells standalone can serve it, so say so
    state = _apply_in_child(store_url, "duration=100.0, standalone_ok=True, ")
    assert state["applied"]["source"] == "profile"  # type: ignore[index]
    assert state["device"] == "CPPStandaloneDevice"
    short = _apply_in_child(store_url, "duration=0.5, standalone_ok=True, ")
    assert short["device"] == "RuntimeDevice" and short["target"] == "numpy"
    f32 = _apply_in_child(store_url, "duration=100.0, precision='float32', standalone_ok=True, ")
    assert f32["dtype"] == "float32" and f32["applied"]["source"] == "override"  # type: ignore[index]


def test_code_without_a_script_file_is_kept_off_standalone_unless_asked(db_url: str) -> None:
    """An interactive session (a notebook, ``python -c``, standard input) has no script file
    to read: nothing tells that it calls run() once and reads no state before it, so the
    profile's standalone winner is not applied (before, it was: a notebook's second run()
    then failed), the log says why, and asking for standalone still gets it."""
    from autotune.host import collect_host

    with open_store(db_url) as store:
        store.save_profile(make_profile(collect_host()))  # standalone wins at 100 s
    plain = _apply_in_child(db_url, "duration=100.0, ")
    assert plain["device"] == "RuntimeDevice"
    assert plain["applied"]["source"] == "profile"  # type: ignore[index]
    assert "there is no script file to read" in plain["applied"]["reason"]  # type: ignore[index]
    asked = _apply_in_child(db_url, "duration=100.0, device='cpp_standalone', ")
    assert asked["device"] == "CPPStandaloneDevice"


def test_a_stale_profile_is_not_applied_and_the_change_is_named(db_url: str) -> None:
    import platform

    from autotune.host import collect_host

    current = collect_host()
    old_components = dict(current.components, brian2="2.5.0")
    from autotune.host import HostFingerprint

    old_host = HostFingerprint(old_components, {"hostname": platform.node()})
    with open_store(db_url) as store:
        store.save_profile(make_profile(old_host), old_host)
    state = _apply_in_child(db_url)
    applied = state["applied"]
    assert applied["source"] == "fallback"  # type: ignore[index]
    assert "stale" in applied["reason"] and "brian2 changed" in applied["reason"]  # type: ignore[index]


def test_a_script_needing_numpy_never_gets_cython() -> None:
    host = make_host()
    config, source, reason, _ = choose(host, make_profile(host), duration=100.0,
                                       allowed=Allowed(standalone=False, cython=False))
    assert config == RunConfig("runtime", "numpy") and source == "profile"
    assert "numpy can serve" in reason


APPLY_SCRIPT = """
import json, autotune
from brian2 import get_device, ms, run, second
applied = autotune.apply(duration=DURATION, db=DB)
print(json.dumps({"applied": applied.to_dict(), "device": type(get_device()).__name__}))
"""


#: A model the script would run (never reached: the test only looks at what apply chose).
NEVER_RUN = "\nif False:\n    run(1*ms)\n"


def _apply_in_script(path: Path, db_url: str, duration: str = "10*second",
                     extra: str = NEVER_RUN) -> dict[str, object]:
    path.write_text(APPLY_SCRIPT.replace("DURATION", duration).replace("DB", repr(db_url))
                    + extra)
    out = subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[0])


def test_apply_takes_brian2_durations_and_gives_each_script_its_own_build_folder(
        db_url: str, tmp_path: Path) -> None:
    from autotune.host import collect_host

    with open_store(db_url) as store:
        store.save_profile(make_profile(collect_host()))
    first = _apply_in_script(tmp_path / "first.py", db_url)
    second = _apply_in_script(tmp_path / "second.py", db_url, "100*second")
    for state in (first, second):
        assert state["device"] == "CPPStandaloneDevice"
        assert state["applied"]["source"] == "profile"  # type: ignore[index]
    first_dir, second_dir = (Path(s["applied"]["build_dir"]) for s in (first, second))  # type: ignore[index]
    assert first_dir != second_dir
    assert "script-first-" in str(first_dir) and "script-second-" in str(second_dir)
    assert first_dir.name == "slot-0"  # the first script has left: its slot is free again
    short = _apply_in_script(tmp_path / "short.py", db_url, "500*ms")
    assert short["device"] == "RuntimeDevice"  # a short run: numpy wins in this profile


def test_apply_reads_the_running_script_before_choosing_standalone(db_url: str,
                                                                   tmp_path: Path) -> None:
    two_runs = "\nif False:\n    run(1*ms)\n    run(1*ms)\n"
    state = _apply_in_script(tmp_path / "two.py", db_url, extra=two_runs)
    assert state["device"] == "RuntimeDevice"
    assert state["applied"]["source"] == "fallback"  # type: ignore[index]


HOLD_RUN = """
import sys
from pathlib import Path
from autotune.buildslots import node_dir, register_run
from autotune.host import collect_host
registration = register_run(node_dir(Path(sys.argv[1]), collect_host().fingerprint))
registration.update(int(sys.argv[2]))
print("registered", flush=True)
sys.stdin.read()
"""


def test_a_run_beside_others_takes_the_cores_they_leave(db_url: str, tmp_path: Path,
                                                         cache_root: Path) -> None:
    from autotune.host import collect_host

    host = collect_host()
    holder = subprocess.Popen([sys.executable, "-c", HOLD_RUN, str(cache_root),
                               str(host.usable_cpus)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "registered"
        beside = _apply_in_script(tmp_path / "beside.py", db_url)
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=60)
    alone = _apply_in_script(tmp_path / "alone.py", db_url)
    assert "1 other run(s) on this node" in beside["applied"]["reason"]  # type: ignore[index]
    assert beside["applied"]["config"]["threads"] in (0, 1)  # type: ignore[index]
    assert "other run" not in alone["applied"]["reason"]  # type: ignore[index]
    expected_alone = host.max_threads if host.max_threads > 1 else 0
    assert alone["applied"]["config"]["threads"] == expected_alone  # type: ignore[index]


def _float32_profile(host: object) -> object:
    base = make_profile(host)  # type: ignore[arg-type]
    f32 = ProfileEntry(standalone_config(0, "float32"), "valid", CostModel(3.4, 0.08, 0.01, 2, 2))
    return replace(base, entries=(*base.entries, f32))


def test_float32_is_applied_only_to_the_model_it_was_validated_on() -> None:
    host = make_host()
    profile = _float32_profile(host)
    own, _, _, _ = choose(host, profile, duration=100.0)  # type: ignore[arg-type]
    assert own == standalone_config(0, "float32")  # the calibrated workload itself
    config, source, reason, _ = choose(host, profile, duration=100.0,  # type: ignore[arg-type]
                                       allowed=Allowed(float32=False))
    assert config == standalone_config(0) and source == "profile"
    assert "float32 was validated on cuba, not on this script" in reason
    asked = choose(host, profile, duration=100.0, allowed=Allowed(float32=False),  # type: ignore[arg-type]
                   precision="float32")[0]
    assert asked.precision == "float32"


def test_a_script_never_calibrated_gets_float64_unless_it_asks(db_url: str,
                                                               tmp_path: Path) -> None:
    from autotune.host import collect_host

    with open_store(db_url) as store:
        store.save_profile(_float32_profile(collect_host()))  # type: ignore[arg-type]
    state = _apply_in_script(tmp_path / "mine.py", db_url, "100*second")
    assert state["applied"]["config"]["precision"] == "float64"  # type: ignore[index]
    assert "not on this script" in state["applied"]["reason"]  # type: ignore[index]


def test_apply_reads_the_run_length_from_the_script(db_url: str, tmp_path: Path) -> None:
    from autotune.host import collect_host

    with open_store(db_url) as store:
        store.save_profile(make_profile(collect_host()))
    short = _apply_in_script(tmp_path / "short.py", db_url, "None",
                             extra="\nif False:\n    run(500*ms)\n")
    long = _apply_in_script(tmp_path / "long.py", db_url, "None",
                            extra="\nT = 100\nif False:\n    run(T*second)\n")
    assert short["device"] == "RuntimeDevice"  # numpy wins 0.5 s runs in this profile
    assert long["device"] == "CPPStandaloneDevice"  # standalone wins 100 s runs
    # its build folder is new: the prediction includes the cold build
    assert long["applied"]["predicted"] == pytest.approx(3.5 + 0.1 * 100 + 8.0)  # type: ignore[index]
    assert long["applied"]["cold"] is True  # type: ignore[index]


def test_a_run_length_the_script_does_not_say_is_taken_from_its_recorded_runs(
        db_url: str, tmp_path: Path) -> None:
    """The script's length comes from a table at run time. Its one recorded run simulated
    0.5 s in numpy, as the profile predicts: at 0.5 s numpy wins (2.1 s against standalone's
    3.55 s and a new build), where the profile's 10 s would have built standalone (12.5 s,
    build included, against numpy's 13.5 s)."""
    from autotune.host import collect_host
    from autotune.scriptcheck import script_digest

    host = collect_host()
    extra = "\nlengths = {'a': 500*ms}\nkey = 'a'\nif False:\n    run(lengths[key])\n"
    source = APPLY_SCRIPT.replace("DURATION", "None").replace("DB", repr(db_url)) + extra
    numpy = RunConfig("runtime", "numpy")
    with open_store(db_url) as store:
        store.save_profile(make_profile(host))
        store.record_run(RunRecord(
            host.fingerprint, None, None, numpy.key, "profile", "mine.py", 0.5, None, None,
            2.1, 1.5, 0.6, None, 0, "2026-12-03T00:00:00+00:00",
            script_digest=script_digest(source), cold=False))
    never_ran = _apply_in_script(tmp_path / "other.py", db_url, "None", extra + "# other\n")
    assert never_ran["applied"]["config"]["device"] == "cpp_standalone"  # type: ignore[index]
    state = _apply_in_script(tmp_path / "mine.py", db_url, "None", extra)
    applied = state["applied"]
    assert applied["config"] == numpy.to_dict()  # type: ignore[index]
    assert applied["predicted"] == pytest.approx(1.5 + 1.2 * 0.5)  # type: ignore[index]
    assert "run length 0.5 s: what the script's recorded runs simulated" in applied["reason"]  # type: ignore[index]


def test_apply_keeps_a_multi_compartment_script_off_numpy_without_scipy(
        db_url: str, tmp_path: Path) -> None:
    """A 0.5-s script gets numpy from this profile, unless its numpy code needs scipy and
    scipy is missing: then the reason says why not."""
    from autotune.host import collect_host

    with open_store(db_url) as store:
        store.save_profile(make_profile(collect_host()))
    spatial = ("\nif False:\n    neuron = SpatialNeuron(morphology=Soma(30*um), model='')\n"
               "    run(500*ms)\n")
    state = _apply_in_script(tmp_path / "cell.py", db_url, "None", spatial)
    scipy_missing = importlib.util.find_spec("scipy") is None
    assert (state["applied"]["config"]["target"] != "numpy") == scipy_missing  # type: ignore[index]
    assert ("numpy cannot serve this script" in state["applied"]["reason"]) == scipy_missing  # type: ignore[index]


@pytest.mark.parametrize("threads, cpus, neighbours, busy, expected", [
    (0, 2, 0, 0, False), (1, 2, 1, 2, False),  # no OpenMP team to wait
    (2, 2, 0, 0, False),  # a quiet host: spinning is what makes OpenMP fast
    (2, 2, 1, 0, True),  # another registered run uses a core
    (2, 2, 0, 1, True),  # another program keeps a core busy
    (4, 8, 2, 3, False),  # 5 cores free for 4 threads
])
def test_threads_sleep_while_waiting_only_when_they_share_cores(
        threads: int, cpus: int, neighbours: int, busy: int, expected: bool) -> None:
    from autotune.buildslots import oversubscribed

    assert oversubscribed(threads, cpus, neighbours, busy) is expected


@pytest.mark.skipif(not Path("/proc/loadavg").exists(), reason="Linux counts runnable tasks")
def test_a_process_keeping_a_core_busy_counts_as_busy_elsewhere() -> None:
    """The count is of tasks runnable now (not the load average, which remembers the runs of
    the last minute): a process spinning beside this one is seen at every look."""
    from autotune.buildslots import cpus_busy_elsewhere

    spinner = subprocess.Popen(
        [sys.executable, "-c", "print('spinning', flush=True)\nwhile True: pass"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert spinner.stdout is not None and spinner.stdout.readline() == "spinning\n"
        assert cpus_busy_elsewhere() >= 1
    finally:
        spinner.kill()
        spinner.wait()
