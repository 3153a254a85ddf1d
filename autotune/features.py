"""What drives a model's cost, read from its network before anything is simulated.

A model's loop cost grows with the state variables integrated every step, the synapses whose
events are delivered, and the objects that each run code every step (Python overhead per object
dominates numpy's small models); its fixed cost with the synapses created and the objects whose
code is generated and compiled. :class:`ModelFeatures` counts these; :func:`features_of` reads
them from the objects of a Brian2 network, and :mod:`autotune.drypass` from a script or a
built-in workload without running its simulation loop. :mod:`autotune.transfer` fits each
configuration's cost as a function of them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from autotune.errors import ProfileError

#: The features a cost is fit on, in order (see :meth:`ModelFeatures.vector`).
FEATURE_NAMES = ("state_variables", "synapses", "objects")


@dataclass(frozen=True)
class ModelFeatures:
    """Sizes of a model that its run time follows.

    Attributes:
        neurons: neurons in its groups (Poisson and spike-generator inputs included).
        state_variables: differential equations integrated per step, summed over neurons and
            clock-driven synapses (at least one per neuron: a threshold is checked).
        synapses: synapses in the model.
        plastic_synapses: those also updated on postsynaptic spikes (STDP and the like).
        objects: objects that run code every step (state updaters, thresholds, resets,
            synaptic pathways, monitors, ...).
        seconds: what reading them cost (the dry pass's wall time), when known.
    """

    neurons: int
    state_variables: int
    synapses: int
    plastic_synapses: int
    objects: int
    seconds: float | None = None

    def vector(self) -> tuple[float, ...]:
        """The fit's features (:data:`FEATURE_NAMES`) as numbers."""
        return tuple(float(getattr(self, name)) for name in FEATURE_NAMES)

    def describe(self) -> str:
        """One phrase, e.g. ``4000 neurons, 320000 synapses, 14 objects``."""
        text = f"{self.neurons} neurons, {self.synapses} synapses"
        if self.plastic_synapses:
            text += f" ({self.plastic_synapses} plastic)"
        return f"{text}, {self.objects} objects"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"neurons": self.neurons, "state_variables": self.state_variables,
                "synapses": self.synapses, "plastic_synapses": self.plastic_synapses,
                "objects": self.objects, "seconds": self.seconds}

    @classmethod
    def from_dict(cls, data: Any) -> ModelFeatures:
        """Validate and build (documents may come from another machine).

        Raises:
            ProfileError: missing, unknown or out-of-range values.
        """
        names = {"neurons", "state_variables", "synapses", "plastic_synapses", "objects",
                 "seconds"}
        if not isinstance(data, Mapping) or set(data) - names:
            raise ProfileError(f"model features must be a mapping of {sorted(names)}")
        counts = {}
        for name in sorted(names - {"seconds"}):
            value = data.get(name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 10**12:
                raise ProfileError(f"model feature {name} must be a whole number >= 0, "
                                   f"got {value!r}")
            counts[name] = value
        seconds = data.get("seconds")
        if seconds is not None and (isinstance(seconds, bool) or not isinstance(
                seconds, (int, float)) or not math.isfinite(seconds) or seconds < 0):
            raise ProfileError(f"model feature seconds must be a number >= 0, got {seconds!r}")
        return cls(seconds=None if seconds is None else float(seconds), **counts)


def _with_contained(objects: Iterable[Any]) -> list[Any]:
    """The objects and, recursively, the objects they contain (a group's state updater,
    threshold and reset; a synapse's pathways)."""
    seen: dict[int, Any] = {}
    stack = list(objects)
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen[id(obj)] = obj
        stack.extend(getattr(obj, "contained_objects", ()))
    return list(seen.values())


def features_of(objects: Iterable[Any]) -> ModelFeatures:
    """Count a network's features from its objects (needs Brian2; synapses must be connected,
    as they are under the runtime device once ``connect`` returned)."""
    from brian2 import NeuronGroup, Synapses
    from brian2.groups.group import CodeRunner, Group

    everything = _with_contained(objects)
    neurons = state_variables = synapses = plastic = 0
    for obj in everything:
        if isinstance(obj, Synapses):
            size = len(obj)
            synapses += size
            clock_driven = len(obj.equations.diff_eq_names) - len(
                getattr(obj, "event_driven", None) or ())
            state_variables += size * max(0, clock_driven)
            if len(getattr(obj, "_pathways", ())) > 1:
                plastic += size
        elif isinstance(obj, NeuronGroup):
            neurons += int(obj.N)
            state_variables += int(obj.N) * max(1, len(obj.equations.diff_eq_names))
        elif isinstance(obj, Group) and hasattr(obj, "N") and not hasattr(obj, "source"):
            neurons += int(obj.N)  # PoissonGroup, SpikeGeneratorGroup: checked every step
            state_variables += int(obj.N)
    running = sum(1 for obj in everything
                  if isinstance(obj, CodeRunner) and getattr(obj, "active", True))
    return ModelFeatures(neurons, state_variables, synapses, plastic, running)
