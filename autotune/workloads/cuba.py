"""CUBA: the current-based network of Vogels & Abbott (2005), as in Brian2's examples.

80 % excitatory, 20 % inhibitory leaky integrate-and-fire neurons with exponential currents. The
connection probability is scaled with ``size`` so every neuron keeps about 80 inputs, as at the
original 4000 neurons, which keeps the network's activity (and so its cost per neuron) comparable
across sizes.
Connectivity and initial potentials are drawn with numpy from a fixed seed (see ``_common``), so
every configuration simulates the same network.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from autotune.workloads._common import excitatory_inhibitory_synapses


def simulate(duration: Any, size: int = 4000) -> dict[str, float]:
    """Build and run CUBA with ``size`` neurons for ``duration``; return rate observables."""
    from brian2 import NeuronGroup, SpikeMonitor, ms, mV, run, seed

    seed(4321)
    taum, taue, taui = 20 * ms, 5 * ms, 10 * ms
    Vt, Vr, El = -50 * mV, -60 * mV, -49 * mV  # noqa: N806 - physics names
    eqs = """
    dv/dt  = (ge+gi-(v-El))/taum : volt (unless refractory)
    dge/dt = -ge/taue : volt
    dgi/dt = -gi/taui : volt
    """
    P = NeuronGroup(size, eqs, threshold="v>Vt", reset="v = Vr", refractory=5 * ms,  # noqa: N806
                    method="exact")
    rng = np.random.default_rng(4321)
    P.v = Vr + rng.random(size) * (Vt - Vr)
    we = (60 * 0.27 / 10) * mV
    wi = (-20 * 4.5 / 10) * mV
    Ce, Ci = excitatory_inhibitory_synapses(P, rng, "ge += we", "gi += wi")  # noqa: N806
    spikes = SpikeMonitor(P, record=False)
    run(duration)
    total = float(spikes.num_spikes)
    seconds = float(duration)
    return {"spikes": total, "mean_rate": total / size / seconds}
