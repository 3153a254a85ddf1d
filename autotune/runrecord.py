"""A full run made with an applied configuration: its prediction and what really happened."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class RunRecord:
    """One real run, for checking predictions against reality.

    Attributes:
        fingerprint: host fingerprint.
        workload_signature: the profile's workload (None when no profile was used).
        profile_created_at: the profile's timestamp (identifies which profile predicted).
        config_key: the applied configuration.
        source: ``profile``, ``override`` or ``fallback``.
        script: the script's path, when run through ``brian2-autotune run``.
        simulated: simulated seconds of the run.
        predicted_total: predicted wall seconds (whole process), if a cost model knew.
        predicted_loop: predicted seconds of the simulation loop.
        actual_total: measured wall seconds since the process started.
        actual_build: measured seconds outside the loop in the script.
        actual_loop: measured seconds of the simulation loop.
        peak_rss: peak resident memory in bytes (process and children).
        exit_code: the script's exit status.
        created_at: ISO timestamp.
    """

    fingerprint: str
    workload_signature: str | None
    profile_created_at: str | None
    config_key: str
    source: str
    script: str | None
    simulated: float | None
    predicted_total: float | None
    predicted_loop: float | None
    actual_total: float | None
    actual_build: float | None
    actual_loop: float | None
    peak_rss: int | None
    exit_code: int | None
    created_at: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (column names of ``autotune_runs``)."""
        return asdict(self)

    @property
    def total_error(self) -> float | None:
        """Relative error of the predicted total wall time, or None."""
        if not self.predicted_total or self.actual_total is None:
            return None
        return (self.actual_total - self.predicted_total) / self.predicted_total
