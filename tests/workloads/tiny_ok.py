"""A valid tiny workload file: 20 LIF neurons driven above threshold."""
from brian2 import NeuronGroup, SpikeMonitor, ms, run


def simulate(duration):
    group = NeuronGroup(20, "dv/dt = (1.2 - v) / (10*ms) : 1", threshold="v > 1", reset="v = 0",
                        method="exact")
    group.v = "i / 20.0"
    spikes = SpikeMonitor(group)
    run(duration)
    return {"spikes": spikes.num_spikes, "rate": spikes.num_spikes / 20 / float(duration)}
