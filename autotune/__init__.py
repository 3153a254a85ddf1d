"""brian2-autotune: calibrate a host once, then run Brian2 in its fastest valid configuration.

The public API is re-exported here. Names are imported lazily so that ``import autotune`` followed
by :func:`apply` stays within a few tens of milliseconds (no SQLAlchemy, no Optuna).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from autotune.apply import Applied as Applied
from autotune.apply import apply as apply  # eager: the submodule would shadow the function

__version__ = "0.1.0"

_EXPORTS = {
    "calibrate": "autotune.calibrate",
    "CalibrationSettings": "autotune.calibrate",
    "CalibrationOutcome": "autotune.calibrate",
    "Budget": "autotune.search",
    "RunConfig": "autotune.config",
    "HostFingerprint": "autotune.host",
    "collect_host": "autotune.host",
    "Profile": "autotune.profile",
    "ProfileEntry": "autotune.profile",
    "CostModel": "autotune.costmodel",
    "TrialResult": "autotune.records",
    "TrialSpec": "autotune.records",
    "Evaluation": "autotune.records",
    "run_trial": "autotune.trial",
    "WorkloadSpec": "autotune.workloads",
    "resolve_workload": "autotune.workloads",
    "Store": "autotune.store.repository",
    "open_store": "autotune.store.repository",
    "AutotuneError": "autotune.errors",
    "BadInput": "autotune.errors",
    "ConfigError": "autotune.errors",
    "WorkloadError": "autotune.errors",
    "StoreError": "autotune.errors",
    "StoreUnavailable": "autotune.errors",
    "ProfileError": "autotune.errors",
    "CalibrationError": "autotune.errors",
}

__all__ = sorted([*_EXPORTS, "Applied", "apply"])


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'autotune' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
