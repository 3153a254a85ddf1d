"""Synfire chain: Diesmann, Gewaltig & Aertsen (1999), as in Brian2's examples.

Groups of 100 integrate-and-fire neurons with alpha-shaped synaptic currents, each group
connected all-to-all to the next; a volley of input spikes starts a wave down the chain, while
every neuron receives background noise (``xi``) drawn afresh each step. The noise makes the
cost: one normal random number per neuron and step outweighs the three equations it drives, and
no other built-in model draws any. ``size`` is the number of neurons (whole groups of 100; groups
of half the size below 200). Connectivity is fixed by construction and the input volley and
initial potentials come from numpy with a fixed seed; the noise stays stochastic (Brian2's
``seed``; standalone with OpenMP draws it in other streams), so its observables are counts and
rates over the whole network (a count of one group's spikes differed by 11 % with 2 threads).
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Neurons per group of the chain, as in the paper.
GROUP_SIZE = 100
#: Neurons of the input volley, as in the paper.
VOLLEY = 85


def chain(size: int) -> tuple[int, int]:
    """(groups, neurons per group) for ``size`` neurons."""
    group_size = GROUP_SIZE if size >= 2 * GROUP_SIZE else max(1, size // 2)
    return max(1, size // group_size), group_size


def simulate(duration: Any, size: int = 1000) -> dict[str, float]:
    """Run a synfire chain of about ``size`` neurons for ``duration``; return spike observables."""
    from brian2 import (
        NeuronGroup,
        SpikeGeneratorGroup,
        SpikeMonitor,
        Synapses,
        ms,
        mV,
        run,
        seed,
    )

    seed(1999)
    groups, group_size = chain(size)
    neurons = groups * group_size
    Vr, Vt = -70 * mV, -55 * mV  # noqa: N806 - physics names
    constants = {"Vr": Vr, "taum": 10 * ms, "taupsp": 0.325 * ms, "weight": 4.86 * mV}
    eqs = """
    dV/dt = (-(V-Vr)+x)*(1./taum) : volt
    dx/dt = (-x+y)*(1./taupsp) : volt
    dy/dt = -y*(1./taupsp)+25.27*mV/ms+(39.24*mV/ms**0.5)*xi : volt
    """
    rng = np.random.default_rng(1999)
    P = NeuronGroup(neurons, eqs, threshold="V>-55*mV", reset="V=Vr",  # noqa: N806
                    refractory=1 * ms, method="euler", namespace=constants)
    P.V = Vr + rng.random(neurons) * (Vt - Vr)
    volley = min(VOLLEY, group_size)
    source = SpikeGeneratorGroup(volley, np.arange(volley),
                                 (rng.standard_normal(volley) + 50) * ms)
    within = np.arange(group_size)
    pre = np.concatenate([np.repeat(g * group_size + within, group_size)
                          for g in range(groups - 1)]).astype(np.int32)
    post = np.concatenate([np.tile((g + 1) * group_size + within, group_size)
                           for g in range(groups - 1)]).astype(np.int32)
    forward = Synapses(P, P, on_pre="y += weight", namespace=constants)
    if groups > 1:
        forward.connect(i=pre, j=post)
    drive = Synapses(source, P[:group_size], on_pre="y += weight", namespace=constants)
    drive.connect()
    spikes = SpikeMonitor(P, record=False)
    run(duration)
    total = float(spikes.num_spikes)
    return {"spikes": total, "mean_rate": total / neurons / float(duration)}
