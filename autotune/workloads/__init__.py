"""Workloads: the models a host is calibrated on.

The contract (for built-ins and users' files alike): a workload defines
``simulate(duration)``, where ``duration`` is a Brian2 quantity of simulated time. It builds a
Brian2 model, calls ``run(duration)`` exactly once, and returns a mapping of observables
(name -> float, e.g. spike count or mean rate) or None. It must not choose the device or prefs:
the tuner does. Built-ins also take ``size`` (number of neurons or inputs).

A workload is named by a :class:`WorkloadSpec`; its ``signature`` (hash of the built-in's name
and size, or of the file's content) keys the stored profile. Resolving a spec never imports Brian2
or executes a user's file: the file is parsed, not run, so that a bad file is refused before any
trial starts.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autotune.errors import WorkloadError

#: Built-in workloads: name -> (module, default size, what it is).
BUILTINS: dict[str, tuple[str, int, str]] = {
    "cuba": ("autotune.workloads.cuba", 4000,
             "Vogels & Abbott (2005) CUBA network of leaky integrate-and-fire neurons"),
    "coba": ("autotune.workloads.coba", 4000,
             "Vogels & Abbott (2005) COBA network: leaky integrate-and-fire neurons, "
             "conductances"),
    "coba-hh": ("autotune.workloads.coba_hh", 4000,
                "COBAHH benchmark (Brette et al. 2007): Hodgkin-Huxley neurons, conductances"),
    "stdp": ("autotune.workloads.stdp", 1000,
             "Song, Miller & Abbott (2000) STDP: Poisson inputs onto plastic synapses"),
    "synfire": ("autotune.workloads.synfire", 1000,
                "Diesmann et al. (1999) synfire chain: groups of noisy neurons, all-to-all "
                "onto the next"),
    "wang-buzsaki": ("autotune.workloads.wang_buzsaki", 400,
                     "Wang & Buzsaki (1996) interneuron network: Hodgkin-Huxley-type neurons, "
                     "inhibitory conductances"),
}
DEFAULT_WORKLOAD = "cuba"
#: Bumped when a built-in model changes, so old profiles stop matching.
BUILTIN_VERSION = 1
MAX_SIZE = 10_000_000


@dataclass(frozen=True)
class WorkloadSpec:
    """A workload to calibrate or run.

    Attributes:
        name: built-in name, or the file's stem.
        kind: ``"builtin"`` or ``"file"``.
        size: number of neurons/inputs for built-ins; None for files.
        path: absolute path of a file workload; None for built-ins.
        signature: hex digest keying this workload's profile.
    """

    name: str
    kind: str
    size: int | None
    path: str | None
    signature: str

    def describe(self) -> str:
        """Human-readable name, e.g. ``cuba (size 4000)`` or ``model.py``."""
        if self.kind == "builtin":
            return f"{self.name} (size {self.size})"
        return f"{self.name} ({self.path})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (for the trial child and exported profiles)."""
        return {"name": self.name, "kind": self.kind, "size": self.size, "path": self.path,
                "signature": self.signature}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WorkloadSpec:
        """Inverse of :meth:`to_dict`."""
        return cls(str(data["name"]), str(data["kind"]),
                   None if data.get("size") is None else int(data["size"]),
                   data.get("path"), str(data["signature"]))


def _digest(text: bytes) -> str:
    return hashlib.sha256(text).hexdigest()[:16]


def check_size(size: object) -> int:
    """Validate a workload size.

    Raises:
        WorkloadError: if size is not an integer between 1 and :data:`MAX_SIZE`.
    """
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_SIZE:
        raise WorkloadError(f"size must be an integer between 1 and {MAX_SIZE}, got {size!r}")
    return size


def _check_file_defines_simulate(path: Path, source: bytes) -> None:
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as e:
        raise WorkloadError(f"workload file {path} has a syntax error at line {e.lineno}: "
                            f"{e.msg}; fix the file") from e
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "simulate":
            if not node.args.args and not node.args.vararg:
                raise WorkloadError(f"workload file {path}: simulate() must take the duration "
                                    "as its first argument: def simulate(duration): ...")
            return
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "simulate" for t in node.targets
        ):
            return
    raise WorkloadError(f"workload file {path} does not define simulate(duration); add a "
                        "function that builds the model, calls run(duration) once and returns "
                        "its observables")


def resolve_workload(name_or_path: str, size: int | None = None) -> WorkloadSpec:
    """Turn a built-in name or a file path into a :class:`WorkloadSpec`.

    Raises:
        WorkloadError: unknown name, missing/unreadable file, no ``simulate``, bad size, or a
            size given for a file workload.
    """
    if name_or_path in BUILTINS:
        size = check_size(BUILTINS[name_or_path][1] if size is None else size)
        sig = _digest(f"builtin:{name_or_path}:size={size}:v{BUILTIN_VERSION}".encode())
        return WorkloadSpec(name_or_path, "builtin", size, None, sig)
    path = Path(name_or_path).expanduser()
    if not path.suffix == ".py" and not path.exists():
        raise WorkloadError(f"unknown workload {name_or_path!r}; use a built-in "
                            f"({', '.join(BUILTINS)}) or the path of a .py file")
    if size is not None:
        raise WorkloadError("--size applies to built-in workloads only; a workload file sets "
                            "its own size")
    try:
        source = path.read_bytes()
    except FileNotFoundError as e:
        raise WorkloadError(f"workload file {path} does not exist") from e
    except OSError as e:
        raise WorkloadError(f"cannot read workload file {path}: {e.strerror}") from e
    _check_file_defines_simulate(path, source)
    return WorkloadSpec(path.stem, "file", None, str(path.resolve()), _digest(b"file:" + source))


def load_simulate(spec: WorkloadSpec) -> Callable[..., Any]:
    """Import the workload and return its ``simulate`` (child side: this imports Brian2).

    For built-ins the returned callable already has ``size`` bound.

    Raises:
        WorkloadError: if the file cannot be imported or has no callable ``simulate``.
    """
    if spec.kind == "builtin":
        module = importlib.import_module(BUILTINS[spec.name][0])
        size = spec.size

        def simulate(duration: Any) -> Any:
            return module.simulate(duration, size=size)

        return simulate
    assert spec.path is not None
    module_spec = importlib.util.spec_from_file_location(f"_autotune_workload_{spec.name}",
                                                         spec.path)
    if module_spec is None or module_spec.loader is None:
        raise WorkloadError(f"cannot import workload file {spec.path}")
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as e:
        raise WorkloadError(f"workload file {spec.path} raised {type(e).__name__} on import: "
                            f"{e}") from e
    simulate = getattr(module, "simulate", None)
    if not callable(simulate):
        raise WorkloadError(f"workload file {spec.path} does not define simulate(duration)")
    return simulate  # type: ignore[no-any-return]


def check_observables(result: object, source: str) -> dict[str, float]:
    """Validate what ``simulate`` returned: a mapping of finite-or-not floats, or None.

    Raises:
        WorkloadError: if the result is not a mapping of names to numbers.
    """
    if result is None:
        return {}
    if not isinstance(result, Mapping):
        raise WorkloadError(f"{source}: simulate() must return a mapping of observables or None, "
                            f"got {type(result).__name__}")
    observables: dict[str, float] = {}
    for key, value in result.items():
        try:
            number = float(value)
        except (TypeError, ValueError) as e:
            raise WorkloadError(f"{source}: observable {key!r} is not a number: {value!r}") from e
        observables[str(key)] = number if math.isfinite(number) else float("nan")
    return observables
