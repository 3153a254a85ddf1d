"""Brunel & Hakim (1999): sparsely connected inhibitory neurons with noise and synaptic delays.

Brian2's ``examples/frompapers/Brunel_Hakim_1999.py`` as a workload file, shrunk from 5000
neurons with 1000 inputs each to 2000 with 200: a model in no calibration suite, whose cost is
driven by what none of the suite's members has (a noise term drawn per neuron and step, spikes
delivered through a 2 ms delay queue, a population rate monitor).
"""

from __future__ import annotations

from typing import Any


def simulate(duration: Any) -> dict[str, float]:
    """Build and run the network for ``duration``; return its spike count and mean rate."""
    from brian2 import (
        NeuronGroup,
        PopulationRateMonitor,
        SpikeMonitor,
        Synapses,
        ms,
        mV,
        run,
        seed,
    )

    seed(1999)
    size, inputs = 2000, 200
    constants = {"tau": 20 * ms, "muext": 25 * mV, "sigmaext": 1 * mV, "theta": 20 * mV,
                 "v_reset": 10 * mV, "jump": 0.1 * mV}
    group = NeuronGroup(size, "dV/dt = (-V + muext + sigmaext * sqrt(tau) * xi) / tau : volt",
                        threshold="V > theta", reset="V = v_reset", refractory=2 * ms,
                        method="euler", namespace=constants)
    group.V = constants["v_reset"]
    connections = Synapses(group, group, on_pre="V += -jump", delay=2 * ms,
                           namespace=constants)
    connections.connect(p=inputs / size)
    spikes = SpikeMonitor(group, record=False)
    population = PopulationRateMonitor(group)
    run(duration)
    total = float(spikes.num_spikes)
    return {"spikes": total, "mean_rate": total / size / float(duration),
            "population_rate": float(population.rate[:].mean())}
