"""``brian2-autotune run SCRIPT``: decide what can serve a script, apply it, run the script.

Before anything runs, the script is read (not executed) to find out whether cpp_standalone can
serve it. Standalone with ``build_on_run=True`` builds and runs the whole network at the first
``run()``: a script that runs several times, runs inside a loop, uses ``network_operation``,
``store``/``restore``, or a Python ``report`` callback crashes there after its first run has
already printed and saved. Such a script gets the best runtime configuration instead, and the
reason is logged. A script that chooses its own device or code-generation target is left alone.
Pure-Python functions used in equations (``@check_units``/``Function``) need the numpy target.
"""

from __future__ import annotations

import ast
import logging
import resource
import runpy
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autotune.errors import ScriptError

logger = logging.getLogger(__name__)

_DEVICE_CHOICE_CALLS = {"set_device", "build"}
_UNSUPPORTED_IN_STANDALONE = {"network_operation": "uses network_operation (Python code "
                              "during the run)", "store": "uses store()/restore()",
                              "restore": "uses store()/restore()"}


@dataclass(frozen=True)
class ScriptAnalysis:
    """What a script allows.

    Attributes:
        standalone_ok: cpp_standalone can run it unchanged.
        cython_ok: the Cython target can compile it (no pure-Python functions in equations).
        own_device: the script sets its device/target itself; nothing will be applied.
        run_calls: number of ``run()`` call sites found.
        reasons: why standalone (or Cython) cannot serve it.
    """

    standalone_ok: bool
    cython_ok: bool
    own_device: bool
    run_calls: int
    reasons: tuple[str, ...] = field(default_factory=tuple)


def _call_name(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return None


class _Visitor(ast.NodeVisitor):
    def __init__(self) -> None:
        self.run_sites: list[tuple[bool, str | None]] = []  # (in loop, enclosing function)
        self.loop_depth = 0
        self.functions: list[str] = []
        self.calls: dict[str, int] = {}
        self.loop_calls: set[str] = set()
        self.reasons: list[str] = []
        self.own_device = False
        self.python_functions = False

    def _loop(self, node: ast.AST) -> None:
        self.loop_depth += 1
        self.generic_visit(node)
        self.loop_depth -= 1

    visit_For = visit_While = visit_AsyncFor = _loop  # noqa: N815

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for decorator in node.decorator_list:
            target = decorator.func if isinstance(decorator, ast.Call) else decorator
            name = target.id if isinstance(target, ast.Name) else getattr(target, "attr", None)
            if name == "network_operation":
                self.reasons.append(_UNSUPPORTED_IN_STANDALONE["network_operation"])
            if name in ("check_units", "implementation"):
                self.python_functions = True
        self.functions.append(node.name)
        depth, self.loop_depth = self.loop_depth, 0
        self.generic_visit(node)
        self.loop_depth = depth
        self.functions.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = _function  # noqa: N815

    def visit_Assign(self, node: ast.Assign) -> None:  # noqa: N802
        for target in node.targets:
            text = ast.unparse(target)
            if text.startswith(("prefs.codegen.target", "prefs.devices", "prefs['codegen.target'",
                                'prefs["codegen.target"')):
                self.own_device = True
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:  # noqa: N802
        name = _call_name(node)
        if name is not None:
            self.calls[name] = self.calls.get(name, 0) + 1
            if self.loop_depth:
                self.loop_calls.add(name)
        if name == "run":
            self.run_sites.append((self.loop_depth > 0, self.functions[-1] if self.functions
                                   else None))
            for keyword in node.keywords:
                if keyword.arg == "report" and not isinstance(keyword.value, ast.Constant):
                    self.reasons.append("passes a Python report callback to run()")
        elif name in _DEVICE_CHOICE_CALLS and (name != "build" or _is_device_build(node)):
            self.own_device = True
        elif name in _UNSUPPORTED_IN_STANDALONE:
            self.reasons.append(_UNSUPPORTED_IN_STANDALONE[name])
        elif name == "Function":
            self.python_functions = True
        self.generic_visit(node)


def _is_device_build(node: ast.Call) -> bool:
    return isinstance(node.func, ast.Attribute) and ast.unparse(node.func.value) == "device"


def analyse_source(source: str, filename: str = "<script>") -> ScriptAnalysis:
    """Analyse a script's source text (see the module docstring).

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
    reasons = list(dict.fromkeys(visitor.reasons))
    sites = visitor.run_sites
    if len(sites) > 1:
        reasons.append(f"calls run() {len(sites)} times")
    for in_loop, function in sites:
        if in_loop:
            reasons.append("calls run() inside a loop")
        elif function is not None and (visitor.calls.get(function, 0) != 1
                                       or function in visitor.loop_calls):
            reasons.append(f"calls run() inside {function}(), which may run more than once")
    if visitor.python_functions:
        reasons.append("uses pure-Python functions in equations (numpy target only)")
    return ScriptAnalysis(
        standalone_ok=not reasons and not visitor.own_device,
        cython_ok=not visitor.python_functions,
        own_device=visitor.own_device,
        run_calls=len(sites),
        reasons=tuple(dict.fromkeys(reasons)),
    )


def analyse_script(path: str | Path) -> ScriptAnalysis:
    """Read and analyse a script file.

    Raises:
        ScriptError: missing, unreadable or unparsable file.
    """
    path = Path(path)
    try:
        source = path.read_text()
    except FileNotFoundError as e:
        raise ScriptError(f"script {path} does not exist") from e
    except (OSError, UnicodeDecodeError) as e:
        raise ScriptError(f"cannot read script {path}: {e}") from e
    return analyse_source(source, str(path))


@dataclass(frozen=True)
class RunReport:
    """What a ``run`` measured: wall, build and loop seconds and peak memory."""

    wall: float
    loop: float | None
    build: float | None
    peak_rss: int
    exit_code: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"wall": self.wall, "loop": self.loop, "build": self.build,
                "peak_rss": self.peak_rss, "exit_code": self.exit_code}


def peak_rss() -> int:
    """Peak resident memory of this process or its largest child (compiler, binary), bytes."""
    scale = 1 if sys.platform == "darwin" else 1024
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) * scale


def execute_script(path: str | Path, args: list[str]) -> RunReport:
    """Run a script as ``python SCRIPT ARGS`` would, in this process; measure it.

    The script's own exceptions propagate (the caller prints them as Python would);
    ``SystemExit`` becomes the report's exit code.
    """
    path = Path(path)
    saved_argv, saved_path0 = sys.argv[:], sys.path[0] if sys.path else None
    sys.argv = [str(path), *args]
    sys.path.insert(0, str(path.resolve().parent))
    started = time.perf_counter()
    exit_code = 0
    try:
        runpy.run_path(str(path), run_name="__main__")
    except SystemExit as e:
        exit_code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv = saved_argv
        if sys.path and sys.path[0] == str(path.resolve().parent) and saved_path0 != sys.path[0]:
            sys.path.pop(0)
    wall = time.perf_counter() - started
    loop, build = _brian_timings(wall)
    return RunReport(wall, loop, build, peak_rss(), exit_code)


def _brian_timings(wall: float) -> tuple[float | None, float | None]:
    """Loop seconds of the last run and the rest of the script's wall time (set-up + build)."""
    brian2 = sys.modules.get("brian2")
    if brian2 is None:
        return None, None
    device = brian2.get_device()
    loop = getattr(device, "_last_run_time", None)
    if loop is None:
        return None, None
    return float(loop), max(0.0, wall - float(loop))
