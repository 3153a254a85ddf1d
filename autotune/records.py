"""Plain records that cross module lines: what a trial is asked, what it measured, and what
the measurement of one configuration concluded.

They import no runner, store or search library: the store persists them, the search ranks
them, the measurer makes them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autotune.config import RunConfig
from autotune.costmodel import CostModel
from autotune.workloads import WorkloadSpec

#: Trial outcomes. Only ``ok`` trials carry timings a cost model may use.
STATUSES = ("ok", "failed", "timeout", "memory", "workload_error", "interrupted")
#: Phase of a trial that took a profile-guided build's profile: the trial's whole wall time.
TRAINING_PHASE = "training"


@dataclass(frozen=True)
class TrialSpec:
    """What to measure.

    Attributes:
        workload: the workload to run.
        config: the configuration to run it in.
        duration: simulated seconds.
        build_dir: stable cpp_standalone project folder for this configuration.
        cython_cache_dir: Cython cache folder for this configuration's flag preset.
    """

    workload: WorkloadSpec
    config: RunConfig
    duration: float
    build_dir: Path | None = None
    cython_cache_dir: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form handed to the child."""
        return {
            "workload": self.workload.to_dict(),
            "config": self.config.to_dict(),
            "duration": self.duration,
            "build_dir": str(self.build_dir) if self.build_dir else None,
            "cython_cache_dir": str(self.cython_cache_dir) if self.cython_cache_dir else None,
        }


@dataclass(frozen=True)
class TrialResult:
    """What one trial measured.

    Attributes:
        config: the configuration measured.
        duration: simulated seconds.
        status: one of :data:`STATUSES`.
        phases: seconds per phase: ``startup`` (interpreter start), ``import`` (Brian2),
            ``build`` (model set-up, code generation, compilation, binary start/teardown),
            ``compile`` (the part of build spent in ``make``, standalone only), ``run`` (the
            simulation loop; the binary's own loop time for standalone) and ``total`` (the
            whole process, as the parent saw it).
        cold: True when this trial compiled from scratch (new build folder or Cython cache miss).
        peak_rss: peak resident memory of the process tree in bytes.
        observables: what the workload returned.
        model: ``neurons``, ``synapses`` and ``spikes_per_second`` of the simulated model.
        exit_code: the child's exit status (negative: killed by that signal).
        error: why the trial failed (with the tail of stderr), or None.
    """

    config: RunConfig
    duration: float
    status: str
    phases: dict[str, float] = field(default_factory=dict)
    cold: bool = False
    peak_rss: int | None = None
    observables: dict[str, float] = field(default_factory=dict)
    model: dict[str, float | None] = field(default_factory=dict)
    exit_code: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the trial produced usable measurements."""
        return self.status == "ok"

    @property
    def training(self) -> bool:
        """True for a profile-guided configuration's instrumented run (:mod:`autotune.pgo`):
        it took the profile, and says what that costs, not what a run of the configuration
        costs."""
        return TRAINING_PHASE in self.phases

    @property
    def total(self) -> float | None:
        """End-to-end wall seconds, or None for a failed trial."""
        return self.phases.get("total")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (for the store and exports)."""
        return {
            "config": self.config.to_dict(), "duration": self.duration, "status": self.status,
            "phases": dict(self.phases), "cold": self.cold, "peak_rss": self.peak_rss,
            "observables": dict(self.observables), "model": dict(self.model),
            "exit_code": self.exit_code, "error": self.error,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrialResult:
        """Inverse of :meth:`to_dict`."""
        return cls(
            config=RunConfig.from_dict(data["config"]), duration=float(data["duration"]),
            status=str(data["status"]), phases={k: float(v) for k, v in data["phases"].items()},
            cold=bool(data.get("cold", False)), peak_rss=data.get("peak_rss"),
            observables={k: float(v) for k, v in data.get("observables", {}).items()},
            model=dict(data.get("model", {})), exit_code=data.get("exit_code"),
            error=data.get("error"),
        )


@dataclass(frozen=True)
class Evaluation:
    """What measuring one configuration concluded (the search's view of it).

    Attributes:
        config: the configuration.
        objective: predicted wall seconds of a target-length run, or None when it failed.
        feasible: False when the results failed validation against the reference.
        reason: why the configuration failed or is infeasible.
        cost: its fitted cost model (None when it failed or for a search test's stand-in).
        phases: median seconds per phase of its trials.
        phase_spread: relative spread per phase.
        max_deviation: largest relative deviation of its observables from the reference.
        reference: it is the float64 reference the others were validated against.
        rate: wall seconds per simulated second of the loop (ranks runs much longer than the
            target), when known without a cost model.
    """

    config: RunConfig
    objective: float | None
    feasible: bool = True
    reason: str | None = None
    cost: CostModel | None = None
    phases: dict[str, float] = field(default_factory=dict)
    phase_spread: dict[str, float] = field(default_factory=dict)
    max_deviation: float | None = None
    reference: bool = False
    rate: float | None = None

    def __post_init__(self) -> None:
        if self.rate is None and self.cost is not None:
            object.__setattr__(self, "rate", self.cost.rate)
        if self.max_deviation is not None and not math.isfinite(self.max_deviation):
            object.__setattr__(self, "max_deviation", None)

    def user_attrs(self) -> dict[str, Any]:
        """JSON-able facts for the Optuna trial (read by dashboards)."""
        attrs: dict[str, Any] = {}
        if self.cost is not None:
            attrs["cost"] = self.cost.to_dict()
        if self.phases:
            attrs["phases"] = dict(self.phases)
            attrs["phase_spread"] = dict(self.phase_spread)
        if self.max_deviation is not None:
            attrs["max_deviation"] = self.max_deviation
        if self.reference:
            attrs["reference"] = True
        return attrs


@dataclass(frozen=True)
class PrecisionCheck:
    """A script's float32 results compared with its float64 ones (``check-precision``).

    Attributes:
        script_digest: hash of the script's text (an edited script is unchecked again).
        script: the script's path.
        config_key: the float32 configuration the check ran.
        tolerance: relative deviation allowed per observable.
        passed: every observable within tolerance: float32 may be applied to this script.
        max_deviation: the largest relative deviation (None: infinite or unknown).
        reason: which observable failed and by how much, or None.
        observables: name -> [float64 value, float32 value].
        created_at: ISO timestamp.
    """

    script_digest: str
    script: str
    config_key: str
    tolerance: float
    passed: bool
    max_deviation: float | None
    reason: str | None
    observables: dict[str, list[float]]
    created_at: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (column names of ``autotune_precision_checks``)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}
