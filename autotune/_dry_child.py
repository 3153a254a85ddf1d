"""The dry pass itself, for :mod:`autotune.drypass` (a child process: Brian2 keeps global state,
and a user's script must not touch the caller's).

``python -m autotune._dry_child OUT.json script PATH -- ARGS`` runs a script as ``python PATH
ARGS`` would, and ``python -m autotune._dry_child OUT.json workload SPEC_JSON`` a workload's
``simulate``, both under the runtime device with numpy (no compilation), until the first
``run()``: there the network's features are counted, written to ``OUT.json``, and the process
stops before a single step is simulated. Exit status 3: the script ended without a ``run()``.

A script may run its networks in worker processes (a ``multiprocessing.Pool`` mapping a function
that calls ``run()``, as Brian2's ``multiprocessing`` examples do). A forked worker stopped by
an exception dies, and its pool then waits forever for that task's result: the dry pass of
Brian2's ``01_using_cython.py`` waited out its whole timeout (300 s) before every first run of
the script. So the first ``run()`` in a worker writes the features and ends the dry pass's whole
process group (:mod:`autotune.drypass` starts it in a session of its own), workers included.
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


class _StopAtRun(BaseException):
    """Raised in place of the first run (a BaseException: a script's ``except Exception``
    must not swallow it)."""

    def __init__(self, objects: list[Any]) -> None:
        super().__init__("dry pass stops at run()")
        self.objects = objects


def _stop_at_run(out: Path, started: float) -> None:
    from brian2.core.network import Network

    own_pid = os.getpid()

    def run(self: Any, *args: Any, **kwargs: Any) -> None:
        if os.getpid() != own_pid:
            _write_and_stop_every_process(list(self.objects), out, started, own_pid)
        raise _StopAtRun(list(self.objects))

    Network.run = run  # type: ignore[method-assign]


def _write_features(objects: list[Any], out: Path, started: float) -> None:
    from autotune.features import features_of
    from autotune.paths import replace_json

    features = features_of(objects)
    # atomically: several workers may reach their run() at once
    replace_json(out, {**features.to_dict(), "seconds": time.perf_counter() - started})


def _write_and_stop_every_process(objects: list[Any], out: Path, started: float,
                                  own_pid: int) -> None:
    """In a worker forked by the script: write the features, then kill the dry pass's process
    group (the dry pass, this worker and its siblings), or the dry pass alone where it leads
    no group of its own."""
    _write_features(objects, out, started)
    sys.stdout.flush()
    if os.getpgid(own_pid) == own_pid:
        os.killpg(own_pid, signal.SIGKILL)
    os.kill(own_pid, signal.SIGKILL)
    os._exit(0)


def _run_until_run(kind: str, target: str, args: list[str]) -> list[Any] | None:
    """The objects of the first network run, or None if none ran."""
    try:
        if kind == "script":
            from autotune.runner import run_quietly_as_main

            run_quietly_as_main(target, args)
        else:
            from brian2 import second

            from autotune.workloads import WorkloadSpec, load_simulate

            with contextlib.redirect_stdout(io.StringIO()):
                load_simulate(WorkloadSpec.from_dict(json.loads(target)))(1 * second)
    except _StopAtRun as stop:
        return stop.objects
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
    _stop_at_run(out, started)
    objects = _run_until_run(kind, target, args)
    if objects is None:
        sys.stderr.write("it finished without calling run()\n")
        return NO_RUN_EXIT
    _write_features(objects, out, started)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
