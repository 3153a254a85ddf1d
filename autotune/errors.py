"""The exceptions brian2-autotune raises.

Every error the library raises on purpose derives from :class:`AutotuneError`, so a caller (the CLI
above all) can catch one class and turn it into a single clear line. Subclasses say which part of
the data path refused: bad input is distinguished from a failure, because the CLI maps them to
different exit codes (2 and 1).
"""

from __future__ import annotations


class AutotuneError(Exception):
    """Base class of every error raised by brian2-autotune on purpose."""

    #: Exit code the CLI uses for this error: 1 = failure, 2 = bad input.
    exit_code: int = 1


class BadInput(AutotuneError):
    """The user gave a value that cannot work (unknown name, out-of-range number, ...)."""

    exit_code = 2


class ConfigError(BadInput):
    """A run configuration (device, threads, precision, flags) is invalid on this host."""


class WorkloadError(BadInput):
    """A workload cannot be found, loaded, or does not follow the workload contract."""


class ScriptError(BadInput):
    """A user script given to ``brian2-autotune run`` cannot be read or parsed."""


class CannotServe(AutotuneError):
    """What was applied cannot run the script, as found by its first ``run()`` at the latest
    (under cpp_standalone, a state read before the run; under numpy, GSL integration): nothing
    was simulated and nothing it printed was shown, so it can run again without it.

    Attributes:
        ruled_out: what cannot serve it: ``"cpp_standalone"`` or ``"numpy"``.
        reason: what in the script it cannot serve.
    """

    def __init__(self, ruled_out: str, reason: str, advice: str = "") -> None:
        super().__init__(f"{reason}, which {ruled_out} cannot serve"
                         + (f"; {advice}" if advice else ""))
        self.ruled_out = ruled_out
        self.reason = reason


class StoreError(AutotuneError):
    """The store (database) cannot be opened, read or written."""


class StoreUnavailable(StoreError, BadInput):
    """The store location is unusable: corrupt file, not a database, unwritable, missing folder."""

    exit_code = 2


class ProfileError(BadInput):
    """A profile document (exported or imported) is malformed, hostile or of an unknown version."""


class CalibrationError(AutotuneError):
    """A calibration could not produce any usable profile (e.g. every trial failed)."""
