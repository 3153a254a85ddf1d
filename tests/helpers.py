"""Builders of real data objects for tests (not mocks: the same classes the package uses)."""

from __future__ import annotations

from autotune.config import RunConfig, standalone_config
from autotune.costmodel import CostModel
from autotune.host import CHECKED_COMPONENTS, HostFingerprint
from autotune.profile import Profile, ProfileEntry
from autotune.records import TrialResult
from autotune.workloads import resolve_workload


def make_host(cpus: int = 4, **changes: object) -> HostFingerprint:
    """A host with plausible components; ``changes`` override some."""
    components: dict[str, object] = {k: "x" for k in CHECKED_COMPONENTS}
    components.update(cpu_model="Test CPU", logical_cores=cpus, physical_cores=cpus,
                      usable_cpus=cpus, total_memory=32 * 2**30, memory_limit=None,
                      compiler="c++ 12", python="3.11.7", brian2="2.9.0", numpy="2.3.5")
    components.update(changes)
    return HostFingerprint(components, {"hostname": "testhost"})


def make_result(config: RunConfig, duration: float, total: float, run: float,
                cold: bool = False, status: str = "ok", compile: float | None = None,
                observables: dict[str, float] | None = None) -> TrialResult:
    """A successful (or not) trial result with the given timings."""
    phases = {"startup": 0.05, "import": 1.0, "build": total - run - 1.05, "run": run,
              "total": total}
    if compile is not None:
        phases["compile"] = compile
    return TrialResult(config, duration, status, phases, cold=cold, peak_rss=100 * 2**20,
                       observables=observables or {"rate": 5.0},
                       model={"neurons": 10.0, "synapses": 20.0, "spikes_per_second": 50.0})


def make_profile(host: HostFingerprint, workload: str = "cuba", size: int = 100,
                 target: float = 10.0) -> Profile:
    """A profile where standalone wins long runs and numpy wins very short ones; a first
    (cold) build costs standalone 8 s more and Cython 40 s (as CUBA's do on the 2-CPU VM)."""
    entries = (
        ProfileEntry(RunConfig("runtime", "cython"), "valid",
                     CostModel(3.0, 0.5, 0.1, 2, 2, 40.0)),
        ProfileEntry(RunConfig("runtime", "numpy"), "valid", CostModel(1.5, 1.2, 0.1, 2, 2)),
        ProfileEntry(standalone_config(0), "valid", CostModel(3.5, 0.1, 0.1, 2, 2, 8.0)),
        ProfileEntry(standalone_config(2), "invalid", CostModel(3.6, 0.08, 0.1, 2, 2),
                     "rate differs by 30 %", 0.3),
        ProfileEntry(standalone_config(1, "float32"), "failed", None, "failed: killed by SIGSEGV"),
    )
    return Profile(host.fingerprint, dict(host.components),
                   resolve_workload(workload, size).to_dict(), target, 0.05, entries,
                   RunConfig("runtime", "cython"), "2026-11-25T00:00:00+00:00", 1, ())
