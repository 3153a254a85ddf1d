"""Profiles: what a calibration concluded for one host and one workload.

A :class:`Profile` lists every configuration the calibration measured with its status
(``valid``, ``invalid`` = failed validation against the float64 reference, ``failed`` = crashed,
timed out, ...), the reason where it is not valid, and the cost model of every valid one. The
best configuration for any run length is derived from the cost models, so a profile answers
"what is fastest for a 1 s run" as well as "for a 100 s run".

Profiles cross into the store, into exported JSON files and into :mod:`autotune.apply`; the JSON
form carries :data:`FORMAT_VERSION`, and :meth:`Profile.from_dict` validates everything, since a
document may come from another machine.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from autotune.config import NO_LIMITS, Allowed, RunConfig
from autotune.costmodel import CostModel
from autotune.errors import ConfigError, ProfileError
from autotune.features import check_document as check_features
from autotune.values import is_non_negative_number, is_positive_number

FORMAT_VERSION = 1
#: Among tied configurations, one is "leaner" only with at least this much less peak memory;
#: smaller differences are noise in RSS sampling, and the faster prediction wins.
MEMORY_MARGIN = 0.10
#: A cheaper tied configuration (fewer threads, less memory) is preferred only when predicted
#: within this fraction of the fastest: on a noisy host a tie can span 30 %, and giving up that
#: much expected speed for a thread or some memory is not what a user asked for.
PREFERENCE_MARGIN = 0.05
ENTRY_STATUSES = ("valid", "invalid", "failed")


@dataclass(frozen=True)
class ProfileEntry:
    """One measured configuration in a profile.

    Attributes:
        config: the configuration.
        status: ``valid``, ``invalid`` or ``failed``.
        cost: its cost model (valid entries only).
        reason: why it is invalid or failed.
        max_deviation: largest relative deviation of its observables from the reference.
        phases: median seconds per phase over its warm trials.
        phase_spread: relative half-range per phase over its warm trials.
    """

    config: RunConfig
    status: str
    cost: CostModel | None = None
    reason: str | None = None
    max_deviation: float | None = None
    phases: dict[str, float] = field(default_factory=dict, compare=False)
    phase_spread: dict[str, float] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"config": self.config.to_dict(), "status": self.status,
                "cost": self.cost.to_dict() if self.cost else None, "reason": self.reason,
                "max_deviation": self.max_deviation, "phases": dict(self.phases),
                "phase_spread": dict(self.phase_spread)}

    @classmethod
    def from_dict(cls, data: Any) -> ProfileEntry:
        """Validate and build an entry.

        Raises:
            ProfileError: on unknown keys or bad values.
        """
        _require_mapping(data, "profile entry", {"config", "status", "cost", "reason",
                                                 "max_deviation", "phases", "phase_spread"})
        status = data.get("status")
        if status not in ENTRY_STATUSES:
            raise ProfileError(f"profile entry status must be one of {ENTRY_STATUSES}, "
                               f"got {status!r}")
        try:
            config = RunConfig.from_dict(data.get("config"))
            cost = CostModel.from_dict(data["cost"]) if data.get("cost") else None
        except (ConfigError, KeyError, TypeError, ValueError) as e:
            raise ProfileError(f"bad profile entry: {e}") from e
        if status == "valid" and cost is None:
            raise ProfileError("a valid profile entry needs a cost model")
        reason = data.get("reason")
        if reason is not None and not isinstance(reason, str):
            raise ProfileError("profile entry reason must be text")
        deviation = data.get("max_deviation")
        if deviation is not None and not isinstance(deviation, (int, float)):
            raise ProfileError("profile entry max_deviation must be a number")
        return cls(config, status, cost, reason[:2000] if reason else None,
                   None if deviation is None else float(deviation),
                   _number_map(data.get("phases"), "phases"),
                   _number_map(data.get("phase_spread"), "phase_spread"))


def _peak(entry: ProfileEntry) -> int:
    """Peak memory of a valid entry's warm runs in bytes (0 when not measured)."""
    return (entry.cost.peak_rss or 0) if entry.cost else 0


@dataclass(frozen=True)
class Profile:
    """A calibration's conclusion for one host and workload.

    Attributes:
        fingerprint: the host's fingerprint.
        host_components: the host's checked components (to explain a mismatch later).
        workload: the workload's JSON form (name, kind, size, path, signature), and
            ``model``: its features (:mod:`autotune.features`) where they were read.
        target_duration: the run length the calibration optimised for (simulated seconds).
        tolerance: the relative tolerance used for validation.
        entries: every measured configuration.
        baseline: Brian2's default configuration on this host (for speed-ups), if measured.
        created_at: ISO timestamp.
        calibration_id: the calibration that produced it (in the store it came from).
        notes: warnings recorded during calibration (busy host, ...).
        confirmed: keys of the configurations re-measured in paired, interleaved rounds after
            the search, fastest first (empty when no confirmation ran).
        confirmation: ``rounds`` (interleaved rounds run; 0 when nothing came close to the
            best), ``within`` (how close to the best a contender had to be, a fraction) and
            ``gaps`` (per confirmed key but the fastest: paired ``ratio`` to it with
            its 80 % interval ``low``..``high`` and ``rounds``); empty when not attempted.
        busy: True when the host was busy at some point of the calibration.
    """

    fingerprint: str
    host_components: dict[str, Any]
    workload: dict[str, Any]
    target_duration: float
    tolerance: float
    entries: tuple[ProfileEntry, ...]
    baseline: RunConfig | None = None
    created_at: str = ""
    calibration_id: int | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    confirmed: tuple[str, ...] = field(default_factory=tuple)
    confirmation: dict[str, Any] = field(default_factory=dict, compare=False)
    busy: bool = False

    @property
    def valid(self) -> list[ProfileEntry]:
        """Valid entries, fastest first at the target duration."""
        entries = [e for e in self.entries if e.status == "valid" and e.cost is not None]
        return sorted(entries, key=lambda e: e.cost.predict(self.target_duration))  # type: ignore[union-attr]

    def ranked(self, duration: float | None = None) -> list[ProfileEntry]:
        """Valid entries, fastest first for ``duration`` (default: the target duration)."""
        d = self.target_duration if duration is None else duration
        return sorted(self.valid, key=lambda e: e.cost.predict(d))  # type: ignore[union-attr]

    def allowed(self, duration: float | None = None, allowed: Allowed = NO_LIMITS
                ) -> list[ProfileEntry]:
        """Valid entries ``allowed`` admits, fastest first for ``duration``."""
        return [e for e in self.ranked(duration) if allowed.admits(e.config)]

    def tied(self, duration: float | None = None, allowed: Allowed = NO_LIMITS
             ) -> list[ProfileEntry]:
        """Valid entries that cannot be told apart from the fastest for ``duration``, among
        those ``allowed`` admits.

        Two predictions are tied when they differ by less than the larger of their
        uncertainties (fit residual, measurement spread, drift floor).
        """
        d = self.target_duration if duration is None else duration
        candidates = self.allowed(d, allowed)
        if not candidates:
            return []
        fastest = candidates[0].cost
        assert fastest is not None
        return [e for e in candidates if e.cost is not None and e.cost.tied_with(fastest, d)]

    def best(self, duration: float | None = None, allowed: Allowed = NO_LIMITS
             ) -> ProfileEntry | None:
        """The entry to use for ``duration``, among those ``allowed`` admits.

        The fastest, unless others are statistically tied with it and predicted within
        :data:`PREFERENCE_MARGIN` of it: then the cheapest of those: fewest threads; among
        those, the one with materially less peak memory (:data:`MEMORY_MARGIN`) than the
        fastest of them, else the fastest. A tie alone never lets a slower configuration win
        when it costs no less (a noisy measurement widens the tie).
        """
        d = self.target_duration if duration is None else duration
        tied = self.tied(d, allowed)
        if not tied:
            return None
        limit = tied[0].cost.predict(d) * (1 + PREFERENCE_MARGIN)  # type: ignore[union-attr]
        close = [e for e in tied if e.cost.predict(d) <= limit]  # type: ignore[union-attr]
        fewest = min(e.config.threads for e in close)
        pool = [e for e in close if e.config.threads == fewest]  # ranked: fastest first
        fastest = pool[0]
        measured = [e for e in pool if _peak(e)]
        if not measured or not _peak(fastest):
            return fastest
        leanest = min(measured, key=_peak)
        return leanest if _peak(leanest) <= _peak(fastest) * (1 - MEMORY_MARGIN) else fastest

    def entry(self, config: RunConfig) -> ProfileEntry | None:
        """The entry measured for ``config``, if any."""
        return next((e for e in self.entries if e.config == config), None)

    def to_dict(self) -> dict[str, Any]:
        """Versioned JSON-able form."""
        return {
            "format_version": FORMAT_VERSION,
            "fingerprint": self.fingerprint,
            "host_components": dict(self.host_components),
            "workload": dict(self.workload),
            "target_duration": self.target_duration,
            "tolerance": self.tolerance,
            "entries": [e.to_dict() for e in self.entries],
            "baseline": self.baseline.to_dict() if self.baseline else None,
            "created_at": self.created_at,
            "calibration_id": self.calibration_id,
            "notes": list(self.notes),
            "confirmed": list(self.confirmed),
            "confirmation": dict(self.confirmation),
            "busy": self.busy,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Profile:
        """Validate and build a profile from its JSON form.

        Raises:
            ProfileError: unknown format version, unknown keys, or bad values.
        """
        keys = {"format_version", "fingerprint", "host_components", "workload",
                "target_duration", "tolerance", "entries", "baseline", "created_at",
                "calibration_id", "notes", "confirmed", "confirmation", "busy"}
        _require_mapping(data, "profile", keys)
        if data.get("format_version") != FORMAT_VERSION:
            raise ProfileError(f"unknown profile format version {data.get('format_version')!r}; "
                               f"this brian2-autotune reads version {FORMAT_VERSION}")
        fingerprint = data.get("fingerprint")
        if not isinstance(fingerprint, str) or not fingerprint.isalnum() or len(fingerprint) > 64:
            raise ProfileError("profile fingerprint must be a short alphanumeric string")
        workload = data.get("workload")
        _check_workload(workload)
        components = data.get("host_components")
        _require_mapping(components, "profile host_components", None)
        entries = data.get("entries")
        if not isinstance(entries, list):
            raise ProfileError("profile entries must be a list")
        try:
            baseline = RunConfig.from_dict(data["baseline"]) if data.get("baseline") else None
        except ConfigError as e:
            raise ProfileError(f"bad profile baseline: {e}") from e
        notes = data.get("notes") or []
        if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
            raise ProfileError("profile notes must be a list of strings")
        confirmed = data.get("confirmed") or []
        if not isinstance(confirmed, list) or not all(
                isinstance(k, str) and len(k) < 100 for k in confirmed):
            raise ProfileError("profile confirmed must be a list of configuration keys")
        calibration_id = data.get("calibration_id")
        if calibration_id is not None and not isinstance(calibration_id, int):
            raise ProfileError("profile calibration_id must be an integer")
        return cls(
            fingerprint=fingerprint,
            host_components=dict(components),
            workload=dict(workload),
            target_duration=_positive(data.get("target_duration"), "target_duration"),
            tolerance=_positive(data.get("tolerance"), "tolerance"),
            entries=tuple(ProfileEntry.from_dict(e) for e in entries),
            baseline=baseline,
            created_at=str(data.get("created_at") or ""),
            calibration_id=calibration_id,
            notes=tuple(notes),
            confirmed=tuple(confirmed),
            confirmation=_check_confirmation(data.get("confirmation")),
            busy=bool(data.get("busy", False)),
        )


def _check_confirmation(data: Any) -> dict[str, Any]:
    """A profile's confirmation record, checked (empty when absent)."""
    if not data:
        return {}
    _require_mapping(data, "profile confirmation", {"rounds", "within", "gaps"})
    rounds = data.get("rounds")
    if isinstance(rounds, bool) or not isinstance(rounds, int) or not 0 <= rounds <= 1000:
        raise ProfileError("profile confirmation rounds must be an integer in 0..1000")
    within = data.get("within")
    if within is not None and not is_positive_number(within):
        raise ProfileError("profile confirmation within must be a positive fraction")
    gaps = data.get("gaps") or {}
    _require_mapping(gaps, "profile confirmation gaps", None)
    checked: dict[str, dict[str, Any]] = {}
    for key, gap in gaps.items():
        if not isinstance(key, str) or len(key) >= 100:
            raise ProfileError("profile confirmation gaps must be keyed by configuration keys")
        _require_mapping(gap, f"profile confirmation gap of {key}",
                         {"ratio", "low", "high", "rounds"})
        for name in ("ratio", "low", "high"):
            value = gap.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(
                    value, (int, float)) or not math.isfinite(value) or value < 0):
                raise ProfileError(f"profile confirmation gap {name} of {key} must be a "
                                   "number >= 0 or null")
        checked[key] = dict(gap)
    return {"rounds": rounds, "gaps": checked} | ({} if within is None else {"within": within})


def _check_workload(workload: Any) -> None:
    _require_mapping(workload, "profile workload",
                     {"name", "kind", "size", "path", "signature", "model"})
    if workload.get("model") is not None:
        check_features(workload["model"])
    name, kind, size = workload.get("name"), workload.get("kind"), workload.get("size")
    signature, path = workload.get("signature"), workload.get("path")
    if not isinstance(name, str) or not 0 < len(name) <= 200:
        raise ProfileError("profile workload name must be a short string")
    if kind not in ("builtin", "file"):
        raise ProfileError(f"profile workload kind must be builtin or file, got {kind!r}")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int)
                             or not 1 <= size <= 10_000_000):
        raise ProfileError(f"profile workload size must be an integer in 1..10^7, got {size!r}")
    if not isinstance(signature, str) or not signature.isalnum() or len(signature) > 64:
        raise ProfileError("profile workload signature must be a short alphanumeric string")
    if path is not None and (not isinstance(path, str) or len(path) > 4096):
        raise ProfileError("profile workload path must be text")


def _number_map(value: Any, name: str) -> dict[str, float]:
    if value is None:
        return {}
    _require_mapping(value, f"profile entry {name}", None)
    out: dict[str, float] = {}
    for key, number in value.items():
        if not isinstance(key, str) or len(key) > 40:
            raise ProfileError(f"profile entry {name} keys must be short strings")
        if not is_non_negative_number(number):
            raise ProfileError(f"profile entry {name}[{key!r}] must be a number >= 0")
        out[key] = float(number)
    return out


def _positive(value: Any, name: str) -> float:
    if not is_positive_number(value):
        raise ProfileError(f"profile {name} must be a positive number, got {value!r}")
    return float(value)


def _require_mapping(data: Any, what: str, allowed: set[str] | None) -> None:
    if not isinstance(data, Mapping):
        raise ProfileError(f"{what} must be a JSON object, got {type(data).__name__}")
    if allowed is not None:
        unknown = set(data) - allowed
        if unknown:
            raise ProfileError(f"{what} has unknown keys: {', '.join(sorted(map(str, unknown)))}")
