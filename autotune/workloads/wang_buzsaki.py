"""Wang & Buzsáki (1996): a network of Hodgkin-Huxley-type interneurons coupled by inhibition.

Follows the neuron of Brian2's ``examples/frompapers/Wang_Buszaki_1996.py`` (sodium activation
at equilibrium, exponential and ``exprel`` rate functions), at Brian2's default time step and
with exponential Euler, as COBA-HH. Each neuron receives about 60 inhibitory synapses that
increment a decaying conductance (the paper's synaptic gating is simplified to an exponential
decay) and a constant current drawn around the rheobase, so that the network fires irregularly.
With COBA-HH it is the suite's second model whose cost is driven by costly functions of the
membrane potential: leaving either out, the other still tells the suite what they cost.
Connectivity, currents and initial values are drawn with numpy from a fixed seed (see
``_common``), so every configuration simulates the same network.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from autotune.workloads._common import random_connectivity


def simulate(duration: Any, size: int = 400) -> dict[str, float]:
    """Build and run the interneuron network with ``size`` neurons for ``duration``; return
    rate observables."""
    from brian2 import NeuronGroup, SpikeMonitor, Synapses, ms, msiemens, mV, run, seed, uA, uF

    seed(2468)
    Cm = 1 * uF  # noqa: N806 - physics names (per cm², as in the paper)
    gL, gNa, gK = 0.1 * msiemens, 35 * msiemens, 9 * msiemens  # noqa: N806
    EL, ENa, EK, Esyn = -65 * mV, 55 * mV, -90 * mV, -75 * mV  # noqa: N806
    tau_syn = 10 * ms
    w = 0.01 * msiemens
    eqs = """
    dv/dt = (-gNa*m**3*h*(v-ENa)-gK*n**4*(v-EK)-gL*(v-EL)-gsyn*(v-Esyn)+Iapp)/Cm : volt
    m = alpha_m/(alpha_m+beta_m) : 1
    alpha_m = 0.1/mV*10*mV/exprel(-(v+35*mV)/(10*mV))/ms : Hz
    beta_m = 4*exp(-(v+60*mV)/(18*mV))/ms : Hz
    dh/dt = 5*(alpha_h*(1-h)-beta_h*h) : 1
    alpha_h = 0.07*exp(-(v+58*mV)/(20*mV))/ms : Hz
    beta_h = 1./(exp(-0.1/mV*(v+28*mV))+1)/ms : Hz
    dn/dt = 5*(alpha_n*(1-n)-beta_n*n) : 1
    alpha_n = 0.01/mV*10*mV/exprel(-(v+34*mV)/(10*mV))/ms : Hz
    beta_n = 0.125*exp(-(v+44*mV)/(80*mV))/ms : Hz
    dgsyn/dt = -gsyn/tau_syn : siemens
    Iapp : amp (constant)
    """
    cells = NeuronGroup(size, eqs, threshold="v > -20*mV", refractory=2 * ms,
                        method="exponential_euler")
    rng = np.random.default_rng(2468)
    sources, targets = random_connectivity(rng, size, size, min(1.0, 60.0 / size))
    inhibition = Synapses(cells, cells, on_pre="gsyn += w")
    inhibition.connect(i=sources, j=targets)
    cells.v = (-70 + rng.random(size) * 20) * mV
    cells.h = 1
    cells.Iapp = (1.0 + rng.random(size) * 1.0) * uA
    spikes = SpikeMonitor(cells, record=False)
    run(duration)
    total = float(spikes.num_spikes)
    return {"spikes": total, "mean_rate": total / size / float(duration)}
