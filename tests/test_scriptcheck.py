"""Reading a script before running it: can cpp_standalone serve it?"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

from autotune.errors import ScriptError
from autotune.scriptcheck import analyse_script, analyse_source

HEAD = "from brian2 import *\nG = NeuronGroup(10, 'dv/dt = -v/(10*ms) : 1')\n"


def test_a_single_run_is_standalone_safe() -> None:
    analysis = analyse_source(HEAD + "run(100*ms)\nprint(G.v[:])\n")
    assert analysis.standalone_ok and analysis.cython_ok and analysis.run_calls == 1


def test_a_main_function_called_once_is_standalone_safe() -> None:
    source = HEAD + "def main():\n    run(1*second)\n\nif __name__ == '__main__':\n    main()\n"
    assert analyse_source(source).standalone_ok


@pytest.mark.parametrize("body, reason", [
    ("run(10*ms)\nrun(10*ms)\n", "calls run() 2 times"),
    ("S = Synapses(G, G)\nS.connect(p=0.1)\n", "calls no run()"),
    ("for i in range(3):\n    run(10*ms)\n", "inside a loop"),
    ("net = Network(collect())\nwhile True:\n    net.run(10*ms)\n    break\n", "inside a loop"),
    ("counts = [run(10*ms) for _ in range(3)]\n", "inside a loop"),
    ("net = Network(collect())\nlist(net.run(t) for t in (1*ms, 2*ms))\n", "inside a loop"),
    ("@network_operation(dt=1*ms)\ndef f():\n    pass\nrun(10*ms)\n", "network_operation"),
    ("store()\nrun(10*ms)\n", "store()/restore()"),
    ("def go():\n    run(1*ms)\ngo()\ngo()\n", "may run more than once"),
    ("def cb(elapsed, complete, start, duration):\n    pass\nrun(10*ms, report=cb)\n",
     "report callback"),
    ("S = Synapses(G, G, 'w : 1')\nS.connect(p=0.1)\nM = StateMonitor(S, 'w', record=True)\n"
     "run(10*ms)\n", "StateMonitor(..., record=True)"),
])
def test_scripts_standalone_cannot_serve(body: str, reason: str) -> None:
    analysis = analyse_source(HEAD + body)
    assert not analysis.standalone_ok
    assert any(reason in r for r in analysis.reasons), analysis.reasons


def test_recording_chosen_synapses_or_every_neuron_is_fine() -> None:
    body = ("S = Synapses(G, G, 'w : 1')\nS.connect(p=0.1)\nM = StateMonitor(S, 'w', record=[0])\n"
            "N = StateMonitor(G, 'v', record=True)\nrun(10*ms)\n")
    assert analyse_source(HEAD + body).standalone_ok


def test_a_text_report_is_fine() -> None:
    assert analyse_source(HEAD + "run(10*ms, report='text')\n").standalone_ok


@pytest.mark.parametrize("body", [
    "set_device('cpp_standalone')\nrun(10*ms)\n",
    "prefs.codegen.target = 'numpy'\nrun(10*ms)\n",
    "set_device('cpp_standalone', build_on_run=False)\nrun(10*ms)\ndevice.build()\n",
])
def test_scripts_choosing_their_own_device_are_left_alone(body: str) -> None:
    analysis = analyse_source(HEAD + body)
    assert analysis.own_device and not analysis.standalone_ok


def test_pure_python_functions_need_numpy() -> None:
    source = HEAD + "@check_units(x=1, result=1)\ndef f(x):\n    return x\nrun(10*ms)\n"
    analysis = analyse_source(source)
    assert not analysis.cython_ok and not analysis.standalone_ok


def test_a_spatial_neuron_rules_out_numpy_only_where_scipy_is_missing() -> None:
    """Brian2's numpy code for a SpatialNeuron imports scipy at the first run(): Brette 2012's
    Fig1.py failed under numpy here, where plain python (Cython) ran it."""
    spatial = ("from brian2 import *\nmorpho = Soma(30*um)\n"
               "neuron = SpatialNeuron(morphology=morpho,\n"
               "                       model='Im = 0*amp/meter**2 : amp/meter**2')\n"
               "run(10*ms)\n")
    scipy_missing = importlib.util.find_spec("scipy") is None
    analysis = analyse_source(spatial)
    assert (analysis.numpy_reason is not None) == scipy_missing
    assert analysis.standalone_ok and analysis.cython_ok
    assert analyse_source(HEAD + "run(10*ms)\n").numpy_reason is None


@pytest.mark.parametrize("method", ["'gsl'", "'gsl_rk45'", "'gsl_%s' % kind"])
def test_gsl_integration_rules_out_numpy(method: str) -> None:
    """Brian2 implements GSL integration for Cython and standalone only."""
    source = (f"from brian2 import *\nkind = 'rk2'\nG = NeuronGroup(10, 'dv/dt = -v/(10*ms) : 1', "
              f"method={method})\nrun(10*ms)\n")
    analysis = analyse_source(source)
    assert analysis.numpy_reason is not None and "GSL" in analysis.numpy_reason
    assert analysis.standalone_ok and analysis.cython_ok


def test_a_syntax_error_is_one_clear_error() -> None:
    with pytest.raises(ScriptError, match="line 1"):
        analyse_source("run(10*ms", "broken.py")


SYN = HEAD + "S = Synapses(G, G, 'w : 1', on_pre='v += w')\nS.connect(p=0.5)\n"


@pytest.mark.parametrize("body", [
    "print(G.v[:3])\nrun(10*ms)\n",
    "x = S.w['i>j']\nrun(10*ms)\n",
    "S.w[:] = np.random.rand(len(S))\nrun(10*ms)\n",
    "S.delay = S.i * ms\nrun(10*ms)\n",
    "print(S.N)\nrun(10*ms)\n",
    "G.v[:] += 1\nrun(10*ms)\n",
    "states = G.get_states()\nrun(10*ms)\n",
    "P = G[:5]\nprint(P.v)\nrun(10*ms)\n",
])
def test_reading_state_before_run_rules_standalone_out(body: str) -> None:
    analysis = analyse_source(SYN + body)
    assert not analysis.standalone_ok
    assert any("reads state variables before run()" in r and "line " in r
               for r in analysis.reasons), analysis.reasons


@pytest.mark.parametrize("body", [
    "G.v = 'rand()'\nG.v[:5] = 1\nS.w['i>j'] = 0.5\nS.w = 'rand()'\nrun(10*ms)\n",
    "print(G.N, len(G), G.name)\nrun(10*ms)\n",
    "run(10*ms)\nprint(G.v[:3], S.w[:], len(S))\n",
])
def test_writes_metadata_and_reads_after_run_are_fine(body: str) -> None:
    analysis = analyse_source(SYN + body)
    assert analysis.standalone_ok, analysis.reasons


@pytest.mark.parametrize("body, seconds", [
    ("run(10*second)\n", 10.0), ("run(500*ms)\n", 0.5), ("run(duration=250*ms)\n", 0.25),
    ("duration = 2*second\nrun(duration)\n", 2.0), ("T = 100\nrun(T*ms)\n", 0.1),
    ("net = Network(collect())\nnet.run(3*second, report='text')\n", 3.0),
    ("run(1*second)\nrun(0.5*second)\n", 1.5), ("run(10*second/4)\n", 2.5),
    ("def main():\n    run(3*second)\n\nmain()\n", 3.0),
    # Brian2's Vogels et al. 2011: a warm-up, then the rest of a module constant
    ("simtime = 10*second\nrun(1*second)\nrun(simtime - 1*second)\n", 10.0),
    ("run((200 + 300)*ms)\n", 0.5),
    # a parameter dictionary, read in a function defined above it (COBAHH_approximated.py)
    ("def simulate(p):\n    run(p['duration'])\n\n"
     "p = {'duration': 20*ms, 'v_initial': -65*mV}\nsimulate(p)\n", 0.02),
    ("params = {'T': 1*second}\nparams['T'] = 3*second\nrun(params['T'])\n", 3.0),
    ("run(5000*defaultclock.dt)\n", 0.5),
    ("defaultclock.dt = 0.01*ms\nrun(1000*defaultclock.dt)\n", 0.01),
    ("T = 1*second\nT += 1*second\nrun(T)\n", 2.0),
    ("import brian2 as b2\nepoch = 1*b2.second\nnet = b2.Network()\nnet.run(3*epoch)\n", 3.0),
    ("p = {'T': 1*second}\np['T'] *= 2\nprint(p.get('T'))\nrun(p['T'])\n", 2.0),
])
def test_the_run_length_is_read_from_the_script(body: str, seconds: float) -> None:
    assert analyse_source(HEAD + body).run_length == pytest.approx(seconds)


@pytest.mark.parametrize("body", [
    "import sys\nrun(float(sys.argv[1])*second)\n", "for k in range(3):\n    run(1*second)\n",
    "run(10)\n", "T = 1*mV\nrun(T)\n", "run(1*second + 5)\n",
    "params = {'T': 1*second}\nparams = load()\nrun(params['T'])\n",
    "params = {'T': 1*second}\nparams['T'] = float(sys.argv[1])*second\nrun(params['T'])\n",
    "def setup():\n    defaultclock.dt = 0.01*ms\nsetup()\nrun(1000*defaultclock.dt)\n",
    "def go():\n    defaultclock.dt = 0.01*ms\n    run(1000*defaultclock.dt)\n"
    "defaultclock.dt = 1*ms\ngo()\n",
    "defaultclock.dt = float(sys.argv[1])*ms\nrun(1000*defaultclock.dt)\n",
    # changed where the analysis cannot follow: unknown, never the first value
    "T = 1*second\nT += k\nrun(T)\n",
    "T = 1*second\nfor T in [2*second]:\n    pass\nrun(T)\n",
    "p = {'T': 1*second}\np.update(T=5*second)\nrun(p['T'])\n",
    "p = {'T': 1*second}\ndel p['T']\nrun(p['T'])\n",
])
def test_a_run_length_the_source_does_not_fix_is_unknown(body: str) -> None:
    assert analyse_source(HEAD + body).run_length is None


def test_a_run_in_a_function_called_twice_has_no_known_length() -> None:
    assert analyse_source(HEAD + "def go():\n    run(1*second)\ngo()\ngo()\n").run_length is None


@pytest.mark.parametrize(("body", "once"), [
    ("import sys\nrun(float(sys.argv[1])*second)\n", True),
    ("def go(T):\n    run(T)\ngo(load())\n", True),
    ("def go():\n    run(1*second)\ngo()\ngo()\n", False),
    ("for k in range(3):\n    run(1*second)\n", False),
    ("run(1*second)\nrun(2*second)\n", False),
    ("x = 1\n", False),
])
def test_a_script_whose_one_run_runs_once_is_told_apart(body: str, once: bool) -> None:
    """Only then is the duration its dry pass sees the whole run's length."""
    assert analyse_source(HEAD + body).runs_once is once


# A model kept in a module beside the script, as in a sweep.py that imports model.py.
MODEL_WITH_OPERATION = """
from brian2 import *

def build(n):
    G = NeuronGroup(n, 'dv/dt = (1.1 - v)/(10*ms) : 1', threshold='v > 1', reset='v = 0')
    counts = []

    @network_operation(dt=10*ms)
    def count():
        counts.append(G.v[:].sum())

    return G, count, counts
"""
SWEEP = """
import sys
from brian2 import *
from model import build

G, op, counts = build(int(sys.argv[1]))
run(2*second)
print(len(counts))
"""


def test_a_network_operation_in_the_scripts_own_module_rules_standalone_out(
        tmp_path: Path) -> None:
    """cpp_standalone leaves a network_operation out: with the operation in model.py the
    sweep printed 0 with exit 0, where python printed 300."""
    (tmp_path / "model.py").write_text(MODEL_WITH_OPERATION)
    (tmp_path / "sweep.py").write_text(SWEEP)
    analysis = analyse_script(tmp_path / "sweep.py")
    assert not analysis.standalone_ok
    # the operation's reads happen during the run: no early read is claimed
    assert analysis.reasons == ("uses network_operation (Python code during the run) "
                                "(in model.py)",)
    assert analysis.run_length == pytest.approx(2.0)


@pytest.mark.parametrize("layout", [
    {"lib/__init__.py": "", "lib/model.py": "{body}",
     "sweep.py": "from lib.model import simulate\nsimulate({arg})\n"},
    {"lib/__init__.py": "from .model import simulate\n", "lib/model.py": "{body}",
     "sweep.py": "import lib\nlib.simulate({arg})\n"},
    {"lib/__init__.py": "", "lib/model.py": "{body}",
     "sweep.py": "from lib import model\nmodel.simulate({arg})\n"},
    {"model.py": "{body}", "sweep.py": "import model as m\nm.simulate({arg})\n"},
])
def test_run_calls_in_the_scripts_own_modules_are_counted(tmp_path: Path,
                                                          layout: dict[str, str]) -> None:
    """Called once, a run() in a module can be served by standalone (it used to be refused
    as 'calls no run()'); called twice, it cannot."""
    body = "from brian2 import *\ndef simulate(T):\n    G = NeuronGroup(5, 'v : 1')\n    run(T)\n"
    for arg, once in (("1*second", True), ("1*second)\nsimulate(2*second", False)):
        for name, text in layout.items():
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_text(text.format(body=body, arg=arg))
        analysis = analyse_script(tmp_path / "sweep.py")
        assert analysis.standalone_ok is once, analysis.reasons
        assert analysis.run_calls == 1 and analysis.run_length is None
        if not once:
            assert "calls run() inside simulate(), which may run more than once" in (
                analysis.reasons)


@pytest.mark.parametrize("layout", [
    {"lab/labsims.py": "{body}", "project/sweep.py": "from labsims import simulate\n"
                                                     "simulate({arg})\n"},
    {"lab/lablib/__init__.py": "from .model import simulate\n", "lab/lablib/model.py": "{body}",
     "project/sweep.py": "import lablib\nlablib.simulate({arg})\n"},
    {"lab/lablib/__init__.py": "", "lab/lablib/model.py": "{body}",
     "project/sweep.py": "from lablib.model import simulate\nsimulate({arg})\n"},
])
def test_run_calls_in_the_users_code_found_elsewhere_are_counted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: dict[str, str]) -> None:
    """A lab's module on the import path (``PYTHONPATH``), neither beside the script nor in
    its package: its ``run()`` is the script's (before, the script was refused standalone as
    'calls no run()', and ``apply()`` made it no dry pass); edited, the script is another."""
    monkeypatch.syspath_prepend(str(tmp_path / "lab"))
    body = "from brian2 import *\ndef simulate(T):\n    G = NeuronGroup(5, 'v : 1')\n    run(T)\n"
    digests = set()
    for arg, once in (("1*second", True), ("1*second)\nsimulate(2*second", False)):
        for name, text in layout.items():
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_text(text.format(body=body, arg=arg))
        analysis = analyse_script(tmp_path / "project" / "sweep.py")
        assert analysis.run_calls == 1
        assert analysis.standalone_ok is once, analysis.reasons
        digests.add(analysis.digest)
    (tmp_path / next(name for name in layout if name.endswith(("model.py", "labsims.py")))
     ).write_text(body.replace("5", "6"))
    digests.add(analyse_script(tmp_path / "project" / "sweep.py").digest)
    assert len(digests) == 3


def test_installed_libraries_are_not_read_as_the_users_code(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    from autotune.scriptcheck import user_code_root

    (tmp_path / "labsims.py").write_text("x = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert user_code_root("labsims") == tmp_path.resolve()
    # the standard library, packages installed into this interpreter, Brian2, this tool
    for name in ("os", "json", "sys", "numpy", "sqlalchemy", "brian2", "autotune", "nosuchlib"):
        assert user_code_root(name) is None, name


def test_a_module_run_with_python_m_reads_its_package_by_absolute_imports(
        tmp_path: Path) -> None:
    """``python -m pkg.sim`` imports ``pkg.net`` from the folder above ``pkg``, not from
    ``pkg``'s own folder, as running ``sim.py`` as a script would."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "net.py").write_text("from brian2 import *\ndef simulate():\n"
                                    "    G = NeuronGroup(5, 'v : 1')\n    run(20*ms)\n")
    (package / "sim.py").write_text("from pkg.net import simulate\nsimulate()\n")
    as_module = analyse_script(package / "sim.py", module=("pkg.sim", tmp_path))
    assert as_module.run_calls == 1 and as_module.run_length == pytest.approx(0.02)
    assert analyse_script(package / "sim.py").run_calls == 0  # python pkg/sim.py fails


def test_gsl_in_the_scripts_own_module_rules_numpy_out(tmp_path: Path) -> None:
    (tmp_path / "cells.py").write_text("from brian2 import *\ndef cells():\n    return "
                                       "NeuronGroup(5, 'dv/dt = -v/ms : 1', method='gsl')\n")
    (tmp_path / "sim.py").write_text("from brian2 import *\nfrom cells import cells\n"
                                     "G = cells()\nrun(10*ms)\n")
    assert "GSL" in (analyse_script(tmp_path / "sim.py").numpy_reason or "")


def test_editing_the_scripts_own_module_gives_the_script_a_new_digest(tmp_path: Path) -> None:
    """Runs are learned, and float32 checked, under the digest: a model edited in its module
    is another model."""
    (tmp_path / "model.py").write_text(MODEL_WITH_OPERATION)
    (tmp_path / "sweep.py").write_text(SWEEP)
    before = analyse_script(tmp_path / "sweep.py").digest
    assert analyse_script(tmp_path / "sweep.py").digest == before
    (tmp_path / "model.py").write_text(MODEL_WITH_OPERATION.replace("10*ms", "5*ms"))
    assert analyse_script(tmp_path / "sweep.py").digest != before


def test_a_script_without_own_modules_keeps_its_digest(tmp_path: Path) -> None:
    """Installed packages are not read, and the runs stored for a script that imports none of
    its own keep their name."""
    from autotune.scriptcheck import script_digest

    source = "import numpy\nimport os.path\nfrom brian2 import *\nrun(1*ms)\n"
    (tmp_path / "alone.py").write_text(source)
    assert analyse_script(tmp_path / "alone.py").digest == script_digest(source)


def test_a_module_that_does_not_parse_is_left_to_python(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("def oops(:\n")
    (tmp_path / "sim.py").write_text("from brian2 import *\nimport broken\nrun(1*ms)\n")
    assert analyse_script(tmp_path / "sim.py").standalone_ok


READS_INPUTS = '''
import os, json
from os import environ, getenv
from pathlib import Path
import numpy as np
from brian2 import *
PARAMS = "params.json"
N = int(os.environ["N"])
seed(int(os.environ.get("SLURM_ARRAY_TASK_ID", 1)))
tau = float(getenv("TAU_MS", "10")) * ms
quiet = "QUIET" in environ
with open(PARAMS) as f:
    p = json.load(f)
w = np.load("weights.npy")
extra = Path("extra.txt").read_text()
if not os.path.exists("conn.npy"):
    np.save("conn.npy", np.arange(N))
conn = np.load("conn.npy")
DATA = Path("data")
rates = np.loadtxt(DATA / "rates.txt")
delays = np.loadtxt(os.path.join("data", "delays.txt"))
Path("notes.txt").write_text("started")
G = NeuronGroup(N, 'dv/dt = -v/tau : 1')
run(1*second)
np.save("spikes.npy", w)
with open("log.txt", "w") as f:
    f.write("done")
savefig("raster.png")
'''


def test_the_environment_variables_and_files_a_script_reads_by_name_are_found() -> None:
    """What besides its arguments can change the model a script builds; files it writes
    (saved results, figures, logs, a connectivity saved once and then loaded) are no input
    and are left out, or every run would find a changed file and pay a dry pass."""
    analysis = analyse_source(READS_INPUTS)
    assert analysis.environment == ("N", "QUIET", "SLURM_ARRAY_TASK_ID", "TAU_MS")
    assert analysis.data_files == ("data/delays.txt", "data/rates.txt", "extra.txt",
                                   "params.json", "weights.npy")


def test_inputs_read_in_the_scripts_own_module_are_found(tmp_path: Path) -> None:
    (tmp_path / "model.py").write_text("import os\nSIZE = int(os.getenv('SIZE', '100'))\n")
    script = tmp_path / "sweep.py"
    script.write_text("from model import SIZE\nfrom brian2 import *\n"
                      "G = NeuronGroup(SIZE, 'v : 1')\nrun(1*ms)\n")
    assert analyse_script(script).environment == ("SIZE",)


def _age(*paths: Path) -> None:
    """Give files and folders a modification time long past, so that a change made now
    shows on any file system's clock."""
    for path in paths:
        os.utime(path, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))


def test_a_kept_analysis_is_reused_until_the_script_or_its_modules_change(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``apply()`` reads the script before every run: the analysis is kept and reused while
    the script, its modules (a lab's on the import path included) and their folders are
    unchanged. Edited, or shadowed by a new module beside the script, it is made again."""
    lab, project, cache = tmp_path / "lab", tmp_path / "project", tmp_path / "cache"
    lab.mkdir()
    project.mkdir()
    monkeypatch.syspath_prepend(str(lab))
    (lab / "labsims.py").write_text(MODEL_WITH_OPERATION)
    script = project / "sweep.py"
    script.write_text(SWEEP.replace("from model import", "from labsims import"))
    _age(lab / "labsims.py", lab, script, project)
    made = analyse_script(script, cache_dir=cache)
    assert made == analyse_script(script)
    assert not made.standalone_ok and made.run_calls == 1
    kept, = cache.iterdir()
    # what is kept is what is used: a kept analysis altered shows in the next one
    document = json.loads(kept.read_text())
    document["analysis"]["run_calls"] = 7
    kept.write_text(json.dumps(document))
    assert analyse_script(script, cache_dir=cache).run_calls == 7
    # the lab's module edited: its network_operation gone, standalone can serve the sweep
    operation = MODEL_WITH_OPERATION[MODEL_WITH_OPERATION.index("    @network_operation"):
                                     MODEL_WITH_OPERATION.index("    return")]
    (lab / "labsims.py").write_text(MODEL_WITH_OPERATION.replace(operation, "    count = None\n"))
    again = analyse_script(script, cache_dir=cache)
    assert again.run_calls == 1 and again.standalone_ok and again.digest != made.digest
    assert analyse_script(script, cache_dir=cache) == again
    # a module created beside the script shadows the lab's: the folder changed
    _age(lab / "labsims.py", project)
    (project / "labsims.py").write_text(MODEL_WITH_OPERATION)
    shadowed = analyse_script(script, cache_dir=cache)
    assert not shadowed.standalone_ok and shadowed == analyse_script(script)


def test_a_kept_analysis_is_the_analysis_made(tmp_path: Path) -> None:
    (tmp_path / "model.py").write_text(MODEL_WITH_OPERATION)
    (tmp_path / "sim.py").write_text(READS_INPUTS.replace("import numpy as np",
                                                          "import numpy as np\nimport model"))
    cache = tmp_path / "cache"
    made = analyse_script(tmp_path / "sim.py", cache_dir=cache)
    assert made.reasons and made.environment and made.data_files and made.run_length
    assert analyse_script(tmp_path / "sim.py", cache_dir=cache) == made


#: A lab's module whose simulate() runs once: what a script reaches through sys.path.
LAB_SIMULATE = ("from brian2 import *\ndef simulate(T):\n    G = NeuronGroup(5, 'v : 1')\n"
                "    run(T)\n")


@pytest.mark.parametrize("added", [
    'os.path.join(os.path.dirname(__file__), "..", "lib")',
    'os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, '
    '"lib"))',
    'str(Path(__file__).resolve().parent.parent / "lib")',
    'str(Path(__file__).parents[1] / "lib")',
    'HERE + "/../lib"',
    'f"{HERE}/../lib"',
    'join(ROOT, "lib")',
    '"../lib"',
])
def test_folders_the_script_adds_to_its_import_path_are_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, added: str) -> None:
    """``sys.path.insert(0, <the lab's lib folder>)`` above ``from labsims import simulate``:
    the script is read before that line runs (``run``, and ``apply()`` at its top), so Python
    cannot find the folder yet. Before, the lab's ``run()`` went unseen: standalone was refused
    as 'calls no run()' and ``apply()`` made no dry pass. Its edits now make another model."""
    (tmp_path / "lib").mkdir()
    (tmp_path / "scripts").mkdir()
    (tmp_path / "lib" / "labsims.py").write_text(LAB_SIMULATE)
    script = tmp_path / "scripts" / "sweep.py"
    script.write_text(
        "import os, sys\nfrom os.path import join\nfrom pathlib import Path\n"
        "import autotune\nautotune.apply()\n"
        "HERE = os.path.dirname(os.path.abspath(__file__))\nROOT = Path(__file__).parents[1]\n"
        f"sys.path.insert(0, {added})\n"
        "from labsims import simulate\nfrom brian2 import second\nsimulate(1*second)\n")
    monkeypatch.chdir(tmp_path / "scripts")  # where a relative folder is taken from
    analysis = analyse_script(script)
    assert analysis.run_calls == 1 and analysis.standalone_ok, analysis.reasons
    (tmp_path / "lib" / "labsims.py").write_text(LAB_SIMULATE.replace("5", "6"))
    assert analyse_script(script).digest != analysis.digest


def test_only_the_spellings_that_can_be_evaluated_add_folders(tmp_path: Path) -> None:
    """A folder read from the environment, or held in a name bound twice, is not guessed;
    ``append``, ``extend`` and ``site.addsitedir`` add theirs too, and a relative one is taken
    from the current folder."""
    import ast

    from autotune.importpaths import added_import_folders

    file = tmp_path / "scripts" / "sim.py"
    source = ("import os, sys\nsys.path.insert(0, os.environ['LAB'])\n"
              "TWICE = 'a'\nTWICE = 'b'\nsys.path.append(TWICE)\n"
              "sys.path.append(os.path.dirname(__file__) + '/models')\n"
              "sys.path.extend(['shared', '/opt/lab'])\n"
              "import site\nsite.addsitedir(os.path.join(os.path.dirname(__file__), 'site'))\n"
              "sys.path.insert(0, ','.join(['x', 'y']))\n"
              "sys.path.append(os.path.realpath('x\\x00y'))\n")
    assert added_import_folders(ast.walk(ast.parse(source)), file) == [
        tmp_path / "scripts" / "models", Path.cwd() / "shared", Path("/opt/lab"),
        tmp_path / "scripts" / "site"]
    # a folder whose text Python cannot use (a NUL in it) is no error of the analysis
    (tmp_path / "sim.py").write_text("import sys\nsys.path.insert(0, 'a\\x00b')\n"
                                     "from brian2 import *\nrun(1*ms)\n")
    assert analyse_script(tmp_path / "sim.py").run_calls == 1


def test_a_library_folder_the_script_adds_is_not_read(tmp_path: Path) -> None:
    """A script that puts site-packages on its path imports installed libraries from there,
    and one that puts a Brian2 source checkout there imports Brian2: neither is the user's
    code, and their unused ``run()`` calls are not read as the script's."""
    from autotune.scriptcheck import own_modules

    numpy_folder = Path(importlib.util.find_spec("numpy").origin).parent.parent  # type: ignore
    checkout = tmp_path / "brian2-checkout"
    (checkout / "brian2").mkdir(parents=True)
    (checkout / "brian2" / "__init__.py").write_text("def f():\n    run()\n    run()\n")
    source = (f"import sys\nsys.path.insert(0, {str(numpy_folder)!r})\n"
              f"sys.path.insert(0, {str(checkout)!r})\nimport numpy\nfrom brian2 import *\n"
              "G = NeuronGroup(5, 'v : 1')\nrun(1*ms)\n")
    (tmp_path / "sim.py").write_text(source)
    assert own_modules(source, tmp_path / "sim.py") == {}
    assert analyse_script(tmp_path / "sim.py").standalone_ok


def test_a_kept_analysis_of_a_relative_folder_depends_on_where_the_script_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``sys.path.append("lib")`` is taken from the current folder: the analysis kept for one
    folder is not the one used from another."""
    cache = tmp_path / "cache"
    (tmp_path / "here" / "lib").mkdir(parents=True)
    (tmp_path / "there").mkdir()
    (tmp_path / "here" / "lib" / "labsims.py").write_text(LAB_SIMULATE)
    script = tmp_path / "sweep.py"
    script.write_text("import sys\nsys.path.append('lib')\nfrom labsims import simulate\n"
                      "from brian2 import second\nsimulate(1*second)\n")
    monkeypatch.chdir(tmp_path / "here")
    assert analyse_script(script, cache_dir=cache).run_calls == 1
    monkeypatch.chdir(tmp_path / "there")
    assert analyse_script(script, cache_dir=cache).run_calls == 0


#: A PEP 517 build backend of no requirements, so that pip builds the lab's package offline.
LAB_BACKEND = '''
import base64, hashlib, pathlib, zipfile

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    name = pathlib.Path("NAME").name
    files = {f"{name}/{p.name}": p.read_bytes() for p in pathlib.Path(name).glob("*.py")}
    info = f"{name}-0.1.dist-info"
    files[f"{info}/METADATA"] = f"Metadata-Version: 2.1\\nName: {name}\\nVersion: 0.1\\n".encode()
    files[f"{info}/WHEEL"] = (b"Wheel-Version: 1.0\\nGenerator: lab\\nRoot-Is-Purelib: true\\n"
                              b"Tag: py3-none-any\\n")
    record = [f"{info}/RECORD,,"]
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(data)}")
    wheel = f"{name}-0.1-py3-none-any.whl"
    with zipfile.ZipFile(pathlib.Path(wheel_directory) / wheel, "w") as archive:
        for path, data in files.items():
            archive.writestr(path, data)
        archive.writestr(f"{info}/RECORD", "\\n".join(record) + "\\n")
    return wheel
'''


def _lab_package(folder: Path, name: str) -> Path:
    """A package ``name`` whose simulate() runs once, buildable by pip without a network."""
    (folder / name).mkdir(parents=True)
    (folder / name / "__init__.py").write_text(LAB_SIMULATE)
    (folder / "backend.py").write_text(LAB_BACKEND.replace("NAME", name))
    (folder / "pyproject.toml").write_text('[build-system]\nrequires = []\n'
                                           'build-backend = "backend"\nbackend-path = ["."]\n')
    return folder


@pytest.mark.slow
def test_a_lab_package_installed_from_its_folder_is_read_and_a_wheel_file_is_not(
        tmp_path: Path) -> None:
    """``pip install ./lab`` (not editable) puts a lab's code into site-packages, where
    installed libraries are not read; pip marks it as installed from a folder on this machine
    (PEP 610's ``direct_url.json``), and it is read as the user's code: its ``run()`` lets
    standalone serve the script (before, 'calls no run()'). A package installed from a wheel
    file, as libraries are offline, stays unread."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parent.parent
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip",
                    str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    lab = _lab_package(tmp_path / "lab", "lablib")
    other = _lab_package(tmp_path / "other", "otherlib")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-index",
                    "-w", str(tmp_path / "wheels"), str(other)], check=True, timeout=300)
    wheel, = (tmp_path / "wheels").glob("otherlib-*.whl")
    for source in (lab, wheel):
        subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                        "--no-deps", "--no-index", str(source)], check=True, timeout=300)
    said = {}
    for name in ("lablib", "otherlib"):
        script = tmp_path / f"uses_{name}.py"
        script.write_text(f"from {name} import simulate\nfrom brian2 import ms\n"
                          "simulate(10*ms)\n")
        check = ("import json, sys\nfrom autotune.scriptcheck import analyse_script\n"
                 "a = analyse_script(sys.argv[1])\n"
                 "print(json.dumps([a.run_calls, a.standalone_ok]))\n")
        done = subprocess.run([str(python), "-c", check, str(script)], capture_output=True,
                              text=True, timeout=120,
                              env={**os.environ, "PYTHONPATH": str(repo)})
        assert done.returncode == 0, done.stderr
        said[name] = json.loads(done.stdout)
    assert said == {"lablib": [1, True], "otherlib": [0, False]}


def test_a_script_run_from_a_removed_folder_is_still_read(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A shell left in a folder that was then removed: Python runs on there, and so must the
    analysis (a relative folder added to ``sys.path`` is then no folder at all). Keying the
    kept analysis by the current folder stopped apply() there with FileNotFoundError."""
    script = tmp_path / "sim.py"
    script.write_text("import sys\nsys.path.append('lib')\nfrom brian2 import *\n"
                      "G = NeuronGroup(5, 'v : 1')\nrun(1*ms)\n")
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    analysis = analyse_script(script, cache_dir=tmp_path / "cache")
    assert analysis.run_calls == 1 and analysis.standalone_ok
    assert analyse_script(script, cache_dir=tmp_path / "cache") == analysis
