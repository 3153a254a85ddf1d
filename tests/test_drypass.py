"""The dry pass: a script's features before its first run, without simulating a step."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from autotune.drypass import (
    CythonCacheFound,
    alike_features,
    cache_file,
    cached_features,
    cython_cache_found,
    first_run_length,
    script_features,
    workload_features,
)
from autotune.errors import ScriptError, WorkloadError
from autotune.features import COUNTING, INVERSION_STEP_COST, ModelFeatures
from autotune.paths import write_json_atomically
from autotune.workloads import resolve_workload

MARKED = """
import sys
from brian2 import *
N = int(sys.argv[1])
G = NeuronGroup(N, '''dv/dt = (I - v)/(10*ms) : 1
                      dI/dt = -I/(5*ms) : 1''', threshold='v > 1', reset='v = 0')
P = PoissonGroup(7, 10*Hz)
S = Synapses(P, G, 'w : 1', on_pre='I += w')
S.connect()
M = SpikeMonitor(G)

@network_operation
def mark():
    open(sys.argv[2], 'w').write('the loop ran')

print('set up')
run(10000*second)
"""


def test_the_dry_pass_counts_the_model_and_never_runs_the_loop(tmp_path: Path) -> None:
    script, marker = tmp_path / "model.py", tmp_path / "marker"
    script.write_text(MARKED)
    features = script_features(script, ["30", str(marker)], "d1", tmp_path / "cache")
    assert features is not None
    assert not marker.exists()  # a network_operation runs every step: none was taken
    assert (features.neurons, features.synapses) == (37, 7 * 30)
    assert features.state_variables == 30 * 2 + 7
    assert features.operations == 30 * 6 + 7  # (I - v)/(10*ms) and -I/(5*ms): 3 each
    assert features.objects >= 5 and features.seconds is not None and features.seconds > 0
    assert cache_file(tmp_path / "cache", "d1", ["30", str(marker)]).exists()
    assert first_run_length(tmp_path / "cache", "d1", ["30", str(marker)]) == 10000.0
    assert first_run_length(tmp_path / "cache", "d1", ["31", str(marker)]) is None
    script.unlink()  # the same text and arguments again: read from the cache, not run
    assert script_features(script, ["30", str(marker)], "d1", tmp_path / "cache") == features


SEEDED = """
import sys
from brian2 import *
open(sys.argv[3], 'a').write('pass\\n')
G = NeuronGroup(int(sys.argv[1]), 'dv/dt = -v/(10*ms) : 1')
seed(int(sys.argv[2]))
run(1*second)
"""


def test_a_sweep_over_seeds_pays_its_dry_pass_twice_not_for_every_seed(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Seeds 1 and 2 gave the same model, so seed 3 takes it without a dry pass; a size
    given where both had the same one is counted afresh."""
    script, passes, cache = tmp_path / "sweep.py", tmp_path / "passes", tmp_path / "cache"
    script.write_text(SEEDED)
    for seed in ("1", "2"):
        features = script_features(script, ["4", seed, str(passes)], "sweep", cache)
        assert features is not None and features.neurons == 4
    with caplog.at_level(logging.INFO, logger="autotune.drypass"):
        third = script_features(script, ["4", "3", str(passes)], "sweep", cache)
    assert third is not None and replace(third, seconds=None) == replace(features, seconds=None)
    assert "as its dry passes with 2 other argument lists gave alike" in caplog.text
    assert passes.read_text().count("pass") == 2
    bigger = script_features(script, ["6", "1", str(passes)], "sweep", cache)
    assert bigger is not None and bigger.neurons == 6
    assert passes.read_text().count("pass") == 3


def _features(neurons: int, synapses: int = 0) -> ModelFeatures:
    return ModelFeatures(neurons, neurons, neurons, synapses, 0, 2, seconds=3.0)


@pytest.mark.parametrize(("cached", "asked", "neurons"), [
    ({("4", "1"): 4, ("4", "2"): 4}, ("4", "3"), 4),        # seeds vary: alike
    ({("4", "1"): 4, ("4", "2"): 4}, ("6", "1"), None),     # a position that never varied
    ({("4", "1"): 4, ("4", "2"): 4}, ("4", "3", "x"), None),  # another length
    ({("4", "1"): 4}, ("4", "2"), None),                    # one list vouches for nothing
    ({("4", "1"): 4, ("6", "1"): 6}, ("8", "1"), None),     # sizes differ: not alike
    ({("4", "1"): 4, ("4", "2"): 4, ("6", "1"): 6, ("6", "2"): 6}, ("6", "3"), 6),
])
def test_features_are_taken_from_other_arguments_only_where_they_are_alike(
        tmp_path: Path, cached: dict[tuple[str, ...], int], asked: tuple[str, ...],
        neurons: int | None) -> None:
    for arguments, count in cached.items():
        write_json_atomically(cache_file(tmp_path, "text", arguments), {
            "arguments": list(arguments), "features": _features(count).to_dict()})
    found = alike_features(tmp_path, "text", asked)
    assert (None if found is None else found[0].neurons) == neurons


@pytest.mark.parametrize(("cached", "asked", "seconds"), [
    # seeds of one length vouch for another seed, and for its length
    ({("1", "1"): 1.0, ("1", "2"): 1.0}, ("1", "3"), 1.0),
    # lengths swept: another length gets a dry pass of its own
    ({("1", "1"): 1.0, ("2", "1"): 2.0}, ("3", "1"), None),
    ({("1", "1"): 1.0, ("2", "1"): 2.0}, ("2", "1"), 2.0),  # its own dry pass
])
def test_argument_lists_vouch_for_a_length_only_where_they_saw_the_same(
        tmp_path: Path, cached: dict[tuple[str, ...], float], asked: tuple[str, ...],
        seconds: float | None) -> None:
    for arguments, length in cached.items():
        write_json_atomically(cache_file(tmp_path, "text", arguments), {
            "arguments": list(arguments), "features": _features(4).to_dict(),
            "first_run": length})
    assert first_run_length(tmp_path, "text", asked) == seconds
    vouched = alike_features(tmp_path, "text", asked)
    assert (vouched is not None) == (seconds is not None and asked not in cached)


def test_features_counted_another_way_are_counted_again(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A script's cached dry pass is not read by a version that counts features otherwise
    (one that priced a binomial draw by inversion as one uniform draw, say)."""
    write_json_atomically(cache_file(tmp_path, "text", []), {
        "arguments": [], "features": _features(10).to_dict()})
    assert cached_features(tmp_path, "text", []) is not None
    monkeypatch.setattr("autotune.drypass.COUNTING", COUNTING + 1)
    assert cached_features(tmp_path, "text", []) is None


@pytest.mark.parametrize(("synapses", "alike"), [((1000, 1030), True), ((1000, 1200), False)])
def test_seeds_that_drew_a_few_more_synapses_still_vouch_for_the_next_seed(
        tmp_path: Path, synapses: tuple[int, int], alike: bool) -> None:
    """connect(p=...) draws another synapse count with each seed of a small network."""
    for seed, count in zip(("1", "2"), synapses, strict=True):
        write_json_atomically(cache_file(tmp_path, "text", ["100", seed]), {
            "arguments": ["100", seed], "features": _features(100, count).to_dict()})
    assert (alike_features(tmp_path, "text", ["100", "3"]) is not None) == alike


@pytest.mark.slow
def test_a_script_that_fails_or_never_runs_gives_no_features(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    failing, idle = tmp_path / "failing.py", tmp_path / "idle.py"
    failing.write_text(f"open({str(tmp_path / 'tries')!r}, 'a').write('x')\n"
                       "from brian2 import *\nraise ValueError('bad parameter')\nrun(1*second)\n")
    idle.write_text("from brian2 import *\nG = NeuronGroup(3, 'v : 1')\n")
    with caplog.at_level(logging.INFO, logger="autotune.drypass"):
        assert script_features(failing, [], "d2", tmp_path / "cache") is None
        assert script_features(idle, [], "d3", tmp_path / "cache") is None
    assert "ValueError: bad parameter" in caplog.text
    assert "finished without calling run()" in caplog.text
    for digest in ("d2", "d3"):
        assert not cache_file(tmp_path / "cache", digest, []).exists()  # no features cached
    # a failure from before this run started is tried again (a file it needs may exist now)
    assert script_features(failing, [], "d2", tmp_path / "cache") is None
    assert (tmp_path / "tries").read_text() == "xx"


POOLED = """
import multiprocessing, os, sys
from brian2 import *

def simulate(tau):
    open(os.path.join(sys.argv[1], 'worker-%d' % os.getpid()), 'w').close()
    G = NeuronGroup(int(sys.argv[2]), 'dv/dt = -v/tau : 1', method='exact')

    @network_operation
    def mark():
        open(os.path.join(sys.argv[1], 'the loop ran'), 'w').close()

    run(10000*second)
    return 0

if __name__ == '__main__':
    with multiprocessing.get_context(sys.argv[3]).Pool(2) as pool:
        pool.map(simulate, [5*ms, 6*ms, 7*ms, 8*ms])
"""


@pytest.mark.parametrize("start_method", ["fork", "spawn", "forkserver"])
def test_a_script_whose_pool_workers_run_the_networks_is_counted_in_a_worker(
        tmp_path: Path, start_method: str) -> None:
    """Brian2's multiprocessing examples call run() in a Pool's workers. A forked worker
    stopped at its run() died, its pool waited for the task for ever, and the dry pass of
    ``01_using_cython.py`` took its whole timeout (300 s) before the script's first run.
    Workers started afresh (spawn: macOS's default; forkserver: Python 3.14's) ran the whole
    simulation in the dry pass, on every run of the script. The first worker to reach run()
    is counted, and no process of the dry pass is left."""
    import psutil

    script, folder = tmp_path / "pooled.py", tmp_path / "marks"
    script.write_text(POOLED)
    folder.mkdir()
    features = script_features(script, [str(folder), "12", start_method], "dpool",
                               tmp_path / "cache", timeout=120)
    assert features is not None and features.neurons == 12
    assert not (folder / "the loop ran").exists()
    workers = [int(mark.name.removeprefix("worker-")) for mark in folder.glob("worker-*")]
    assert workers  # the network was counted in a worker
    running = [psutil.Process(pid) for pid in workers if psutil.pid_exists(pid)]
    _, alive = psutil.wait_procs(running, timeout=60)
    assert all(p.status() == psutil.STATUS_ZOMBIE for p in alive), alive


def test_a_built_in_workload_is_counted_as_a_script_would_be() -> None:
    features = workload_features(resolve_workload("cuba", 50).to_dict())
    assert features.neurons == 50 and features.state_variables == 150
    assert features.operations == 50 * 10
    assert 0 < features.synapses <= 50 * 50  # at most all-to-all at this size


NOISY = '''
from brian2 import *
G = NeuronGroup(20, """dv/dt = (-v + 0.1*xi_a*sqrt(10*ms) + 0.2*xi_b*sqrt(10*ms))/(10*ms) : 1
                       du/dt = (-u + 0.3*xi_a*sqrt(10*ms))/(10*ms) : 1""",
                threshold='v > 1', reset='v = 0', method='euler')
S = Synapses(G, G, "dx/dt = (-x + 0.1*xi_c*sqrt(10*ms))/(10*ms) : 1 (clock-driven)",
             method='euler')
S.connect(j='i')
run(1*second)
'''


def test_noise_is_counted_as_one_normal_draw_per_noise_variable_and_step(
        tmp_path: Path) -> None:
    script = tmp_path / "noisy.py"
    script.write_text(NOISY)
    features = script_features(script, [], "d4", tmp_path / "cache")
    assert features is not None
    # xi_a drives two equations but is drawn once; the clock-driven synapses draw their own
    assert features.random_normals == 20 * 2 + 20 * 1
    assert "60 noise draws per 0.1 ms" in features.describe()
    synfire = workload_features(resolve_workload("synfire", 10).to_dict())
    assert synfire.random_normals == 10 and synfire.neurons == 10 + 5  # the chain, its volley


POISSON = """
from brian2 import *
P = PoissonGroup(50, 15*Hz)
G = NeuronGroup(20, 'dv/dt = (-v + 0.1*rand())/(10*ms) : 1', threshold='v > 1', reset='v = 0',
                method='euler')
H = NeuronGroup(30, 'dv/dt = -v/(10*ms) : 1', threshold='v > 1', reset='v = 0')
sparse = PoissonInput(G, 'v', N=10, rate=1*Hz, weight=0.1)
dense = PoissonInput(H, 'v', N=100000, rate=10*Hz, weight=0.001)
S = Synapses(P, G, on_pre='v += 0.1')
S.connect(j='i % 20')
run(1*second)
"""


def test_poisson_inputs_and_rand_are_counted_as_the_draws_brian2_makes(tmp_path: Path) -> None:
    """STDP's loop was predicted at 0.08 of its own while its 4000 Poisson inputs' draws went
    uncounted. A PoissonGroup draws a uniform number per input and step; a PoissonInput one
    binomial per target, by inversion from a uniform draw where it is sparse (10 inputs at
    1 Hz: 0.001 spikes a step) and by a normal draw where Brian2 approximates it (100000 at
    10 Hz: 100 a step)."""
    script = tmp_path / "poisson.py"
    script.write_text(POISSON)
    features = script_features(script, [], "d-poisson", tmp_path / "cache")
    assert features is not None
    assert features.random_uniforms == 50 + 20 + 20  # the group, rand() in G, sparse
    assert features.random_normals == 30  # dense, approximated for each of H's neurons
    assert "90 uniform draws per 0.1 ms" in features.describe()
    stdp = workload_features(resolve_workload("stdp", 40).to_dict())
    assert (stdp.random_uniforms, stdp.random_normals) == (40, 0)


BRUNEL_INPUT = """
from brian2 import *
G = NeuronGroup(40, 'dv/dt = -v/(20*ms) : volt', threshold='v > 20*mV', reset='v = 10*mV')
external = PoissonInput(G, 'v', N=160, rate=125*Hz, weight=0.1*mV)
run(1*second)
"""


def test_a_binomial_drawn_by_inversion_costs_its_expected_steps(tmp_path: Path) -> None:
    """Brunel (2000)'s external input draws 2 spikes a step on average for each neuron (160
    inputs at 125 Hz), by inversion: a uniform draw and about two steps of a walk, which cost
    more than a normal draw (half its loop, priced as one uniform draw it was predicted 7.5
    times too light)."""
    script = tmp_path / "brunel_input.py"
    script.write_text(BRUNEL_INPUT)
    features = script_features(script, [], "d-brunel-input", tmp_path / "cache")
    assert features is not None
    assert features.random_uniforms == 40
    assert features.random_normals == round(40 * 160 * 125 * 1e-4 * INVERSION_STEP_COST)


FINE_STEPS = """
from brian2 import *
defaultclock.dt = {dt}*ms
G = NeuronGroup(40, 'dv/dt = (-v + 0.1*xi*sqrt(10*ms))/(10*ms) : 1', threshold='v > 1',
                reset='v = 0', method='euler')
S = Synapses(G, G, on_pre='v += 0.01')
S.connect(j='i')
M = StateMonitor(G, 'v', record=0, dt=1*ms)
run(1*second)
"""


def test_the_work_of_each_step_is_counted_per_simulated_time_whatever_the_time_step(
        tmp_path: Path) -> None:
    counted = {}
    for dt in ("0.1", "0.01"):
        script = tmp_path / f"dt{dt}.py"
        script.write_text(FINE_STEPS.format(dt=dt))
        counted[dt] = script_features(script, [], f"dt-{dt}", tmp_path / "cache")
    default, fine = counted["0.1"], counted["0.01"]
    assert default is not None and fine is not None
    assert (fine.neurons, fine.synapses, fine.objects) == (40, 40, default.objects)
    assert default.random_normals == 40 and fine.random_normals == 10 * 40
    assert default.operations > 40 and fine.operations == 10 * default.operations
    # the monitor records every 1 ms whatever the default clock: a tenth of a step each time
    assert default.object_steps == default.objects - 1  # 0.1 rounds away
    assert fine.object_steps == 10 * (fine.objects - 1)
    assert "object steps per 0.1 ms" in fine.describe()


SIZED = """
import sys
from brian2 import *
defaultclock.dt = 0.01*ms
G = NeuronGroup(int(sys.argv[1]), '''dv/dt = (-g*n**4*(v + 0.09) - (v + 0.065))/ms : 1
                                      dn/dt = (exp(-v/0.02) * (1 - n) - n)/ms : 1
                                      g : 1''', method='euler')
run(1*second)
"""


def test_numpys_operations_on_whole_arrays_are_counted_once_per_group(tmp_path: Path) -> None:
    """numpy pays a call for each operation of a group's equations, however many neurons it
    has: Brian2's one-neuron Wang_Buszaki_1996.py ran 4 times slower under numpy than the
    operations summed over neurons predicted."""
    script = tmp_path / "sized.py"
    script.write_text(SIZED)
    one, thirty = (script_features(script, [size], "d-sized", tmp_path / "cache")
                   for size in ("1", "30"))
    assert one is not None and thirty is not None
    assert thirty.operations == 30 * one.operations
    # the same equations, stepped every 0.01 ms: ten steps per 0.1 ms, one call per operation
    assert thirty.vector_operations == one.vector_operations == one.operations > 10 * 10


TWO_PATHWAYS = """
from brian2 import *
G = NeuronGroup(6, 'dv/dt = -v/(10*ms) : 1', threshold='v > 1', reset='v = 0')
delayed = Synapses(G, G, 'w : 1', on_pre={'up': 'v += w', 'down': 'v -= w'},
                   delay={'up': 0*ms, 'down': 1*ms})
delayed.connect()
learning = Synapses(G, G, 'w : 1', on_pre='v += w', on_post='w += 0.01')
learning.connect(j='i')
run(1*second)
"""


def test_only_synapses_updated_on_postsynaptic_spikes_count_as_plastic(tmp_path: Path) -> None:
    script = tmp_path / "pathways.py"
    script.write_text(TWO_PATHWAYS)
    features = script_features(script, [], "d5", tmp_path / "cache")
    assert features is not None
    # Izhikevich (2003) in Brian2's examples: two delayed presynaptic pathways, no learning
    assert (features.synapses, features.plastic_synapses) == (36 + 6, 6)


def test_a_workload_file_that_fails_is_one_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("def simulate(duration):\n    raise RuntimeError('no model here')\n")
    with pytest.raises(WorkloadError, match="cannot read the features of workload broken.*"
                                            "no model here"):
        workload_features(resolve_workload(str(broken)).to_dict())


HELD = '''
import sys, time
from pathlib import Path
folder = Path(sys.argv[1])
with open(folder / "passes", "a") as passes:
    passes.write("one dry pass\\n")
deadline = time.monotonic() + 120
while not (folder / "go").exists() and time.monotonic() < deadline:
    time.sleep(0.05)
if sys.argv[2] == "fail":
    raise ValueError("bad parameter")
from brian2 import *
G = NeuronGroup(4, 'dv/dt = -v/(10*ms) : 1')
run(1*second)
'''

SWEEP_RUN = '''
import json, sys
from pathlib import Path
from autotune.drypass import script_features
folder, index, outcome = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
(folder / f"ready-{index}").touch()
features = script_features(folder / "model.py", [str(folder), outcome], "sweep",
                           folder / "cache")
print(json.dumps(None if features is None else features.neurons))
'''


def _wait_for(condition: Callable[[], bool], what: str, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.parametrize("outcome, answer", [("ok", 4), ("fail", None)])
def test_a_sweep_started_together_does_one_dry_pass_and_shares_its_outcome(
        tmp_path: Path, outcome: str, answer: int | None) -> None:
    """Three runs of one script reach the dry pass while the first one's is still going (it
    waits for a file the test makes once all three are there): the others wait for it and
    read its features, or its failure, instead of each doing their own."""
    (tmp_path / "model.py").write_text(HELD)
    runs = [subprocess.Popen([sys.executable, "-c", SWEEP_RUN, str(tmp_path), str(index),
                              outcome], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, cwd=Path(__file__).parent.parent)
            for index in range(3)]
    try:
        _wait_for(lambda: all((tmp_path / f"ready-{i}").exists() for i in range(3)),
                  "the three runs to reach the dry pass")
        _wait_for(lambda: (tmp_path / "passes").exists(), "the first dry pass to start")
        (tmp_path / "go").touch()
        outputs = [run.communicate(timeout=300) for run in runs]
    finally:
        for run in runs:
            run.kill()
    assert [json.loads(out) for out, _ in outputs] == [answer] * 3, outputs
    assert (tmp_path / "passes").read_text().count("one dry pass") == 1


COSTLY = """
from brian2 import *
tau = 10*ms
G = NeuronGroup(30, '''dv/dt = (exp(-v) - v*exp(-1.0) + 0.1*randn()*sqrt(tau/ms))/tau : 1
                       rate = log(1 + v**2)/ms : Hz''', method='euler')
run(1*second)
"""


@pytest.mark.slow
def test_costly_functions_are_counted_where_they_depend_on_the_state() -> None:
    """exp(-v) and log(1 + v**2) run for every neuron each step; exp(-1.0) and sqrt(tau/ms)
    are constants, computed once outside the loop; randn() is a noise draw."""
    hodgkin_huxley = workload_features(resolve_workload("coba-hh", 10).to_dict())
    interneurons = workload_features(resolve_workload("wang-buzsaki", 10).to_dict())
    cuba = workload_features(resolve_workload("cuba", 10).to_dict())
    # three exprel and three exp rate functions of the membrane potential each
    assert hodgkin_huxley.function_calls == interneurons.function_calls == 10 * 6
    assert cuba.function_calls == 0


def test_a_scripts_costly_calls_and_noise_draws_are_counted(tmp_path: Path) -> None:
    script = tmp_path / "costly.py"
    script.write_text(COSTLY)
    features = script_features(script, [], "d-costly", tmp_path / "cache")
    assert features is not None
    assert features.function_calls == 30 * 2 and features.random_normals == 30
    assert "60 costly function calls per 0.1 ms" in features.describe()


def test_the_name_that_compiled_a_scripts_cython_code_is_read_from_its_dry_pass(
        tmp_path: Path) -> None:
    """The name that holds the most modules counts, this interpreter's own on a tie, and only
    all of them make the code complete; arguments taken from alike ones without a dry pass
    take the most complete of what those found, while a dry pass that looked and found
    nothing is believed."""
    cache, other = tmp_path / "cache", "/venv/bin/python3"

    def entry(args: list[str], state: object) -> None:
        write_json_atomically(cache_file(cache, "t", args), {
            "arguments": args, "features": _features(10).to_dict(), "cython_cache": state})

    entry(["1"], {"modules": 5, "cached": {sys.executable: 4, other: 5}, "seconds": 1.0})
    assert cython_cache_found(cache, "t", ["1"]) == CythonCacheFound(other, 5, 5)
    entry(["1"], {"modules": 5, "cached": {sys.executable: 5, other: 5}, "seconds": 1.0})
    found = cython_cache_found(cache, "t", ["1"])
    assert found == CythonCacheFound(sys.executable, 5, 5) and found.complete
    entry(["2"], {"modules": 5, "cached": {sys.executable: 4, other: 0}, "seconds": 1.0})
    found = cython_cache_found(cache, "t", ["2"])  # looked up: not all there
    assert found == CythonCacheFound(sys.executable, 4, 5) and not found.complete
    for alike in ("3", "5", "6"):  # whatever order the files are listed in
        assert cython_cache_found(cache, "t", [alike]) == CythonCacheFound(sys.executable, 5, 5)
    entry(["4"], {"modules": 0, "error": "KeyError: 'x'", "seconds": 0.2})
    assert cython_cache_found(cache, "t", ["4"]) is None
    entry(["7"], {"modules": 5, "cached": {sys.executable: 0, other: 0}, "seconds": 1.0})
    assert cython_cache_found(cache, "t", ["7"]) is None
    assert cython_cache_found(cache, "another text", ["1"]) is None


def test_a_part_found_for_one_seed_does_not_hide_all_found_for_another(tmp_path: Path) -> None:
    """A sweep's seed without a dry pass takes the most complete look-up of its alike seeds,
    whichever cache file is listed first (the first one found used to win)."""
    cache = tmp_path / "cache"
    seeds = sorted((["1"], ["2"], ["3"]), key=lambda args: cache_file(cache, "t", args).name)
    for args, found in zip(seeds[:2], (4, 5), strict=True):  # the part listed first
        write_json_atomically(cache_file(cache, "t", args), {
            "arguments": args, "features": _features(10).to_dict(),
            "cython_cache": {"modules": 5, "cached": {sys.executable: found}, "seconds": 1.0}})
    assert cython_cache_found(cache, "t", ["9"]) == CythonCacheFound(sys.executable, 5, 5)


def test_module_files_listed_by_the_dry_pass_are_looked_for_again(tmp_path: Path) -> None:
    """What the cache holds is read when the run asks, not when the dry pass looked: a plain
    run between the two compiled the modules."""
    cache, other = tmp_path / "cache", "/venv/bin/python3"
    own_files = [tmp_path / f"own{i}.so" for i in range(3)]
    write_json_atomically(cache_file(cache, "t", []), {
        "arguments": [], "features": _features(10).to_dict(),
        "cython_cache": {"modules": 3, "cached": {sys.executable: 0, other: 0},
                         "files": {sys.executable: [str(p) for p in own_files],
                                   other: [str(tmp_path / "elsewhere.so")] * 3},
                         "seconds": 1.0}})
    assert cython_cache_found(cache, "t", []) is None
    own_files[0].write_bytes(b"")
    assert cython_cache_found(cache, "t", []) == CythonCacheFound(sys.executable, 1, 3)
    for path in own_files[1:]:
        path.write_bytes(b"")
    assert cython_cache_found(cache, "t", []).complete  # type: ignore[union-attr]
    own_files[2].unlink()  # Brian2's cache cleared in part
    assert cython_cache_found(cache, "t", []) == CythonCacheFound(sys.executable, 2, 3)


CYTHON_ONLY = """
from brian2 import *
G = NeuronGroup(5, 'dv/dt = (1.2 - v)/(10*ms) : 1', threshold='v > 1', reset='v = 0',
                method='exact')
run(5*ms)
"""


@pytest.mark.slow
def test_a_plain_run_after_the_dry_pass_is_seen_by_the_next_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The dry pass lists the script's Cython modules though Brian2's cache is still empty
    (a user who runs the script under the tool first); once ``python script.py`` compiled them,
    the cached dry pass finds them all (it used to say none, for as long as its cache lived)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    script = tmp_path / "first_under_the_tool.py"
    script.write_text(CYTHON_ONLY)
    assert script_features(script, [], "d-first", tmp_path / "cache") is not None
    assert cython_cache_found(tmp_path / "cache", "d-first", []) is None
    assert not list(home.rglob("*.so"))  # the dry pass compiled nothing
    subprocess.run([sys.executable, str(script)], capture_output=True, timeout=600, check=True)
    found = cython_cache_found(tmp_path / "cache", "d-first", [])
    assert found is not None and found.complete and found.name == sys.executable


def test_a_module_run_with_python_m_is_told_from_a_script(tmp_path: Path) -> None:
    """``python -m pkg.sub.sim`` names the module and the folder above its top package (where
    the dry pass must run it from); ``python pkg/sub/sim.py`` is a script: None."""
    from tests.conftest import REPO

    inner = tmp_path / "pkg" / "sub"
    inner.mkdir(parents=True)
    for folder in (tmp_path / "pkg", inner):
        (folder / "__init__.py").write_text("")
    (inner / "sim.py").write_text("from autotune.paths import main_module\n"
                                  "print(main_module())\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    as_module = subprocess.run([sys.executable, "-m", "pkg.sub.sim"], capture_output=True,
                               text=True, cwd=tmp_path, env=env, check=True)
    assert as_module.stdout.strip() == repr(("pkg.sub.sim", tmp_path.resolve()))
    as_script = subprocess.run([sys.executable, str(inner / "sim.py")], capture_output=True,
                               text=True, cwd=tmp_path, env=env, check=True)
    assert as_script.stdout.strip() == "None"


def test_the_module_run_m_runs_is_found_as_python_m_finds_it(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    """``run -m pkg.sim`` runs ``pkg/sim.py``; ``run -m pkg`` the package's ``__main__.py``;
    both from the folder above the package."""
    from autotune.paths import find_module

    package = tmp_path / "autotune_test_pkg"
    package.mkdir()
    for name in ("__init__.py", "sim.py", "__main__.py"):
        (package / name).write_text("")
    monkeypatch.chdir(tmp_path)
    root = tmp_path.resolve()
    assert find_module("autotune_test_pkg.sim") == (
        root / "autotune_test_pkg" / "sim.py", ("autotune_test_pkg.sim", root))
    assert find_module("autotune_test_pkg") == (
        root / "autotune_test_pkg" / "__main__.py", ("autotune_test_pkg.__main__", root))
    with pytest.raises(ScriptError, match="no Python module 'autotune_test_pkg.nosuch' to run"):
        find_module("autotune_test_pkg.nosuch")
    monkeypatch.delitem(sys.modules, "autotune_test_pkg")  # imported to find its modules
