"""The stock-free knobs of a cpp_standalone build, each measured before it is kept.

    python benchmarks/knobs.py [--workloads cuba:4000 stdp:1000 coba-hh:1000] [--duration 2]
                               [--rounds 6]

For each workload this builds the cpp_standalone project once per variant, each in its own
folder and process, and then runs the built binaries in interleaved rounds (rotated order, so
no variant always runs first), timing each binary's wall time. Variants, all float64:

- ``base``: Brian2's default flags, no OpenMP (what the tuner's ``default`` preset builds);
- ``lto``: the same with link-time optimisation (``-flto`` at compile and link time);
- ``denormals``: ``prefs.codegen.generators.cpp.flush_denormals``;
- ``pgo``: profile-guided: built with ``-fprofile-generate``, run once (the instrumented run's
  time is reported apart), rebuilt from clean with ``-fprofile-use`` (profiles kept in the
  build folder by ``-fprofile-dir``);
- ``t2``, ``t2 bind``: every usable CPU as OpenMP threads, without and with
  ``OMP_PROC_BIND=true`` (thread binding).

Reported per variant: median binary wall time, and the paired ratio to ``base`` (``t2 bind``
to ``t2``): the geometric mean of round-by-round ratios with its 80 % interval; an interval
wholly below 1 is a gain beyond noise, wholly above 1 a loss.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import markdown_table  # noqa: E402

from autotune import confirm as paired  # noqa: E402
from autotune.host import collect_host  # noqa: E402
from autotune.workloads import resolve_workload  # noqa: E402

BUILD = """
import json, sys
import brian2
from brian2 import prefs, second, set_device
from autotune.workloads import WorkloadSpec, load_simulate
spec = json.loads(sys.argv[1])
prefs.codegen.cpp.extra_compile_args_gcc = (list(prefs.codegen.cpp.extra_compile_args_gcc)
                                            + spec["compile"])
prefs.codegen.cpp.extra_link_args = list(prefs.codegen.cpp.extra_link_args) + spec["link"]
prefs.codegen.generators.cpp.flush_denormals = spec["denormals"]
prefs.devices.cpp_standalone.openmp_threads = spec["threads"]
set_device("cpp_standalone", directory=spec["folder"], build_on_run=True, clean=spec["clean"])
load_simulate(WorkloadSpec.from_dict(spec["workload"]))(spec["duration"] * second)
"""


@dataclass(frozen=True)
class Variant:
    """One way to build (and run) the binary."""

    name: str
    compile: list[str] = field(default_factory=list)
    link: list[str] = field(default_factory=list)
    denormals: bool = False
    threads: int = 0
    env: dict[str, str] = field(default_factory=dict)
    folder_of: str | None = None  # run another variant's binary (same build, other env)


def variants(threads: int) -> list[Variant]:
    """The knobs measured, ``base`` first."""
    return [Variant("base"), Variant("lto", ["-flto"], ["-flto"]),
            Variant("denormals", denormals=True), Variant("pgo"),
            Variant("t2", threads=threads),
            Variant("t2 bind", threads=threads, env={"OMP_PROC_BIND": "true"}, folder_of="t2")]


def _build(workload: dict[str, object], variant: Variant, folder: Path, duration: float,
           compile_extra: list[str] | None = None, link_extra: list[str] | None = None,
           clean: bool = False) -> float:
    """Build (and run once, as Brian2 does) one variant; the seconds it took."""
    import json

    spec = {"workload": workload, "folder": str(folder), "duration": duration,
            "compile": variant.compile + (compile_extra or []),
            "link": variant.link + (link_extra or []), "denormals": variant.denormals,
            "threads": variant.threads, "clean": clean}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", BUILD, json.dumps(spec)], capture_output=True,
                          text=True, timeout=3600)
    if done.returncode != 0:
        raise SystemExit(f"{variant.name}: the build failed: {done.stderr.strip()[-500:]}")
    return time.perf_counter() - started


def _time_binary(folder: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(["./main"], cwd=folder, env={**os.environ, **env}, check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def _build_all(workload: dict[str, object], chosen: list[Variant], work: Path,
               duration: float) -> tuple[dict[str, Path], dict[str, float]]:
    """Every variant's built folder, and the PGO instrumented binary's run time."""
    folders, notes = {}, {}
    for variant in chosen:
        if variant.folder_of is not None:
            folders[variant.name] = folders[variant.folder_of]
            continue
        folder = work / variant.name.replace(" ", "-")
        if variant.name == "pgo":
            profiles = folder / "pgo-profiles"
            _build(workload, variant, folder, duration,
                   [f"-fprofile-generate={profiles}"], ["-fprofile-generate"])
            notes["instrumented run"] = _time_binary(folder, {})
            _build(workload, variant, folder, duration,
                   [f"-fprofile-use={profiles}", "-fprofile-correction"], clean=True)
        else:
            _build(workload, variant, folder, duration)
        folders[variant.name] = folder
    return folders, notes


def _rounds(chosen: list[Variant], folders: dict[str, Path], rounds: int
            ) -> list[dict[str, float]]:
    out = []
    for number in range(rounds):
        shift = number % len(chosen)
        order = chosen[shift:] + chosen[:shift]
        out.append({v.name: _time_binary(folders[v.name], v.env) for v in order})
    return out


def _rows(item: str, chosen: list[Variant], rounds: list[dict[str, float]],
          notes: dict[str, float]) -> list[list[str]]:
    rows = []
    for variant in chosen:
        median = statistics.median(r[variant.name] for r in rounds)
        against = "t2" if variant.name == "t2 bind" else "base"
        if variant.name == against:
            ratio = "1"
        else:
            gap = paired.gap(rounds, variant.name, against)
            ratio = f"{gap.ratio:.3f} ({gap.low:.3f}–{gap.high:.3f}) vs {against}"
        extra = (f"instrumented run {notes['instrumented run']:.3f} s"
                 if variant.name == "pgo" else "")
        rows.append([item, variant.name, f"{median:.3f} s", ratio, extra])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", nargs="+", default=["cuba:4000", "stdp:1000",
                                                            "coba-hh:1000"])
    parser.add_argument("--duration", type=float, default=2.0, help="simulated seconds (2)")
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    chosen = variants(collect_host().usable_cpus)
    rows = []
    with tempfile.TemporaryDirectory(prefix="knobs-") as work:
        for item in args.workloads:
            name, _, size = item.partition(":")
            workload = resolve_workload(name, int(size) if size else None).to_dict()
            folder = Path(work) / name
            folders, notes = _build_all(workload, chosen, folder, args.duration)
            rows += _rows(item, chosen, _rounds(chosen, folders, args.rounds), notes)
            print(f"{item}: done", file=sys.stderr, flush=True)
    print(f"{args.duration:g} s simulated, binary wall time, median of {args.rounds} "
          "interleaved rounds; ratio: paired geometric mean (80 % interval), < 1 is faster")
    print(markdown_table(["workload", "variant", "binary wall", "ratio", "note"], rows))


if __name__ == "__main__":
    main()
