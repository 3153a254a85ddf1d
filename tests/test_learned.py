"""Learning from a script's own runs: its next run uses its measured times, tries a close
rival once, and never one predicted clearly slower."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from autotune.choice import choose
from autotune.config import Allowed, RunConfig, standalone_config
from autotune.costmodel import CostModel
from autotune.learned import (
    MAX_EXPLORE_LOSS,
    REPEATS_CAP,
    OwnTimes,
    expected_repeats,
    learn,
    runs_to_come,
)
from autotune.profile import Profile, ProfileEntry
from autotune.runrecord import RunRecord
from autotune.store import open_store
from tests.conftest import run_cli
from tests.helpers import make_host, make_profile

STANDALONE = standalone_config(0)
O2 = standalone_config(0, flags="O2")
#: Both compiled configurations of :func:`make_profile`, as a script's first run finds them.
NEW_BUILDS = frozenset({STANDALONE.key, "cython-float64-default"})


def _run(config: RunConfig, build: float, loop: float, simulated: float = 10.0,
         cold: bool = False, exit_code: int = 0) -> RunRecord:
    return RunRecord("fp", None, None, config.key, "profile", "s.py", simulated, None, None,
                     build + loop, build, loop, None, exit_code, "2026-11-30T00:00:00+00:00",
                     script_digest="d", cold=cold)


def _with_o2(profile: Profile, fixed: float, rate: float) -> Profile:
    return replace(profile, entries=(*profile.entries,
                                     ProfileEntry(O2, "valid",
                                                  CostModel(fixed, rate, 0.01, 2, 2, 8.0))))


def test_own_times_are_the_median_of_warm_runs_and_ignore_failures() -> None:
    runs = [_run(STANDALONE, 20.0, 3.0, cold=True), _run(STANDALONE, 4.0, 3.0),
            _run(STANDALONE, 4.4, 3.2), _run(STANDALONE, 4.2, 2.8),
            _run(STANDALONE, 1.0, 0.1, exit_code=1)]
    own = learn(runs)[STANDALONE.key]
    assert own.runs == 4 and own.warm_runs == 3
    assert own.build == pytest.approx(4.2)  # the cold build's compilation is left out
    assert own.rate == pytest.approx(0.3)
    assert own.predict(100.0) == pytest.approx(4.2 + 30.0)


def test_a_second_run_uses_the_first_runs_measurements_not_the_profile() -> None:
    host = make_host()
    profile = make_profile(host)
    history = learn([_run(STANDALONE, 4.0, 3.0)])  # its loop is 3x the profile's CUBA
    config, source, reason, predicted = choose(host, profile, duration=100.0, history=history)
    assert config == STANDALONE and source == "script"
    assert predicted == pytest.approx(4.0 + 0.3 * 100)  # not the profile's 3.5 + 0.1 * 100
    assert "fastest of the 1 configuration this script ran, by its own runs" in reason


def test_a_rival_predicted_within_noise_is_tried_once_then_own_times_decide() -> None:
    host = make_host()
    profile = _with_o2(make_profile(host), 3.5, 0.102)  # 1.6 % slower than standalone at 100 s
    first = [_run(STANDALONE, 3.5, 10.0)]
    config, source, reason, _ = choose(host, profile, duration=100.0, history=learn(first))
    assert config == O2 and source == "script" and reason.startswith(f"trying {O2.key}")
    after_trying = learn([*first, _run(O2, 3.5, 10.5)])  # O2 measured 5 % slower here
    config, source, _, predicted = choose(host, profile, duration=100.0, history=after_trying)
    assert config == STANDALONE and predicted == pytest.approx(3.5 + 10.0 * 10)


def test_a_rival_predicted_slower_beyond_the_limit_is_never_tried() -> None:
    host = make_host()
    slower = 1 + MAX_EXPLORE_LOSS + 0.05
    profile = _with_o2(make_profile(host), 3.5 * slower, 0.1 * slower)
    history = learn([_run(STANDALONE, 3.5, 1.0), _run(STANDALONE, 5.5, 1.0),
                     _run(STANDALONE, 1.5, 1.0)])  # own runs disagree by ±40 %
    config, source, _, _ = choose(host, profile, duration=100.0, history=history)
    assert config == STANDALONE and source == "script"


def test_an_untried_configuration_the_scaled_profile_predicts_faster_is_tried() -> None:
    """The script ran numpy (say by --device runtime); its set-up is like the profile's
    model but its loop 10x slower: scaled, standalone is predicted far faster for 10 s."""
    host = make_host()
    numpy = RunConfig("runtime", "numpy")
    history = learn([_run(numpy, 1.5, 120.0)])
    config, source, reason, predicted = choose(host, make_profile(host), duration=10.0,
                                               history=history)
    assert config == STANDALONE and source == "script"
    assert predicted == pytest.approx(3.5 + 0.1 * 10 * 10)
    assert "scaled by its own 1 run" in reason


def test_the_script_history_keeps_the_float32_and_override_rules() -> None:
    host = make_host()
    f32 = standalone_config(0, "float32")
    profile = replace(make_profile(host), entries=(
        *make_profile(host).entries, ProfileEntry(f32, "valid", CostModel(3.4, 0.08, 0.01, 2, 2))))
    history = learn([_run(STANDALONE, 3.5, 1.0)])
    config, source, _, _ = choose(host, profile, duration=100.0, history=history,
                                  allowed=Allowed(float32=False))
    assert config.precision == "float64" and source == "script"
    config, source, _, _ = choose(host, profile, duration=100.0, history=history, threads=2,
                                  allowed=Allowed(float32=False))
    assert config == standalone_config(2) and source == "override"


TINY = """
from brian2 import *
G = NeuronGroup(20, 'dv/dt = -v/(10*ms) : 1', threshold='v > 0.8', reset='v = 0',
                method='exact')
G.v = 'rand()'
S = Synapses(G, G, on_pre='v += 0.1')
S.connect(p=0.5)
run(50*ms)
print('done')
"""


@pytest.mark.slow
def test_a_script_run_twice_learns_from_its_first_run(db_url: str, tmp_path: Path) -> None:
    """Real runs through the command line, recorded in a real SQLite store: the second run of
    the script is predicted from the first one's measured times and size."""
    from autotune.host import collect_host

    with open_store(db_url) as store:
        store.save_profile(make_profile(collect_host()))  # numpy wins runs this short
    script = tmp_path / "tiny.py"
    script.write_text(TINY)
    for _ in range(2):
        done = run_cli("run", "--db", db_url, str(script))
        assert done.returncode == 0, done.stderr
        assert "done" in done.stdout
    with open_store(db_url) as store:
        first, second = store.runs()
    # a run that shared its CPUs with other work (a busy host) teaches only where it kept one
    # CPU busy, at the pace of its own CPU time
    learned = [run for run in (first, second) if run.times_alone() is not None]
    alone = first.times_alone()
    assert first.source == "profile"
    assert second.source == ("profile" if alone is None else "script")
    assert first.config_key == second.config_key == "numpy-float64"
    assert first.script_digest == second.script_digest is not None
    assert first.neurons == 20 and first.synapses is not None and first.synapses > 0
    assert first.simulated == pytest.approx(0.05)
    assert first.compile_seconds == 0.0  # numpy compiles nothing
    if alone is not None:
        own = alone[0] + alone[1] / first.simulated * 0.05  # type: ignore[operator]
        assert second.predicted_total == pytest.approx(own)
    shown = json.loads(run_cli("show", "--json", "--db", db_url).stdout)["scripts"]
    assert [(r["config"], r["runs"], r["neurons"]) for r in shown] == (
        [("numpy-float64", len(learned), 20)] if learned else [])
    if learned:
        assert shown[0]["script"] == str(script.resolve())
        assert "learned from your scripts" in run_cli("show", "--db", db_url).stdout
    script.write_text(TINY.replace("0.1", "0.2"))  # an edited script starts afresh
    again = run_cli("run", "--db", db_url, str(script))
    assert again.returncode == 0, again.stderr
    with open_store(db_url) as store:
        edited = store.runs()[-1]
    assert edited.source == "profile" and edited.script_digest != first.script_digest


# Two runs of one network (30 + 20 ms), then two fresh networks (40 and 10 ms): the clock ends
# at 10 ms, and Brian2 keeps only the last run's loop time. The script adds up its own.
SEVERAL_RUNS = """
from brian2 import *
loops = []
def timed_run(length):
    run(length)
    loops.append(get_device()._last_run_time)
G = NeuronGroup(20, 'dv/dt = -v/(10*ms) : 1', threshold='v > 0.8', reset='v = 0',
                method='exact')
G.v = 'rand()'
timed_run(30*ms)
timed_run(20*ms)
for length in (40, 10):
    start_scope()
    H = NeuronGroup(10, 'dv/dt = -v/(10*ms) : 1', method='exact')
    timed_run(length*ms)
print('loops', repr(float(sum(loops))))
"""


def test_a_script_that_runs_several_times_is_recorded_with_all_it_simulated(
        db_url: str, tmp_path: Path) -> None:
    """Learning divides a run's loop by what it simulated: both must cover every ``run()``,
    not the last one's."""
    from autotune.host import collect_host

    with open_store(db_url) as store:
        store.save_profile(make_profile(collect_host()))
    script = tmp_path / "several.py"
    script.write_text(SEVERAL_RUNS)
    done = run_cli("run", "--db", db_url, str(script))
    assert done.returncode == 0, done.stderr
    loops = float(done.stdout.split("loops", 1)[1].split()[0])
    with open_store(db_url) as store:
        (record,) = store.runs()
    assert record.config_key == "numpy-float64"
    assert record.simulated == pytest.approx(0.1)
    assert record.actual_loop == pytest.approx(loops)
    assert "(100 ms simulated)" in done.stderr


# A network_operation stops the first run at 12 ms of 100 (Brian2's network_operation_stop.py);
# the network then runs 5 ms more. After stop() Brian2 keeps the network's time as the clock's
# variable view, not a float.
STOPPED_RUN = """
from brian2 import *
G = NeuronGroup(5, 'dv/dt = -v/(10*ms) : 1', method='exact')

@network_operation(dt=1*ms)
def enough():
    if defaultclock.t >= 12*ms:
        stop()

net = Network(G, enough)
net.run(100*ms)
print('stopped at', repr(float(net.t / ms)))
net.run(5*ms)
print('ended at', repr(float(net.t / ms)))
"""


def test_a_run_stopped_by_the_script_is_recorded_with_what_it_simulated(
        db_url: str, tmp_path: Path) -> None:
    """Brian2's network_operation_stop.py ran under python and failed under run with a
    traceback from our bookkeeping: after stop() the network's time is no float."""
    from autotune.host import collect_host

    with open_store(db_url) as store:
        store.save_profile(make_profile(collect_host()))
    script = tmp_path / "stopped.py"
    script.write_text(STOPPED_RUN)
    plain = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                           timeout=300, check=True)
    done = run_cli("run", "--db", db_url, str(script))
    assert done.returncode == 0, done.stderr
    assert done.stdout == plain.stdout and "Traceback" not in done.stderr
    ended = float(done.stdout.split("ended at", 1)[1].split()[0])
    with open_store(db_url) as store:
        (record,) = store.runs()
    assert record.simulated == pytest.approx(ended / 1000, abs=2e-4)


PANELS = """
from brian2 import *

def panel(n):
    group = NeuronGroup(n, 'dv/dt = (2 - v)/(10*ms) : 1', threshold='v > 1', reset='v = 0',
                        method='exact')
    synapses = Synapses(group, group, on_pre='v += 0.1')
    synapses.connect(i=0, j=1)
    monitor = SpikeMonitor(group)
    run(1*ms)
    return [group.name, synapses.name, monitor.name]

print(panel(3), panel(4))
"""


def test_a_network_built_per_panel_gets_the_names_a_plain_run_gives_it(
        db_url: str, tmp_path: Path) -> None:
    """Our record of the last network must not keep a finished panel's objects alive: Brian2
    names a new object after the first free name, and Brunel_2000.py's later panels got
    ``synapses_1`` and the like under run, so their Cython code differed from what plain
    Brian2 had compiled (7 modules compiled again, 29 s)."""
    from autotune.host import collect_host

    profile = make_profile(collect_host())
    entries = tuple(replace(e, status="invalid", reason="nothing to compile in this test")
                    if e.config.target == "cython" else e for e in profile.entries)
    with open_store(db_url) as store:
        store.save_profile(replace(profile, entries=entries))
    script = tmp_path / "panels.py"
    script.write_text(PANELS)
    (tmp_path / "brian_preferences").write_text("codegen.target = 'numpy'\n")  # no compiling
    plain = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                           timeout=300, check=True, cwd=tmp_path)
    done = run_cli("run", "--db", db_url, str(script), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == plain.stdout, done.stdout
    with open_store(db_url) as store:
        (record,) = store.runs()
    assert (record.neurons, record.synapses) == (4, 1)  # the last panel, counted as it ended


def test_runs_of_an_older_store_are_recorded_after_it_is_upgraded(tmp_path: Path) -> None:
    """apply writes runs with sqlite3 alone; a store made before runs had a script column is
    upgraded by the repository instead of losing the run."""
    from autotune.store.lite import record_run as lite_record_run
    from autotune.store.repository import Store

    url = f"sqlite:///{tmp_path / 'old.db'}"
    Store(url, _revision="0002").close()
    record = replace(_run(STANDALONE, 3.0, 1.0), script_digest="abc", neurons=5, synapses=7)
    assert lite_record_run(url, record) is False  # the old table lacks the columns
    with open_store(url) as store:
        store.record_run(record)
        assert store.runs() == [record]
    assert lite_record_run(url, record) is True
    columns = {row[1] for row in sqlite3.connect(tmp_path / "old.db").execute(
        "PRAGMA table_info(autotune_runs)")}
    assert {"script_digest", "cold", "neurons", "synapses"} <= columns


def test_a_first_run_counts_the_cold_build_and_a_script_run_often_amortises_it() -> None:
    """At 3 s standalone wins warm (3.8 s against numpy's 5.1 s), but its first build costs
    8 s more: a script's first run is cheaper in numpy; one that ran 20 times is not."""
    host = make_host()
    profile = make_profile(host)
    first = choose(host, profile, duration=3.0, cold=NEW_BUILDS)
    assert first[0] == RunConfig("runtime", "numpy")
    assert "cold build (+8.0 s) does not pay back over 1 run of this script" in first[2]
    warm = choose(host, profile, duration=3.0)
    assert warm[0] == STANDALONE and warm[3] == pytest.approx(3.8)
    numpy = RunConfig("runtime", "numpy")
    often = learn([_run(numpy, 1.5, 3.6, simulated=3.0) for _ in range(20)])
    config, source, _, predicted = choose(host, profile, duration=3.0, cold=NEW_BUILDS,
                                          history=often)
    assert config == STANDALONE and source == "script"
    assert predicted == pytest.approx(3.5 + 0.1 * 3.0 + 8.0)  # this run pays the build


def test_on_a_host_whose_scripts_are_run_again_a_first_run_pays_a_build_that_pays_back() -> None:
    """At 8 s numpy takes 11.1 s and standalone 4.3 s warm, 12.3 s with its 8 s build: a lone
    run is cheaper in numpy, but the build pays back over two runs. A host whose other scripts
    were run twice or more takes it on the first run, and says why; at 3 s (1.3 s saved a run)
    it would take more runs than the cap allows, so numpy stays."""
    host = make_host()
    profile = make_profile(host)
    alone = choose(host, profile, duration=8.0, cold=NEW_BUILDS)
    assert alone[0] == RunConfig("runtime", "numpy")
    assert "does not pay back over 1 run of this script" in alone[2]
    config, _, reason, predicted = choose(host, profile, duration=8.0, cold=NEW_BUILDS, repeats=2)
    assert config == STANDALONE
    assert "its build here is new (+8.0 s) and pays back over 2 runs" in reason
    assert "the 2 runs this host's scripts get, median" in reason
    assert predicted == pytest.approx(3.5 + 0.1 * 8.0 + 8.0)  # this run pays all of it
    short = choose(host, profile, duration=3.0, cold=NEW_BUILDS, repeats=expected_repeats([20, 30]))
    assert short[0] == RunConfig("runtime", "numpy")
    assert "over 4 runs of this script (the 4 runs" in short[2]


def test_a_cold_build_both_would_pay_does_not_overturn_the_profiles_choice() -> None:
    """Brunel & Hakim at 10 s, never run: the suite chose 2 threads, both standalone builds
    were new, and pricing each build by its own prediction switched to no OpenMP (8.77 s a
    warm run against 2 threads' 7.70 s). Builds of the same code cost the same; a cheaper
    configuration with no build to pay still wins."""
    from autotune.choice import mind_cold_builds

    two = standalone_config(2)
    entries = [ProfileEntry(STANDALONE, "valid", CostModel(3.5, 0.10, 0.1, 2, 2, 7.5)),
               ProfileEntry(two, "valid", CostModel(3.6, 0.10, 0.1, 2, 2, 8.0)),
               ProfileEntry(RunConfig("runtime", "numpy"), "valid", CostModel(1.5, 1.2))]
    costs = {e.config.key: e.cost for e in entries}
    cold = {STANDALONE.key, two.key}
    config, reason = mind_cold_builds(costs, None, 10.0, two, "robust", cold, entries)
    assert (config, reason) == (two, "robust")
    # numpy, with no build, is cheaper than 2 threads and their build for one run: it wins
    config, reason = mind_cold_builds(costs, None, 5.0, two, "robust", cold, entries)
    assert config == RunConfig("runtime", "numpy") and "does not pay back" in reason


def test_the_hosts_habit_is_named_only_where_it_decided() -> None:
    """At 30 s standalone's build pays back in one run (numpy 37.5 s, standalone 6.5 s warm,
    14.5 s with its build): the habit of running scripts four times changes nothing, and the
    reason does not claim it did."""
    host = make_host()
    profile = make_profile(host)
    config, _, reason, _ = choose(host, profile, duration=30.0, cold=NEW_BUILDS, repeats=4)
    assert config == STANDALONE
    assert "runs this host's scripts get" not in reason
    assert "pays back" not in reason


def test_the_runs_expected_of_a_script_are_the_median_of_the_others_and_capped() -> None:
    assert expected_repeats([]) == 1
    assert expected_repeats([1, 1, 7]) == 1  # most scripts here are run once
    assert expected_repeats([3, 9]) == 3
    assert expected_repeats([20, 30, 50]) == REPEATS_CAP


def _runs(key: str, runs: int) -> OwnTimes:
    return OwnTimes(key, runs, runs, 1.0, 0.5, 0.0, None, 2.0 * runs)


@pytest.mark.parametrize(("had", "repeats", "expected"), [
    ({}, 1, 1),                      # never run, no habit: one run
    ({}, 0, 1),                      # at least one, whatever the caller passes
    ({"numpy": 3}, 2, 3),            # its own runs, where they are more
    ({"numpy": 1, "standalone": 1}, 4, 4),  # the host's habit, where that is more
    ({"numpy": 5, "standalone": 2}, 4, 7),  # runs with every configuration count
])
def test_a_build_is_spread_over_the_runs_had_or_the_hosts_habit(
        had: dict[str, int], repeats: int, expected: int) -> None:
    """One rule for the choice and for the build beside a run (both call it)."""
    history = {key: _runs(key, runs) for key, runs in had.items()}
    assert runs_to_come(history, repeats) == expected


def test_how_often_scripts_are_run_is_read_from_the_store_and_the_nodes_copy(tmp_path: Path
                                                                              ) -> None:
    """Counted per script text on this host, the coming script left out; the same from the
    node's copy of a store that serves many nodes."""
    from autotune.store.lite import read_script_run_counts
    from autotune.store.nodecopy import copy_folder, refresh, server_script_run_counts

    url = f"sqlite:///{tmp_path / 'runs.db'}"
    with open_store(url) as store:
        for digest, times in (("a", 3), ("b", 5), ("coming", 2), (None, 4)):
            for _ in range(times):
                store.record_run(replace(_run(STANDALONE, 3.0, 1.0), script_digest=digest))
        elsewhere = replace(_run(STANDALONE, 3.0, 1.0), fingerprint="other", script_digest="c")
        store.record_run(elsewhere)
    assert sorted(read_script_run_counts(url, "fp", "coming")) == [3, 5]
    node = tmp_path / "node"
    refresh(url, "fp", copy_folder(node, url))
    assert sorted(server_script_run_counts(url, "coming", node)) == [3, 5]
    assert expected_repeats(read_script_run_counts(url, "fp", "coming")) == 3


def test_a_configuration_run_only_cold_is_predicted_warm_and_not_left_for_a_cold_rival() -> None:
    """Measured with Brian2's Brunel & Hakim example at 10 s: after one cold standalone run,
    its own estimate still held the 8 s build, so an untried flag preset 'within noise' was
    tried, and paid a cold build of its own (12.9 s against 6.1 s)."""
    host = make_host()
    profile = _with_o2(make_profile(host), 3.5, 0.1)  # as fast as the default flags
    history = learn([_run(STANDALONE, 3.5 + 8.0, 1.0, cold=True)])
    config, source, reason, predicted = choose(host, profile, duration=10.0, history=history,
                                               cold={O2.key, "cython-float64-default"})
    assert config == STANDALONE and source == "script"
    assert predicted == pytest.approx(3.5 + 0.1 * 10)
    assert "cold build (+8.0 s) does not pay back" in reason


def test_a_build_colder_than_the_profile_says_leaves_a_warm_set_up_its_other_runs_support() -> None:
    """Measured with Brian2's STDP example at 1 s: after its numpy runs (set-up half the
    profile's) it took standalone, whose cold build (7.7 s) was shorter than the CUBA profile's
    (9.45 s), so the next warm run was predicted 0.67 s and took 2.42 s (+259 %)."""
    host = make_host()
    profile = make_profile(host)
    numpy = RunConfig("runtime", "numpy")
    history = learn([*(_run(numpy, 0.75, 12.0) for _ in range(4)),  # set-up 0.5 x the profile's
                     _run(STANDALONE, 3.5 * 0.5 + 5.0, 1.0, cold=True)])  # cold 5 s, not 8
    config, source, _, predicted = choose(host, profile, duration=10.0, history=history)
    assert config == STANDALONE and source == "script"
    # warm set-up: not its cold 6.75 s less 8 s (0 s), but at least the profile's 3.5 s at
    # the script's 0.5, and at least its cold set-up in the profile's proportions (3.5 : 8)
    assert predicted == pytest.approx(max(3.5 * 0.5, 6.75 * 3.5 / 11.5) + 0.1 * 10)
    only_cold = learn([_run(STANDALONE, 3.5 + 8.0, 1.0, cold=True)])  # nothing warm to go by
    assert choose(host, profile, duration=10.0, history=only_cold)[3] == pytest.approx(3.5 + 1.0)
    quick = learn([_run(STANDALONE, 9.2, 1.0, cold=True)])  # set-up and build 20 % quicker
    assert choose(host, profile, duration=10.0, history=quick)[3] == pytest.approx(
        3.5 * 0.8 + 1.0)  # not 9.2 - 8 = 1.2 s of set-up


def test_the_scripts_own_cold_build_prices_the_cold_build_of_a_configuration_it_has_not_run(
        ) -> None:
    """Measured with a Wang & Buzsaki network of 1000 neurons: its first standalone build took
    10.7 s, the suite predicted 17.6 s for the 2-thread build, and 2 threads (5.5 s faster a
    run) waited until the sixth run. Every standalone build compiles the same generated code."""
    host = make_host()
    profile = _with_o2(make_profile(host), 3.5, 0.08)  # 2 s faster at 100 s; its build: 8 s
    runs = [_run(STANDALONE, 3.5 + 5.0, 10.0, simulated=100.0, cold=True),
            _run(STANDALONE, 3.5, 10.0, simulated=100.0),
            _run(STANDALONE, 3.5, 10.0, simulated=100.0)]
    history = learn(runs)
    assert history[STANDALONE.key].cold_extra == pytest.approx(5.0)
    new = {O2.key, "cython-float64-default"}
    config, source, reason, predicted = choose(host, profile, duration=100.0, history=history,
                                               cold=new)
    # 5 s spread over 3 runs (1.7 s) is less than the 2 s a run saves; the profile's 8 s is not
    assert config == O2 and source == "script"
    assert predicted == pytest.approx(3.5 + 8.0 + 5.0)
    two_runs = learn(runs[:2])  # 5 s over 2 runs: 2.5 s, more than the 2 s it saves a run,
    # but this run is only 4 % slower with the build (14.0 s against 13.5), and 4 runs repay it
    config, _, reason, _ = choose(host, profile, duration=100.0, history=two_runs, cold=new)
    assert config == O2
    assert "its build here is new (+5.0 s), which puts this run within 10 %" in reason
    assert "pays back over 4 runs" in reason
    # after its cold run alone the script's build is not told apart from its set-up: the
    # profile's 8 s, on one run, is more than 10 % of this run
    one_run = learn(runs[:1])
    config, _, reason, _ = choose(host, profile, duration=100.0, history=one_run, cold=new)
    assert config == STANDALONE and "its cold build (+8.0 s) does not pay back" in reason


def test_an_untried_configuration_predicted_faster_pays_its_build_once_the_script_can_afford_it(
        ) -> None:
    """Measured with a Wang & Buzsaki network of 300 neurons left out of the suite: 2 threads
    were predicted 2 % faster than none (0.7 s a run), so their 9.8 s build would have paid
    back after 14 runs, and its 100-s runs took 36 % less time with them. Trying is bounded
    by what it may lose instead: the build and the predicted loss within 10 % of the script's
    time so far."""
    host = make_host()
    profile = _with_o2(make_profile(host), 3.5, 0.098)  # 0.2 s faster a 100-s run
    runs = [_run(STANDALONE, 3.5 + 5.0, 10.0, simulated=100.0, cold=True),
            *(_run(STANDALONE, 3.5, 10.0, simulated=100.0) for _ in range(3))]
    new = {O2.key, "cython-float64-default"}
    three = learn(runs[:3])
    assert sum(t.seconds for t in three.values()) == pytest.approx(18.5 + 2 * 13.5)
    config, _, reason, _ = choose(host, profile, duration=100.0, history=three, cold=new)
    assert config == STANDALONE  # 5 s to try: more than 10 % of 45.5 s
    assert "its cold build (+5.0 s) does not pay back over 3 runs" in reason
    config, source, reason, predicted = choose(host, profile, duration=100.0,
                                               history=learn(runs), cold=new)
    assert config == O2 and source == "script"  # 10 % of 59 s: the 5 s build is paid
    assert "its cold build here (+5.0 s) is paid to try it" in reason
    assert "within 10 % of the 59 s this script's runs have taken" in reason
    assert predicted == pytest.approx(3.5 + 9.8 + 5.0)


def test_a_configuration_run_only_cold_takes_its_warm_set_up_from_the_scripts_own_build(
        ) -> None:
    """The script measured its own standalone cold build (5 s): a configuration it ran only
    cold keeps that run's set-up less 5 s, not the profile's set-up scaled (the profile's
    O2 set-up is 5.0 s against 3.5 s without flags, more than a flag preset changes)."""
    from autotune.learned import script_costs

    profile = _with_o2(make_profile(make_host()), 5.0, 0.08)
    runs = [_run(STANDALONE, 4.2 + 5.0, 10.0, simulated=100.0, cold=True),
            _run(STANDALONE, 4.2, 10.0, simulated=100.0),
            _run(O2, 4.3 + 5.0, 8.0, simulated=100.0, cold=True)]
    costs = script_costs(profile.entries, profile.valid, learn(runs))
    assert costs[O2.key].fixed == pytest.approx(4.3)  # not 5.0 x 1.2 = 6.0
    assert costs[O2.key].cold_extra == pytest.approx(5.0)


def test_a_configuration_run_only_cold_whose_compiling_was_timed_has_its_warm_set_up_measured(
        ) -> None:
    """Measured with a 500-neuron script of my own that calls ``apply()`` at its top, on a
    busy host: its first (Cython) run spent about 40 s compiling, where the prediction had
    priced the compile at a few seconds, and its next run predicted Cython at 43.2 s, the
    compile counted as set-up. A warm Cython run of it takes a few seconds."""
    from autotune.learned import script_costs

    host = make_host()
    cython = RunConfig("runtime", "cython")
    profile = make_profile(host)
    guessed = replace(profile, entries=tuple(  # a prediction that priced the compile at 5 s
        replace(e, cost=replace(e.cost, cold_extra=5.0)) if e.config == cython else e
        for e in profile.entries))
    first = replace(_run(cython, 3.0 + 40.0, 0.5, simulated=1.0, cold=True),
                    compile_seconds=40.0)
    history = learn([first])
    assert history[cython.key].cold_extra == pytest.approx(40.0)
    assert history[cython.key].predict(10.0) == pytest.approx(3.0 + 5.0)
    costs = script_costs(guessed.entries, guessed.valid, history)
    assert costs[cython.key].fixed == pytest.approx(3.0)  # not 43 - 5 = 38 s
    config, source, _, predicted = choose(host, guessed, duration=10.0, history=history,
                                          cold={STANDALONE.key})
    assert config == cython and source == "script"
    assert predicted == pytest.approx(3.0 + 5.0)
    # a run recorded before compiling was timed still goes by the prediction's guess
    untimed = learn([_run(cython, 3.0 + 40.0, 0.5, simulated=1.0, cold=True)])
    assert untimed[cython.key].cold_extra is None
    assert script_costs(guessed.entries, guessed.valid, untimed)[cython.key].fixed == (
        pytest.approx(38.0))
    assert choose(host, guessed, duration=10.0, history=untimed,
                  cold={STANDALONE.key})[0] != cython


def test_a_standalone_run_whose_compiling_was_timed_prices_the_cold_build_of_its_rivals(
        ) -> None:
    """One cold standalone run that timed its ``make`` (5 s) tells what every standalone build
    of the script costs: the untried flag preset is priced at 5 s cold, not the profile's 8."""
    from autotune.learned import script_costs

    profile = _with_o2(make_profile(make_host()), 3.5, 0.08)
    cold = replace(_run(STANDALONE, 4.2 + 5.0, 10.0, simulated=100.0, cold=True),
                   compile_seconds=5.0)
    costs = script_costs(profile.entries, profile.valid, learn([cold]))
    assert costs[STANDALONE.key].fixed == pytest.approx(4.2)
    assert costs[O2.key].cold_extra == pytest.approx(5.0)
    assert costs[O2.key].fixed == pytest.approx(3.5 * 4.2 / 3.5)  # scaled by a measured set-up


def test_a_run_that_draws_random_numbers_unlike_the_scripts_previous_run_says_so() -> None:
    """Measured with a Wang & Buzsaki network using rand() for its initial values: the same
    seed gave 139554 spikes without OpenMP and 143122 with 2 threads (Brian2's standalone
    draws from one generator per thread)."""
    from autotune.runrecord import random_draws, random_draws_note

    t2 = standalone_config(2)
    numpy = RunConfig("runtime", "numpy")
    assert random_draws(STANDALONE.key) == random_draws(O2.key)  # flags draw alike
    assert random_draws(t2.key) == "cpp_standalone with 2 OpenMP threads"
    assert random_draws(numpy.key) != random_draws(RunConfig("runtime", "cython").key)
    earlier = replace(_run(t2, 1.0, 1.0), created_at="2026-11-29T00:00:00+00:00")
    failed = replace(_run(numpy, 1.0, 1.0, exit_code=1), created_at="2026-12-01T00:00:00+00:00")
    runs = [earlier, _run(STANDALONE, 1.0, 1.0), failed]  # the last good run: no OpenMP
    assert random_draws_note(runs, O2.key) == ""
    assert random_draws_note([], t2.key) == ""
    plain = RunConfig("runtime", "cython").key  # what `python script.py` uses
    assert random_draws_note([], plain, plain) == ""
    first = random_draws_note([], t2.key, plain)
    assert "a plain run of the script (python, Brian2's default) draws them with Cython" in first
    assert "previous run" in random_draws_note(runs, t2.key, plain)  # a run of it, not plain
    note = random_draws_note(runs, t2.key)
    assert "drawn with cpp_standalone with 2 OpenMP threads" in note
    assert "previous run drew them with cpp_standalone without OpenMP" in note


def test_runs_that_shared_their_cpus_are_kept_but_not_learned_from(tmp_path: Path) -> None:
    """A parallel sweep's runs share the CPUs: one without OpenMP left 0.67 of a CPU (three runs
    on two), one with 2 threads left 1.5, and a cold build (``make -j``, on every CPU) left
    0.95 of two teach nothing; a single-thread run beside one busy core of two is not slowed
    and teaches. The stored runs keep the figures (real SQLite, read as apply reads them)."""
    from autotune.store.lite import read_script_runs
    from autotune.store.lite import record_run as lite_record_run

    t2 = standalone_config(2)
    quiet = replace(_run(STANDALONE, 4.0, 10.0), free_cpus=1.98)
    beside_one = replace(_run(STANDALONE, 4.2, 10.4), free_cpus=1.0)
    in_sweep = replace(_run(STANDALONE, 7.0, 16.0), free_cpus=0.67)
    t2_shared = replace(_run(t2, 4.0, 12.0), free_cpus=1.5)
    unknown = _run(STANDALONE, 4.1, 10.2)
    cold_shared = replace(_run(STANDALONE, 24.0, 10.1, cold=True), free_cpus=0.95, cpus=2)
    cold_alone = replace(_run(STANDALONE, 15.0, 10.1, cold=True), free_cpus=1.97, cpus=2)
    assert [r.crowded for r in (quiet, beside_one, in_sweep, t2_shared, unknown, cold_shared,
                                 cold_alone)] == [False, False, True, True, False, True, False]
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    with open_store(url):
        pass  # creates the schema
    for record in (quiet, beside_one, in_sweep, t2_shared, unknown, cold_shared):
        assert lite_record_run(url, record)
    stored = read_script_runs(url, "fp", "d")
    assert [(r.free_cpus, r.cpus) for r in stored] == [
        (1.98, None), (1.0, None), (0.67, None), (1.5, None), (None, None), (0.95, 2)]
    own = learn(stored)
    assert set(own) == {STANDALONE.key}  # the 2-thread run shared its CPUs: nothing learned
    assert own[STANDALONE.key].runs == 3
    assert own[STANDALONE.key].rate == pytest.approx(1.02)  # not the sweep's 1.6
    assert own[STANDALONE.key].cold_extra is None  # the only cold build shared its CPUs


def test_a_crowded_run_that_kept_one_cpu_busy_teaches_at_the_pace_of_its_cpu_time(
        tmp_path: Path) -> None:
    """Three runs of a sweep on two CPUs: a warm one without OpenMP got a third of a CPU, and
    its times at that pace are what it would take alone (measured: 20.0 s crowded, 6.38 s at
    its CPU pace, 6.9 s alone). A 2-thread run and a cold build cannot be paced (several CPUs,
    each shared differently) and teach nothing. Stored and read back as apply reads them."""
    from autotune.store.lite import read_script_runs
    from autotune.store.lite import record_run as lite_record_run

    swept = replace(_run(STANDALONE, 15.0, 6.0), free_cpus=0.34, loop_cpu_share=0.3,
                    setup_cpu_share=0.32)
    loop_too_short = replace(_run(STANDALONE, 15.0, 0.3), free_cpus=0.34,
                             setup_cpu_share=0.32)
    threaded = replace(_run(standalone_config(2), 15.0, 30.0), free_cpus=1.3,
                       loop_cpu_share=0.64, setup_cpu_share=0.2)
    cold = replace(_run(STANDALONE, 24.0, 0.3, cold=True), free_cpus=0.9, cpus=2,
                   loop_cpu_share=0.4, setup_cpu_share=0.9)
    unpaced = replace(_run(STANDALONE, 15.0, 6.0), free_cpus=0.34)  # recorded before 0006
    assert swept.times_alone() == pytest.approx((15.0 * 0.32, 6.0 * 0.3))
    assert loop_too_short.times_alone() == pytest.approx((15.0 * 0.32, 0.3 * 0.32))
    assert [r.times_alone() for r in (threaded, cold, unpaced)] == [None, None, None]
    alone = replace(_run(STANDALONE, 4.0, 2.0), free_cpus=1.99, loop_cpu_share=0.3)
    assert alone.times_alone() == (4.0, 2.0)  # a run with its CPUs is taken as measured
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    with open_store(url):
        pass  # creates the schema
    for record in (swept, threaded, cold, unpaced):
        assert lite_record_run(url, record)
    stored = read_script_runs(url, "fp", "d")
    assert [(r.loop_cpu_share, r.setup_cpu_share) for r in stored] == [
        (0.3, 0.32), (0.64, 0.2), (0.4, 0.9), (None, None)]
    own = learn(stored)
    assert set(own) == {STANDALONE.key} and own[STANDALONE.key].runs == 1
    assert own[STANDALONE.key].build == pytest.approx(4.8)
    assert own[STANDALONE.key].rate == pytest.approx(0.18)


def test_a_store_of_an_older_schema_still_teaches_before_it_is_upgraded(tmp_path: Path) -> None:
    """apply reads a script's runs with sqlite3 alone: a store made before the newest column
    gives its runs with that value unknown, rather than nothing to learn from."""
    from autotune.store.lite import read_script_runs
    from autotune.store.repository import Store

    url = f"sqlite:///{tmp_path / 'old.db'}"
    with Store(url, _revision="0004").engine.begin() as connection:
        from sqlalchemy import text

        connection.execute(text(
            "INSERT INTO autotune_runs (fingerprint, config_key, source, simulated, "
            "actual_total, actual_build, actual_loop, exit_code, created_at, script_digest) "
            "VALUES ('fp', :key, 'profile', 10.0, 14.0, 4.0, 10.0, 0, '2026-11-30', 'd')"),
            {"key": STANDALONE.key})
    (run,) = read_script_runs(url, "fp", "d")
    assert run.free_cpus is None and run.actual_loop == 10.0
    assert learn([run])[STANDALONE.key].rate == pytest.approx(1.0)


SPINS_AFTER_ITS_RUN = TINY.replace("print('done')", """import time
started = time.perf_counter()
while time.perf_counter() - started < 1.5:  # the run lasts long enough to sample its CPUs
    pass
print('done')""")


@pytest.mark.slow
def test_a_run_beside_busy_processes_is_recorded_as_crowded_and_teaches_at_its_cpu_pace(
        db_url: str, tmp_path: Path) -> None:
    """A real run with twice as many spinning processes as CPUs beside it gets well under one
    CPU: it is recorded with what it was left and its own CPU pace, and the next run learns
    from its times at that pace (numpy: one thread), and says so."""
    import os
    import subprocess
    import sys

    from autotune.host import collect_host, cython_available

    host = collect_host()
    with open_store(db_url) as store:
        store.save_profile(make_profile(host))
    script = tmp_path / "swept.py"
    script.write_text(SPINS_AFTER_ITS_RUN)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                for _ in range(2 * (cpus or 1))]
    try:
        crowded_run = run_cli("run", "--db", db_url, str(script))
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    assert crowded_run.returncode == 0, crowded_run.stderr
    if cython_available(host):  # numpy draws unlike a plain run's Cython
        assert "a plain run of the script" in " ".join(crowded_run.stderr.split())
    with open_store(db_url) as store:
        (first,) = store.runs()
    if first.free_cpus is None:
        pytest.skip("no per-CPU times on this platform")
    assert first.free_cpus < 0.9  # a fair share of the CPUs is under half of one
    assert first.crowded and first.setup_cpu_share is not None
    assert first.setup_cpu_share < 0.9  # it spun 1.5 s at its share of a CPU
    alone = first.times_alone()
    assert alone is not None and sum(alone) < first.actual_total  # type: ignore[operator]
    assert "at the pace of its own CPU time it would have taken" in " ".join(
        crowded_run.stderr.split())
    after = run_cli("run", "--db", db_url, str(script))
    assert after.returncode == 0, after.stderr
    with open_store(db_url) as store:
        second = store.runs()[-1]
    assert second.source == "script"  # its own run, at its CPU pace
    said = " ".join(after.stderr.split())  # the log wraps long lines
    assert ("1 of the script's 1 recorded runs shared their CPUs with other work (runs "
            "started together, as in a parallel sweep) and are learned from at the pace of "
            "their own CPU time") in said


def test_runs_that_shared_their_cpus_do_not_count_against_the_profiles_predictions() -> None:
    """Three crowded runs 60 % slower than predicted, two alone 5 % slower: `show` does not
    ask for a recalibration because a sweep shared its CPUs."""
    from autotune.report import prediction_quality

    profile = make_profile(make_host())

    def made_with_profile(actual: float, free_cpus: float) -> RunRecord:
        return replace(_run(STANDALONE, 4.0, actual - 4.0), predicted_total=10.0,
                       workload_signature=profile.workload["signature"],
                       profile_created_at=profile.created_at, free_cpus=free_cpus)

    runs = [made_with_profile(10.5, 1.97), made_with_profile(10.5, 1.99),
            *(made_with_profile(16.0, 0.6) for _ in range(3))]
    quality = prediction_quality(profile, runs)
    assert quality["runs"] == 2 and not quality["recalibrate"]
    assert quality["median_error"] == pytest.approx(0.05)


def test_runs_of_another_size_teach_nothing_of_this_one() -> None:
    """A script whose size comes from outside its text (an environment variable, a data file)
    keeps one digest: only its runs of this model's size (by their dry passes) are learned
    from. Seeds that drew a few more synapses are the same model; a run recorded without its
    dry pass's size is kept."""
    from autotune.learned import of_size

    small = [replace(_run(STANDALONE, 4.0, 0.3), dry_neurons=500, dry_synapses=s)
             for s in (25_000, 25_900)]
    large = replace(_run(STANDALONE, 9.0, 20.0), dry_neurons=4000, dry_synapses=1_600_000)
    unknown = _run(STANDALONE, 4.1, 0.3)
    kept, others = of_size([*small, large, unknown], 500, 25_400)
    assert kept == [*small, unknown] and others == 1
    kept, others = of_size([*small, large, unknown], 4000, 1_600_000)
    assert kept == [large, unknown] and others == 2


def test_show_lists_what_was_learned_per_model_size() -> None:
    """One script run at two sizes (from its environment): ``show`` gives each size its own
    rows, each learned from that size's runs only."""
    from autotune.learned import by_size
    from autotune.scriptreport import script_rows

    small = [replace(_run(STANDALONE, 4.0, 3.0), dry_neurons=500, dry_synapses=25_000 + 300 * k,
                     neurons=500) for k in range(3)]
    large = [replace(_run(STANDALONE, 9.0, 40.0), dry_neurons=4000, dry_synapses=1_600_000,
                     neurons=4000)]
    unsized = [_run(STANDALONE, 4.0, 3.0)]
    mixed = [small[0], large[0], small[1], unsized[0], small[2]]
    assert by_size(mixed) == [small, large, unsized]
    rows = script_rows([*small[:2], *large, small[2]])
    assert [(r["neurons"], r["runs"], r["rate_s_per_s"]) for r in rows] == [
        (500, 3, pytest.approx(0.3)), (4000, 1, pytest.approx(4.0))]


def test_show_prints_a_scripts_digest_and_brackets_in_its_path_as_written() -> None:
    """rich read ``mine.py [f45c4512]`` as a style tag and dropped the digest (digests that
    start with a digit survived); a path with ``[/`` in it would have stopped ``show``."""
    from rich.console import Console

    from autotune.scriptreport import script_rows, scripts_renderable

    runs = [replace(_run(STANDALONE, 4.0, 3.0), script="/data/run[/x]/mine.py",
                    script_digest="f45c451232883501")]
    console = Console(width=200, record=True)
    console.print(scripts_renderable(script_rows(runs)))
    assert "mine.py [f45c4512]" in console.export_text()


def test_a_runs_time_is_counted_from_the_moment_its_process_started() -> None:
    """What a run took is its process's wall time since it started: never more than the time
    since its parent started it (psutil's start time, a boot time in whole seconds plus the
    start counted from boot, made every run up to a second longer than it was), nor less than
    what the process itself lived through."""
    code = ("import time\n"
            "first_line = time.perf_counter()\n"
            "from autotune.runrecord import _process_wall\n"
            "wall = _process_wall()\n"
            "print(wall, time.perf_counter() - first_line)\n")
    started = time.perf_counter()
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True, cwd=Path(__file__).resolve().parent.parent)
    elapsed = time.perf_counter() - started
    wall, lived = (float(word) for word in child.stdout.split())
    assert lived <= wall <= elapsed + 0.011  # the start is known to a clock tick (10 ms)
