"""One trial: one configuration of one workload for one simulated duration, in a fresh process.

Brian2 keeps global state (device, prefs) and a compiled model can crash the interpreter, so every
measurement runs in its own child process (after pyperf's ``spawn_worker``). The parent watches
it: wall-clock timeout, a memory cap on the whole process tree (the child, the compiler and the
standalone binary), and peak RSS of that tree, sampled. On timeout, memory excess or Ctrl-C the
whole process group is killed, so no compiler or binary outlives the trial.

The child (:mod:`autotune._trial_child`) reports phase timings, observables and the model's size
and activity as JSON; a child that dies, hangs or prints garbage becomes a failed
:class:`TrialResult` with the reason, never an exception for the caller.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from autotune.records import TRAINING_PHASE, TrialResult, TrialSpec

logger = logging.getLogger(__name__)

_POLL_SECONDS = 0.05
_STDERR_TAIL = 2000


def _package_root() -> str:
    return str(Path(__file__).resolve().parent.parent)


def _child_env(tmpdir: Path) -> dict[str, str]:
    env = dict(os.environ)
    # Brian2 writes a debug log and a copy of the script to the temporary folder and deletes
    # them at a normal exit only: a killed trial's would stay in /tmp for good.
    env["TMPDIR"] = str(tmpdir)
    root = _package_root()
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _tree_rss(proc: Any) -> int:
    """Resident memory of a psutil process plus the memory unique to each of its descendants.

    A child forked from Python (Brian2 starting the standalone binary or the compiler) shares
    all of its parent's pages until it execs; counting its resident set as well made a 170 MiB
    run read as 290 MiB whenever a sample fell in that instant, and lose ties on memory it never
    used. Its unique set (USS) is what it adds; where that is not readable, its resident set.
    """
    import psutil

    try:
        children = proc.children(recursive=True)
        total = proc.memory_info().rss
    except psutil.Error:
        return 0
    for child in children:
        try:
            total += _unique_memory(child)
        except psutil.Error:
            pass
    return total


def _unique_memory(process: Any) -> int:
    import psutil

    try:
        return int(process.memory_full_info().uss)
    except (psutil.AccessDenied, AttributeError):
        return int(process.memory_info().rss)


def kill_process_group(popen: subprocess.Popen[bytes], grace: float = 2.0) -> None:
    """Stop a child started in its own session, and everything it started."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(popen.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            popen.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    # The group may outlive its leader (a compiler still running): finish it off.
    try:
        os.killpg(popen.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def _tail(path: Path) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return text[-_STDERR_TAIL:].strip()


def _watch(popen: subprocess.Popen[bytes], timeout: float, memory_limit: int | None
           ) -> tuple[str | None, int]:
    """Wait for the child; return (reason it was stopped or None, peak RSS of its tree)."""
    import psutil

    try:
        proc = psutil.Process(popen.pid)
    except psutil.Error:
        proc = None
    peak = 0
    deadline = time.monotonic() + timeout
    while popen.poll() is None:
        if proc is not None:
            peak = max(peak, _tree_rss(proc))
        if memory_limit is not None and peak > memory_limit:
            kill_process_group(popen)
            return "memory", peak
        if time.monotonic() > deadline:
            kill_process_group(popen)
            return "timeout", peak
        time.sleep(_POLL_SECONDS)
    return None, peak


def run_trial(
    spec: TrialSpec,
    timeout: float = 600.0,
    memory_limit: int | None = None,
    python: str = sys.executable,
) -> TrialResult:
    """Measure ``spec`` in a fresh child process; never raises for a bad trial.

    Args:
        spec: what to run.
        timeout: wall seconds before the child (and all it started) is killed.
        memory_limit: bytes of resident memory the process tree may use, or None.
        python: interpreter to run the child with.

    Raises:
        KeyboardInterrupt: re-raised after the child's process group has been killed.
    """
    with tempfile.TemporaryDirectory(prefix="autotune-trial-") as tmp:
        tmpdir = Path(tmp)
        spec_path, result_path, stderr_path = (tmpdir / n for n in ("spec.json", "result.json",
                                                                     "stderr.txt"))
        spec_path.write_text(json.dumps(spec.to_dict()))
        started = time.time()
        with open(stderr_path, "wb") as stderr:
            popen = subprocess.Popen(
                [python, "-m", "autotune._trial_child", str(spec_path), str(result_path),
                 repr(started)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
                env=_child_env(tmpdir), start_new_session=True,
            )
            try:
                stopped, peak = _watch(popen, timeout, memory_limit)
            except BaseException:
                kill_process_group(popen, grace=0.5)
                raise
        wall = time.time() - started
        return _collect(spec, popen.returncode, stopped, peak, started, wall, result_path,
                        stderr_path, timeout, memory_limit)


def _failed(spec: TrialSpec, status: str, error: str, exit_code: int | None, peak: int,
            wall: float) -> TrialResult:
    return TrialResult(spec.config, spec.duration, status, {"total": wall}, peak_rss=peak or None,
                       exit_code=exit_code, error=error)


def _collect(spec: TrialSpec, code: int, stopped: str | None, peak: int, started: float,
             wall: float,
             result_path: Path, stderr_path: Path, timeout: float,
             memory_limit: int | None) -> TrialResult:
    stderr = _tail(stderr_path)
    if stopped == "timeout":
        return _failed(spec, "timeout", f"timed out after {timeout:g} s", code, peak, wall)
    if stopped == "memory":
        return _failed(spec, "memory", f"exceeded the memory cap of {memory_limit} bytes "
                       f"(peak {peak} bytes)", code, peak, wall)
    try:
        report = json.loads(result_path.read_text())
    except (OSError, ValueError):
        detail = f": {stderr}" if stderr else ""
        return _failed(spec, "failed", f"{_describe_exit(code)}{detail}", code, peak, wall)
    if report.get("error"):
        status = "workload_error" if report.get("error_kind") == "workload" else "failed"
        return _failed(spec, status, report["error"], code, peak, wall)
    phases = {k: float(v) for k, v in report["phases"].items()}
    phases["startup"] = max(0.0, float(report["child_started"]) - started)
    phases["total"] = wall
    if report.get("pgo") == "generate":
        phases[TRAINING_PHASE] = wall
    peak = max(peak, int(report.get("max_rss_self", 0)), int(report.get("max_rss_children", 0)))
    return TrialResult(
        spec.config, spec.duration, "ok", phases, cold=bool(report.get("cold")), peak_rss=peak,
        observables=report.get("observables", {}), model=report.get("model", {}), exit_code=code,
    )
