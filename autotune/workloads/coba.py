"""COBA: Vogels & Abbott's (2005) conductance-based network, benchmark 1 of Brette et al. (2007).

CUBA's network with conductances instead of currents: 80 % excitatory, 20 % inhibitory leaky
integrate-and-fire neurons whose synaptic input is scaled by the distance to its reversal
potential, driven by a constant current. Its loop, like CUBA's, is mostly synaptic events at
the network's firing rate (why the suite has it: :data:`autotune.suite.SUITE`). Every neuron
keeps about 80 inputs whatever the ``size``; connectivity and initial potentials are drawn with
numpy from a fixed seed (see ``_common``), so every configuration simulates the same network.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from autotune.workloads._common import excitatory_inhibitory_synapses


def simulate(duration: Any, size: int = 4000) -> dict[str, float]:
    """Build and run COBA with ``size`` neurons for ``duration``; return rate observables."""
    from brian2 import NeuronGroup, SpikeMonitor, ms, mV, run, seed

    seed(2468)
    taum, taue, taui = 20 * ms, 5 * ms, 10 * ms
    Vt, Vr, El = -50 * mV, -60 * mV, -60 * mV  # noqa: N806 - physics names
    Erev_exc, Erev_inh = 0 * mV, -80 * mV  # noqa: N806
    I = 20 * mV  # noqa: N806, E741
    eqs = """
    dv/dt  = (ge*(Erev_exc-v)+gi*(Erev_inh-v)-(v-El) + I)*(1./taum) : volt (unless refractory)
    dge/dt = -ge/taue : 1
    dgi/dt = -gi/taui : 1
    """
    P = NeuronGroup(size, eqs, threshold="v>Vt", reset="v = Vr", refractory=5 * ms,  # noqa: N806
                    method="euler")
    rng = np.random.default_rng(2468)
    P.v = Vr + rng.random(size) * (Vt - Vr)
    we, wi = 0.6, 6.7  # conductances relative to the leak
    Ce, Ci = excitatory_inhibitory_synapses(P, rng, "ge += we", "gi += wi")  # noqa: N806
    spikes = SpikeMonitor(P, record=False)
    run(duration)
    total = float(spikes.num_spikes)
    return {"spikes": total, "mean_rate": total / size / float(duration)}
