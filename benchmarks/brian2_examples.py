"""Run Brian2's own examples under ``python`` and under ``brian2-autotune run``; compare.

Brian2's examples are real users' scripts: they read state before ``run()``, run several times,
use ``network_operation``, plot, and sometimes choose their own device. For each example this
runs ``python EXAMPLE`` and ``brian2-autotune run EXAMPLE`` (with no profile in a fresh store,
so the fallback rule asks for cpp_standalone with every thread wherever the script analysis
allows: the hardest case; or with ``--db``, a copy of that store, so that a profile's numpy,
Cython and standalone choices are all tried), each in a fresh temporary folder (holding the
data files beside the example) with matplotlib drawing off screen, and prints a markdown
table: exit codes, wall times, the configuration applied and why.

    python benchmarks/brian2_examples.py BRIAN2_CHECKOUT/examples [--timeout 300] [--only NAME ...]
        [--db URL_OR_SQLITE_PATH] [--fresh-brian2-cache] [--console-script]

``--fresh-brian2-cache`` gives the runs a home folder of their own, so that Brian2's Cython
cache starts empty: the plain run compiles, and ``run`` finds what it compiled (or not).
``--console-script`` starts ``run`` as a user does, through pip's ``brian2-autotune`` script
beside this interpreter (which starts ``python3``, while the plain run is ``python``).

An example that fails under python (a missing optional package, a timeout) is listed as such
and not run under ``run``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _harness import compile_bytecode_as_installed, markdown_table  # noqa: E402

#: Examples that need what this machine lacks or run for many minutes, with the reason.
SKIPPED = {
    "advanced/opencv_movie.py": "needs OpenCV and a movie file",
    "advanced/modelfitting_sbi.py": "needs sbi and torch",
    "multiprocessing/03_standalone_joblib.py": "needs joblib",
}


def _run(command: list[str], cwd: Path, timeout: float, env: dict[str, str]
         ) -> tuple[int | str, float, str]:
    started = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                              env=env, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return "timeout", time.perf_counter() - started, ""
    return done.returncode, time.perf_counter() - started, done.stderr


def _run_folder(work: str, script: Path) -> Path:
    """A fresh folder to run ``script`` in, holding the data files beside it (not its Python
    files): Stimberg et al. (2018)'s examples read ``figures.mplstyle`` from the folder they
    run in, and failed under ``python`` without it."""
    folder = Path(tempfile.mkdtemp(dir=work))
    for data in script.parent.iterdir():
        if data.is_file() and data.suffix != ".py" and not data.name.startswith("."):
            shutil.copyfile(data, folder / data.name)
    return folder


def _applied(stderr: str) -> str:
    text = " ".join(stderr.split())
    match = re.search(r"applied (.+?) \[(\w+):", text)
    if "applying nothing" in text:
        return "own device (left alone)"
    if not match:
        return "-"
    config, source = match.groups()
    config = config.replace(", float64, flags=default", "").replace("cpp_standalone", "standalone")
    retried = " after a retry" if "running it again under runtime" in text else ""
    return f"{config} ({source}{retried})"


def _why_runtime(stderr: str) -> str:
    text = " ".join(stderr.split())
    match = re.search(r"cpp_standalone cannot serve \S+: (.+?) (INFO|WARNING|$)", text)
    return match.group(1)[:90] if match else ""


def _last_error(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[-1][:100] if lines else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("examples", type=Path, help="Brian2's examples/ folder")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per run (300)")
    parser.add_argument("--only", nargs="+", help="these examples (paths below examples/)")
    parser.add_argument("--db", help="run with a copy of this SQLite store (README command 1's "
                        "calibration of the suite, say) instead of an empty one")
    parser.add_argument("--fresh-brian2-cache", action="store_true",
                        help="a home folder of their own for the runs: Brian2's cache empty")
    parser.add_argument("--console-script", action="store_true",
                        help="start run through pip's brian2-autotune script, as a user does")
    args = parser.parse_args()
    compile_bytecode_as_installed()
    tuned_command = ([str(Path(sys.executable).parent / "brian2-autotune"), "run"]
                     if args.console_script else [sys.executable, "-m", "autotune.cli", "run"])
    scripts = sorted(p for p in args.examples.rglob("*.py") if p.name != "plot_utils.py"
                     and p.name != "params.py")
    if args.only:
        scripts = [p for p in scripts if str(p.relative_to(args.examples)) in args.only]
    rows = []
    with tempfile.TemporaryDirectory(prefix="brian2-examples-") as work:
        if args.db:
            shutil.copyfile(args.db.removeprefix("sqlite:///"), Path(work) / "store.db")
        env = {**os.environ, "MPLBACKEND": "Agg",
               "BRIAN2_AUTOTUNE_DB": f"sqlite:///{work}/store.db",
               "BRIAN2_AUTOTUNE_CACHE": f"{work}/cache"}
        if args.fresh_brian2_cache:
            (Path(work) / "home").mkdir()
            env["HOME"] = f"{work}/home"
        for script in scripts:
            name = str(script.relative_to(args.examples))
            if name in SKIPPED:
                rows.append([name, "skipped", "", "", SKIPPED[name]])
                continue
            code, seconds, stderr = _run([sys.executable, str(script)],
                                         _run_folder(work, script), args.timeout, env)
            if code != 0:
                rows.append([name, f"{code} ({seconds:.0f} s)", "not run", "",
                             _last_error(stderr)])
                print(f"{name}: python {code}", file=sys.stderr)
                continue
            tuned, tuned_seconds, tuned_err = _run([*tuned_command, str(script)],
                                                   _run_folder(work, script), args.timeout,
                                                   env)
            note = _why_runtime(tuned_err) if tuned == 0 else _last_error(tuned_err)
            rows.append([name, f"0 ({seconds:.0f} s)", f"{tuned} ({tuned_seconds:.0f} s)",
                         _applied(tuned_err), note])
            print(f"{name}: python 0, run {tuned}", file=sys.stderr)
    print(markdown_table(["example", "python: exit (time)", "run: exit (time)",
                          "applied", "why runtime / error"], rows))
    same = sum(1 for r in rows if r[1].startswith("0 ") and r[2].startswith("0 "))
    ran = sum(1 for r in rows if r[1].startswith("0 "))
    print(f"\n{same} of {ran} examples that run under python also ran under run")


if __name__ == "__main__":
    main()
