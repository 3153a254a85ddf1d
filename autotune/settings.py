"""How to calibrate: the settings of one calibration, validated where they are made.

Built by the command line from its arguments (or by a caller of :func:`autotune.calibrate`);
stored with the calibration, so that a resumed or joined calibration keeps its objective.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from autotune.confirm import CONFIRM_MARGIN
from autotune.costmodel import PROBE_LOOP
from autotune.errors import BadInput
from autotune.host import HostFingerprint
from autotune.measure import MeasureSettings
from autotune.search import Budget
from autotune.search.study import HEARTBEAT_SECONDS
from autotune.validate import DEFAULT_TOLERANCE
from autotune.values import is_positive_number

#: Code-generation targets a calibration may try (``cpp`` is cpp_standalone).
TARGETS = ("numpy", "cython", "cpp")


@dataclass(frozen=True)
class CalibrationSettings:
    """How to calibrate.

    Attributes:
        target_duration: simulated seconds of the full runs to optimise for.
        tolerance: relative deviation from the reference allowed for each observable.
        durations: simulated seconds of the calibration runs (at least two, for the fit).
        budget: how many configurations / minutes to spend.
        trial_timeout: wall seconds before a trial is killed.
        memory_limit: bytes a trial's process tree may use (None: 80 % of usable memory).
        max_threads: most OpenMP threads to try (None: the host's memory-aware maximum).
        seed: Optuna sampler seed.
        targets: code-generation targets to consider (``numpy``, ``cython``, ``cpp`` =
            cpp_standalone); leaving one out shortens the calibration.
        noise_target: repeat a configuration while its estimates disagree by more than this.
        max_repeats: most extra repeats per configuration.
        confirm_top: most configurations close to the best (within ``confirm_within``, or
            tied) to re-measure interleaved after the search (0 or 1: no confirmation).
        confirm_within: how close to the best's predicted time (a fraction: 0.25 = 25 %) a
            configuration must come after the search to be confirmed.
        confirm_rounds: interleaved rounds every confirmed configuration runs.
        confirm_max_rounds: most rounds, for contenders whose paired gap to the leader is still
            unresolved (it might still be more than the noise target faster than the leader).
        probe_loop: wall seconds of loop a configuration whose loop is too short to time at the
            calibration durations is run for once more (a rate probe); None: no probes.
        heartbeat: seconds between a running trial's heartbeats; a trial silent for three of
            them belonged to a node that died, and is measured again by another.
        pgo: whether profile-guided standalone builds are in the search space (each costs an
            instrumented build and run, and a second cold build, to measure).
    """

    target_duration: float = 10.0
    tolerance: float = DEFAULT_TOLERANCE
    durations: tuple[float, ...] = (0.1, 0.4)
    budget: Budget = field(default_factory=Budget)
    trial_timeout: float = 900.0
    memory_limit: int | None = None
    max_threads: int | None = None
    seed: int = 0
    targets: tuple[str, ...] = TARGETS
    noise_target: float = 0.05
    max_repeats: int = 2
    confirm_top: int = 3
    confirm_within: float = CONFIRM_MARGIN
    confirm_rounds: int = 2
    confirm_max_rounds: int = 6
    probe_loop: float | None = PROBE_LOOP
    heartbeat: int = HEARTBEAT_SECONDS
    pgo: bool = True

    def __post_init__(self) -> None:
        unknown = set(self.targets) - set(TARGETS)
        if unknown or not self.targets:
            raise BadInput(f"targets must be among {', '.join(TARGETS)}; got "
                           f"{', '.join(self.targets) or 'none'}")
        if not is_positive_number(self.target_duration):
            raise BadInput(f"--target-duration must be a positive number of simulated seconds, "
                           f"got {self.target_duration}")
        if not is_positive_number(self.tolerance):
            raise BadInput(f"--tolerance must be a positive fraction (0.05 = 5 %), got "
                           f"{self.tolerance}")
        if len(self.durations) < 2 or not all(is_positive_number(d) for d in self.durations):
            raise BadInput("calibration durations must be at least two positive numbers")
        if len(set(self.durations)) < 2:
            raise BadInput("calibration durations must differ, to fit the cost model")
        if not is_positive_number(self.trial_timeout):
            raise BadInput(f"trial timeout must be positive, got {self.trial_timeout}")
        if self.max_threads is not None and self.max_threads < 0:
            raise BadInput(f"max threads must be >= 0, got {self.max_threads}")
        if self.probe_loop is not None and not is_positive_number(self.probe_loop):
            raise BadInput(f"probe loop must be a positive number of seconds, got "
                           f"{self.probe_loop}")
        if isinstance(self.heartbeat, bool) or not isinstance(self.heartbeat, int) or (
                self.heartbeat < 1):
            raise BadInput(f"--heartbeat must be a whole number of seconds >= 1, got "
                           f"{self.heartbeat}")
        if not is_positive_number(self.confirm_within):
            raise BadInput(f"--confirm-within must be a positive fraction (0.25 = 25 %), got "
                           f"{self.confirm_within}")
        for name in ("max_repeats", "confirm_top", "confirm_rounds", "confirm_max_rounds"):
            if getattr(self, name) < 0:
                raise BadInput(f"{name.replace('_', '-')} must be >= 0")
        if self.confirm_max_rounds < self.confirm_rounds:
            raise BadInput(f"the most confirmation rounds ({self.confirm_max_rounds}) must be at "
                           f"least the fewest ({self.confirm_rounds})")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, stored with the calibration."""
        return {"target_duration": self.target_duration, "tolerance": self.tolerance,
                "durations": list(self.durations), "trials": self.budget.trials,
                "minutes": self.budget.minutes, "trial_timeout": self.trial_timeout,
                "memory_limit": self.memory_limit, "max_threads": self.max_threads,
                "seed": self.seed, "targets": list(self.targets),
                "noise_target": self.noise_target, "max_repeats": self.max_repeats,
                "confirm_top": self.confirm_top, "confirm_within": self.confirm_within,
                "confirm_rounds": self.confirm_rounds,
                "confirm_max_rounds": self.confirm_max_rounds,
                "probe_loop": self.probe_loop, "heartbeat": self.heartbeat, "pgo": self.pgo}

    def measure_settings(self, host: HostFingerprint) -> MeasureSettings:
        """The part of these settings that :class:`Measurer` needs."""
        return MeasureSettings(tuple(self.durations), self.target_duration, self.tolerance,
                               self.noise_target, self.max_repeats, self.trial_timeout,
                               self.memory_limit or int(host.usable_memory * 0.8),
                               self.probe_loop)
