"""A small model whose trials take a few seconds each: time to interrupt a calibration."""
import time

from brian2 import NeuronGroup, SpikeMonitor, run


def simulate(duration):
    group = NeuronGroup(20, "dv/dt = (1.2 - v) / (10*ms) : 1", threshold="v > 1", reset="v = 0",
                        method="exact")
    spikes = SpikeMonitor(group)
    run(duration)
    time.sleep(1.5)
    return {"spikes": spikes.num_spikes}
