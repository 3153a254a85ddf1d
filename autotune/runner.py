"""``brian2-autotune run``: apply what can serve a script, run it as ``python SCRIPT ARGS``
would, in this process, measure it and record it (:func:`run_script`).

Under cpp_standalone a script that reads a state variable before ``run()`` fails at that read,
before anything was simulated; one with a ``network_operation`` would run without it, and print
a wrong result. Under numpy, GSL integration fails. :mod:`autotune.scriptcheck` catches the
usual forms; for what it cannot see (a model built in a module from elsewhere),
:func:`execute_script` holds the script's output back until its first ``run()`` starts, and
looks at the network there before Brian2 prepares it. If the script fails with Brian2's "before
the simulation has been run" error (or another refusal of what only the run knows), or the
network holds what the applied code cannot run, the held output is dropped and
:class:`CannotServe` is raised, so that the caller can run the script again without it and the
user sees its output once.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import logging
import os
import runpy
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from autotune.errors import AutotuneError, CannotServe, ConfigError
from autotune.paths import ModuleToRun, script_to_run
from autotune.runrecord import RunRecord, loop_seconds, peak_rss

if TYPE_CHECKING:
    from autotune.apply import Applied
    from autotune.buildahead import BuildAhead
    from autotune.scriptcheck import ScriptAnalysis

logger = logging.getLogger(__name__)

#: Brian2's messages when a script asks standalone, before the run, for what only the run
#: knows, and what they mean.
_STANDALONE_REFUSALS = {
    "before the simulation has been run": "the script reads state variables before run()",
    "Cannot determine the actual indices to record for record=True":
        "the script records synapses with StateMonitor(..., record=True) before run()",
    "store/restore mechanism is not supported": "the script uses store()/restore()",
}


class _Refused(BaseException):
    """Raised at the first ``run()`` in place of a run the applied code cannot serve (a
    BaseException: a script's ``except Exception`` must not swallow it)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class RunReport:
    """What a ``run`` measured: wall, build and loop seconds and peak memory; and the script's
    globals as it left them (what ``check-precision`` reads observables from)."""

    wall: float
    loop: float | None
    build: float | None
    peak_rss: int
    exit_code: int
    namespace: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"wall": self.wall, "loop": self.loop, "build": self.build,
                "peak_rss": self.peak_rss, "exit_code": self.exit_code}


class _HeldOutput:
    """Holds what the script writes to ``sys.stdout``/``sys.stderr`` until :meth:`release`.

    A script that forks (a ``multiprocessing`` pool whose workers run the simulations) gets
    its output released first, as a plain run would show it; a child it forks writes
    directly, since the held text is the parent's (a pool's workers each printed the script's
    first line once more when their ``run()`` released what they had inherited). A script
    that asks with ``input()`` gets its output released first too, so that its user sees
    the question before it waits for the answer."""

    def __init__(self) -> None:
        self.real: tuple[TextIO, TextIO] = (sys.stdout, sys.stderr)
        self.parts: list[tuple[int, str]] = []
        self.released = False
        self.owner = os.getpid()
        sys.stdout, sys.stderr = _Tap(self, 0), _Tap(self, 1)  # type: ignore[assignment]
        self.plain_input = builtins.input
        self.releasing_input = self._releasing_input
        builtins.input = self.releasing_input
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(before=self.release)  # a no-op once released

    def _releasing_input(self, prompt: object = "") -> str:
        self.release()
        return self.plain_input(prompt)

    @property
    def holding(self) -> bool:
        """Whether output is held back in this process (not released, not a forked child)."""
        return not self.released and os.getpid() == self.owner

    def release(self) -> None:
        """Write what was held, in order, and let the script write directly from now on."""
        if not self.holding:
            return
        self._restore()
        for stream, text in self.parts:
            self.real[stream].write(text)
        self.real[0].flush()
        self.parts.clear()

    def drop(self) -> None:
        """Forget what was held and restore the streams."""
        self.parts.clear()
        self._restore()

    def _restore(self) -> None:
        self.released = True
        sys.stdout, sys.stderr = self.real
        if builtins.input is self.releasing_input:
            builtins.input = self.plain_input


class _Tap(io.TextIOBase):
    def __init__(self, held: _HeldOutput, stream: int) -> None:
        self.held, self.stream = held, stream

    def write(self, text: str) -> int:
        if not self.held.holding:
            return self.held.real[self.stream].write(text)
        self.held.parts.append((self.stream, text))
        return len(text)

    def isatty(self) -> bool:
        return self.held.real[self.stream].isatty()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self.held.real[self.stream].encoding


def _watch_first_run(held: _HeldOutput, serving: str) -> Any:
    """At Brian2's first run, refuse a network ``serving`` cannot run, or release the held
    output; returns an undo function."""
    from brian2.core.network import Network

    original = Network.before_run

    def before_run(self: Any, run_namespace: Any) -> Any:
        if held.holding:
            reason = _unservable(list(self.objects), serving)
            if reason is not None:
                raise _Refused(reason)
            held.release()
        return original(self, run_namespace)

    Network.before_run = before_run  # type: ignore[method-assign]

    def undo() -> None:
        Network.before_run = original  # type: ignore[method-assign]

    return undo


def refuse_networks_standalone_drops() -> None:
    """Under cpp_standalone, make a run whose network holds a ``network_operation`` fail with
    :class:`CannotServe` before anything is built: Brian2 would run the network without it
    and the script would report wrong results with exit 0. ``brian2-autotune run`` starts
    such a script again under runtime (:func:`execute_script` refuses it first); a script
    that called ``autotune.apply()`` itself stops with the reason and what to do."""
    from brian2.core.network import Network

    if getattr(Network.before_run, "_autotune_refuses", False):
        return
    original = Network.before_run

    def before_run(self: Any, run_namespace: Any) -> Any:
        from brian2 import get_device
        from brian2.devices.cpp_standalone.device import CPPStandaloneDevice

        if isinstance(get_device(), CPPStandaloneDevice):
            reason = _unservable(list(self.objects), "cpp_standalone")
            if reason is not None:
                raise CannotServe("cpp_standalone", reason,
                                  "call autotune.apply(device='runtime') in this script")
        return original(self, run_namespace)

    before_run._autotune_refuses = True  # type: ignore[attr-defined]
    Network.before_run = before_run  # type: ignore[method-assign]


def _unservable(objects: list[Any], serving: str) -> str | None:
    """What in a network about to run ``serving`` (the applied device or target) cannot run
    (None when it can)."""
    from autotune.scriptcheck import (
        GSL_REASON,
        NETWORK_OPERATION_REASON,
        SPATIAL_NEEDS_SCIPY,
        scipy_installed,
    )

    everything = list(_with_contained(objects))
    kinds = {type(obj).__name__ for obj in everything}
    if serving == "cpp_standalone" and "NetworkOperation" in kinds:
        return f"the script {NETWORK_OPERATION_REASON}"
    if serving == "numpy":
        if any(_integrates_with_gsl(obj) for obj in everything):
            return GSL_REASON
        if "SpatialNeuron" in kinds and not scipy_installed():
            return SPATIAL_NEEDS_SCIPY
    return None


def _with_contained(objects: list[Any]) -> Any:
    for obj in objects:
        yield obj
        yield from _with_contained(list(getattr(obj, "contained_objects", ())))


def _integrates_with_gsl(obj: Any) -> bool:
    methods = getattr(obj, "method_choice", None)
    if not isinstance(methods, (list, tuple)):
        methods = [methods]
    return any((isinstance(method, str) and (method == "gsl" or method.startswith("gsl_")))
               or type(method).__name__ == "GSLStateUpdater" for method in methods)


def serving_of(applied: Applied | None) -> str | None:
    """What may turn out unable to run the script: standalone, numpy, or nothing to watch."""
    if applied is None:
        return None
    if applied.config.device == "cpp_standalone":
        return "cpp_standalone"
    return "numpy" if applied.config.target == "numpy" else None


@contextlib.contextmanager
def as_main(path: str | Path, args: list[str], folder: str | Path | None = None
            ) -> Iterator[None]:
    """``sys.argv`` and ``sys.path`` as ``python SCRIPT ARGS`` sets them (``folder``, where
    given, first on the path: a module's, run as ``python -m``), restored after."""
    folder = str(folder if folder is not None else Path(path).resolve().parent)
    saved_argv, saved_path0 = sys.argv[:], sys.path[0] if sys.path else None
    sys.argv = [str(path), *args]
    sys.path.insert(0, folder)
    try:
        yield
    finally:
        sys.argv = saved_argv
        if sys.path and sys.path[0] == folder and saved_path0 != folder:
            sys.path.pop(0)


def run_as_main(path: str | Path, args: list[str], module: ModuleToRun | None = None
                ) -> dict[str, Any]:
    """Run a script as ``python SCRIPT ARGS`` would, or, with ``module`` (the name of the
    module ``path`` is and the folder it is found in), as ``python -m NAME ARGS`` would, so
    that its relative imports work; its globals. Whatever the script raises propagates."""
    if module is None:
        with as_main(path, args):
            return runpy.run_path(str(path), run_name="__main__")
    name, folder = module
    with as_main(path, args, folder):
        return runpy.run_module(name, run_name="__main__", alter_sys=True)


def run_quietly_as_main(path: str | Path, args: list[str], module: ModuleToRun | None = None
                        ) -> None:
    """:func:`run_as_main`, its standard output discarded: for the children that run a script
    only up to its first ``run()`` (the dry pass, a build beside a run), whose output the user
    must not see twice."""
    with contextlib.redirect_stdout(io.StringIO()):
        run_as_main(path, args, module)


def execute_script(path: str | Path, args: list[str], serving: str | None = None,
                   module: ModuleToRun | None = None) -> RunReport:
    """Run a script as ``python SCRIPT ARGS`` would, in this process; measure it.

    The script's own exceptions propagate (the caller prints them as Python would);
    ``SystemExit`` becomes the report's exit code.

    Args:
        serving: ``"cpp_standalone"`` or ``"numpy"``, when that was applied: the script's
            output is held until its first ``run()``, and what the applied code cannot run
            is refused there (see the module docstring).
        module: the module ``path`` is, to run as ``python -m`` would (:func:`run_as_main`).

    Raises:
        CannotServe: ``serving`` cannot run the script; nothing was simulated or shown.
    """
    path = Path(path)
    started = time.perf_counter()
    exit_code = 0
    namespace: dict[str, Any] = {}
    held = _HeldOutput() if serving is not None else None
    undo = _watch_first_run(held, serving) if held is not None and serving else None
    try:
        namespace = run_as_main(path, args, module)
    except SystemExit as e:
        exit_code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except _Refused as e:
        held.drop()  # type: ignore[union-attr]
        raise CannotServe(serving, e.reason) from None  # type: ignore[arg-type]
    except CannotServe as e:  # apply's own check, after the output was shown (a fork)
        raise AutotuneError(f"{e.reason}, which {e.ruled_out} cannot serve; what the script "
                            "printed is already shown, so it is not started again: run it "
                            "with --device runtime") from None
    except NotImplementedError as e:
        refusal = next((what for message, what in _STANDALONE_REFUSALS.items()
                        if message in str(e)), None)
        if (serving == "cpp_standalone" and held is not None and held.holding
                and refusal is not None):
            held.drop()
            raise CannotServe(serving, refusal) from e
        raise
    finally:
        if undo is not None:
            undo()
        if held is not None:
            held.release()
    wall = time.perf_counter() - started
    loop, build = _brian_timings(wall)
    return RunReport(wall, loop, build, peak_rss(), exit_code, namespace)


def _brian_timings(wall: float) -> tuple[float | None, float | None]:
    """Loop seconds of the script's runs and the rest of its wall time (set-up + build)."""
    loop = loop_seconds()
    if loop is None:
        return None, None
    return loop, max(0.0, wall - loop)


@dataclass(frozen=True)
class RunOptions:
    """How ``brian2-autotune run`` was asked to run a script (see :func:`run_script`).

    Attributes:
        workload, duration, db, device, threads, precision, use_profile, pgo: as for
            :func:`autotune.apply`.
        ruled_out: what earlier attempts found unable to serve the script
            (``"cpp_standalone"``, ``"numpy"``), and why (see :class:`CannotServe`).
    """

    workload: str | None = None
    duration: float | None = None
    db: str | None = None
    device: str | None = None
    threads: int | None = None
    precision: str | None = None
    use_profile: bool = True
    pgo: bool | None = None
    ruled_out: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ScriptRun:
    """What :func:`run_script` applied, measured and recorded."""

    applied: Applied | None
    report: RunReport
    record: RunRecord | None


def run_script(script: str | Path | None, args: list[str], options: RunOptions,
               module: str | None = None) -> ScriptRun:
    """Analyse ``script``, apply the configuration that can serve it, run it, record the run.

    With ``module`` (``run -m NAME``) instead of ``script``, the module's file is the script,
    run as ``python -m NAME`` would from this folder.

    Raises:
        ScriptError: the script cannot be read or parsed.
        ConfigError: bad overrides, or overrides asking for standalone where it cannot serve.
        CannotServe: what was applied cannot run the script: nothing was simulated or
            shown, run it again with that in ``ruled_out``.
    """
    from autotune.apply import apply
    from autotune.paths import script_owner
    from autotune.scriptcheck import analyse_script

    script, target = script_to_run(script, module)
    analysis = _without(analyse_script(script, target), options.ruled_out)
    applied = None
    if analysis.own_device:
        logger.info("the script chooses its own device/target: applying nothing")
    else:
        applied = apply(options.workload, options.duration, options.db, device=options.device,
                        threads=options.threads, precision=options.precision,
                        use_profile=options.use_profile, pgo=options.pgo,
                        owner=script_owner(script),
                        record=False, analysis=analysis, dry_pass=(Path(script), tuple(args)),
                        build_ahead=True, module=target)
        logger.info("applied %s [%s: %s]%s", applied.config.describe(), applied.source,
                    applied.reason, f", predicted {applied.predicted:.2f} s"
                    if applied.predicted else "")
    ahead = _start_building_ahead(applied, script, args, target)
    finished = False
    try:
        with _held(applied):
            report = _execute(script, args, applied, options, target)
            applied = _in_force(applied)
        finished = True
        record = _record(script, applied, report)
        if applied is not None and applied.input_files is not None:
            from autotune.scriptinputs import note_written

            note_written(applied.input_files)
    finally:
        if ahead is not None:
            from autotune import buildahead

            buildahead.finish(ahead, interrupted=not finished)
    return ScriptRun(applied, report, record)


def _held(applied: Applied | None) -> contextlib.AbstractContextManager[None]:
    """While the script runs, its own ``autotune.apply()`` keeps ``applied``
    (:func:`autotune.apply.held_for_the_script`)."""
    if applied is None:
        return contextlib.nullcontext()
    from autotune.apply import held_for_the_script

    return held_for_the_script(applied)


def _in_force(applied: Applied | None) -> Applied | None:
    """What is applied once the script ran: ``applied``, or what the script's own
    ``apply()`` asked for instead."""
    if applied is None:
        return None
    from autotune.apply import in_force

    return in_force(applied)


def _record(script: str | Path, applied: Applied | None, report: RunReport
            ) -> RunRecord | None:
    """Log the finished run and record it against its prediction (before any build beside it
    is awaited: the run's time is the script's, not the build's)."""
    from autotune.runrecord import record_run

    logger.info("run finished in %.2f s (build/set-up %s, simulation loop %s), peak memory "
                "%.0f MiB", report.wall,
                f"{report.build:.2f} s" if report.build is not None else "-",
                f"{report.loop:.2f} s" if report.loop is not None else "-",
                report.peak_rss / 2**20)
    record = None
    if applied is not None:
        record = record_run(applied, str(Path(script).resolve()), report.exit_code)
        if record is not None and record.total_error is not None:
            logger.info("predicted %.2f s for the whole run (%s simulated), took %.2f s "
                        "(%+.0f %%)%s%s", record.predicted_total, _seconds_text(record.simulated),
                        record.actual_total, 100 * record.total_error,
                        _dry_pass_note(applied.dry_pass_seconds), _crowded_note(record))
    return record


def _without(analysis: ScriptAnalysis, ruled_out: Mapping[str, str]) -> ScriptAnalysis:
    """The analysis with what earlier attempts ruled out added."""
    if "cpp_standalone" in ruled_out:
        analysis = replace(analysis, standalone_ok=False,
                           reasons=(*analysis.reasons, ruled_out["cpp_standalone"]))
    if "numpy" in ruled_out and analysis.numpy_reason is None:
        analysis = replace(analysis, numpy_reason=ruled_out["numpy"])
    return analysis


def _seconds_text(seconds: float) -> str:
    """``2.9 s``, ``50 ms``: a simulated time as a user would write it."""
    return f"{seconds:.3g} s" if seconds >= 1 else f"{1000 * seconds:.3g} ms"


def _crowded_note(record: RunRecord) -> str:
    """What shared the run's CPUs, when other work did (empty otherwise)."""
    if not record.crowded or record.free_cpus is None:
        return ""
    note = (f"; other work left it {record.free_cpus:.2f} of the {record.cpus_needed} CPU"
            f"{'s' if record.cpus_needed != 1 else ''} it needed")
    alone = record.times_alone()
    if alone is None:
        return note + ", so its times are not learned from (predictions are for CPUs of its own)"
    return note + (f"; at the pace of its own CPU time it would have taken {sum(alone):.2f} s "
                   "with a CPU of its own, which is what is learned from")


def _dry_pass_note(seconds: float) -> str:
    """What the dry pass added before the run, which its time leaves out (empty if none)."""
    if seconds < 0.05:
        return ""
    return (f"; the dry pass before it took {seconds:.2f} s more (once per script text and "
            "arguments)")


def _start_building_ahead(applied: Applied | None, script: str | Path, args: list[str],
                          module: ModuleToRun | None) -> BuildAhead | None:
    """Start the build ``applied`` plans beside the run (:mod:`autotune.buildahead`), if any."""
    if applied is None or applied.ahead is None:
        return None
    from autotune import buildahead

    return buildahead.start(applied.ahead, Path(script), args, module)


def _execute(script: str | Path, args: list[str], applied: Applied | None,
             options: RunOptions, module: ModuleToRun | None) -> RunReport:
    try:
        return execute_script(script, args, serving=serving_of(applied), module=module)
    except CannotServe as e:
        if e.ruled_out == "cpp_standalone" and (options.device == "cpp_standalone"
                                                or options.threads is not None):
            raise ConfigError(f"{e}; drop --device cpp_standalone/--num-threads") from e
        raise
