"""Wall time of one calibration split over N identical "nodes" against one PostgreSQL store.

    python benchmarks/fleet.py [--workers 1 2] [--workload cuba] [--size 400] [--trials 8]

Starts a throw-away PostgreSQL server (initdb/pg_ctl on a loopback port, as the tests do), then
for each worker count calibrates the workload on a fresh database with that many worker
processes started together, each playing a node (``BRIAN2_AUTOTUNE_NODE``, own build cache),
and prints the wall time from start to the last exit, the configurations each measured, and
whether every configuration was measured once. On one machine the workers share its CPUs: the
ratio says how much of the calibration the split removes from the critical path when each node
has cores of its own only if the machine has a core per worker to spare.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _harness import markdown_table  # noqa: E402

from tests.pgserver import create_database, start_postgres  # noqa: E402


def _calibrate(url: str, workers: int, args: argparse.Namespace, work: Path) -> float:
    started = time.perf_counter()
    procs = []
    for k in range(workers):
        env = {**os.environ, "BRIAN2_AUTOTUNE_NODE": f"node-{k}",
               "BRIAN2_AUTOTUNE_CACHE": str(work / f"cache-{workers}-{k}")}
        command = [sys.executable, "-m", "autotune.cli", "calibrate", "--workload",
                   args.workload, "--size", str(args.size), "--targets", *args.targets,
                   "--max-threads", "0", "--trials", str(args.trials), "--db", url, "--json"]
        procs.append(subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, text=True))
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"a worker failed: {err.strip().splitlines()[-1:]}")
    return time.perf_counter() - started


def _measured(url: str) -> Counter[tuple[str, str]]:
    import optuna

    name = optuna.get_all_study_names(url)[0]
    study = optuna.load_study(study_name=name, storage=url)
    return Counter((t.user_attrs["config"], t.user_attrs.get("node", "?")) for t in study.trials
                   if t.state == optuna.trial.TrialState.COMPLETE and "config" in t.user_attrs)


def _best(url: str) -> str:
    from autotune.store import open_store

    with open_store(url) as store:
        profiles = store.profiles()
    if len(profiles) != 1:
        return f"{len(profiles)} profiles!"
    best = profiles[0].best()
    if best is None or best.cost is None:
        return "-"
    return f"{best.config.key} ({best.cost.predict(10.0):.2f} s)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--workload", default="cuba")
    parser.add_argument("--size", type=int, default=400)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--targets", nargs="+", default=["numpy", "cpp"])
    args = parser.parse_args()
    rows, base = [], None
    with start_postgres() as server, tempfile.TemporaryDirectory(prefix="fleet-") as work:
        for workers in args.workers:
            url = create_database(server, f"fleet_{workers}")
            wall = _calibrate(url, workers, args, Path(work))
            base = base or wall
            measured = _measured(url)
            per_config = Counter(config for config, _ in measured.elements())
            per_node = Counter(node for _, node in measured.elements())
            rows.append([str(workers), f"{wall:.0f} s", f"{base / wall:.2f}",
                         ", ".join(f"{n}: {c}" for n, c in sorted(per_node.items())),
                         "yes" if all(c == 1 for c in per_config.values()) else "NO",
                         _best(url)])
    print(f"{args.workload} {args.size}, targets {' '.join(args.targets)}, "
          f"{args.trials} configurations, {os.cpu_count()} CPUs")
    print(markdown_table(["workers", "wall time", "speed-up vs first row",
                          "configurations measured per node", "each measured once",
                          "profile's choice (predicted 10 s run)"], rows))


if __name__ == "__main__":
    main()
