"""Real scripts run the way users run them: parallel sweeps, reads before run(), progress output.

Every test compares ``brian2-autotune run`` with plain ``python`` on the same script, in real
subprocesses.
"""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, run_cli

# Integer arithmetic only, so that every backend gives the same count exactly; the count grows
# with the script's argument.
SWEEP = """
import sys
from brian2 import *
base = int(sys.argv[1])
G = NeuronGroup(50, '''v : integer
                       drive : integer (constant)''', threshold='v >= 1000', reset='v = 0')
G.drive = 'base + i % 7'
G.v = 'i * 13'
G.run_regularly('v += drive', dt=0.1*ms)
M = SpikeMonitor(G)
run(200*ms, report='text')
print('result', base, M.num_spikes)
"""

# The read hides in a function, where the script analysis cannot see it.
HIDDEN_EARLY_READ = """
from brian2 import *
G = NeuronGroup(10, 'dv/dt = -v/(10*ms) : 1', method='exact')
G.v = 'i'
print('set up')
def peek(group):
    return group.v[:3]
print('first three:', peek(G))
run(10*ms)
print('after:', G.v[:3])
"""


# Records every synapse from inside a function, where the script analysis cannot see it.
HIDDEN_SYNAPSE_RECORDING = """
from brian2 import *
G = NeuronGroup(5, 'v : 1', threshold='True')
S = Synapses(G, G, 'w : 1', on_pre='w += 1')
S.connect(j='i')
print('set up')
def watch(synapses):
    return StateMonitor(synapses, 'w', record=True)
M = watch(S)
run(1*ms)
print('recorded', M.w.shape, M.w[0, -1])
"""


# A model built in a module from a folder of the script's choosing, where the script analysis
# does not look: only the network at run() shows the network_operation.
COUNTING_MODULE = """
from brian2 import *

def build():
    G = NeuronGroup(20, 'v : integer', threshold='v >= 10', reset='v = 0')
    G.run_regularly('v += 1', dt=0.1*ms)
    ticks = []

    @network_operation(dt=1*ms)
    def tick():
        ticks.append(1)

    return G, tick, ticks
"""
#: Its lab folder can be moved with an environment variable: the script analysis does not
#: evaluate that path, so ``counting.py`` is a module it misses, as one installed would be.
COUNTING_SCRIPT = """
import os, sys
sys.path.insert(0, os.environ.get('COUNTING_LIB',
                                  os.path.join(os.path.dirname(os.path.abspath(__file__)), 'lib')))
from brian2 import *
from counting import build

print('set up')
G, tick, ticks = build()
M = SpikeMonitor(G)
run(50*ms)
print('ticks', len(ticks), 'spikes', M.num_spikes)
"""
GSL_MODULE = """
from brian2 import *

def cells():
    return NeuronGroup(5, 'dv/dt = -v/(10*ms) : 1', method='gsl')
"""
GSL_SCRIPT = COUNTING_SCRIPT.split("from counting")[0] + """from cells import cells

print('set up')
G = cells()
run(1*ms)
print('ran')
"""


def _save_test_profile(db_url: str) -> None:
    """A profile where standalone wins long runs and numpy very short ones."""
    from autotune.host import collect_host
    from autotune.store import open_store
    from tests.helpers import make_profile

    with open_store(db_url) as store:
        store.save_profile(make_profile(collect_host()))


def _result_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("result")]


def _start_run(script: Path, *args: str, db: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(REPO / "cli.py"), "run", "--db", db,
                             str(script), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_a_parallel_sweep_gives_every_run_its_own_answer(tmp_path: Path, db_url: str) -> None:
    """Three runs of one script started together used to share one build folder: one printed
    another's answer with exit 0 and one failed to compile."""
    script = tmp_path / "sweep.py"
    script.write_text(SWEEP)
    drives = ("11", "13", "15")
    plain = {d: _result_lines(subprocess.run([sys.executable, str(script), d],
                                             capture_output=True, text=True, check=True,
                                             timeout=300).stdout)
             for d in drives}
    assert len({tuple(lines) for lines in plain.values()}) == 3  # the drive matters
    procs = {d: _start_run(script, d, db=db_url) for d in drives}
    outputs = {d: p.communicate(timeout=600) for d, p in procs.items()}
    for d, (stdout, stderr) in outputs.items():
        assert procs[d].returncode == 0, stderr
        assert _result_lines(stdout) == plain[d], (d, stdout, stderr)
        assert "(100%) simulated" in stdout  # report='text' is shown, as under python
    applied = [line for _, err in outputs.values() for line in err.splitlines()
               if "applied" in line]
    assert any("cpp_standalone" in line for line in applied), applied
    rerun = _start_run(script, "13", db=db_url)
    stdout, stderr = rerun.communicate(timeout=300)
    assert rerun.returncode == 0 and _result_lines(stdout) == plain["13"], stderr


@pytest.mark.slow
def test_a_read_before_run_that_analysis_misses_is_run_under_runtime_and_shown_once(
        tmp_path: Path, db_url: str) -> None:
    script = tmp_path / "hidden.py"
    script.write_text(HIDDEN_EARLY_READ)
    plain = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                           check=True, timeout=300)
    tuned = _start_run(script, db=db_url)
    stdout, stderr = tuned.communicate(timeout=300)
    assert tuned.returncode == 0, stderr
    assert stdout == plain.stdout  # 'set up' once, and the values of a plain run
    assert "running it again under runtime" in stderr and "Traceback" not in stderr
    assert "applied runtime" in stderr.replace("\n", " ")


def test_recording_every_synapse_that_analysis_misses_is_run_under_runtime_and_shown_once(
        tmp_path: Path, db_url: str) -> None:
    """Standalone refuses StateMonitor(S, 'w', record=True) before the run (Brian2's
    Tetzlaff_2015.py and spike_based_homeostasis.py failed so); at 20 s this profile picks
    standalone, so the run starts there, nothing is shown, and it runs again under runtime."""
    _save_test_profile(db_url)  # at 20 s this profile picks standalone
    script = tmp_path / "monitor.py"
    script.write_text(HIDDEN_SYNAPSE_RECORDING)
    tuned = run_cli("run", "--db", db_url, "--duration", "20", str(script), timeout=300)
    assert tuned.returncode == 0, tuned.stderr
    assert tuned.stdout == "set up\nrecorded (5, 10) 9.0\n"
    stderr = tuned.stderr.replace("\n", " ")
    assert "records synapses with StateMonitor" in stderr and "Traceback" not in stderr
    assert "applied cpp_standalone" in stderr and "applied runtime" in stderr


@pytest.mark.slow
def test_an_explicit_standalone_request_on_such_a_script_is_one_clear_error(
        tmp_path: Path, db_url: str) -> None:
    script = tmp_path / "hidden.py"
    script.write_text(HIDDEN_EARLY_READ)
    for override in (["--device", "cpp_standalone"], ["--num-threads", "0"]):
        result = run_cli("run", "--db", db_url, *override, str(script), timeout=300)
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr and "reads state variables" in result.stderr
        assert "set up" not in result.stdout  # nothing was shown of a run that did not happen


def test_a_network_operation_that_analysis_misses_is_run_under_runtime_not_dropped(
        tmp_path: Path, db_url: str) -> None:
    """cpp_standalone runs a network without its network_operation: such a sweep printed
    'ops 0' with exit 0, where python printed 'ops 3000'. At 20 s this profile picks
    standalone; the network is refused at run(), before anything is built or shown, and the
    script runs again under runtime with its operation."""
    _save_test_profile(db_url)  # at 20 s this profile picks standalone
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "counting.py").write_text(COUNTING_MODULE)
    script = tmp_path / "count.py"
    script.write_text(COUNTING_SCRIPT)
    tuned = run_cli("run", "--db", db_url, "--duration", "20", str(script), timeout=300)
    assert tuned.returncode == 0, tuned.stderr
    # 50 ms: one tick a millisecond; each of 20 neurons spikes every 10 steps of 0.1 ms
    assert tuned.stdout == "set up\nticks 50 spikes 1000\n"
    stderr = tuned.stderr.replace("\n", " ")
    assert "network_operation" in stderr and "Traceback" not in stderr
    assert "applied cpp_standalone" in stderr and "applied runtime" in stderr


@pytest.mark.parametrize("read", [False, True], ids=["unread", "read"])
def test_apply_in_a_script_stops_a_network_standalone_would_run_without_its_operation(
        tmp_path: Path, db_url: str, read: bool) -> None:
    """A script that calls autotune.apply() itself cannot be started again: with standalone
    applied, a network_operation from a module the analysis does not read (its folder is put on
    ``sys.path`` after apply(), by a path it does not evaluate) stops the run with the reason
    and what to do, instead of results computed without it. Put there before apply(), the module
    is read as the user's code, and apply() refuses standalone before anything runs."""
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "counting.py").write_text(COUNTING_MODULE)
    script = tmp_path / "applies.py"
    applies = f"import autotune\nautotune.apply(device='cpp_standalone', db={db_url!r})\n"
    script.write_text(COUNTING_SCRIPT.replace("from brian2 import *",
                                              applies + "from brian2 import *")
                      if read else applies + COUNTING_SCRIPT)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=300, cwd=REPO)
    assert done.returncode != 0
    assert "ticks" not in done.stdout
    if read:
        assert "set up" not in done.stdout
        assert ("--device cpp_standalone needs cpp_standalone, which cannot run this script "
                "(uses network_operation (Python code during the run) (in counting.py))"
                ) in done.stderr
    else:
        assert ("uses network_operation (Python code during the run), which cpp_standalone "
                "cannot serve; call autotune.apply(device='runtime')") in done.stderr


# A sweep inside one script: a pool's workers run the simulations; the script itself does not.
POOL_SWEEP = """
import multiprocessing as mp
from brian2 import *

def simulate(drive):
    G = NeuronGroup(50, 'dv/dt = (drive - v)/(10*ms) : 1', threshold='v > 1', reset='v = 0',
                    method='exact')
    M = SpikeMonitor(G)
    run(200*ms)
    return drive, int(M.num_spikes)

if __name__ == '__main__':
    print('sweeping')
    with mp.get_context('fork').Pool(2) as pool:
        for drive, spikes in pool.map(simulate, [1.5, 2.0, 3.0]):
            print(drive, spikes)
"""


def test_a_pool_of_workers_shows_the_scripts_output_once(tmp_path: Path, db_url: str) -> None:
    """Output held until the first run() was inherited by a pool's forked workers, and each
    printed the script's first line again when its own run() released it: 'sweeping' came
    three times. Now the script's output is released when it forks."""
    _save_test_profile(db_url)  # numpy wins a 0.2-s run: its output is held until run()
    script = tmp_path / "pool.py"
    script.write_text(POOL_SWEEP)
    tuned = run_cli("run", "--db", db_url, "--duration", "0.2", str(script), timeout=300)
    assert tuned.returncode == 0, tuned.stderr
    assert "applied runtime/numpy" in " ".join(tuned.stderr.split())
    # each neuron reaches threshold after 10 ms * ln(drive / (drive - 1)), then resets
    assert tuned.stdout == "sweeping\n1.5 900\n2.0 1400\n3.0 2400\n"


# input() before Brian2's star import, which brings a module named input
ASKS_FIRST = """
print('model ready')
n = int(input('how many? '))
from brian2 import *
G = NeuronGroup(n, 'v : 1')
run(1*ms)
print('neurons', len(G))
"""


def _read_until(stream: Any, expected: bytes, seconds: float) -> bytes:
    """What ``stream`` gave until it contained ``expected`` (or ``seconds`` passed, or it
    closed)."""
    seen, deadline = b"", time.monotonic() + seconds
    while expected not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([stream], [], [], deadline - time.monotonic())
        chunk = os.read(stream.fileno(), 4096) if ready else b""
        if ready and not chunk:
            break
        seen += chunk
    return seen


def test_a_script_that_asks_shows_its_question_before_it_waits(tmp_path: Path,
                                                             db_url: str) -> None:
    """Output held until the first run() hid an input() prompt from the user, who saw a
    script waiting for nothing; a question now releases what was held."""
    _save_test_profile(db_url)  # numpy wins a 0.2-s run: its output is held until run()
    script = tmp_path / "asks.py"
    script.write_text(ASKS_FIRST)
    with subprocess.Popen([sys.executable, str(REPO / "cli.py"), "run", "--db", db_url,
                           "--duration", "0.2", str(script)], stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path) as tuned:
        before_answer = _read_until(tuned.stdout, b"how many? ", 240)
        assert before_answer == b"model ready\nhow many? ", tuned.poll()
        rest, errors = tuned.communicate(b"3\n", timeout=300)
    assert tuned.returncode == 0, errors.decode()
    assert "applied runtime/numpy" in " ".join(errors.decode().split())
    assert rest == b"neurons 3\n"


def test_a_network_refused_after_the_output_was_shown_is_one_clear_error(
        tmp_path: Path, db_url: str) -> None:
    """A script that forked has shown its output: when standalone then finds a
    network_operation it would leave out, starting the script again would show that output
    twice, so run stops with the reason and what to do, before anything is built."""
    _save_test_profile(db_url)  # at 20 s this profile picks standalone
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "counting.py").write_text(COUNTING_MODULE)
    script = tmp_path / "forks.py"
    script.write_text(COUNTING_SCRIPT.replace(
        "print('set up')", "print('set up')\nimport multiprocessing as mp\n"
        "with mp.get_context('fork').Pool(1) as pool:\n    print(pool.map(abs, [-1]))"))
    tuned = run_cli("run", "--db", db_url, "--duration", "20", str(script), timeout=300)
    assert tuned.returncode == 1, tuned.stderr
    assert tuned.stdout == "set up\n[1]\n"
    assert tuned.stderr.strip().splitlines()[-1] == (
        "brian2-autotune: error: the script uses network_operation (Python code during the "
        "run), which cpp_standalone cannot serve; what the script printed is already shown, "
        "so it is not started again: run it with --device runtime")


def test_gsl_that_analysis_misses_is_refused_by_numpy_before_anything_runs(
        tmp_path: Path) -> None:
    """Brian2 has no numpy code for GSL; under numpy such a network is refused at run(), its
    output dropped, so that ``run`` can start it again without numpy."""
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "cells.py").write_text(GSL_MODULE)
    script = tmp_path / "gsl.py"
    script.write_text(GSL_SCRIPT)
    check = (
        "import sys\nimport brian2\nfrom autotune.errors import CannotServe\n"
        "from autotune.runner import execute_script\n"
        "brian2.prefs.codegen.target = 'numpy'\n"
        "try:\n    execute_script(sys.argv[1], [], serving='numpy')\n"
        "except CannotServe as e:\n    sys.stderr.write(f'refused: {e.ruled_out}: {e.reason}')\n"
    )
    done = subprocess.run([sys.executable, "-c", check, str(script)], capture_output=True,
                          text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""  # 'set up' was held back and dropped
    assert "refused: numpy: it integrates with GSL" in done.stderr


# Other work starts after apply has looked at the CPUs, before the binary starts: as when the
# runs of a sweep started together register and compile after the first one has applied.
SPINNERS_AFTER_APPLY = """
import os, subprocess, sys
from brian2 import *
spinners = [subprocess.Popen([sys.executable, '-c', 'while True: pass'])
            for _ in range(2 * len(os.sched_getaffinity(0)))]
try:
    G = NeuronGroup(10, 'dv/dt = -v/(10*ms) : 1', method='exact')
    run(1*ms)
finally:
    for spinner in spinners:
        spinner.kill()
        spinner.wait()
print('wait policy', os.environ.get('OMP_WAIT_POLICY'))
"""


@pytest.mark.slow
def test_openmp_threads_sleep_when_other_work_arrives_after_apply(tmp_path: Path,
                                                                   db_url: str) -> None:
    """Threads that spin on CPUs other work keeps busy slow everyone: on 2 CPUs the first of
    three sweep runs started together chose 2 threads on idle CPUs, and its loop took 30.6 s
    against 1.05 s alone. The binary's wait policy is decided again as it starts."""
    import os

    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("2 OpenMP threads need 2 CPUs")
    script = tmp_path / "arrives.py"
    script.write_text(SPINNERS_AFTER_APPLY)
    result = run_cli("run", "--db", db_url, "--num-threads", "2", str(script), timeout=600)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("wait policy PASSIVE"), result.stdout
    said = " ".join(result.stderr.split())
    # decided at apply where the host was busy already, else as the binary started
    assert ("OpenMP threads sleep while they wait, since other work keeps" in said
            or "the 2 OpenMP threads sleep while they wait" in said), said


CYTHON_SCRIPT = """
from brian2 import *
G = NeuronGroup(7, 'dv/dt = (1.3 - v)/(10*ms) : 1', threshold='v > 1', reset='v = 0',
                method='exact')
spikes = SpikeMonitor(G)
run(20*ms)
print('spikes', spikes.num_spikes)
"""


@pytest.mark.slow
def test_a_cython_run_reuses_what_plain_brian2_compiled_for_the_script(tmp_path: Path,
                                                                       db_url: str) -> None:
    """Under run, Cython extensions of the default flags go to Brian2's own cache: a script
    the user ran under python before compiles nothing again (Brette_2004.py took 28 s under
    run against 10 s under python, compiling into a cache of our own)."""
    from dataclasses import replace

    from autotune.config import RunConfig
    from autotune.host import collect_host
    from autotune.store import open_store
    from tests.helpers import make_profile

    profile = make_profile(collect_host())
    entries = tuple(replace(e, status="invalid", reason="for this test")
                    if e.config == RunConfig("runtime", "numpy") else e for e in profile.entries)
    with open_store(db_url) as store:
        store.save_profile(replace(profile, entries=entries))
    home, cache = tmp_path / "home", tmp_path / "cache"
    home.mkdir()
    env = {"HOME": str(home), "BRIAN2_AUTOTUNE_CACHE": str(cache)}
    script = tmp_path / "cython_script.py"
    script.write_text(CYTHON_SCRIPT)
    plain = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                           env={**os.environ, **env}, timeout=600, check=True)
    brians = home / ".cython" / "brian_extensions"
    compiled = sorted(p.name for p in brians.glob("*.so"))
    assert compiled  # plain Brian2 compiled the script with Cython
    tuned = run_cli("run", "--db", db_url, "--device", "runtime", str(script), env=env)
    assert tuned.returncode == 0, tuned.stderr
    assert "applied runtime/cython" in " ".join(tuned.stderr.split())
    assert tuned.stdout == plain.stdout
    assert sorted(p.name for p in brians.glob("*.so")) == compiled  # nothing compiled again
    assert not list(cache.rglob("*.so"))


def _another_name_of_this_python() -> Path | None:
    """A second name of this interpreter in its folder (a virtual environment's ``python3``
    beside ``python``), or None."""
    own = Path(sys.executable)
    for name in ("python3", "python"):
        other = own.parent / name
        if other != own and other.exists() and os.path.realpath(other) == os.path.realpath(own):
            return other
    return None


@pytest.mark.slow
def test_a_first_run_finds_what_a_plain_run_compiled_under_another_name_of_python(
        tmp_path: Path, db_url: str) -> None:
    """A user ran ``python3 script.py`` (Brian2's default: Cython) before calibrating; the
    tool, started as ``python``, looks the script's code up in Brian2's cache during its dry
    pass: the first run prices Cython as built, runs under the name that compiled it and
    compiles nothing again (Brian2 keys its cache by ``sys.executable``: before, such a first
    run compiled everything again, and was priced for it). A copy edited since is priced
    for the one module it lacks."""
    from dataclasses import replace

    from autotune.config import RunConfig
    from autotune.store import open_store
    from tests.test_transfer import suite_profiles

    other = _another_name_of_this_python()
    if other is None:
        pytest.skip("this interpreter has no second name in its folder")
    from autotune.host import collect_host

    cython, compile_seconds = RunConfig("runtime", "cython"), 30.0
    # a suite whose runtime is Cython, its compile priced per object (autotune.transfer.
    # predict_cold): 30 s for the script's 4 (state updater, threshold, reset, monitor)
    per_object = compile_seconds / 4
    with open_store(db_url) as store:
        for member in suite_profiles(collect_host()):
            objects = member.workload["model"]["objects"]
            store.save_profile(replace(member, entries=tuple(
                replace(e, config=cython,
                        cost=replace(e.cost, cold_extra=per_object * objects))
                if e.config.target == "numpy" else e for e in member.entries)))
    home, cache = tmp_path / "home", tmp_path / "cache"
    home.mkdir()
    env = {"HOME": str(home), "BRIAN2_AUTOTUNE_CACHE": str(cache)}
    script = tmp_path / "compiled_before.py"
    script.write_text(CYTHON_SCRIPT)
    plain = subprocess.run([str(other), str(script)], capture_output=True, text=True,
                           env={**os.environ, **env}, timeout=600, check=True)
    brians = home / ".cython" / "brian_extensions"
    compiled = sorted(p.name for p in brians.glob("*.so"))
    assert compiled
    tuned = run_cli("run", "--db", db_url, "--device", "runtime", str(script), env=env)
    assert tuned.returncode == 0, tuned.stderr
    said = " ".join(tuned.stderr.split())
    assert "applied runtime/cython" in said
    # every module of its run (plain Brian2 also compiled a test module of its own)
    assert re.search(r"Brian2's Cython cache holds (\d+) of its \1 Cython modules", said), said
    assert f"so it runs as {other.name} to reuse it" in said
    assert tuned.stdout == plain.stdout
    assert sorted(p.name for p in brians.glob("*.so")) == compiled  # nothing compiled again
    with open_store(db_url) as store:
        (first,) = store.runs()
    assert first.cold is False and first.predicted_total < compile_seconds  # priced as built
    # a copy edited since the plain run, never run here: one module's code changed, and only
    # that one is priced as a compile
    copy = tmp_path / "edited_since.py"
    copy.write_text(CYTHON_SCRIPT.replace("reset='v = 0'", "reset='v = 0.25'"))
    edited = run_cli("run", "--db", db_url, "--device", "runtime", str(copy), env=env)
    assert edited.returncode == 0, edited.stderr
    said = " ".join(edited.stderr.split())
    found = re.search(r"Brian2's Cython cache holds (\d+) of this script's (\d+) modules, so its "
                      r"cold build is priced for the 1 missing", said)
    assert found and int(found[1]) + 1 == int(found[2]), said
    assert len(list(brians.glob("*.so"))) == len(compiled) + 1  # the reset, under python3
    with open_store(db_url) as store:
        second = store.runs()[-1]
    assert second.cold is True
    # compiling is timed: the warm run only loaded its modules, the edited one compiled one
    assert first.compile_seconds is not None and second.compile_seconds is not None
    assert first.compile_seconds < second.compile_seconds < second.actual_build
    assert second.predicted_total - first.predicted_total == pytest.approx(
        compile_seconds / int(found[2]), abs=0.05)
