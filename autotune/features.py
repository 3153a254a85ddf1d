"""What drives a model's cost, read from its network before anything is simulated.

A model's loop cost grows with the operations of the equations integrated every step, the
synapses whose events are delivered, the objects that each run code every step (Python's
overhead per object dominates numpy's small models) and, for numpy, the operations on whole
arrays (a call's overhead each, however few neurons); its fixed cost with the synapses created
and the objects whose code is generated and compiled. What is done every step is counted per
0.1 ms simulated (Brian2's default time step), so that a script with a ten times finer
``defaultclock.dt`` counts ten times the work per simulated second. :class:`ModelFeatures`
counts these; :func:`features_of` reads them from the objects of a Brian2 network, and
:mod:`autotune.drypass` from a script or a built-in workload without running its simulation loop.
:mod:`autotune.transfer` fits each configuration's cost as a function of them.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from autotune.errors import ProfileError

#: The names of :class:`ModelFeatures`' counts (all required in a stored document).
COUNTS = ("neurons", "state_variables", "operations", "synapses", "plastic_synapses", "objects",
          "random_normals", "object_steps", "function_calls", "random_uniforms",
          "vector_operations")
#: Functions that cost far more than an arithmetic operation (tens of them in C++): a call of
#: one on a state-dependent argument is counted in :attr:`ModelFeatures.function_calls`.
COSTLY_FUNCTIONS = frozenset({
    "exp", "exprel", "expm1", "log", "log10", "log1p", "sqrt", "sin", "cos", "tan", "sinh",
    "cosh", "tanh", "arcsin", "arccos", "arctan"})
#: How features are counted: a script's cached dry pass counted another way is made again
#: (2: a binomial draw by inversion counts its steps, :data:`INVERSION_STEP_COST`).
COUNTING = 2
#: Brian2's default time step (seconds): the per-step counts are per this much simulated time.
DEFAULT_STEP = 1e-4
#: What one step of Brian2's binomial draw by inversion (a ``PoissonInput`` whose ``N p`` is 5
#: or less) costs, in normal draws: in standalone without OpenMP, 4000 targets drawing with
#: ``N p`` = 0.2, 2 and 4.5 took 5.9, 19.8 and 31.6 ns per draw, about 5.9 ns more per unit of
#: ``N p``, where a normal draw (``xi``) took 10.2 ns (2 s simulated, Brian2's ``profile=True``,
#: 2-CPU Xeon VM). Counted as one uniform draw, Brunel (2000)'s external input, half of its loop
#: (``N p`` = 2), was priced at a tenth of what it costs, and its loop predicted 7.5 times too
#: light and mostly synaptic events, which 2 threads deliver worse: they ran it 12 % faster.
INVERSION_STEP_COST = 0.6


@dataclass(frozen=True)
class ModelFeatures:
    """Sizes of a model that its run time follows.

    The per-step counts (``state_variables``, ``operations``, ``random_normals``,
    ``object_steps``) are per 0.1 ms simulated, Brian2's default time step: each object's are
    multiplied by its steps in that time (10 for ``dt = 0.01*ms``, 0.1 for ``dt = 1*ms``).

    Attributes:
        neurons: neurons in its groups (Poisson and spike-generator inputs included).
        state_variables: differential equations integrated per step, summed over neurons and
            clock-driven synapses (at least one per neuron: a threshold is checked).
        operations: arithmetic operations and function calls of those equations and their
            subexpressions per step, summed likewise: what separates a Hodgkin-Huxley neuron
            (hundreds, with exponentials; numpy ran COBA-HH 70 times slower per neuron than
            CUBA) from a leaky integrate-and-fire one (a handful).
        synapses: synapses in the model.
        plastic_synapses: those also updated on postsynaptic spikes (STDP and the like).
        objects: objects that run code every step (state updaters, thresholds, resets,
            synaptic pathways, monitors, ...).
        random_normals: normal random numbers drawn per step, summed likewise: a noise term
            (``xi``) or ``randn()`` in the equations, and the steps of a ``PoissonInput``'s
            binomial draws by inversion in normal draws' worth (:data:`INVERSION_STEP_COST`).
            One costs tens of arithmetic operations
            (Brunel & Hakim's 2000 noisy neurons spend 0.56 of their 0.64 s per simulated second
            in standalone drawing them), and no other count grows with it.
        object_steps: the steps of the objects that run code every step, per 0.1 ms
            simulated: ``objects`` at the default time step. The loop pays each object's
            overhead once per step, while its code is generated and compiled once per object.
        function_calls: calls of costly functions (:data:`COSTLY_FUNCTIONS`: ``exp``,
            ``exprel``, ``log``, ...) on state-dependent arguments in those equations per step,
            summed likewise (calls on constants are computed once, outside the loop). Counted
            as one operation each, a Hodgkin-Huxley neuron's six exponentials look like six
            additions; without this count its loop was predicted 13 times too light from
            models that have none.
        random_uniforms: uniform random numbers drawn per step, summed likewise: a
            ``PoissonGroup``'s threshold (one per input and step), a ``PoissonInput``'s
            binomial draw for each target (one, or a normal draw where Brian2 approximates it
            by a normal), ``rand()`` in the equations. One costs about a fifth of a normal
            draw; STDP's 4000 Poisson inputs spend about 0.1 s per simulated second drawing
            them in standalone, half its loop, and no other count grows with them.
        vector_operations: the operations of each group's per-step equations, counted once
            per group rather than once per neuron or synapse, per step, summed likewise: what
            numpy does on whole arrays. Each of its operations pays a call's overhead of about a
            microsecond whatever the array's length, so a small Hodgkin-Huxley model runs at
            this pace, not at its operations': Brian2's one-neuron ``Wang_Buszaki_1996.py``
            (dt 0.01 ms) took 14.6 s under numpy where ``operations`` predicted 3.6 s.
        seconds: what reading them cost (the dry pass's wall time), when known.
    """

    neurons: int
    state_variables: int
    operations: int
    synapses: int
    plastic_synapses: int
    objects: int
    random_normals: int = 0
    object_steps: int | None = None
    function_calls: int = 0
    random_uniforms: int = 0
    vector_operations: int = 0
    seconds: float | None = None

    @property
    def loop_objects(self) -> int:
        """The objects as the loop pays for them: :attr:`object_steps`, or :attr:`objects`
        where that is not given (every object at the default time step)."""
        return self.objects if self.object_steps is None else self.object_steps

    def describe(self) -> str:
        """One phrase, e.g. ``4000 neurons, 320000 synapses, 14 objects``."""
        text = f"{self.neurons} neurons, {self.synapses} synapses"
        if self.plastic_synapses:
            text += f" ({self.plastic_synapses} plastic)"
        text += f", {self.objects} objects"
        if self.random_normals:
            text += f", {self.random_normals} noise draws per 0.1 ms"
        if self.random_uniforms:
            text += f", {self.random_uniforms} uniform draws per 0.1 ms"
        if self.function_calls:
            text += f", {self.function_calls} costly function calls per 0.1 ms"
        if self.loop_objects != self.objects:
            text += f", {self.loop_objects} object steps per 0.1 ms (time steps other than 0.1 ms)"
        return text

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {**{name: getattr(self, name) for name in (*COUNTS, "seconds")},
                "object_steps": self.loop_objects}

    @classmethod
    def from_dict(cls, data: Any) -> ModelFeatures:
        """Validate and build (documents may come from another machine).

        Raises:
            ProfileError: missing, unknown or out-of-range values (features of an older
                version lack some counts: :func:`check_document` accepts those).
        """
        check_document(data)
        missing = [name for name in COUNTS if name not in data]
        if missing:
            raise ProfileError(f"model features lack {', '.join(missing)} (read by an older "
                               "version; `brian2-autotune calibrate --suite` reads them again)")
        seconds = data.get("seconds")
        return cls(seconds=None if seconds is None else float(seconds),
                   **{name: data[name] for name in COUNTS})


def check_document(data: Any) -> None:
    """Check a stored features document's values, allowing counts it lacks.

    Raises:
        ProfileError: not a mapping, unknown keys, or values out of range.
    """
    names = {*COUNTS, "seconds"}
    if not isinstance(data, Mapping) or set(data) - names:
        raise ProfileError(f"model features must be a mapping of {sorted(names)}")
    for name in COUNTS:
        value = data.get(name, 0)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 10**12:
            raise ProfileError(f"model feature {name} must be a whole number >= 0, "
                               f"got {value!r}")
    seconds = data.get("seconds")
    if seconds is not None and (isinstance(seconds, bool) or not isinstance(
            seconds, (int, float)) or not math.isfinite(seconds) or seconds < 0):
        raise ProfileError(f"model feature seconds must be a number >= 0, got {seconds!r}")


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


@dataclass(frozen=True)
class _PerStep:
    """What one group's per-step equations cost for each of its neurons or synapses."""

    variables: int
    operations: int
    normals: int
    calls: int
    uniforms: int = 0


@dataclass(frozen=True)
class _ExpressionCounts:
    """What one expression costs each time it is evaluated."""

    operations: int
    normals: int
    calls: int
    uniforms: int


def _expression_counts(code: str, state: frozenset[str]) -> _ExpressionCounts:
    """In one expression, from one parse: its operations (arithmetic, comparisons, function
    calls; 1 when it does not parse), the calls of costly functions whose arguments use a name
    of ``state`` (the equations' own variables), and the calls of ``randn`` and ``rand``."""
    try:
        tree = ast.parse(code, mode="eval")
    except SyntaxError:
        return _ExpressionCounts(1, 0, 0, 0)
    operations = costly = normals = uniforms = 0
    for node in ast.walk(tree):
        operations += isinstance(node, (ast.BinOp, ast.UnaryOp, ast.Call, ast.Compare,
                                        ast.BoolOp))
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        if node.func.id == "randn":
            normals += 1
        elif node.func.id == "rand":
            uniforms += 1
        elif node.func.id in COSTLY_FUNCTIONS and any(
                isinstance(inner, ast.Name) and inner.id in state
                for argument in node.args for inner in ast.walk(argument)):
            costly += 1
    return _ExpressionCounts(operations, normals, costly, uniforms)


def _per_step(equations: Any) -> _PerStep:
    """The per-step counts of one group's equations (event-driven ones are not per step)."""
    from brian2.equations.equations import DIFFERENTIAL_EQUATION, SUBEXPRESSION

    state = frozenset(equations.names) | {"t"}
    variables = operations = normals = calls = uniforms = 0
    for equation in equations.ordered:
        if equation.type == DIFFERENTIAL_EQUATION:
            variables += 1
        if equation.type in (DIFFERENTIAL_EQUATION, SUBEXPRESSION) and equation.expr is not None:
            counted = _expression_counts(equation.expr.code, state)
            operations += counted.operations
            calls += counted.calls
            normals += counted.normals
            uniforms += counted.uniforms
    # one draw per noise variable and step, however many equations share it
    normals += len(getattr(equations, "stochastic_variables", ()))
    return _PerStep(variables, operations, normals, calls, uniforms)


def _steps_per_default_step(obj: Any) -> float:
    """How many steps ``obj`` takes per 0.1 ms simulated (its clock's; 1 without one)."""
    clock = getattr(obj, "clock", None)
    dt = getattr(clock, "dt_", None)
    try:
        return DEFAULT_STEP / float(dt) if dt else 1.0
    except (TypeError, ValueError):
        return 1.0


def _poisson_input_draws(obj: Any) -> tuple[float, float]:
    """A ``PoissonInput``'s (normal, uniform) draws per step: one binomial draw per target
    neuron, which Brian2 approximates by a normal draw where ``N p`` and ``N (1 - p)`` both
    exceed 5, and otherwise draws by inversion from a uniform one, walking on for about
    ``N min(p, 1 - p)`` steps: those are counted at :data:`INVERSION_STEP_COST` normal draws
    each."""
    try:
        targets = float(len(obj.group))
        inputs = float(obj.N)
        p = float(obj.rate * obj.group.clock.dt)
    except (AttributeError, TypeError, ValueError):
        return 0.0, 0.0
    if inputs * p > 5 and inputs * (1 - p) > 5:
        return targets, 0.0
    return targets * inputs * min(p, 1.0 - p) * INVERSION_STEP_COST, targets


def features_of(objects: Iterable[Any]) -> ModelFeatures:
    """Count a network's features from its objects (needs Brian2; synapses must be connected,
    as they are under the runtime device once ``connect`` returned). Each object's clock is
    read as it is now, so a ``defaultclock.dt`` set before ``run()`` counts."""
    from brian2 import NeuronGroup, PoissonGroup, PoissonInput, Synapses
    from brian2.groups.group import CodeRunner, Group

    everything = _with_contained(objects)
    neurons = synapses = plastic = 0
    state_variables = operations = normals = calls = uniforms = vector_operations = 0.0
    for obj in everything:
        steps = _steps_per_default_step(obj)
        if isinstance(obj, (Synapses, NeuronGroup)):
            size = len(obj) if isinstance(obj, Synapses) else int(obj.N)
            step = _per_step(obj.equations)
            if isinstance(obj, Synapses):
                synapses += size
                if any(getattr(pathway, "prepost", "pre") == "post"
                       for pathway in getattr(obj, "_pathways", ())):
                    plastic += size  # two presynaptic pathways (delays) are not plasticity
            else:
                neurons += size
                # every neuron's threshold is checked each step
                step = replace(step, variables=max(1, step.variables),
                               operations=max(1, step.operations))
            state_variables += steps * size * step.variables
            operations += steps * size * step.operations
            vector_operations += steps * step.operations if size else 0.0
            normals += steps * size * step.normals
            calls += steps * size * step.calls
            uniforms += steps * size * step.uniforms
        elif isinstance(obj, PoissonInput):
            drawn_normals, drawn_uniforms = _poisson_input_draws(obj)
            normals += steps * drawn_normals
            uniforms += steps * drawn_uniforms
        elif isinstance(obj, Group) and hasattr(obj, "N") and not hasattr(obj, "source"):
            # PoissonGroup, SpikeGeneratorGroup: checked every step; a PoissonGroup's
            # threshold draws one uniform number per input
            neurons += int(obj.N)
            state_variables += steps * int(obj.N)
            operations += steps * int(obj.N)
            vector_operations += steps
            if isinstance(obj, PoissonGroup):
                uniforms += steps * int(obj.N)
    running = [obj for obj in everything
               if isinstance(obj, CodeRunner) and getattr(obj, "active", True)]
    object_steps = sum(_steps_per_default_step(obj) for obj in running)
    return ModelFeatures(neurons, round(state_variables), round(operations), synapses, plastic,
                         len(running), round(normals),
                         max(round(object_steps), 1) if running else 0, round(calls),
                         round(uniforms), round(vector_operations))
