"""Right only under runtime float64: float32 gives a wrong answer, standalone crashes."""
import os
import signal

from brian2 import NeuronGroup, get_device, ms, prefs, run


def simulate(duration):
    if type(get_device()).__name__ != "RuntimeDevice":
        os.kill(os.getpid(), signal.SIGSEGV)
    group = NeuronGroup(5, "dv/dt = -v / (10*ms) : 1", method="exact")
    group.v = 1
    run(duration)
    float32 = prefs.core.default_float_dtype.__name__ == "float32"
    return {"answer": 1.5 if float32 else 1.0, "v": float(group.v[:].mean()) + 1}
