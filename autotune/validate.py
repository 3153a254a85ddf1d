"""Validation: does a configuration compute the same thing as the float64 reference?

Random streams differ between devices and thread counts, and float32 rounds differently, so
results are compared observable by observable with a relative tolerance, never bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_TOLERANCE = 0.05


@dataclass(frozen=True)
class Verdict:
    """Outcome of comparing one result with the reference.

    Attributes:
        ok: True when every observable is within tolerance.
        max_deviation: largest relative deviation seen (inf when an observable is missing/NaN).
        reason: which observable failed and by how much, or None.
    """

    ok: bool
    max_deviation: float
    reason: str | None = None


def relative_deviation(value: float, reference: float) -> float:
    """``|value - reference| / |reference|``; 0 when both are 0, inf for NaN or a zero reference."""
    if math.isnan(value) or math.isnan(reference):
        return math.inf
    if value == reference:
        return 0.0
    if reference == 0:
        return math.inf
    return abs(value - reference) / abs(reference)


def compare_observables(candidate: Mapping[str, float], reference: Mapping[str, float],
                        tolerance: float = DEFAULT_TOLERANCE) -> Verdict:
    """Compare every reference observable; the worst one decides."""
    worst, worst_name = 0.0, None
    for name, ref_value in sorted(reference.items()):
        if name not in candidate:
            return Verdict(False, math.inf, f"observable {name!r} missing")
        deviation = relative_deviation(candidate[name], ref_value)
        if deviation > worst:
            worst, worst_name = deviation, name
    if worst > tolerance:
        assert worst_name is not None
        return Verdict(False, worst, (
            f"{worst_name} = {candidate[worst_name]:.6g} differs from the float64 reference "
            f"{reference[worst_name]:.6g} by {_percent(worst)} (tolerance {_percent(tolerance)})"))
    return Verdict(True, worst)


def _percent(x: float) -> str:
    return "inf %" if math.isinf(x) else f"{100 * x:.2f} %"
