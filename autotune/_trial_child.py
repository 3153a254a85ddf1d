"""Child side of a trial: configure Brian2, run the workload once, report JSON.

Run as ``python -m autotune._trial_child SPEC.json RESULT.json``. Everything it learns goes into
RESULT.json; a Python-level failure is reported there too (with ``error_kind`` = ``workload`` when
the user's code is at fault), a crash leaves no file and the parent reads the exit status.
"""

from __future__ import annotations

import time

_CHILD_STARTED = time.time()  # first thing: the parent subtracts its spawn time from this

import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402


def _count_files(folder: Path | None) -> int:
    if folder is None or not folder.exists():
        return 0
    return sum(1 for _ in folder.rglob("*") if _.is_file())


def _capture_networks() -> list[Any]:
    """Keep every network Brian2 prepares, so the model's size can be read after the run."""
    from brian2.core.network import Network

    captured: list[Any] = []
    original = Network.before_run

    def before_run(self: Any, run_namespace: Any) -> Any:
        captured.append(list(self.objects))
        return original(self, run_namespace)

    Network.before_run = before_run  # type: ignore[method-assign]
    return captured


def _model_size(captured: list[Any], observables: dict[str, float], duration: float
                ) -> dict[str, float | None]:
    from brian2 import NeuronGroup, PoissonGroup, SpikeGeneratorGroup, SpikeMonitor, Synapses

    objects = {id(o): o for objs in captured for o in objs}.values()
    neurons = synapses = 0
    monitored_spikes: float | None = None
    for obj in objects:
        try:
            if isinstance(obj, (NeuronGroup, PoissonGroup, SpikeGeneratorGroup)):
                neurons += len(obj)
            elif isinstance(obj, Synapses):
                synapses += len(obj)
            elif isinstance(obj, SpikeMonitor) and obj.source.__class__ is not Synapses:
                monitored_spikes = (monitored_spikes or 0.0) + float(obj.num_spikes)
        except Exception:  # a size we cannot read is not worth failing a trial over
            continue
    spikes = observables.get("spikes", monitored_spikes)
    rate = spikes / duration if spikes is not None and duration > 0 else None
    return {"neurons": float(neurons), "synapses": float(synapses), "spikes_per_second": rate}


def _run(spec: dict[str, Any]) -> dict[str, Any]:
    t0 = time.time()
    import brian2  # noqa: F401

    from autotune.brianprefs import configure_brian2
    from autotune.config import RunConfig
    from autotune.errors import WorkloadError
    from autotune.runrecord import last_loop_seconds
    from autotune.workloads import WorkloadSpec, check_observables, load_simulate

    t_imported = time.time()
    config = RunConfig.from_dict(spec["config"])
    build_dir = Path(spec["build_dir"]) if spec.get("build_dir") else None
    cache_dir = Path(spec["cython_cache_dir"]) if spec.get("cython_cache_dir") else None
    guided = configure_brian2(config, build_dir, cache_dir)
    workload = WorkloadSpec.from_dict(spec["workload"])
    duration = float(spec["duration"])
    cold = (
        not (build_dir / "main").exists() if config.device == "cpp_standalone" and build_dir
        else None
    )
    cache_files = _count_files(cache_dir) if config.target == "cython" else 0
    captured = _capture_networks()
    try:
        simulate = load_simulate(workload)
        t_sim = time.time()
        returned = simulate(duration * brian2.second)
        t_done = time.time()
        observables = check_observables(returned, f"workload {workload.name}")
    except WorkloadError as e:
        return {"error": str(e), "error_kind": "workload"}
    if cold is None:
        cold = config.target == "cython" and _count_files(cache_dir) > cache_files
    if guided is not None and guided.rebuilt:  # a profile-guided phase change builds anew
        cold = True
    device = brian2.get_device()
    loop = last_loop_seconds() or 0.0
    phases = {"import": t_imported - t0, "run": loop}
    if config.device == "cpp_standalone":
        timers = device.timers
        phases["compile"] = float(timers["compile"]["make"] or 0.0)
    phases["build"] = max(0.0, (t_done - t_sim) - loop)
    model = _model_size(captured, observables, duration)
    return {"phases": phases, "cold": bool(cold), "observables": observables, "model": model,
            "pgo": guided.phase if guided is not None else None}


def _users_fault(error: BaseException, spec: dict[str, Any]) -> bool:
    """Whether the workload's own code is at fault (not the configuration or the toolchain).

    True when the innermost frame is in the workload file, or when Brian2 rejected the model's
    equations or units, which no configuration can fix.
    """
    workload = spec["workload"]
    frames = traceback.extract_tb(error.__traceback__)
    if workload["kind"] == "file" and frames and frames[-1].filename == workload["path"]:
        return True
    name = type(error).__name__
    return name in ("DimensionMismatchError", "EquationError")


def main(argv: list[str]) -> int:
    """Entry point: ``SPEC.json RESULT.json``; exit status 0 when a result was written."""
    spec_path, result_path = Path(argv[0]), Path(argv[1])
    spec = json.loads(spec_path.read_text())
    try:
        report = _run(spec)
    except Exception as e:
        trace = traceback.format_exc(limit=8)
        report = {"error": f"{type(e).__name__}: {e}\n{trace[-1500:]}",
                  "error_kind": "workload" if _users_fault(e, spec) else "crash"}
    report["child_started"] = _CHILD_STARTED
    ru_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    ru_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    scale = 1 if sys.platform == "darwin" else 1024  # Linux reports KiB, macOS bytes
    report["max_rss_self"] = ru_self * scale
    report["max_rss_children"] = ru_children * scale
    tmp = result_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(report))
    tmp.replace(result_path)
    return 0 if "error" not in report else 3


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
