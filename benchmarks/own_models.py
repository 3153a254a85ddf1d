"""Your own model, never calibrated: does ``run`` pick well for it?

    python benchmarks/own_models.py BRIAN2/examples [--lengths 1 10] [--rounds 5]
        [--scripts COBAHH.py synapses/STDP.py frompapers/Brunel_Hakim_1999.py] [--db FILE.db]

With only this host's calibration of the suite of built-in models in the store (README command
1; made here first unless ``--db`` names a store that has one: a copy is used, since the tuned
runs learn into it), each of Brian2's own example scripts runs,
its ``run()`` length set to each of ``--lengths``, the way a user runs it, in fresh processes,
interleaved round by round:

1. ``python SCRIPT`` (Brian2's default: runtime, Cython);
2. ``brian2-autotune run --no-profile SCRIPT`` (the fixed rule: cpp_standalone, every thread);
3. ``brian2-autotune run --device cpp_standalone --num-threads 0 SCRIPT`` (no OpenMP);
4. ``brian2-autotune run SCRIPT``: the tuned choice, which learns from the script's own runs
   from one round to the next, as it does for a user who runs a script again.

Each alternative has its own cache of standalone builds, so each pays its own cold builds in
round 1. Brian2's Cython cache (global, ``~/.cython``, and warm from whatever ran before) is
pointed into the benchmark's folder by a ``brian_preferences`` file beside the scripts, which
Brian2 reads from the current folder: Brian2's default compiles there in round 1, and the tuned
run's Cython with the default flags finds that code there (its dry pass looks it up), as for a
user who ran the script under ``python`` before.
Reported: the total wall time of all the rounds (what a user who runs the script that many
times waits) and the tuned total's speed against the best total of 1-3; and, over the later
(warm) rounds, the median of each and the tuned run's speed against the best of 1-3 in each
round, paired (above 1: faster), with an 80 % interval. Target: at least 0.90. The package's
bytecode is written first, as ``pip install`` leaves it
(:func:`_harness.compile_bytecode_as_installed`).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import compile_bytecode_as_installed, markdown_table  # noqa: E402

from autotune import confirm as paired  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
CLI = [sys.executable, str(REPO / "cli.py")]
ALTERNATIVES = ("default", "fixed rule", "standalone t0", "tuned")
#: Example scripts lighter than their originals where these take minutes per simulated second on
#: two cores (Brunel & Hakim's 5000 neurons with 1000 synapses each).
SHRINK = {"Brunel_Hakim_1999.py": [("N = 5000", "N = 2000"), ("C = 1000", "C = 200")]}


def with_length(text: str, name: str, seconds: float) -> str:
    """The script with every ``run(...)`` call's length set to ``seconds`` (its other
    arguments kept), and the model shrunk where :data:`SHRINK` says."""
    for old, new in SHRINK.get(name, []):
        text = text.replace(old, new)
    return re.sub(r"\brun\(\s*[^,()]*(\([^()]*\))?[^,()]*", f"run({seconds:g}*second", text)


def _command(alternative: str, script: Path, db: str) -> list[str]:
    if alternative == "default":
        return [sys.executable, str(script)]
    if alternative == "fixed rule":
        return [*CLI, "run", "--no-profile", "--db", db, str(script)]
    if alternative == "standalone t0":
        return [*CLI, "run", "--device", "cpp_standalone", "--num-threads", "0", "--db", db,
                str(script)]
    return [*CLI, "run", "--db", db, str(script)]


def _time(command: list[str], cwd: Path, cache: Path) -> float:
    env = {**os.environ, "MPLBACKEND": "Agg", "BRIAN2_AUTOTUNE_CACHE": str(cache)}
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=3600)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {done.stderr.strip()[-400:]}")
    return time.perf_counter() - started


def _isolate_default_cython_cache(folder: Path, cache: Path) -> None:
    """Make Brian2's default runs in ``folder`` compile into ``cache`` (the tuned runs set
    their own Cython cache; standalone ones use none)."""
    (cache / "cython").mkdir(parents=True, exist_ok=True)
    (folder / "brian_preferences").write_text(
        f"codegen.runtime.cython.cache_dir = {str(cache / 'cython')!r}\n")


def _rounds(script: Path, work: Path, db: str, scratch_db: str, rounds: int
            ) -> list[dict[str, float]]:
    out = []
    for number in range(rounds):
        shift = number % len(ALTERNATIVES)
        order = ALTERNATIVES[shift:] + ALTERNATIVES[:shift]
        out.append({a: _time(_command(a, script, db if a == "tuned" else scratch_db),
                             script.parent, work / "cache" / a.replace(" ", "-"))
                    for a in order})
        print(f"  round {number + 1}: " + ", ".join(f"{a} {out[-1][a]:.2f} s"
                                                   for a in ALTERNATIVES),
              file=sys.stderr, flush=True)
    return out


def _row(label: str, rounds: list[dict[str, float]], choice: str) -> list[str]:
    later = rounds[1:]
    totals = {a: sum(r[a] for r in rounds) for a in ALTERNATIVES}
    best_total = min(totals[a] for a in ALTERNATIVES[:3])
    best_other = [{"tuned": r["tuned"], "best": min(r[a] for a in ALTERNATIVES[:3])}
                  for r in later]
    gap = paired.gap(best_other, "best", "tuned")  # best / tuned: the tuned run's speed
    medians = {a: statistics.median(r[a] for r in later) for a in ALTERNATIVES}
    return [label, " / ".join(f"{totals[a]:.1f}" for a in ALTERNATIVES),
            f"{best_total / totals['tuned']:.2f}",
            " / ".join(f"{medians[a]:.2f}" for a in ALTERNATIVES),
            f"{gap.ratio:.2f} ({gap.low:.2f}–{gap.high:.2f})", choice]


def _last_choice(db: str) -> str:
    from autotune.store import open_store

    with open_store(db) as store:
        runs = store.runs()
    return f"{runs[-1].config_key} ({runs[-1].source})" if runs else "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("examples", type=Path, help="Brian2's examples/ folder")
    parser.add_argument("--scripts", nargs="+", default=[
        "COBAHH.py", "synapses/STDP.py", "frompapers/Brunel_Hakim_1999.py"])
    parser.add_argument("--lengths", nargs="+", type=float, default=[1.0, 10.0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--db", type=Path, metavar="FILE.db",
                        help="a SQLite store with this host's calibration (README command 1)")
    args = parser.parse_args()
    compile_bytecode_as_installed()
    with tempfile.TemporaryDirectory(prefix="own-models-") as folder:
        work = Path(folder)
        db = f"sqlite:///{work / 'store.db'}"
        if args.db:
            shutil.copyfile(args.db, work / "store.db")
        else:
            print("calibrating the suite (README command 1)...", file=sys.stderr, flush=True)
            subprocess.run([*CLI, "calibrate", "--suite", "--db", db], check=True,
                           env={**os.environ, "BRIAN2_AUTOTUNE_CACHE": str(work / "calib")},
                           capture_output=True)
        rows = []
        for name in args.scripts:
            source = (args.examples / name).read_text()
            for length in args.lengths:
                script = work / f"L{length:g}" / Path(name).name
                script.parent.mkdir(exist_ok=True)
                script.write_text(with_length(source, Path(name).name, length))
                _isolate_default_cython_cache(script.parent, work / "cache" / "default")
                print(f"{name} at {length:g} s", file=sys.stderr, flush=True)
                rounds = _rounds(script, work, db, f"sqlite:///{work / 'scratch.db'}",
                                 args.rounds)
                rows.append(_row(f"{name}, {length:g} s", rounds, _last_choice(db)))
    names = " / ".join(ALTERNATIVES)
    print(f"wall seconds, fresh processes, start to exit; {args.rounds} interleaved rounds")
    print(markdown_table(["script, run length", f"all {args.rounds} runs: {names}",
                          "tuned speed (all runs) ÷ best of 1-3",
                          f"rounds 2-{args.rounds}, median: {names}",
                          "tuned speed ÷ best of 1-3 (paired, 80 %)",
                          "tuned chose (last round)"], rows))


if __name__ == "__main__":
    main()
