"""A tiny model whose first runs stall for 0.4 s inside their loop, as a run does when
something outside the process takes the CPU (a hypervisor's pause, another process): the
runs counted in the file named by ``$HICCUP_COUNTER`` stall while it holds fewer than
``$HICCUP_RUNS`` lines."""
import os
import time
from pathlib import Path

from brian2 import NeuronGroup, SpikeMonitor, network_operation, run, second


def simulate(duration):
    counter = Path(os.environ["HICCUP_COUNTER"])
    seen = counter.read_text().count("\n") if counter.exists() else 0
    with counter.open("a") as file:
        file.write("run\n")
    stall = seen < int(os.environ.get("HICCUP_RUNS", "2"))
    group = NeuronGroup(20, "dv/dt = (1.2 - v) / (10*ms) : 1", threshold="v > 1", reset="v = 0",
                        method="exact")
    group.v = "i / 20.0"
    spikes = SpikeMonitor(group)

    @network_operation(when="start")
    def stall_once(t):
        if stall and t == 0 * second:
            time.sleep(0.4)

    run(duration)
    return {"spikes": spikes.num_spikes, "rate": spikes.num_spikes / 20 / float(duration)}
