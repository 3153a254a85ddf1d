"""``check-precision``: may float32 be applied to this script?

float32 moves some models' results by several per cent (Brian2's ``adaptive_threshold.py``:
136 vs 142 threshold crossings) and makes others slower, so ``run`` and ``apply()`` apply it
only to a model where it was checked. :func:`check_precision` is that check for a user's own
script: it runs the script twice, each in its own process (Brian2 keeps global state), in
float64 and in float32, with the same seed and otherwise the same configuration (the one the
profile would choose for it), and compares what the script leaves behind: the observables the
user names (expressions over the script's globals, such as ``M.num_spikes`` or ``mean(G.v)``),
else every monitor of its last run (spike counts, the mean of each recorded variable, mean
population rates). The verdict is stored under the hash of the script's text, so that later
runs of the same text may use float32, and an edited script is unchecked again.
"""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from autotune.errors import ConfigError, ScriptError
from autotune.paths import ModuleToRun, module_document, script_to_run
from autotune.records import PrecisionCheck
from autotune.validate import DEFAULT_TOLERANCE, compare_observables

logger = logging.getLogger(__name__)

#: Exit status of the child when standalone cannot serve the script (it read state early).
NEEDS_RUNTIME_EXIT = 3
#: The child is told to use runtime through this variable (after it exited NEEDS_RUNTIME_EXIT).
DEVICE_ENV = "BRIAN2_AUTOTUNE_CHECK_DEVICE"


@dataclass(frozen=True)
class Outcome:
    """One run of the script in one precision: its configuration and observables, or why it
    failed."""

    config_key: str | None
    observables: dict[str, float]
    error: str | None = None


def check_precision(script: str | Path | None, args: Sequence[str] = (), *,
                    observe: Sequence[str] = (), tolerance: float = DEFAULT_TOLERANCE,
                    db: str | None = None, timeout: float = 3600.0,
                    module: str | None = None) -> PrecisionCheck:
    """Run ``script`` in float64 and in float32, compare, store and return the verdict.

    With ``module`` (``check-precision -m NAME``) instead of ``script``, the module's file is
    the script, run as ``python -m NAME`` would from this folder.

    Raises:
        ScriptError: the script cannot be read, sets its own device, fails in float64, or
            leaves nothing to compare.
        ConfigError: a tolerance that is not a positive fraction.
    """
    from autotune.scriptcheck import analyse_script
    from autotune.store import open_store

    if not (isinstance(tolerance, (int, float)) and math.isfinite(tolerance) and tolerance > 0):
        raise ConfigError(f"--tolerance must be a positive fraction (0.05 = 5 %), got "
                          f"{tolerance}")
    script, target = script_to_run(script, module)
    path = script.resolve()
    analysis = analyse_script(path, target)
    if analysis.own_device:
        raise ScriptError(f"{path.name} sets its own device or target; set its precision there "
                          "(prefs.core.default_float_dtype) and compare the results yourself")
    reference = _run(path, args, "float64", observe, db, timeout, target)
    if reference.error is not None:
        raise ScriptError(f"{path.name} failed in float64, so there is nothing to compare "
                          f"with: {reference.error}")
    if not reference.observables:
        raise ScriptError(f"{path.name} leaves no monitor behind to compare; name what to "
                          "compare with --observe, e.g. --observe 'M.num_spikes'")
    candidate = _run(path, args, "float32", observe, db, timeout, target)
    check = _verdict(path, analysis.digest or "", reference, candidate, tolerance)
    with open_store(db) as store:
        store.record_precision_check(check)
    return check


def _verdict(path: Path, digest: str, reference: Outcome, candidate: Outcome,
             tolerance: float) -> PrecisionCheck:
    if candidate.error is not None:
        passed, worst, reason = False, None, f"failed in float32: {candidate.error}"
    else:
        verdict = compare_observables(candidate.observables, reference.observables, tolerance)
        passed, reason = verdict.ok, verdict.reason
        worst = verdict.max_deviation if math.isfinite(verdict.max_deviation) else None
    values = {name: [value, candidate.observables.get(name, math.nan)]
              for name, value in sorted(reference.observables.items())}
    return PrecisionCheck(
        script_digest=digest, script=str(path), config_key=candidate.config_key or "?",
        tolerance=tolerance, passed=passed, max_deviation=worst, reason=reason,
        observables={k: [_finite(x) for x in v] for k, v in values.items()},
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))


def _finite(x: float) -> Any:
    return x if math.isfinite(x) else None


def _run(path: Path, args: Sequence[str], precision: str, observe: Sequence[str],
         db: str | None, timeout: float, module: ModuleToRun | None) -> Outcome:
    """Run the script (or the module it is) once in ``precision`` in a child process;
    standalone first, runtime when standalone turns out unable to serve it."""
    outcome = _child(path, args, precision, observe, db, timeout, None, module)
    if outcome.error == "needs runtime":
        outcome = _child(path, args, precision, observe, db, timeout, "runtime", module)
    logger.info("%s: %s", precision, outcome.error or f"{len(outcome.observables)} "
                f"observables with {outcome.config_key}")
    return outcome


def _child(path: Path, args: Sequence[str], precision: str, observe: Sequence[str],
           db: str | None, timeout: float, device: str | None, module: ModuleToRun | None
           ) -> Outcome:
    env = dict(os.environ)
    if db:
        env["BRIAN2_AUTOTUNE_DB"] = db
    if device:
        env[DEVICE_ENV] = device
    with tempfile.TemporaryDirectory(prefix="autotune-precision-") as folder:
        out = Path(folder) / "outcome.json"
        command = [sys.executable, "-m", "autotune._precision_child", str(path), precision,
                   str(out), json.dumps(list(observe)),
                   json.dumps(module_document(module)),
                   "--", *args]
        try:  # a module runs from the folder above its package, as `python -m` there
            done = subprocess.run(command, capture_output=True, text=True, env=env,
                                  timeout=timeout,
                                  cwd=path.parent if module is None else module[1])
        except subprocess.TimeoutExpired:
            return Outcome(None, {}, f"did not finish within {timeout:g} s")
        if done.returncode == NEEDS_RUNTIME_EXIT:
            return Outcome(None, {}, "needs runtime")
        if done.returncode != 0 or not out.is_file():
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            return Outcome(None, {}, (lines[-1] if lines else f"exit {done.returncode}")[:300])
        document = json.loads(out.read_text())
    return Outcome(document["config"], {k: float(v) for k, v in document["observables"].items()})
