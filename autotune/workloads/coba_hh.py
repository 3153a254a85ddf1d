"""COBAHH: the Hodgkin-Huxley network with conductance synapses of Brette et al. (2007).

Follows Brian2's ``examples/COBAHH.py``; connection probability scaled with ``size`` so each
neuron keeps about 80 inputs. Connectivity and initial values are drawn with numpy from a fixed
seed (see ``_common``), so every configuration simulates the same network.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from autotune.workloads._common import excitatory_inhibitory_synapses


def simulate(duration: Any, size: int = 4000) -> dict[str, float]:
    """Build and run COBAHH with ``size`` neurons for ``duration``; return rate observables."""
    from brian2 import (
        Equations,
        NeuronGroup,
        SpikeMonitor,
        cm,
        ms,
        msiemens,
        mV,
        nS,
        run,
        seed,
        siemens,
        ufarad,
        umetre,
    )

    seed(1234)
    area = 20000 * umetre**2
    Cm = (1 * ufarad * cm**-2) * area  # noqa: N806
    gl = (5e-5 * siemens * cm**-2) * area
    El, EK, ENa = -60 * mV, -90 * mV, 50 * mV  # noqa: N806
    g_na = (100 * msiemens * cm**-2) * area
    g_kd = (30 * msiemens * cm**-2) * area
    VT = -63 * mV  # noqa: N806
    taue, taui = 5 * ms, 10 * ms
    Ee, Ei = 0 * mV, -80 * mV  # noqa: N806
    we, wi = 6 * nS, 67 * nS
    eqs = Equations("""
    dv/dt = (gl*(El-v)+ge*(Ee-v)+gi*(Ei-v)-
             g_na*(m*m*m)*h*(v-ENa)-
             g_kd*(n*n*n*n)*(v-EK))/Cm : volt
    dm/dt = alpha_m*(1-m)-beta_m*m : 1
    dn/dt = alpha_n*(1-n)-beta_n*n : 1
    dh/dt = alpha_h*(1-h)-beta_h*h : 1
    dge/dt = -ge*(1./taue) : siemens
    dgi/dt = -gi*(1./taui) : siemens
    alpha_m = 0.32*(mV**-1)*4*mV/exprel((13*mV-v+VT)/(4*mV))/ms : Hz
    beta_m = 0.28*(mV**-1)*5*mV/exprel((v-VT-40*mV)/(5*mV))/ms : Hz
    alpha_h = 0.128*exp((17*mV-v+VT)/(18*mV))/ms : Hz
    beta_h = 4./(1+exp((40*mV-v+VT)/(5*mV)))/ms : Hz
    alpha_n = 0.032*(mV**-1)*5*mV/exprel((15*mV-v+VT)/(5*mV))/ms : Hz
    beta_n = .5*exp((10*mV-v+VT)/(40*mV))/ms : Hz
    """)
    P = NeuronGroup(size, model=eqs, threshold="v>-20*mV", refractory=3 * ms,  # noqa: N806
                    method="exponential_euler")
    rng = np.random.default_rng(1234)
    Ce, Ci = excitatory_inhibitory_synapses(P, rng, "ge+=we", "gi+=wi")  # noqa: N806
    P.v = El + (rng.standard_normal(size) * 5 - 5) * mV
    P.ge = (rng.standard_normal(size) * 1.5 + 4) * 10.0 * nS
    P.gi = (rng.standard_normal(size) * 12 + 20) * 10.0 * nS
    spikes = SpikeMonitor(P, record=False)
    run(duration)
    total = float(spikes.num_spikes)
    return {"spikes": total, "mean_rate": total / size / float(duration)}
