"""One run of a user's script in one precision, for :mod:`autotune.precision` (a child process:
Brian2 keeps global state).

``python -m autotune._precision_child SCRIPT PRECISION OUT.json OBSERVE_JSON MODULE_JSON -- ARGS``:
apply the configuration the profile would choose, in ``PRECISION``, seed Brian2, run the script
as ``python SCRIPT ARGS`` would (or, where ``MODULE_JSON`` is ``[NAME, FOLDER]`` rather than
``null``, as ``python -m NAME ARGS`` would), its output discarded, and write the configuration
and the observables to ``OUT.json``. Exit status 3 when standalone cannot serve the script.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from autotune.precision import DEVICE_ENV, NEEDS_RUNTIME_EXIT

#: Both precisions draw the same random numbers (unless the script seeds itself).
SEED = 20261130


def monitor_observables(objects: Sequence[Any]) -> dict[str, float]:
    """What the monitors of a run recorded: spike counts, the mean of every recorded state
    variable, mean population rates."""
    import numpy as np
    from brian2 import PopulationRateMonitor, SpikeMonitor, StateMonitor

    values: dict[str, float] = {}
    for obj in sorted(objects, key=lambda o: o.name):
        if isinstance(obj, SpikeMonitor):
            values[f"{obj.name}.num_spikes"] = float(obj.num_spikes)
        elif isinstance(obj, StateMonitor):
            for variable in obj.record_variables:
                recorded = np.asarray(getattr(obj, f"{variable}_"), dtype=float)
                if recorded.size:
                    values[f"mean {obj.name}.{variable}"] = float(np.mean(recorded))
        elif isinstance(obj, PopulationRateMonitor):
            rate = np.asarray(obj.rate_, dtype=float)
            if rate.size:
                values[f"mean {obj.name}.rate"] = float(np.mean(rate))
    return values


def named_observables(namespace: dict[str, Any], expressions: Sequence[str]) -> dict[str, float]:
    """Each expression evaluated over the script's globals, as one number (a mean over an
    array; units dropped).

    Raises:
        ValueError: an expression that cannot be evaluated, or gives no number.
    """
    import numpy as np

    scope = {"mean": np.mean, "sum": np.sum, "np": np, **namespace}
    values = {}
    for expression in expressions:
        try:
            value = eval(expression, scope)  # noqa: S307 - the user's own expression on their script
            values[expression] = float(np.mean(np.asarray(value, dtype=float)))
        except Exception as e:  # noqa: BLE001 - any failure is the user's expression
            raise ValueError(f"cannot evaluate --observe {expression!r}: "
                             f"{type(e).__name__}: {e}") from e
    return values


def main(argv: list[str]) -> int:
    """Run the script once; write its configuration and observables."""
    script, precision, out, observe = argv[0], argv[1], Path(argv[2]), json.loads(argv[3])
    args = argv[6:]
    import brian2

    from autotune.apply import apply
    from autotune.errors import CannotServe
    from autotune.paths import module_from_document, script_owner
    from autotune.runner import execute_script, serving_of
    from autotune.runrecord import keep_last_model, last_model
    from autotune.scriptcheck import analyse_script

    module = module_from_document(json.loads(argv[4]))
    keep_last_model()
    applied = apply(precision=precision, device=os.environ.get(DEVICE_ENV), record=False,
                    owner=script_owner(script),
                    analysis=analyse_script(script, module))
    brian2.seed(SEED)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            report = execute_script(script, args, serving=serving_of(applied), module=module)
    except CannotServe as e:
        if e.ruled_out == "cpp_standalone":
            return NEEDS_RUNTIME_EXIT
        sys.stderr.write(f"{e}\n")
        return 1
    if report.exit_code != 0:
        sys.stderr.write(f"the script exited with status {report.exit_code}\n")
        return 1
    try:
        values = (named_observables(report.namespace, observe) if observe
                  else monitor_observables(last_model()))
    except ValueError as e:
        sys.stderr.write(f"{e}\n")
        return 1
    out.write_text(json.dumps({"config": applied.config.key, "observables": values}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
