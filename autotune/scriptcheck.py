"""Read a Brian2 script (without running it) to find out what can serve it.

cpp_standalone with ``build_on_run=True`` builds and runs the whole network at the first
``run()``: a script that runs several times, runs inside a loop, uses ``network_operation``,
``store``/``restore`` or a Python ``report`` callback crashes there after its first run has
already printed and saved, and one that reads a state variable before ``run()``
(``print(G.v[:3])``, ``S.w['i>j']``, ``len(S)``) crashes before it. Such a script gets the best
runtime configuration instead, and the reason is logged. A script that chooses its own device or
code-generation target is left alone. Pure-Python functions used in equations
(``@check_units``/``Function``) need the numpy target.

The script's own modules are read too: those Python would import from the script's folder (such
as a ``model.py`` beside a ``sweep.py``; for ``python -m``, from the folder above its package),
and the user's code it imports from elsewhere (a lab's module on ``PYTHONPATH``, an editable
install, a folder the script adds to ``sys.path`` itself: :mod:`autotune.importpaths`), and a
lab's package installed from a folder on this machine (``pip install ./lab``), but no other
library installed into the interpreter's prefix or site-packages (:func:`user_code_root`). A
``run()``, a ``network_operation`` or a second ``run()`` there matters as much as in the script,
and editing them changes the model, so their text is part of the script's digest. The analysis
is static and errs on the side of runtime; what it cannot see (a read hidden in an installed
library) is caught when the script runs (:mod:`autotune.runner`).
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import json
import site
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from autotune.errors import ScriptError
from autotune.importpaths import added_import_folders, current_folder

if TYPE_CHECKING:
    from autotune.paths import ModuleToRun

_DEVICE_CHOICE_CALLS = {"set_device", "build"}
#: Why standalone cannot serve a script with a network_operation (it would leave it out).
NETWORK_OPERATION_REASON = "uses network_operation (Python code during the run)"
_UNSUPPORTED_IN_STANDALONE = {"network_operation": NETWORK_OPERATION_REASON,
                              "store": "uses store()/restore()",
                              "restore": "uses store()/restore()"}
#: Why numpy cannot serve a script that integrates with GSL.
GSL_REASON = ("it integrates with GSL (a 'gsl' method), which Brian2 implements for Cython and "
              "standalone only")
#: Why numpy cannot serve a multi-compartment model here.
SPATIAL_NEEDS_SCIPY = ("its SpatialNeuron needs scipy under numpy (Brian2 solves the cable "
                       "equation with scipy.linalg there), and scipy is not installed")
#: Constructors of objects whose state standalone cannot read before the run.
_GROUPS = {"NeuronGroup", "PoissonGroup", "SpikeGeneratorGroup", "SpatialNeuron", "Subgroup"}
_SYNAPSES = {"Synapses"}
_MONITORS = {"StateMonitor", "SpikeMonitor", "EventMonitor", "PopulationRateMonitor"}
#: Attributes that are no state variables: reading them before run() is fine (``N`` only for
#: groups, whose size is known at creation; a Synapses' ``N`` is its connection count).
_METADATA = {"name", "namespace", "dt", "clock", "source", "target", "variables", "equations",
             "active", "when", "order", "events", "record", "method_choice", "N",
             "codeobj_class", "contained_objects", "event_codes", "start", "stop"}
#: Calls that read the file named by their first argument (``np.load``, ``pd.read_csv``, ...);
#: ``open`` and ``h5py.File`` read unless their mode writes.
_FILE_READERS = {"load", "loadtxt", "genfromtxt", "fromfile", "loadmat", "read_csv", "read_json",
                 "read_table", "read_pickle", "read_hdf", "read_excel", "read_parquet"}
_FILE_OPENERS = {"open", "File"}
_PATH_READERS = {"read_text", "read_bytes", "open"}
#: Calls that write the file named by their first argument: a file the script writes as well
#: as reads (a connectivity it saves, then loads) is its own product, not an input.
_FILE_WRITERS = {"save", "savez", "savez_compressed", "savetxt", "savefig", "savemat", "to_csv",
                 "to_json", "to_pickle", "to_hdf", "to_parquet", "tofile"}
_PATH_WRITERS = {"write_text", "write_bytes"}
#: At most this many of a script's own modules are read (a script in a large source tree).
_MAX_OWN_MODULES = 40
#: A larger file is no hand-written model; it is not read.
_MAX_MODULE_BYTES = 1_000_000


@dataclass(frozen=True)
class ScriptAnalysis:
    """What a script allows.

    Attributes:
        standalone_ok: cpp_standalone can run it unchanged.
        cython_ok: the Cython target can compile it (no pure-Python functions in equations).
        own_device: the script sets its device/target itself; nothing will be applied.
        run_calls: number of ``run()`` call sites found.
        reasons: why standalone (or Cython) cannot serve it.
        run_length: simulated seconds the script runs, when every ``run()`` is outside loops
            and its duration is a literal (``run(10*second)``) or a module constant
            (``duration = 500*ms`` ... ``run(duration)``); None otherwise.
        runs_once: the script has one ``run()``, run once (outside loops, and in no function
            called more than once): the duration its first ``run()`` asks for, which the dry
            pass sees, is then the whole run's length.
        digest: a hash of the script's text and its own modules' (:func:`own_modules`): its
            runs are learned from under this name, so that an edited script (or model module)
            starts afresh.
        numpy_reason: why the numpy target cannot run it here (None when it can): Brian2 has
            no numpy code for GSL integration, and its numpy code for a ``SpatialNeuron``
            needs scipy, which Cython's and standalone's do not.
        environment: names of the environment variables the script (or its own modules)
            reads by a literal name (``os.environ["N"]``, ``os.getenv("SEED", "1")``).
        data_files: file names, as written, that the script (or its own modules) reads with a
            literal name (``np.load("weights.npy")``, ``open(PARAMS)`` with ``PARAMS =
            "params.json"``): with the environment, what besides its arguments can make one
            text build another model (:mod:`autotune.scriptinputs`).
    """

    standalone_ok: bool
    cython_ok: bool
    own_device: bool
    run_calls: int
    reasons: tuple[str, ...] = field(default_factory=tuple)
    run_length: float | None = None
    numpy_reason: str | None = None
    digest: str | None = None
    runs_once: bool = False
    environment: tuple[str, ...] = ()
    data_files: tuple[str, ...] = ()


def _call_name(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return None


class _Visitor(ast.NodeVisitor):
    def __init__(self) -> None:
        self.run_sites: list[tuple[bool, str | None]] = []  # (in loop, enclosing function)
        self.run_lengths: list[float | None] = []  # each run()'s duration, when known
        #: run()'s durations inside functions, by index in run_lengths, read again at the end
        self.deferred_lengths: dict[int, ast.expr] = {}
        #: module-level names bound to a number or a time: (value, power of time)
        #: module-level names bound to a quantity (None: set where its value is not known)
        self.constants: dict[str, tuple[float, int] | None] = {}
        self.loop_depth = 0
        self.functions: list[str] = []
        self.during_run = 0  # inside a network_operation: its reads happen during the run
        self.calls: dict[str, int] = {}
        self.loop_calls: set[str] = set()
        self.reasons: list[str] = []
        self.own_device = False
        self.python_functions = False
        self.spatial = False  # creates a SpatialNeuron (multi-compartment)
        self.gsl = False  # names a GSL integration method ('gsl', 'gsl_rk4', 'gsl_%s', ...)
        self.groups: set[str] = set()  # names bound to Brian2 groups and monitors
        self.synapses: set[str] = set()
        self.early_reads: list[str] = []  # "line N: text" of state reads before run()
        self.parents: dict[ast.AST, ast.AST] = {}
        self.environment: set[str] = set()  # environment variables read by literal name
        self.data_files: set[str] = set()  # files read by literal name
        self.written_files: set[str] = set()  # files written by literal name
        self.strings: dict[str, str] = {}  # module-level names bound to a string

    def visit(self, node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            self.parents[child] = node
        super().visit(node)

    def _loop(self, node: ast.AST) -> None:
        if isinstance(node, (ast.For, ast.AsyncFor)) and not self.functions:
            for target in ast.walk(node.target):
                if isinstance(target, ast.Name):
                    self._forget(target.id)
        self.loop_depth += 1
        self.generic_visit(node)
        self.loop_depth -= 1

    visit_For = visit_While = visit_AsyncFor = _loop  # noqa: N815
    # A comprehension evaluates its element once per item, as a loop runs its body.
    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _loop  # noqa: N815

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        operation = False
        for decorator in node.decorator_list:
            target = decorator.func if isinstance(decorator, ast.Call) else decorator
            name = target.id if isinstance(target, ast.Name) else getattr(target, "attr", None)
            if name == "network_operation":
                self.reasons.append(NETWORK_OPERATION_REASON)
                operation = True
            if name in ("check_units", "implementation"):
                self.python_functions = True
        self.functions.append(node.name)
        depth, self.loop_depth = self.loop_depth, 0
        self.during_run += operation
        self.generic_visit(node)
        self.during_run -= operation
        self.loop_depth = depth
        self.functions.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = _function  # noqa: N815

    def visit_Assign(self, node: ast.Assign) -> None:  # noqa: N802
        for target in node.targets:
            text = ast.unparse(target)
            if text.startswith(("prefs.codegen.target", "prefs.devices", "prefs['codegen.target'",
                                'prefs["codegen.target"')):
                self.own_device = True
        self._bind(node.targets, node.value)
        if not self.functions and len(node.targets) == 1:
            self._bind_constant(node.targets[0], node.value)
        elif any(_clock_step_name(target) for target in node.targets):
            self.constants[DEFAULT_DT_NAME] = None  # set in a function: not known here
        if not self.functions and len(node.targets) == 1 and isinstance(node.targets[0],
                                                                         ast.Name):
            text = self._string(node.value)
            if text is not None:
                self.strings[node.targets[0].id] = text
            else:
                self.strings.pop(node.targets[0].id, None)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:  # noqa: N802
        if not self.functions:  # T += 1*second, params['T'] *= 2
            self._bind_constant(node.target, ast.BinOp(node.target, node.op, node.value))
        self.generic_visit(node)

    def visit_Delete(self, node: ast.Delete) -> None:  # noqa: N802
        for target in node.targets:
            name = target.id if isinstance(target, ast.Name) else _subscript_name(target)
            if name is not None:
                self._forget(name)
        self.generic_visit(node)

    def _forget(self, name: str) -> None:
        """A module-level name (or a dictionary's entry) no longer holds a known quantity."""
        self.constants.pop(name, None)
        self._forget_entries(name)

    def _forget_entries(self, name: str) -> None:
        """The dictionary bound to ``name`` no longer holds known entries."""
        for entry in [n for n in self.constants if n.startswith(f"{name}[")]:
            del self.constants[entry]

    def _bind_constant(self, target: ast.expr, value: ast.expr) -> None:
        """Keep what a module-level assignment binds to a quantity: a name (``T = 10*second``),
        each entry of a dictionary literal (``params = {'duration': 1*second}``, read back as
        ``params['duration']``) or one entry (``params['duration'] = 2*second``)."""
        if _clock_step_name(target) and self.constants.get(DEFAULT_DT_NAME, ()) is None:
            return  # a function sets it too
        if isinstance(target, ast.Name):
            self._forget_entries(target.id)
            if isinstance(value, ast.Dict):
                for key, item in zip(value.keys, value.values, strict=True):
                    entry = _entry_name(target.id, key) if key is not None else None
                    quantity = _quantity(item, self.constants) if entry else None
                    if entry is not None and quantity is not None:
                        self.constants[entry] = quantity
        name = (target.id if isinstance(target, ast.Name) else _subscript_name(target)
                or _clock_step_name(target))
        if name is None:
            return
        quantity = _quantity(value, self.constants)
        if quantity is not None or name == DEFAULT_DT_NAME:  # the step has a default to hide
            self.constants[name] = quantity
        else:
            self.constants.pop(name, None)

    def visit_Subscript(self, node: ast.Subscript) -> None:  # noqa: N802
        if _is_environ(node.value) and isinstance(node.ctx, ast.Load):
            self._environment_name(node.slice)
        self.generic_visit(node)

    def visit_Compare(self, node: ast.Compare) -> None:  # noqa: N802
        if (len(node.ops) == 1 and isinstance(node.ops[0], (ast.In, ast.NotIn))
                and _is_environ(node.comparators[0])):
            self._environment_name(node.left)  # "DEBUG" in os.environ
        self.generic_visit(node)

    def _environment_name(self, node: ast.expr) -> None:
        name = self._string(node)
        if name:
            self.environment.add(name)

    def _string(self, node: ast.expr | None) -> str | None:
        """The text of a string literal, of a module-level name bound to one, or of a path
        built from such (``Path("data")``, ``DATA / "w.npy"``, ``os.path.join(DATA, "w")``)."""
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name):
            return self.strings.get(node.id)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            parts = [self._string(node.left), self._string(node.right)]
        elif isinstance(node, ast.Call) and _call_name(node) in ("Path", "join") and node.args:
            parts = [self._string(arg) for arg in node.args]
        else:
            return None
        if any(part is None for part in parts):
            return None
        return str(PurePosixPath(*parts))  # type: ignore[arg-type]

    def _inputs_of(self, node: ast.Call, name: str) -> None:
        """Note the environment variable or file a call reads by a literal name."""
        first = node.args[0] if node.args else None
        func = node.func
        if name == "getenv" or (name == "get" and isinstance(func, ast.Attribute)
                                and _is_environ(func.value)):
            self._environment_name(first)
        elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Call) and (
                _call_name(func.value) == "Path" and func.value.args
                and name in _PATH_READERS | _PATH_WRITERS):
            # Path("params.json").read_text(), .write_text(...)
            self._file(func.value.args[0], written=name in _PATH_WRITERS or (
                name == "open" and not _reads(node, mode_at=0)))
        elif name in _FILE_READERS | _FILE_OPENERS | _FILE_WRITERS:
            self._file(first if first is not None else next(
                (k.value for k in node.keywords if k.arg in ("file", "fname", "name")), None),
                written=name in _FILE_WRITERS or (name in _FILE_OPENERS and not _reads(node)))

    def _file(self, node: ast.expr | None, written: bool) -> None:
        path = self._string(node)
        if path and "\n" not in path and len(path) < 1024:
            (self.written_files if written else self.data_files).add(path)

    def _bind(self, targets: list[ast.expr], value: ast.expr) -> None:
        """Remember names bound to Brian2 objects (``G = NeuronGroup(...)``, ``Pe = P[:10]``)."""
        kind = None
        if isinstance(value, ast.Call):
            name = _call_name(value)
            kind = ("synapses" if name in _SYNAPSES else
                    "group" if name in _GROUPS | _MONITORS else None)
        elif isinstance(value, ast.Subscript) and isinstance(value.value, ast.Name):
            kind = "group" if value.value.id in self.groups else None
        names = [t.id for t in targets if isinstance(t, ast.Name)]
        for t in targets:
            if isinstance(t, ast.Tuple):
                names += [e.id for e in t.elts if isinstance(e, ast.Name)]
        for name in names:
            self.groups.discard(name)
            self.synapses.discard(name)
            if kind == "synapses":
                self.synapses.add(name)
            if kind is not None:
                self.groups.add(name)

    def visit_Attribute(self, node: ast.Attribute) -> None:  # noqa: N802
        if (not self.run_sites and not self.during_run and isinstance(node.ctx, ast.Load)
                and isinstance(node.value, ast.Name) and node.value.id in self.groups
                and self._reads_state(node)):
            self._early_read(node)
        self.generic_visit(node)

    def _reads_state(self, node: ast.Attribute) -> bool:
        parent = self.parents.get(node)
        if isinstance(parent, ast.Call) and parent.func is node:
            return node.attr in ("get_states",)  # other methods (connect, ...) are fine
        if node.attr in _METADATA and not (node.attr == "N" and node.value.id in self.synapses):  # type: ignore[attr-defined]
            return False
        if isinstance(parent, ast.Subscript) and parent.value is node:
            # G.v[:] = x writes (fine); G.v[:] += x and G.v[:3] read
            grand = self.parents.get(parent)
            return not (isinstance(parent.ctx, ast.Store) and not isinstance(grand, ast.AugAssign))
        if isinstance(parent, ast.Attribute) and parent.value is node:
            return False  # G.v.shape and the like: rare; let the run decide
        return True

    def _early_read(self, node: ast.AST) -> None:
        statement = node
        while statement in self.parents and not isinstance(statement, ast.stmt):
            statement = self.parents[statement]
        text = ast.unparse(statement).splitlines()[0][:60]
        self.early_reads.append(f"line {node.lineno}: {text}")  # type: ignore[attr-defined]

    def visit_Constant(self, node: ast.Constant) -> None:  # noqa: N802
        if isinstance(node.value, str) and (node.value == "gsl"
                                            or node.value.startswith("gsl_")):
            self.gsl = True

    def visit_Call(self, node: ast.Call) -> None:  # noqa: N802
        if (isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name)
                and node.func.attr not in _READING_METHODS):
            # params.update(...), params.pop('T'): the dictionary's entries are not known now
            self._forget_entries(node.func.value.id)
        name = _call_name(node)
        if name is not None:
            self.calls[name] = self.calls.get(name, 0) + 1
            if self.loop_depth:
                self.loop_calls.add(name)
            self._inputs_of(node, name)
        if name == "run":
            self.run_sites.append((self.loop_depth > 0, self.functions[-1] if self.functions
                                   else None))
            duration = node.args[0] if node.args else next(
                (k.value for k in node.keywords if k.arg == "duration"), None)
            if duration is not None and self.functions:
                # a function body runs when called, mostly below the constants it reads: its
                # length is read with the module's constants at the end (:func:`_visit`)
                self.deferred_lengths[len(self.run_lengths)] = duration
                self.run_lengths.append(None)
            else:
                self.run_lengths.append(_seconds(duration, self.constants)
                                        if duration is not None else None)
            for keyword in node.keywords:
                if keyword.arg == "report" and not isinstance(keyword.value, ast.Constant):
                    self.reasons.append("passes a Python report callback to run()")
        elif name in _DEVICE_CHOICE_CALLS and (name != "build" or _is_device_build(node)):
            self.own_device = True
        elif name in _UNSUPPORTED_IN_STANDALONE:
            self.reasons.append(_UNSUPPORTED_IN_STANDALONE[name])
        elif name == "Function":
            self.python_functions = True
        elif name == "SpatialNeuron":
            self.spatial = True
        elif name == "StateMonitor" and self._records_every_synapse(node):
            self.reasons.append("records synapses with StateMonitor(..., record=True) "
                                "(standalone does not know the synapses before it runs)")
        elif (name == "len" and not self.run_sites and node.args
              and isinstance(node.args[0], ast.Name) and node.args[0].id in self.synapses):
            self._early_read(node)
        self.generic_visit(node)

    def _records_every_synapse(self, node: ast.Call) -> bool:
        """``StateMonitor(S, 'w', record=True)`` with ``S`` bound to Synapses."""
        source = node.args[0] if node.args else next(
            (k.value for k in node.keywords if k.arg == "source"), None)
        record = node.args[2] if len(node.args) > 2 else next(
            (k.value for k in node.keywords if k.arg == "record"), None)
        return (isinstance(source, ast.Name) and source.id in self.synapses
                and isinstance(record, ast.Constant) and record.value is True)


#: Methods of a dictionary that leave its entries as they are.
_READING_METHODS = frozenset({"get", "keys", "values", "items", "copy"})
#: Brian2's time step where a script sets none, in seconds.
BRIAN2_DEFAULT_DT = 1e-4
DEFAULT_DT_NAME = "defaultclock.dt"
#: Brian2's time units, in seconds.
_TIME_UNITS = {"second": 1.0, "second2": 1.0, "ms": 1e-3, "msecond": 1e-3, "us": 1e-6,
               "usecond": 1e-6, "minute": 60.0, "hour": 3600.0, "ns": 1e-9, "nsecond": 1e-9}


def _seconds(node: ast.expr, constants: dict[str, tuple[float, int] | None]) -> float | None:
    """The value in seconds of ``10*second``, ``500*ms``, ``T*ms`` with ``T = 100``, a name
    bound to a time, ...; None when ``node`` is not a time the source alone determines."""
    value = _quantity(node, constants)
    return value[0] if value is not None and value[1] == 1 else None


def _quantity(node: ast.expr, constants: dict[str, tuple[float, int] | None]
              ) -> tuple[float, int] | None:
    """(value, power of time): power 1 for a time in seconds, 0 for a plain number."""
    if isinstance(node, ast.Constant):
        plain = isinstance(node.value, (int, float)) and not isinstance(node.value, bool)
        return (float(node.value), 0) if plain else None
    if isinstance(node, ast.Name):
        if node.id in constants:
            return constants[node.id]
        return (_TIME_UNITS[node.id], 1) if node.id in _TIME_UNITS else None
    if isinstance(node, ast.Subscript):
        name = _subscript_name(node)
        return constants.get(name) if name is not None else None
    if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            and node.attr in _TIME_UNITS):  # b2.second, after import brian2 as b2
        return _TIME_UNITS[node.attr], 1
    if _clock_step_name(node) is not None:  # run(steps*defaultclock.dt)
        return constants.get(DEFAULT_DT_NAME, (BRIAN2_DEFAULT_DT, 1))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _quantity(node.operand, constants)
        return (-inner[0], inner[1]) if inner is not None else None
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mult, ast.Div)):
        left, right = _quantity(node.left, constants), _quantity(node.right, constants)
        if left is None or right is None:
            return None
        if isinstance(node.op, ast.Mult):
            return left[0] * right[0], left[1] + right[1]
        return (left[0] / right[0], left[1] - right[1]) if right[0] else None
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
        left, right = _quantity(node.left, constants), _quantity(node.right, constants)
        if left is None or right is None or left[1] != right[1]:
            return None  # a time plus a number is an error in Brian2 too
        sign = 1.0 if isinstance(node.op, ast.Add) else -1.0
        return left[0] + sign * right[0], left[1]
    return None


def _clock_step_name(node: ast.expr) -> str | None:
    """:data:`DEFAULT_DT_NAME` for ``defaultclock.dt`` (None for anything else)."""
    is_step = (isinstance(node, ast.Attribute) and node.attr == "dt"
               and isinstance(node.value, ast.Name) and node.value.id == "defaultclock")
    return DEFAULT_DT_NAME if is_step else None


def _entry_name(name: str, key: ast.expr) -> str | None:
    """How the constants hold ``name[key]`` for a literal string key (None for others)."""
    if isinstance(key, ast.Constant) and isinstance(key.value, str):
        return f"{name}[{key.value!r}]"
    return None


def _subscript_name(node: ast.expr) -> str | None:
    """The constants' name of ``params['duration']`` (None for any other subscript)."""
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
        return _entry_name(node.value.id, node.slice)
    return None


def _is_environ(node: ast.expr) -> bool:
    """``os.environ`` or ``environ`` (imported from os)."""
    return ((isinstance(node, ast.Attribute) and node.attr == "environ")
            or (isinstance(node, ast.Name) and node.id == "environ"))


def _reads(node: ast.Call, mode_at: int = 1) -> bool:
    """Whether an ``open(path[, mode])`` or ``File(path[, mode])`` call (``Path(p).open(mode)``:
    ``mode_at=0``) opens for reading only (its mode, where a literal, neither writes, appends
    nor creates)."""
    mode = node.args[mode_at] if len(node.args) > mode_at else next(
        (k.value for k in node.keywords if k.arg == "mode"), None)
    if mode is None:
        return True
    return (isinstance(mode, ast.Constant) and isinstance(mode.value, str)
            and not set(mode.value) & set("wax+"))


def _is_device_build(node: ast.Call) -> bool:
    return isinstance(node.func, ast.Attribute) and ast.unparse(node.func.value) == "device"


def _visit(source: str, filename: str) -> _Visitor:
    """Parse and walk one file.

    Raises:
        ScriptError: the source does not parse.
    """
    try:
        tree = ast.parse(source, filename=filename)
    except SyntaxError as e:
        raise ScriptError(f"{filename} line {e.lineno}: {e.msg}; it would not run under "
                          "python either") from e
    visitor = _Visitor()
    visitor.visit(tree)
    for index, duration in visitor.deferred_lengths.items():
        visitor.run_lengths[index] = _seconds(duration, visitor.constants)
    return visitor


def analyse_source(source: str, filename: str = "<script>",
                   modules: Mapping[str, str] | None = None) -> ScriptAnalysis:
    """Analyse a script's source text (see the module docstring).

    Args:
        modules: the script's own modules it imports, as {name shown in reasons: source}.

    Raises:
        ScriptError: the script's source does not parse (a module that does not parse is
            skipped: the run will show Python's own error).
    """
    script = _visit(source, filename)
    own = {name: visitor for name, visitor in
           ((name, _visit_or_none(text, name)) for name, text in (modules or {}).items())
           if visitor is not None}
    everyone = [script, *own.values()]
    calls: dict[str, int] = {}
    for visitor in everyone:
        for function, count in visitor.calls.items():
            calls[function] = calls.get(function, 0) + count
    loop_calls = set().union(*(visitor.loop_calls for visitor in everyone))
    reasons = list(script.reasons) + [f"{reason} (in {name})" for name, visitor in own.items()
                                      for reason in visitor.reasons]
    sites = [site for visitor in everyone for site in visitor.run_sites]
    if not sites:
        # standalone would only record what the script builds, never run it: no results,
        # and code generated for every object created (a benchmark of connect() in Brian2's
        # examples ran past 4 minutes instead of 3)
        reasons.append("calls no run() (cpp_standalone builds and runs the model at run())")
    if len(sites) > 1:
        reasons.append(f"calls run() {len(sites)} times")
    for in_loop, function in sites:
        if in_loop:
            reasons.append("calls run() inside a loop")
        elif _repeated((in_loop, function), calls, loop_calls):
            reasons.append(f"calls run() inside {function}(), which may run more than once")
    reads = script.early_reads + [f"{name} {read}" for name, visitor in own.items()
                                  for read in visitor.early_reads]
    if reads:
        reasons.append("reads state variables before run() (" + "; ".join(reads[:2])
                       + (f"; and {len(reads) - 2} more" if len(reads) > 2 else "") + ")")
    python_functions = any(visitor.python_functions for visitor in everyone)
    if python_functions:
        reasons.append("uses pure-Python functions in equations (numpy target only)")
    own_device = any(visitor.own_device for visitor in everyone)
    return ScriptAnalysis(
        standalone_ok=not reasons and not own_device,
        cython_ok=not python_functions,
        own_device=own_device,
        run_calls=len(sites),
        reasons=tuple(dict.fromkeys(reasons)),
        run_length=_total_length(everyone, calls, loop_calls),
        runs_once=len(sites) == 1 and not _repeated(sites[0], calls, loop_calls),
        numpy_reason=_numpy_reason(everyone),
        environment=tuple(sorted(set().union(*(v.environment for v in everyone)))),
        data_files=tuple(sorted(set().union(*(v.data_files for v in everyone))
                                - set().union(*(v.written_files for v in everyone)))),
    )


def _visit_or_none(source: str, filename: str) -> _Visitor | None:
    try:
        return _visit(source, filename)
    except ScriptError:
        return None


def _called_once(function: str, calls: dict[str, int], loop_calls: set[str]) -> bool:
    return calls.get(function, 0) == 1 and function not in loop_calls


def _repeated(site: tuple[bool, str | None], calls: dict[str, int], loop_calls: set[str]
              ) -> bool:
    """Whether a ``run()`` site (in a loop, enclosing function) may run more than once."""
    in_loop, function = site
    return in_loop or (function is not None and not _called_once(function, calls, loop_calls))


def _numpy_reason(visitors: list[_Visitor]) -> str | None:
    """Why Brian2's numpy target cannot run the script here (None when it can)."""
    if any(visitor.gsl for visitor in visitors):
        return GSL_REASON
    if any(visitor.spatial for visitor in visitors) and not scipy_installed():
        return SPATIAL_NEEDS_SCIPY
    return None


def scipy_installed() -> bool:
    """Whether scipy can be imported here (found, not imported: apply stays fast)."""
    import importlib.util

    return importlib.util.find_spec("scipy") is not None


def _total_length(visitors: list[_Visitor], calls: dict[str, int], loop_calls: set[str]
                  ) -> float | None:
    """The simulated seconds of all ``run()`` calls, when each runs once with a known length."""
    lengths = [length for visitor in visitors for length in visitor.run_lengths]
    sites = [site for visitor in visitors for site in visitor.run_sites]
    if not lengths or None in lengths or any(_repeated(site, calls, loop_calls)
                                             for site in sites):
        return None
    total = sum(lengths)  # type: ignore[arg-type]
    return total if total > 0 else None


def analyse_script(path: str | Path, module: ModuleToRun | None = None,
                   cache_dir: Path | None = None) -> ScriptAnalysis:
    """Read and analyse a script file (``module``'s, run as ``python -m`` from the folder above
    its top package, where given). With ``cache_dir``, an analysis kept there is reused
    while the script, its modules and their folders are as they were
    (:func:`_cached_analysis`): ``apply()`` reads scripts before every run, and a lab's
    library of 1500 lines took 49 ms to parse.

    Raises:
        ScriptError: missing, unreadable or unparsable file.
    """
    path = Path(path)
    module_root = None if module is None else module[1]
    if cache_dir is not None and (cached := _cached_analysis(cache_dir, path,
                                                             module_root)) is not None:
        return cached
    try:
        source = path.read_text()
    except FileNotFoundError as e:
        raise ScriptError(f"script {path} does not exist") from e
    except (OSError, UnicodeDecodeError) as e:
        raise ScriptError(f"cannot read script {path}: {e}") from e
    files = own_modules(source, path, module_root)
    modules = {name: text for name, (_, text) in files.items()}
    analysis = replace(analyse_source(source, str(path), modules),
                       digest=script_digest(source, modules))
    if cache_dir is not None and analysis.numpy_reason != SPATIAL_NEEDS_SCIPY:
        _keep_analysis(cache_dir, path, module_root, files, analysis)
    return analysis


def _cache_file(cache_dir: Path, path: Path, module_root: Path | None) -> Path:
    """Where the analysis of ``path`` (run from ``module_root``, with this import path, from
    this folder: a relative folder the script adds to ``sys.path`` is taken from it) is
    kept."""
    key = json.dumps([str(path.resolve()), str(module_root), sys.path, str(current_folder())])
    return cache_dir / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"


def _stamps(files: Iterable[Path]) -> list[list[Any]]:
    """Each file's (or folder's) path, size and modification time: a folder's changes when a
    file is created, removed or renamed in it. Raises OSError where one is gone."""
    return [[str(file), (stat := file.stat()).st_size, stat.st_mtime_ns] for file in files]


def _watched(path: Path, module_root: Path | None,
             files: Mapping[str, tuple[Path, str]]) -> list[Path]:
    """What an analysis depends on: this module's code, the script, its modules, the folders
    they are in and the folders their imports were looked up from."""
    folders = {path.resolve().parent, (module_root or path.resolve().parent).resolve()}
    for name, (file, _) in files.items():
        folders.add(file.parent)
        folders.add(file.parents[len(PurePosixPath(name).parts) - 1])
    return [Path(__file__), path.resolve(), *(file for file, _ in files.values()),
            *sorted(folders)]


def _cached_analysis(cache_dir: Path, path: Path, module_root: Path | None
                     ) -> ScriptAnalysis | None:
    """The kept analysis of ``path`` where nothing it depends on changed since (None
    otherwise, or where none is kept)."""
    try:
        kept = json.loads(_cache_file(cache_dir, path, module_root).read_text())
        if _stamps(Path(file) for file, *_ in kept["stamps"]) != kept["stamps"]:
            return None
        fields = kept["analysis"]
        return ScriptAnalysis(**{name: tuple(value) if isinstance(value, list) else value
                                 for name, value in fields.items()})
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _keep_analysis(cache_dir: Path, path: Path, module_root: Path | None,
                   files: Mapping[str, tuple[Path, str]], analysis: ScriptAnalysis) -> None:
    from autotune.paths import write_json_atomically

    try:
        stamps = _stamps(_watched(path, module_root, files))
    except OSError:
        return
    write_json_atomically(_cache_file(cache_dir, path, module_root),
                          {"stamps": stamps, "analysis": asdict(analysis)})


def script_digest(source: str, modules: Mapping[str, str] | None = None) -> str:
    """The name a script's text is known by in the store (16 hex digits of its SHA-256), its
    own modules' text included (a script without any keeps the name of its text alone)."""
    digest = hashlib.sha256(source.encode())
    for name in sorted(modules or {}):
        digest.update(f"\0{name}\0".encode() + modules[name].encode())  # type: ignore[index]
    return digest.hexdigest()[:16]


def own_modules(source: str, script: Path, module_root: Path | None = None
                ) -> dict[str, tuple[Path, str]]:
    """The script's own modules it imports, directly or through each other, as {path relative
    to the folder Python finds it in: (file, text)}: the ``.py`` files that ``python SCRIPT``
    would import from the script's folder (``python -m`` from ``module_root``) and packages
    there, then the user's code found elsewhere (:func:`user_code_root`). Files that cannot be
    read or parsed are left out."""
    script = script.resolve()
    local = (module_root or script.parent).resolve()
    lookup = _Lookup(local)
    found: dict[str, tuple[Path, str]] = {}
    pending = [(source, script, local)]
    while pending and len(found) < _MAX_OWN_MODULES:
        text, file, root = pending.pop()
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        nodes = list(ast.walk(tree))
        lookup.add_folders(added_import_folders(nodes, file))
        for module, module_root_found in _imported_files(nodes, file.parent, root, lookup):
            if not module.is_relative_to(module_root_found):
                continue  # a relative import above its top package: Python refuses it too
            name = module.relative_to(module_root_found).as_posix()
            if name in found or module == script or len(found) >= _MAX_OWN_MODULES:
                continue
            try:
                if module.stat().st_size > _MAX_MODULE_BYTES:
                    continue
                found[name] = (module, module.read_text())
            except (OSError, UnicodeDecodeError):
                continue
            pending.append((found[name][1], module, module_root_found))
    return found


class _Lookup:
    """Where absolute imports are looked for, in order: the script's folder (``local``), the
    folders the script adds to ``sys.path`` itself (:func:`added_import_folders`), then the
    user's code as this interpreter finds it (:func:`user_code_root`, cached per name)."""

    def __init__(self, local: Path) -> None:
        self.local = local
        self.added: list[Path] = []
        self.elsewhere: dict[str, Path | None] = {}

    def add_folders(self, folders: Iterable[Path]) -> None:
        """Look in ``folders`` too, those outside the interpreter's libraries."""
        for folder in folders:
            try:
                folder = folder.resolve()
                if not folder.is_dir():
                    continue
            except (OSError, ValueError):  # a loop of links, a NUL in the text
                continue
            if folder not in self.added and folder != self.local and not _in_libraries(folder):
                self.added.append(folder)

    def files(self, parts: list[str]) -> Iterator[tuple[Path, Path]]:
        """What ``import a.b`` (``parts``) loads, with the folder it was found in: from the
        first of the folders above that has something called ``a``. Brian2 and this tool
        are never read, even from a source checkout put on the path."""
        if not parts or parts[0].startswith(_LIBRARIES):
            return
        for folder in (self.local, *self.added):
            if files := list(_module_files(folder, parts)):
                yield from ((file, folder) for file in files)
                return
        if parts[0] not in self.elsewhere:
            self.elsewhere[parts[0]] = user_code_root(parts[0])
        root = self.elsewhere[parts[0]]
        if root is not None:
            yield from ((file, root) for file in _module_files(root, parts))


def _imported_files(nodes: Iterable[ast.AST], module_folder: Path, root: Path, lookup: _Lookup
                    ) -> Iterator[tuple[Path, Path]]:
    """The files (and the folder each was found in) that the imports among ``nodes`` (of a
    file in ``module_folder`` found in ``root``) load from the user's code (``lookup``)."""
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield from lookup.files(alias.name.split("."))
        elif isinstance(node, ast.ImportFrom):
            parts = node.module.split(".") if node.module else []
            if node.level:
                base = module_folder
                for _ in range(node.level - 1):
                    base = base.parent
                for names in (parts, *([*parts, alias.name] for alias in node.names)):
                    yield from ((file, root) for file in _module_files(base, names))
                continue
            yield from lookup.files(parts)
            for alias in node.names:
                yield from lookup.files([*parts, alias.name])


#: Top-level names never read as the user's code: Brian2 and its companions, this tool.
_LIBRARIES = ("brian2", "autotune")


def user_code_root(name: str) -> Path | None:
    """The folder that holds the top-level module or package ``name`` as this interpreter
    would import it, where that is the user's code: found on ``PYTHONPATH``, by an editable
    install or another path entry outside the interpreter's prefix and site-packages, or
    installed into site-packages from a folder on this machine
    (:func:`_installed_from_folders`). None for the standard library, Brian2, this tool,
    other installed libraries and what is not found. Nothing is imported."""
    if (name in sys.stdlib_module_names or name in sys.builtin_module_names
            or name.startswith(_LIBRARIES) or name == "__main__"):
        return None
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError, OSError):  # a module without a spec, a broken finder
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        location = next(iter(spec.submodule_search_locations), None)
    elif spec.has_location and spec.origin and spec.origin.endswith(".py"):
        location = spec.origin
    else:
        location = None
    if location is None:
        return None
    folder = Path(location).parent.resolve()
    if _in_libraries(folder):
        return folder if name in _installed_from_folders(folder) else None
    return folder


def _in_libraries(folder: Path) -> bool:
    """Whether ``folder`` (resolved) is in the standard library or installed packages."""
    return any(folder.is_relative_to(library) for library in _library_folders())


@functools.lru_cache(maxsize=8)
def _installed_from_folders(site_folder: Path) -> frozenset[str]:
    """The top-level names that distributions installed into ``site_folder`` from a folder
    on this machine (``pip install ./lab``, not editable) put there: a lab's own code, which
    pip marks with a ``direct_url.json`` naming a ``file:`` folder (PEP 610). Libraries from
    an index, a wheel file or a repository URL are not among them: their code (a
    ``subprocess.run`` read as a second ``run()``) is not the script's."""
    names: set[str] = set()
    for marker in site_folder.glob("*.dist-info/direct_url.json"):
        try:
            origin = json.loads(marker.read_text())
            if not (str(origin.get("url", "")).startswith("file:")
                    and "dir_info" in origin and not origin["dir_info"].get("editable")):
                continue
            record = (marker.parent / "RECORD").read_text()
        except (OSError, ValueError, AttributeError):
            continue
        for line in record.splitlines():
            top = PurePosixPath(line.split(",", 1)[0]).parts[:1]
            if top and not top[0].endswith((".dist-info", ".data")) and top[0] not in (
                    "..", "__pycache__"):
                names.add(top[0].removesuffix(".py"))
    return frozenset(names)


@functools.lru_cache(maxsize=1)
def _library_folders() -> tuple[Path, ...]:
    """Where this interpreter keeps the standard library and installed packages."""
    folders = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    folders.update(getattr(site, "getsitepackages", list)())
    user_site = site.getusersitepackages() if hasattr(site, "getusersitepackages") else None
    if user_site:
        folders.add(user_site)
    return tuple(Path(folder).resolve() for folder in folders)


def _module_files(base: Path, parts: list[str]) -> Iterator[Path]:
    """``a/__init__.py``, ``a/b.py`` (or ``a/b/__init__.py``): what ``import a.b`` loads from
    ``base``, as far as it exists there."""
    for depth in range(1, len(parts) + 1):
        package = base.joinpath(*parts[:depth])
        if (package / "__init__.py").is_file():
            yield package / "__init__.py"
        elif depth == len(parts) and package.with_suffix(".py").is_file():
            yield package.with_suffix(".py")
        elif not package.is_dir():
            return


