"""A standalone build made beside a user's run, for :mod:`autotune.buildahead` (a child
process: Brian2 keeps global state, and the user's run goes on in the parent).

``python -m autotune._build_child SPEC_JSON`` takes a build slot of the configuration's folder,
runs the script as ``python SCRIPT ARGS`` would under that configuration until its first
``run()``, compiles the project there without running it, and stops: the next run of the script
finds the binary built (``make`` has nothing to do). Its output is discarded. Exit status 3: the
script ended without a ``run()``.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

#: Exit status when the script finished without calling ``run()``.
NO_RUN_EXIT = 3


class _Built(BaseException):
    """Raised once the first run's project is compiled (a BaseException: a script's ``except
    Exception`` must not swallow it)."""


def _stop_after_building() -> None:
    """The first ``run()`` generates and compiles the project (the device's build options say
    not to run it), then stops the script. The device's build is wrapped, not ``run()``: a
    frame more between the script and ``run()`` would hide the script's names from Brian2's
    namespace (it looks them up a set number of frames up)."""
    from brian2 import get_device

    device = get_device()
    device.build_options["run"] = False
    original = device.build

    def build(*args: Any, **kwargs: Any) -> None:
        original(*args, **kwargs)
        raise _Built

    device.build = build


def main(argv: list[str]) -> int:
    """Build the script's first run under the configuration the spec names."""
    spec = json.loads(argv[0])
    with contextlib.suppress(OSError):
        os.nice(19)  # the user's run goes first
    from autotune.brianprefs import configure_brian2
    from autotune.buildslots import acquire_build_slot
    from autotune.config import RunConfig

    slot = acquire_build_slot(Path(spec["folder"]))
    config = RunConfig.from_dict(spec["config"])
    configure_brian2(config, slot.path)
    _stop_after_building()
    from autotune.apply import Applied, held_for_the_script
    from autotune.paths import module_from_document
    from autotune.runner import run_quietly_as_main

    building = Applied(config, "build-ahead", "built beside a run, which applied it", None,
                       slot.path)
    try:
        with held_for_the_script(building):  # the script's own apply() must not change it
            run_quietly_as_main(spec["script"], spec["args"],
                                module_from_document(spec.get("module")))
    except _Built:
        return 0
    except SystemExit:
        pass
    return NO_RUN_EXIT


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
