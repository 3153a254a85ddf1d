"""numpy's predicted time for scripts outside the suite, against numpy's measured time.

For each script: its features from a dry pass, the suite's prediction of numpy's whole run for
the run length read from the script (as ``run`` predicts a script's first run), the same with
the vector operations uncounted (members and script: the prediction before they were
counted), and the script's wall time under ``python`` with Brian2's runtime device and numpy
code, in a fresh folder with matplotlib off screen, one script after another.

    python benchmarks/numpy_predictions.py --db SUITE_STORE SCRIPT ... [--timeout 300]

SUITE_STORE: a SQLite store holding a ``calibrate --suite`` (README command 1's), whatever
host made it (its newest profile of each member is used). Scripts whose run length the text
does not give, or whose dry pass fails, are listed without a prediction; scripts that set their
own device or target are not run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import markdown_table  # noqa: E402

from autotune.calibrate import read_features  # noqa: E402
from autotune.config import RunConfig  # noqa: E402
from autotune.drypass import script_features  # noqa: E402
from autotune.features import ModelFeatures  # noqa: E402
from autotune.profile import Profile  # noqa: E402
from autotune.scriptcheck import analyse_script  # noqa: E402
from autotune.store import open_store  # noqa: E402
from autotune.transfer import Member, members_of, predicted_profile  # noqa: E402
from autotune.workloads import resolve_workload  # noqa: E402

NUMPY = RunConfig("runtime", "numpy")
#: Runs the script as ``python SCRIPT`` would, with numpy code generation.
UNDER_NUMPY = ("import runpy, sys, brian2; brian2.prefs.codegen.target = 'numpy'; "
               "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")


def suite_members(db: str) -> list[Member]:
    """The store's suite members (:func:`members_of`), their features counted now, as
    ``calibrate --suite`` recounts those of an older version."""
    with open_store(db) as store:
        profiles = store.profiles()
    recounted = []
    for profile in profiles:
        workload = profile.workload
        if "model" not in workload:
            continue
        features = read_features(resolve_workload(workload["name"], workload["size"]))
        if features is not None:
            recounted.append(replace(profile, workload={**workload,
                                                        "model": features.to_dict()}))
    return members_of(recounted)


def numpy_seconds(profile: Profile | None, length: float) -> float | None:
    entry = None if profile is None else profile.entry(NUMPY)
    return None if entry is None or entry.cost is None else entry.cost.predict(length)


def measured_seconds(script: Path, timeout: float) -> str:
    with tempfile.TemporaryDirectory() as folder:
        shutil.copy(script, folder)
        started = time.perf_counter()
        try:
            done = subprocess.run([sys.executable, "-c", UNDER_NUMPY, script.name], cwd=folder,
                                  capture_output=True, timeout=timeout,
                                  env={**os.environ, "MPLBACKEND": "Agg"})
        except subprocess.TimeoutExpired:
            return "timeout"
        seconds = time.perf_counter() - started
    return f"{seconds:.1f} s" if done.returncode == 0 else f"exit {done.returncode}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="SQLite path or URL of a suite's store")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("scripts", nargs="+", type=Path)
    args = parser.parse_args()
    db = args.db if "://" in args.db else f"sqlite:///{Path(args.db).resolve()}"
    members = suite_members(db)
    uncounted = [Member(replace(m.features, vector_operations=0), m.profile) for m in members]
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        for script in args.scripts:
            analysis = analyse_script(script)
            if analysis.own_device:
                rows.append([script.name, "-", "-", "-", "sets its own device: not numpy"])
                continue
            length = analysis.run_length
            features: ModelFeatures | None = script_features(script, [], f"np-{script}",
                                                             Path(cache))
            if length is None or features is None:
                rows.append([script.name, "-", "-", "-", measured_seconds(script,
                                                                          args.timeout)])
                continue
            now = numpy_seconds(predicted_profile(members, features), length)
            before = numpy_seconds(predicted_profile(
                uncounted, replace(features, vector_operations=0)), length)
            rows.append([script.name, f"{length:g} s", f"{features.vector_operations}",
                         f"{before:.2f} s / {now:.2f} s" if before and now else "-",
                         measured_seconds(script, args.timeout)])
    sys.stdout.write(markdown_table(
        ["script", "run length", "vector operations per 0.1 ms",
         "numpy predicted: uncounted / counted", "numpy measured"], rows) + "\n")


if __name__ == "__main__":
    main()
