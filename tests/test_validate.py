"""Validation of observables against the float64 reference."""

from __future__ import annotations

import math

from autotune.validate import compare_observables, relative_deviation


def test_within_tolerance_is_valid() -> None:
    verdict = compare_observables({"rate": 10.3, "n": 100}, {"rate": 10.0, "n": 100}, 0.05)
    assert verdict.ok and math.isclose(verdict.max_deviation, 0.03)


def test_a_wrong_result_is_rejected_with_the_observable_named() -> None:
    verdict = compare_observables({"rate": 12.0}, {"rate": 10.0}, 0.05)
    assert not verdict.ok
    assert verdict.reason is not None and "rate" in verdict.reason and "20.00 %" in verdict.reason


def test_missing_and_nan_observables_are_invalid() -> None:
    assert not compare_observables({}, {"rate": 1.0}).ok
    assert not compare_observables({"rate": float("nan")}, {"rate": 1.0}).ok


def test_relative_deviation_edge_cases() -> None:
    assert relative_deviation(0.0, 0.0) == 0.0
    assert math.isinf(relative_deviation(1.0, 0.0))
    assert relative_deviation(-1.1, -1.0) == 0.10000000000000009
