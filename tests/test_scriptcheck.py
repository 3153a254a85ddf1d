"""Reading a script before running it: can cpp_standalone serve it?"""

from __future__ import annotations

import importlib.util

import pytest

from autotune.errors import ScriptError
from autotune.scriptcheck import analyse_source

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
])
def test_the_run_length_is_read_from_the_script(body: str, seconds: float) -> None:
    assert analyse_source(HEAD + body).run_length == pytest.approx(seconds)


@pytest.mark.parametrize("body", [
    "import sys\nrun(float(sys.argv[1])*second)\n", "for k in range(3):\n    run(1*second)\n",
    "run(10)\n", "T = 1*mV\nrun(T)\n",
])
def test_a_run_length_the_source_does_not_fix_is_unknown(body: str) -> None:
    assert analyse_source(HEAD + body).run_length is None
