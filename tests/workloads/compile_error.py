"""Runs under numpy, but its C++ implementation does not compile (cython/standalone fail)."""
from brian2 import NeuronGroup, check_units, implementation, ms, run


@implementation("cpp", "double broken(double x) { return x +; }")
@check_units(x=1, result=1)
def broken(x):
    return x


def simulate(duration):
    group = NeuronGroup(2, "dv/dt = -broken(v) / (10*ms) : 1", method="euler")
    group.v = 1
    run(duration)
    return {"v": float(group.v[:].mean())}
