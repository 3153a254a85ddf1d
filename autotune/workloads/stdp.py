"""STDP: Song, Miller & Abbott (2000), as in Brian2's ``examples/synapses/STDP.py``.

``size`` Poisson inputs at 15 Hz drive one integrate-and-fire neuron through plastic synapses
with additive, event-driven STDP: the synaptic weight updates dominate the cost. Initial weights
come from numpy with a fixed seed; the Poisson inputs stay stochastic (Brian2's ``seed``), so
their observables are rates and means over many events.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def simulate(duration: Any, size: int = 1000) -> dict[str, float]:
    """Run the STDP model with ``size`` inputs; return input rate and mean relative weight."""
    from brian2 import Hz, NeuronGroup, PoissonGroup, SpikeMonitor, Synapses, ms, mV, run, seed

    seed(2468)
    taum, taupre, taupost = 10 * ms, 20 * ms, 20 * ms
    Ee, vt, vr, El, taue = 0 * mV, -54 * mV, -60 * mV, -74 * mV, 5 * ms  # noqa: N806
    gmax = 0.01
    dApre = 0.01 * gmax  # noqa: N806
    dApost = -0.01 * taupre / taupost * 1.05 * gmax  # noqa: N806
    eqs_neurons = """
    dv/dt = (ge * (Ee-v) + El - v) / taum : volt
    dge/dt = -ge / taue : 1
    """
    inputs = PoissonGroup(size, rates=15 * Hz)
    neurons = NeuronGroup(1, eqs_neurons, threshold="v>vt", reset="v = vr", method="euler")
    S = Synapses(inputs, neurons,  # noqa: N806
                 """w : 1
                    dApre/dt = -Apre / taupre : 1 (event-driven)
                    dApost/dt = -Apost / taupost : 1 (event-driven)""",
                 on_pre="""ge += w
                           Apre += dApre
                           w = clip(w + Apost, 0, gmax)""",
                 on_post="""Apost += dApost
                            w = clip(w + Apre, 0, gmax)""")
    S.connect()
    S.w = np.random.default_rng(2468).random(size) * gmax
    input_spikes = SpikeMonitor(inputs, record=False)
    run(duration)
    seconds = float(duration)
    return {
        "spikes": float(input_spikes.num_spikes),
        "input_rate": float(input_spikes.num_spikes) / size / seconds,
        "mean_weight": float(S.w[:].mean()) / gmax,
    }
