"""The dry pass itself, for :mod:`autotune.drypass` (a child process: Brian2 keeps global state,
and a user's script must not touch the caller's).

``python -m autotune._dry_child OUT.json script PATH -- ARGS`` runs a script as ``python PATH
ARGS`` would; ``... OUT.json module {"path": PATH, "module": [NAME, FOLDER]} -- ARGS``
runs the module in PATH as ``python -m NAME ARGS`` run from ``FOLDER`` would; and
``... OUT.json workload SPEC_JSON`` runs a workload's ``simulate``. All run under the runtime
device with numpy (no compilation), until the first ``run()``: there the network's features are
counted, written to ``OUT.json`` with the simulated seconds that ``run()`` asked for
(:data:`FIRST_RUN`), and the process stops before a single step is simulated. Exit status 3:
the script ended without a ``run()``.

A script may run its networks in worker processes (a ``multiprocessing.Pool`` mapping a function
that calls ``run()``, as Brian2's ``multiprocessing`` examples do). A forked worker stopped by
an exception dies, and its pool then waits forever for that task's result: the dry pass of
Brian2's ``01_using_cython.py`` waited out its whole timeout (300 s) before every first run of
the script. So the first ``run()`` in a worker writes the features and ends the dry pass's whole
process group (:mod:`autotune.drypass` starts it in a session of its own), workers included.

Workers started afresh (the ``spawn`` start method, macOS's and Windows' default, and
``forkserver``, Python 3.14's on Linux) inherit no patched ``run()``: each ran the whole
simulation, the dry pass found no ``run()`` in its own process, and every run of the script
paid that again (a sweep of four 2000-neuron networks under ``spawn``: a 21-s dry pass before a
2.4-s run, and again on the next run). They are started with :mod:`autotune._dry_worker`
imported first, which stops them at ``run()`` likewise; the environment tells them where the
features go and which process leads the dry pass's group.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

#: Exit status when the script or workload finished without calling ``run()``.
NO_RUN_EXIT = 3
#: The output's key for the simulated seconds the first ``run()`` asked for (None where its
#: duration was not a time): a script's run length where its text does not fix it
#: (``run(float(sys.argv[1])*second)``).
FIRST_RUN = "first_run"
#: Environment variables the script's workers inherit: where the features go, and the dry
#: pass's own process (which leads its process group).
OUT_VARIABLE = "BRIAN2_AUTOTUNE_DRY_PASS_OUT"
LEADER_VARIABLE = "BRIAN2_AUTOTUNE_DRY_PASS_PID"
#: Imported first by a worker started afresh, to stop it at its first ``run()``.
WORKER_MODULE = "autotune._dry_worker"


class _StopAtRun(BaseException):
    """Raised in place of the first run (a BaseException: a script's ``except Exception``
    must not swallow it), with the network and the namespace its run would have used."""

    def __init__(self, objects: list[Any], network: Any, namespace: dict[str, Any],
                 seconds: float | None) -> None:
        super().__init__("dry pass stops at run()")
        self.objects = objects
        self.network = network
        self.namespace = namespace
        self.seconds = seconds


def _seconds_of(duration: Any) -> float | None:
    """A ``run()`` duration in seconds; None where it is not a positive, finite Brian2 time
    (Brian2 itself would refuse it; a plain number too, which :func:`as_seconds` would take)."""
    from autotune.errors import ConfigError
    from autotune.values import as_seconds

    if not hasattr(duration, "dim"):
        return None
    try:
        return as_seconds(duration)
    except ConfigError:
        return None


def _stop_at_run(out: Path, started: float, leader: int) -> None:
    """Replace Brian2's ``Network.run``: in the dry pass's own process (``leader``) it stops
    the script; in a worker it writes the features and ends the dry pass."""
    from brian2.core.namespace import get_local_namespace
    from brian2.core.network import Network

    # Brian2's own signature, so that a namespace passed by position is found
    def run(self: Any, duration: Any = None, report: Any = None, report_period: Any = None,
            namespace: dict[str, Any] | None = None, profile: Any = None, level: int = 0,
            **_: Any) -> None:
        seconds = _seconds_of(duration)
        if os.getpid() != leader:
            _write_and_stop_every_process(list(self.objects), out, started, leader, seconds)
        if namespace is None:  # the caller's, as Brian2 resolves it (level counts its frames)
            namespace = get_local_namespace(level=level + 1)
        raise _StopAtRun(list(self.objects), self, namespace, seconds)

    Network.run = run  # type: ignore[method-assign]


def stop_this_worker_at_run() -> None:
    """In a worker started afresh by the script (:mod:`autotune._dry_worker`): stop at its
    first ``run()`` as a forked worker does. Does nothing outside a dry pass."""
    out, leader = os.environ.get(OUT_VARIABLE), os.environ.get(LEADER_VARIABLE)
    if out and leader and leader.isdigit():
        _stop_at_run(Path(out), time.perf_counter(), int(leader))


def _start_fresh_workers_stopping_at_run() -> None:
    """Have the workers the script starts with ``spawn`` or ``forkserver`` import
    :data:`WORKER_MODULE` first: a ``spawn`` worker through its command line, the fork server
    (whose children are forked from it) through the modules it preloads."""
    from multiprocessing import forkserver, spawn

    command_line = spawn.get_command_line

    def importing_the_worker_module(**kwds: Any) -> list[str]:
        command = command_line(**kwds)
        if "-c" in command:  # [python, *flags, "-c", program, "--multiprocessing-fork"]
            at = command.index("-c") + 1
            command[at] = f"import {WORKER_MODULE}; {command[at]}"
        return command

    spawn.get_command_line = importing_the_worker_module  # type: ignore[assignment]
    server = forkserver._forkserver  # type: ignore[attr-defined]
    set_preload = server.set_forkserver_preload

    def preloading_the_worker_module(modules: list[str]) -> None:
        set_preload([*modules, WORKER_MODULE])

    server.set_forkserver_preload = preloading_the_worker_module
    preloading_the_worker_module(list(getattr(server, "_preload_modules", ["__main__"])))


class _NotCompiled:
    """Stands in for a Cython module the cache check did not load: its code does nothing."""

    def main(self, *args: Any, **kwargs: Any) -> None:
        return None


def _interpreter_names() -> list[str]:
    """This interpreter's names: its own first, then the other names in its folder that lead
    to the same program (a virtual environment's ``python``, ``python3``, ``python3.11``).
    Brian2's Cython cache keys its modules by the name, so a user's ``python script.py`` and
    pip's ``brian2-autotune`` (which starts ``python3``) compile the same code twice."""
    own = sys.executable
    real = os.path.realpath(own)
    folder = os.path.dirname(own)
    major, minor = sys.version_info[:2]
    names = [own]
    for name in ("python", f"python{major}", f"python{major}.{minor}"):
        path = os.path.join(folder, name)
        if path not in names and os.path.exists(path) and os.path.realpath(path) == real:
            names.append(path)
    return names


def cython_cache_state(network: Any, namespace: dict[str, Any]) -> dict[str, Any]:
    """Whether Brian2's Cython cache already holds the network's code (compiled by an earlier
    plain run of the script), and under which of this interpreter's names.

    The network's code is generated for Cython, with Brian2's default preferences (float64),
    as its run would generate it, and each module's cache file is looked up; nothing is
    compiled or run. Returns ``modules`` (how many the run needs), ``files`` (each module's
    cache file, per interpreter name: each run looks for them, since a plain run after this dry
    pass may compile them) and ``seconds``; ``error`` instead of ``files`` where the code could
    not be generated. The code is generated even where the cache is empty, for the same
    reason."""
    import hashlib

    from brian2 import prefs
    from brian2.codegen.runtime.cython_rt.extension_manager import CythonExtensionManager

    started = time.perf_counter()
    names = _interpreter_names()
    files: dict[str, list[str]] = {name: [] for name in names}
    modules = 0

    def look_up(manager: Any, module_path: str, key: tuple[Any, ...], **_: Any) -> _NotCompiled:
        nonlocal modules
        modules += 1
        folder, suffix = os.path.dirname(module_path), getattr(manager, "so_ext", ".so")
        for name in names:  # Brian2's module name: the md5 of its key, which holds the name
            named = (*key[:2], name, *key[3:])
            digest = hashlib.md5(str(named).encode("utf-8")).hexdigest()
            files[name].append(os.path.join(folder, f"_cython_magic_{digest}{suffix}"))
        return _NotCompiled()

    CythonExtensionManager._load_module = look_up  # type: ignore[method-assign]
    prefs.codegen.target = "cython"
    try:
        for obj in network.sorted_objects:
            if obj.active:
                obj.before_run(namespace)
    except Exception as e:  # the run itself will say what is wrong; here it only means unknown
        return {"modules": modules, "error": f"{type(e).__name__}: {e}"[:300],
                "seconds": time.perf_counter() - started}
    return {"modules": modules, "files": files, "seconds": time.perf_counter() - started}


def _write_features(objects: list[Any], out: Path, started: float,
                    seconds: float | None) -> None:
    from autotune.features import features_of
    from autotune.paths import replace_json

    features = features_of(objects)
    # atomically: several workers may reach their run() at once
    replace_json(out, {**features.to_dict(), "seconds": time.perf_counter() - started,
                       FIRST_RUN: seconds})


def _write_and_stop_every_process(objects: list[Any], out: Path, started: float,
                                  own_pid: int, seconds: float | None) -> None:
    """In a worker forked by the script: write the features, then kill the dry pass's process
    group (the dry pass, this worker and its siblings), or the dry pass alone where it leads
    no group of its own."""
    _write_features(objects, out, started, seconds)
    sys.stdout.flush()
    if os.getpgid(own_pid) == own_pid:
        os.killpg(own_pid, signal.SIGKILL)
    os.kill(own_pid, signal.SIGKILL)
    os._exit(0)


def _run_until_run(kind: str, target: str, args: list[str]) -> _StopAtRun | None:
    """The first network run, stopped (None if none ran)."""
    try:
        if kind == "script":
            from autotune.runner import run_quietly_as_main

            run_quietly_as_main(target, args)
        elif kind == "module":
            from autotune.paths import module_from_document
            from autotune.runner import run_quietly_as_main

            spec = json.loads(target)
            run_quietly_as_main(spec["path"], args, module_from_document(spec["module"]))
        else:
            from brian2 import second

            from autotune.workloads import WorkloadSpec, load_simulate

            with contextlib.redirect_stdout(io.StringIO()):
                load_simulate(WorkloadSpec.from_dict(json.loads(target)))(1 * second)
    except _StopAtRun as stop:
        return stop
    except SystemExit:
        return None
    return None


def main(argv: list[str]) -> int:
    """Count the first run's features; write them with the pass's wall time."""
    started = time.perf_counter()
    out, kind, target = Path(argv[0]), argv[1], argv[2]
    args = argv[4:] if len(argv) > 3 and argv[3] == "--" else []
    import brian2

    brian2.set_device("runtime")
    brian2.prefs.codegen.target = "numpy"
    os.environ[OUT_VARIABLE], os.environ[LEADER_VARIABLE] = str(out), str(os.getpid())
    _stop_at_run(out, started, os.getpid())
    _start_fresh_workers_stopping_at_run()
    stop = _run_until_run(kind, target, args)
    if stop is None:
        sys.stderr.write("it finished without calling run()\n")
        return NO_RUN_EXIT
    _write_features(stop.objects, out, started, stop.seconds)
    if kind in ("script", "module"):
        from autotune.paths import replace_json

        found = {**json.loads(out.read_text()),
                 "cython_cache": cython_cache_state(stop.network, stop.namespace)}
        replace_json(out, found)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
