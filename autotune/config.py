"""Run configurations: the knobs the tuner turns, each validated.

A :class:`RunConfig` is one point of the search space: which Brian2 device, which code-generation
target, how many OpenMP threads, which floating-point precision and which compiler-flag preset.
It is frozen and crosses module boundaries as plain data; ``to_dict``/``from_dict`` round-trip it
through the store and through exported profiles, and ``from_dict`` refuses anything it does not
know (unknown keys, out-of-range numbers, flags outside the allow-list).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from autotune.errors import ConfigError

DEVICES = ("runtime", "cpp_standalone")
RUNTIME_TARGETS = ("numpy", "cython")
PRECISIONS = ("float64", "float32")
#: Hard upper bound on threads whatever the host says; protects imported profiles.
MAX_THREADS = 1024

#: Compiler-flag presets. ``default`` leaves Brian2's own flags untouched
#: (``-w -O3 -ffast-math -fno-finite-math-only -march=native -std=c++11`` on x86/ARM).
FLAG_PRESETS: dict[str, tuple[str, ...] | None] = {
    "default": None,
    "O2": ("-w", "-O2", "-march=native", "-std=c++11"),
    "O3-unroll": (
        "-w",
        "-O3",
        "-ffast-math",
        "-fno-finite-math-only",
        "-march=native",
        "-funroll-loops",
        "-std=c++11",
    ),
}

# Only these compiler flags may ever be applied; anything else (plugins, -B paths, wrappers,
# response files, shell syntax) is refused, because flags can come from imported files.
_ALLOWED_FLAG_PATTERNS = (
    r"-w",
    r"-O[0-3s]",
    r"-Ofast",
    r"-ffast-math",
    r"-fno-finite-math-only",
    r"-funroll-loops",
    r"-fno-math-errno",
    r"-march=[A-Za-z0-9_.\-]{1,40}",
    r"-mtune=[A-Za-z0-9_.\-]{1,40}",
    r"-std=c\+\+(11|14|17|20)",
    r"-g",
)
_ALLOWED_FLAG_RE = re.compile("^(?:" + "|".join(_ALLOWED_FLAG_PATTERNS) + ")$")


def check_compiler_flags(flags: object) -> tuple[str, ...]:
    """Return ``flags`` as a tuple if every flag is on the allow-list.

    Raises:
        ConfigError: if ``flags`` is not a list of strings or any flag is not allowed.
    """
    if not isinstance(flags, (list, tuple)) or not all(isinstance(f, str) for f in flags):
        raise ConfigError(f"compiler flags must be a list of strings, got {flags!r}")
    for flag in flags:
        if not _ALLOWED_FLAG_RE.match(flag):
            raise ConfigError(
                f"compiler flag {flag!r} is not on the allow-list; allowed: "
                + ", ".join(p.replace("\\", "") for p in _ALLOWED_FLAG_PATTERNS)
            )
    return tuple(flags)


for _preset in FLAG_PRESETS.values():
    if _preset is not None:
        check_compiler_flags(_preset)


@dataclass(frozen=True, order=True)
class RunConfig:
    """One way of running a Brian2 model.

    Attributes:
        device: ``"runtime"`` or ``"cpp_standalone"``.
        target: code-generation target: ``"numpy"``/``"cython"`` for runtime, ``"cpp"`` for
            standalone.
        threads: OpenMP threads for standalone (0 = OpenMP off); always 0 for runtime.
        precision: ``"float64"`` or ``"float32"`` (Brian2's ``core.default_float_dtype``).
        flags: name of a compiler-flag preset in :data:`FLAG_PRESETS`; ``"default"`` for numpy.
        pgo: profile-guided build (cpp_standalone only; :mod:`autotune.pgo`): an instrumented
            first run takes a profile, later runs build with it.
    """

    device: str
    target: str
    threads: int = 0
    precision: str = "float64"
    flags: str = "default"
    pgo: bool = False

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ConfigError(
                f"unknown device {self.device!r}; choose one of: {', '.join(DEVICES)}"
            )
        if self.device == "runtime" and self.target not in RUNTIME_TARGETS:
            raise ConfigError(
                f"unknown runtime target {self.target!r}; choose one of: "
                + ", ".join(RUNTIME_TARGETS)
            )
        if self.device == "cpp_standalone" and self.target != "cpp":
            raise ConfigError(f"cpp_standalone uses target 'cpp', not {self.target!r}")
        if isinstance(self.threads, bool) or not isinstance(self.threads, int):
            raise ConfigError(f"threads must be an integer, got {self.threads!r}")
        if not 0 <= self.threads <= MAX_THREADS:
            raise ConfigError(f"threads must be between 0 and {MAX_THREADS}, got {self.threads}")
        if self.device == "runtime" and self.threads != 0:
            raise ConfigError("threads apply to cpp_standalone only; use 0 with runtime")
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"unknown precision {self.precision!r}; choose one of: {', '.join(PRECISIONS)}"
            )
        if self.flags not in FLAG_PRESETS:
            raise ConfigError(
                f"unknown compiler-flag preset {self.flags!r}; choose one of: "
                + ", ".join(FLAG_PRESETS)
            )
        if self.target == "numpy" and self.flags != "default":
            raise ConfigError("compiler-flag presets apply to compiled targets, not numpy")
        if not isinstance(self.pgo, bool):
            raise ConfigError(f"pgo must be true or false, got {self.pgo!r}")
        if self.pgo and self.device != "cpp_standalone":
            raise ConfigError("profile-guided builds (pgo) apply to cpp_standalone only")

    @property
    def compiled(self) -> bool:
        """True when this configuration compiles code (Cython or C++)."""
        return self.target != "numpy"

    @property
    def set_up_family(self) -> tuple[str, str]:
        """Configurations that pay the same outside their simulation loop (interpreter, import,
        set-up, code generation, a warm build, the binary's start): one device and target.
        Threads, precision and compiler flags change the loop."""
        return self.device, self.target

    @property
    def compiler_flags(self) -> tuple[str, ...] | None:
        """The compiler flags this configuration sets, or None for Brian2's defaults."""
        return FLAG_PRESETS[self.flags]

    @property
    def key(self) -> str:
        """A short, stable, filesystem-safe name, e.g. ``cpp_standalone-t2-float32-O2``."""
        parts = [self.device if self.device != "runtime" else self.target]
        if self.device == "cpp_standalone":
            parts.append(f"t{self.threads}")
        parts.append(self.precision)
        if self.compiled:
            parts.append(self.flags)
        if self.pgo:
            parts.append("pgo")
        return "-".join(parts)

    def describe(self) -> str:
        """A human-readable one-liner."""
        if self.device == "runtime":
            text = f"runtime/{self.target}, {self.precision}"
        else:
            omp = f"{self.threads} OpenMP threads" if self.threads else "no OpenMP"
            text = f"cpp_standalone, {omp}, {self.precision}"
        if self.compiled:
            text += f", flags={self.flags}"
        if self.pgo:
            text += ", profile-guided"
        return text

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict; the inverse of :meth:`from_dict`. ``pgo`` appears only when
        set, so every configuration stored before it existed keeps its form (and hashes)."""
        data: dict[str, Any] = {
            "device": self.device,
            "target": self.target,
            "threads": self.threads,
            "precision": self.precision,
            "flags": self.flags,
        }
        if self.pgo:
            data["pgo"] = True
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunConfig:
        """Build and validate a configuration from a dict.

        Raises:
            ConfigError: on a non-mapping, missing or unknown keys, or invalid values.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"a run configuration must be a mapping, got {type(data).__name__}")
        known = {"device", "target", "threads", "precision", "flags", "pgo"}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown configuration keys: {', '.join(sorted(map(str, unknown)))}")
        missing = {"device", "target"} - set(data)
        if missing:
            raise ConfigError(f"configuration lacks: {', '.join(sorted(missing))}")
        return cls(**{k: data[k] for k in known if k in data})


@dataclass(frozen=True)
class Allowed:
    """What may serve a run here.

    The script decides the first three (:mod:`autotune.scriptcheck`: what standalone, Cython
    and numpy can run), the store whether float32 was checked on its model, and other runs on
    the node how many OpenMP threads are left (None: no cap).

    Attributes:
        standalone: cpp_standalone may serve it.
        cython: code may be compiled (False: pure-Python functions, numpy only).
        numpy: the numpy target may serve it.
        float32: float32 may be applied to it.
        max_threads: at most this many OpenMP threads (None: no cap).
    """

    standalone: bool = True
    cython: bool = True
    numpy: bool = True
    float32: bool = True
    max_threads: int | None = None

    def admits(self, config: RunConfig) -> bool:
        """Whether ``config`` may serve the run."""
        return ((self.standalone or config.device == "runtime")
                and (self.cython or config.target == "numpy")
                and (self.numpy or config.target != "numpy")
                and (self.max_threads is None or config.threads <= self.max_threads)
                and (self.float32 or config.precision == "float64"))


#: Nothing ruled out.
NO_LIMITS = Allowed()


def threads_in_key(key: str) -> int | None:
    """The OpenMP threads of a cpp_standalone configuration, read from its :attr:`~RunConfig.key`
    (``cpp_standalone-t2-float64-default``: 2); None for a runtime one or a key of no known
    form."""
    device, _, rest = key.partition("-")
    threads = rest.partition("-")[0]
    if device != "cpp_standalone" or not threads.startswith("t") or not threads[1:].isdigit():
        return None
    return int(threads[1:])


def brian2_default_config(cython_available: bool = True) -> RunConfig:
    """Brian2's out-of-the-box configuration: runtime, ``auto`` target, float64.

    ``auto`` means Cython when it works, else numpy.
    """
    return RunConfig("runtime", "cython" if cython_available else "numpy")


def standalone_config(threads: int, precision: str = "float64", flags: str = "default",
                      pgo: bool = False) -> RunConfig:
    """A cpp_standalone configuration with ``threads`` OpenMP threads (0 = no OpenMP)."""
    return RunConfig("cpp_standalone", "cpp", threads, precision, flags, pgo)


def all_configs(max_threads: int, cython_available: bool = True) -> list[RunConfig]:
    """Every configuration of the search space on a host allowing ``max_threads`` threads."""
    configs = [RunConfig("runtime", "numpy", 0, p) for p in PRECISIONS]
    if cython_available:
        configs += [
            RunConfig("runtime", "cython", 0, p, f) for p in PRECISIONS for f in FLAG_PRESETS
        ]
    configs += [
        standalone_config(t, p, f, pgo)
        for t in range(0, max_threads + 1)
        for p in PRECISIONS
        for f in FLAG_PRESETS
        for pgo in (False, True)
    ]
    return configs
