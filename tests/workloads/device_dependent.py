"""A workload whose result is wrong under cpp_standalone (to test validation)."""
from brian2 import NeuronGroup, get_device, ms, run


def simulate(duration):
    group = NeuronGroup(5, "dv/dt = -v / (10*ms) : 1", method="exact")
    run(duration)
    wrong = type(get_device()).__name__ != "RuntimeDevice"
    return {"answer": 2.0 if wrong else 1.0}
