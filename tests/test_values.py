"""Run lengths written the way Brian2 users write them."""

from __future__ import annotations

import pytest

from autotune.errors import ConfigError
from autotune.values import as_seconds


@pytest.mark.parametrize("value, seconds", [
    (10, 10.0), (0.5, 0.5), ("10", 10.0), ("10s", 10.0), ("500 ms", 0.5), ("500*ms", 0.5),
    ("2*minute", 120.0), ("1e-3 s", 0.001),
])
def test_numbers_and_texts(value: object, seconds: float) -> None:
    assert as_seconds(value) == pytest.approx(seconds)


def test_brian2_quantities() -> None:
    from brian2 import ms, second

    assert as_seconds(10 * second) == pytest.approx(10.0)
    assert as_seconds(250 * ms) == pytest.approx(0.25)


@pytest.mark.parametrize("value, message", [
    (0, "positive"), (-1, "positive"), (float("inf"), "positive and finite"),
    ("10 parsecs", "is not a time"), ("fast", "is not a time"), (None, "must be a time"),
    (True, "must be a time"),
])
def test_bad_values_are_one_clear_error(value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        as_seconds(value)


def test_a_quantity_of_another_dimension_is_refused() -> None:
    from brian2 import mV

    with pytest.raises(ConfigError, match="must be a time"):
        as_seconds(10 * mV)
