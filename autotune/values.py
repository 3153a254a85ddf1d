"""Numbers as users give them: positive numbers, and run lengths written ``10*second``,
``500*ms``, ``10.0`` or ``"500 ms"``.

The one home of these checks, for the CLI's arguments, the settings objects and stored profiles
alike. Cheap to import (no Brian2): a Brian2 quantity is recognised by its ``dim`` attribute.
"""

from __future__ import annotations

import math
import re
from typing import Any

from autotune.errors import ConfigError

#: Unit names a command-line duration may carry, in seconds.
_UNITS = {"": 1.0, "s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0, "ms": 1e-3,
          "msecond": 1e-3, "us": 1e-6, "usecond": 1e-6, "min": 60.0,
          "minute": 60.0, "minutes": 60.0, "h": 3600.0, "hour": 3600.0, "hours": 3600.0}
_TEXT = re.compile(r"^\s*([0-9.eE+-]+)\s*\*?\s*([A-Za-z]*)\s*$")


def is_positive_number(value: Any) -> bool:
    """A finite number > 0 (a bool is no number here)."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and value > 0)


def is_non_negative_number(value: Any) -> bool:
    """A finite number >= 0 (a bool is no number here)."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and value >= 0)


def as_seconds(duration: Any, what: str = "duration") -> float:
    """A positive, finite number of seconds from a number, a Brian2 time or a text like
    ``"500 ms"``/``"10*second"``.

    Raises:
        ConfigError: not a time, not positive, or not finite.
    """
    if hasattr(duration, "dim"):  # a Brian2 Quantity
        seconds = _quantity_seconds(duration, what)
    elif isinstance(duration, str):
        seconds = _text_seconds(duration, what)
    elif isinstance(duration, bool) or not isinstance(duration, (int, float)):
        raise ConfigError(f"{what} must be a time such as 10*second or a number of seconds, "
                          f"got {duration!r}")
    else:
        seconds = float(duration)
    if not is_positive_number(seconds):
        raise ConfigError(f"{what} must be positive and finite, got {duration!r}")
    return seconds


def _quantity_seconds(duration: Any, what: str) -> float:
    from brian2 import second
    from brian2.units.fundamentalunits import have_same_dimensions

    if not have_same_dimensions(duration, second):
        raise ConfigError(f"{what} must be a time (e.g. 10*second), got {duration!r}")
    try:
        return float(duration / second)
    except TypeError as e:
        raise ConfigError(f"{what} must be one time, got {duration!r}") from e


def _text_seconds(text: str, what: str) -> float:
    match = _TEXT.match(text)
    if not match or match.group(2) not in _UNITS:
        raise ConfigError(f"{what} {text!r} is not a time: write e.g. 10, 10s, 500ms or "
                          "2*minute")
    try:
        return float(match.group(1)) * _UNITS[match.group(2)]
    except ValueError as e:
        raise ConfigError(f"{what} {text!r} is not a time: write e.g. 10, 10s or 500ms") from e
