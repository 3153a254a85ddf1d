"""Brunel (2000): a sparse excitatory-inhibitory network driven by external Poisson input.

Brian2's ``examples/frompapers/Brunel_2000.py`` (its state A: g = 3, external rate twice the
threshold rate) as a workload file, shrunk from 12500 neurons to 2000 with the same connection
probability (0.1): a model in no calibration suite, whose cost is driven by what none of the
suite's members has (a ``PoissonInput`` drawing a binomial number of external spikes for every
neuron each step, spikes delivered through a 1.5 ms delay queue).
"""

from __future__ import annotations

from typing import Any


def simulate(duration: Any) -> dict[str, float]:
    """Build and run the network for ``duration``; return its spike count and mean rate."""
    from brian2 import (
        NeuronGroup,
        PoissonInput,
        PopulationRateMonitor,
        SpikeMonitor,
        Synapses,
        ms,
        mV,
        run,
        seed,
    )

    seed(2000)
    n_excitatory, n_inhibitory, epsilon = 1600, 400, 0.1
    size = n_excitatory + n_inhibitory
    inputs = epsilon * n_excitatory
    constants = {"tau": 20 * ms, "theta": 20 * mV, "V_r": 10 * mV, "J": 0.1 * mV, "g": 3.0}
    threshold_rate = constants["theta"] / (constants["J"] * inputs * constants["tau"])
    neurons = NeuronGroup(size, "dv/dt = -v/tau : volt (unless refractory)",
                          threshold="v > theta", reset="v = V_r", refractory=2 * ms,
                          method="exact", namespace=constants)
    excitatory = Synapses(neurons[:n_excitatory], neurons, on_pre="v += J", delay=1.5 * ms,
                          namespace=constants)
    excitatory.connect(p=epsilon)
    inhibitory = Synapses(neurons[n_excitatory:], neurons, on_pre="v += -g*J",
                          delay=1.5 * ms, namespace=constants)
    inhibitory.connect(p=epsilon)
    external = PoissonInput(neurons, "v", N=int(inputs), rate=2 * threshold_rate,  # noqa: F841
                            weight=constants["J"])  # a local, so that run() collects it
    spikes = SpikeMonitor(neurons, record=False)
    population = PopulationRateMonitor(neurons)
    run(duration)
    total = float(spikes.num_spikes)
    return {"spikes": total, "mean_rate": total / size / float(duration),
            "population_rate": float(population.rate[:].mean())}
