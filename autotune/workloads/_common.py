"""Helpers shared by the built-in workloads.

Built-in models draw their connectivity and initial values with numpy from a fixed seed and hand
them to Brian2 as arrays. Brian2's own ``connect(p=...)`` and ``'rand()'`` initialisers draw
numbers differently under numpy, Cython and C++ standalone, which would give each target a
different network; with arrays every configuration simulates the same network, so validation
compares like with like and only numerics (float32) or threading can make results differ.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_DENSE_LIMIT = 4_000_000  # pairs; above this, sample targets instead of drawing a full matrix


def random_connectivity(rng: np.random.Generator, n_source: int, n_target: int, p: float
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Source and target indices of a random graph with connection probability ``p``."""
    if n_source * n_target <= _DENSE_LIMIT:
        sources, targets = np.nonzero(rng.random((n_source, n_target)) < p)
        return sources.astype(np.int32), targets.astype(np.int32)
    counts = rng.binomial(n_target, p, n_source)
    sources = np.repeat(np.arange(n_source, dtype=np.int32), counts)
    targets = rng.integers(0, n_target, int(counts.sum()), dtype=np.int32)
    return sources, targets


def excitatory_inhibitory_synapses(group: Any, rng: np.random.Generator, on_pre_excitatory: str,
                                   on_pre_inhibitory: str) -> tuple[Any, Any]:
    """The recurrent synapses of the Vogels & Abbott-style networks (CUBA, COBA, COBA-HH):
    the first 80 % of ``group`` excitatory, the rest inhibitory, each neuron with about 80
    inputs whatever its size (as at the original 4000 neurons). The caller must keep both in
    local variables: Brian2's ``run()`` collects only the objects its caller's frame holds."""
    from brian2 import Synapses

    size = len(group)
    sources, targets = random_connectivity(rng, size, size, min(1.0, 80.0 / size))
    excitatory = sources < int(size * 0.8)
    exc = Synapses(group, group, on_pre=on_pre_excitatory)
    inh = Synapses(group, group, on_pre=on_pre_inhibitory)
    exc.connect(i=sources[excitatory], j=targets[excitatory])
    inh.connect(i=sources[~excitatory], j=targets[~excitatory])
    return exc, inh
