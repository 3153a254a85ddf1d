"""What this machine is and what it lets a simulation use.

A host is described by small ``collect_*`` functions (after pyperf's ``_collect_metadata``) whose
results go into a :class:`HostFingerprint`. Only the fields in :data:`CHECKED_COMPONENTS` enter the
hash: they are the ones that change which configuration is fastest or whether a stored build still
works (CPU, usable cores and memory, compiler, Python/Brian2/numpy versions). Other facts (kernel,
hostname, CPU governor) are kept as information only.

Usable CPUs honour the affinity mask and the cgroup CPU quota (v2 ``cpu.max`` or v1
``cpu.cfs_quota_us``); usable memory honours the cgroup limit (``memory.max`` or
``memory.limit_in_bytes``). The cgroup parsers take the filesystem root as an argument so that tests
can point them at a fake tree.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autotune.buildslots import CpuSample, sample_cpus

GIB = 1024**3
#: The seed's rule: never give a standalone OpenMP thread less than this much memory.
MEMORY_PER_THREAD = 2 * GIB
#: Components whose change makes a stored profile stale.
CHECKED_COMPONENTS = (
    "cpu_model",
    "logical_cores",
    "physical_cores",
    "usable_cpus",
    "total_memory",
    "memory_limit",
    "os",
    "arch",
    "compiler",
    "python",
    "brian2",
    "numpy",
)
_UNLIMITED_V1 = 2**62  # cgroup v1 writes a huge number (page-rounded 2**63-1) for "no limit"


@dataclass(frozen=True)
class HostFingerprint:
    """A machine's identity: the checked components, their hash, and extra information.

    Attributes:
        components: the fields of :data:`CHECKED_COMPONENTS` with their values.
        info: facts recorded but not hashed (kernel, hostname, governor, ...).
    """

    components: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def fingerprint(self) -> str:
        """Stable hex digest of the checked components (16 hex digits)."""
        return fingerprint_of(self.components)

    @property
    def usable_cpus(self) -> int:
        """CPUs this process may use (affinity and cgroup quota)."""
        return int(self.components["usable_cpus"])

    @property
    def usable_memory(self) -> int:
        """Bytes of memory this process may use (physical memory or the cgroup limit)."""
        limit = self.components.get("memory_limit")
        total = int(self.components["total_memory"])
        return min(total, int(limit)) if limit else total

    @property
    def max_threads(self) -> int:
        """Most OpenMP threads worth trying: usable CPUs, capped at one per 2 GiB of memory."""
        return memory_aware_threads(self.usable_cpus, self.usable_memory)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, as ``fingerprint --json`` prints it."""
        return {"fingerprint": self.fingerprint, "components": dict(self.components),
                "info": dict(self.info)}


def fingerprint_of(components: dict[str, Any]) -> str:
    """Hash the checked components in a key-order-independent way."""
    checked = {key: components.get(key) for key in CHECKED_COMPONENTS}
    blob = json.dumps(checked, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def changed_components(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Names of checked components whose value differs between two fingerprints."""
    return [key for key in CHECKED_COMPONENTS if old.get(key) != new.get(key)]


def cython_available(host: HostFingerprint) -> bool:
    """Whether the Cython target can work here: Cython importable and a C++ compiler found."""
    import importlib.util

    return host.components.get("compiler", "none") != "none" and bool(
        importlib.util.find_spec("Cython"))


def memory_aware_threads(usable_cpus: int, usable_memory: int) -> int:
    """The seed's thread rule: all usable CPUs, but at least 2 GiB of memory per thread."""
    return max(1, min(usable_cpus, usable_memory // MEMORY_PER_THREAD))


# --- cgroup parsing -------------------------------------------------------------------------


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _own_cgroup_paths(root: Path) -> dict[str, str]:
    """Map controller (or ``""`` for cgroup v2) to this process's cgroup path."""
    text = _read(root / "proc/self/cgroup") or ""
    paths: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        for controller in parts[1].split(",") if parts[1] else [""]:
            paths[controller] = parts[2]
    return paths


def _candidate_dirs(mount: Path, own_path: str) -> list[Path]:
    """Directories to read limits from: this process's cgroup and its ancestors, then the mount.

    Inside a container the mount already is the process's own cgroup, so the mount root is
    always a candidate too.
    """
    dirs: list[Path] = []
    relative = Path(own_path.lstrip("/")) if own_path else Path()
    while True:
        candidate = mount / relative
        if candidate.is_dir() and candidate not in dirs:
            dirs.append(candidate)
        if relative == Path() or str(relative) == ".":
            break
        relative = relative.parent
    if mount.is_dir() and mount not in dirs:
        dirs.append(mount)
    return dirs


def parse_cpu_max(text: str) -> float | None:
    """Parse cgroup v2 ``cpu.max`` (``"max 100000"`` or ``"150000 100000"``) into CPUs."""
    parts = text.split()
    if not parts or parts[0] == "max":
        return None
    period = int(parts[1]) if len(parts) > 1 else 100000
    quota = int(parts[0])
    return quota / period if quota > 0 and period > 0 else None


def parse_memory_max(text: str) -> int | None:
    """Parse cgroup ``memory.max`` / ``memory.limit_in_bytes`` into bytes (None = unlimited)."""
    text = text.strip()
    if not text or text == "max":
        return None
    value = int(text)
    return None if value <= 0 or value >= _UNLIMITED_V1 else value


def collect_cgroup_cpu_limit(root: Path = Path("/")) -> float | None:
    """CPU quota of this process's cgroup in CPUs (tightest along the path), or None."""
    paths = _own_cgroup_paths(root)
    limits: list[float] = []
    v2 = root / "sys/fs/cgroup"
    if (v2 / "cgroup.controllers").exists():
        for d in _candidate_dirs(v2, paths.get("", "/")):
            text = _read(d / "cpu.max")
            if text and (cpus := parse_cpu_max(text)) is not None:
                limits.append(cpus)
    v1 = root / "sys/fs/cgroup/cpu"
    if not v1.is_dir():
        v1 = root / "sys/fs/cgroup/cpu,cpuacct"
    for d in _candidate_dirs(v1, paths.get("cpu", "/")) if v1.is_dir() else []:
        quota, period = _read(d / "cpu.cfs_quota_us"), _read(d / "cpu.cfs_period_us")
        if quota and period and int(quota) > 0 and int(period) > 0:
            limits.append(int(quota) / int(period))
    return min(limits) if limits else None


def collect_cgroup_memory_limit(root: Path = Path("/")) -> int | None:
    """Memory limit of this process's cgroup in bytes (tightest along the path), or None."""
    paths = _own_cgroup_paths(root)
    limits: list[int] = []
    v2 = root / "sys/fs/cgroup"
    if (v2 / "cgroup.controllers").exists():
        for d in _candidate_dirs(v2, paths.get("", "/")):
            text = _read(d / "memory.max")
            if text and (limit := parse_memory_max(text)) is not None:
                limits.append(limit)
    v1 = root / "sys/fs/cgroup/memory"
    for d in _candidate_dirs(v1, paths.get("memory", "/")) if v1.is_dir() else []:
        text = _read(d / "memory.limit_in_bytes")
        if text and (limit := parse_memory_max(text)) is not None:
            limits.append(limit)
    return min(limits) if limits else None


# --- collectors -----------------------------------------------------------------------------


def collect_affinity_cpus() -> int:
    """CPUs in this process's affinity mask (all CPUs where affinity is unsupported)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def usable_cpus(affinity: int, cgroup_cpus: float | None) -> int:
    """CPUs a process can really use: the affinity mask, cut down to the cgroup quota.

    A fractional quota is rounded down (1.5 CPUs cannot keep two threads busy), but never
    below one.
    """
    if cgroup_cpus is None:
        return max(1, affinity)
    return max(1, min(affinity, math.floor(cgroup_cpus)))


def collect_cpu_model(root: Path = Path("/")) -> str:
    """The CPU's model name from /proc/cpuinfo, or what platform knows."""
    text = _read(root / "proc/cpuinfo") or ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "cpu model", "Hardware"):
            return value.strip()
    return platform.processor() or platform.machine()


def collect_compiler(cache_file: Path | None = None) -> str:
    """First line of the C++ compiler's ``--version`` (the compiler Brian2 would call).

    With ``cache_file`` the answer is kept there, keyed by the compiler binary's resolved path,
    size and modification time, so that ``apply`` does not start the compiler before every run
    (~5-10 ms); an upgraded compiler changes the key.
    """
    compiler = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    if not compiler:
        return "none"
    key = _compiler_key(compiler)
    cached = _read_compiler_cache(cache_file, key) if cache_file and key else None
    if cached is not None:
        return cached
    try:
        out = subprocess.run(
            [compiler, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "none"
    version = out.splitlines()[0].strip() if out else "none"
    if cache_file and key and version != "none":
        _write_compiler_cache(cache_file, key, version)
    return version


def _compiler_key(compiler: str) -> str | None:
    try:
        real = os.path.realpath(shutil.which(compiler) or compiler)
        stat = os.stat(real)
    except OSError:
        return None
    return f"{real}:{stat.st_size}:{stat.st_mtime_ns}"


def _read_compiler_cache(cache_file: Path, key: str) -> str | None:
    try:
        stored_key, version = cache_file.read_text().split("\n")[:2]
    except (OSError, ValueError):
        return None
    return version if stored_key == key and version else None


def _write_compiler_cache(cache_file: Path, key: str, version: str) -> None:
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        partial = cache_file.with_name(f"{cache_file.name}.{os.getpid()}")
        partial.write_text(f"{key}\n{version}\n")
        os.replace(partial, cache_file)
    except OSError:
        pass  # a cache we cannot write only costs the next run a compiler call


def collect_package_version(name: str) -> str:
    """Installed version of a distribution, or ``"missing"``.

    An already imported module answers from its ``__version__`` (importlib.metadata alone costs
    ~20 ms, which ``apply`` cannot afford).
    """
    module = sys.modules.get(name)
    if module is not None and isinstance(getattr(module, "__version__", None), str):
        return str(module.__version__)
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "missing"


def collect_governor(root: Path = Path("/")) -> str | None:
    """CPU frequency governor of CPU 0, where the kernel exposes it."""
    return _read(root / "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")


def collect_turbo(root: Path = Path("/")) -> bool | None:
    """Whether CPU turbo/boost is enabled, where the kernel exposes it (None: unknown)."""
    no_turbo = _read(root / "sys/devices/system/cpu/intel_pstate/no_turbo")
    if no_turbo in ("0", "1"):
        return no_turbo == "0"
    boost = _read(root / "sys/devices/system/cpu/cpufreq/boost")
    if boost in ("0", "1"):
        return boost == "1"
    return None


def collect_physical_cores(root: Path = Path("/")) -> int:
    """Physical cores, as psutil counts them on Linux (distinct core sibling lists), read
    directly: importing psutil costs ``apply`` ~50-90 ms on a loaded host."""
    if sys.platform.startswith("linux"):
        cpus = root / "sys/devices/system/cpu"
        try:
            names = [n for n in os.listdir(cpus) if n.startswith("cpu") and n[3:].isdigit()]
        except OSError:
            names = []
        for listing in ("core_cpus_list", "thread_siblings_list"):
            siblings = {_read(cpus / n / "topology" / listing) for n in names} - {None}
            if siblings:
                return len(siblings)
    import psutil

    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


def collect_total_memory(root: Path = Path("/")) -> int:
    """Total physical memory in bytes (``MemTotal``, as psutil reports it on Linux)."""
    for line in (_read(root / "proc/meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    import psutil

    return int(psutil.virtual_memory().total)


def collect_host(compiler_cache: Path | None = None) -> HostFingerprint:
    """Collect this machine's fingerprint (a few milliseconds: one compiler call, none when
    ``compiler_cache`` already knows the compiler, see :func:`collect_compiler`)."""
    affinity = collect_affinity_cpus()
    cgroup_cpus = collect_cgroup_cpu_limit()
    components: dict[str, Any] = {
        "cpu_model": collect_cpu_model(),
        "logical_cores": os.cpu_count() or 1,
        "physical_cores": collect_physical_cores(),
        "usable_cpus": usable_cpus(affinity, cgroup_cpus),
        "total_memory": collect_total_memory(),
        "memory_limit": collect_cgroup_memory_limit(),
        "os": platform.system(),
        "arch": platform.machine(),
        "compiler": collect_compiler(compiler_cache),
        "python": platform.python_version(),
        "brian2": collect_package_version("brian2"),
        "numpy": collect_package_version("numpy"),
    }
    info = {
        "hostname": platform.node(),
        "kernel": platform.release(),
        "affinity_cpus": affinity,
        "cgroup_cpus": cgroup_cpus,
        "governor": collect_governor(),
        "turbo": collect_turbo(),
    }
    return HostFingerprint(components, info)


def collect_load(sample_seconds: float = 0.3) -> dict[str, Any]:
    """How busy the machine is now: load averages and other processes' CPU use.

    ``busy`` is True when other processes used more than a quarter of the usable CPUs (and at
    least half a CPU) over a short sample (:func:`other_cpus_since`); the load average is
    recorded as information only, since it still counts our own earlier trials.
    """
    try:
        load1, load5, _ = os.getloadavg()
    except OSError:
        load1 = load5 = 0.0
    before = other_cpu_snapshot()
    time.sleep(sample_seconds)
    busy_cpus = other_cpus_since(before)
    cpus = usable_cpus(collect_affinity_cpus(), collect_cgroup_cpu_limit())
    return {
        "load1": round(load1, 2),
        "load5": round(load5, 2),
        "other_cpu": round(busy_cpus, 2),
        "usable_cpus": cpus,
        "busy": is_busy(busy_cpus, cpus),
        "governor": collect_governor(),
        "turbo": collect_turbo(),
    }


def is_busy(other_cpus: float, cpus: int) -> bool:
    """Whether other processes' average use of ``other_cpus`` CPUs makes a host of ``cpus``
    usable CPUs busy: more than a quarter of them, and at least half a CPU."""
    return other_cpus > max(0.5, cpus / 4)


@dataclass(frozen=True)
class CpuSnapshot:
    """Every other process's CPU seconds so far (user and system), by pid with its start time
    (a pid reused by a new process is not the same process), and when they were read; with
    the CPUs' own count of their work so far (:func:`~autotune.buildslots.sample_cpus`:
    processes that start and end in between are in it, and this process's ended children,
    its trials, are told apart)."""

    taken: float
    wall: float
    seconds: dict[int, tuple[float, float]]
    cpus: CpuSample | None = None


def other_cpu_snapshot() -> CpuSnapshot:
    """The CPU time used so far by every process but this one (taken between trials, when
    this one has no trial running)."""
    import psutil

    seconds = {}
    for proc in psutil.process_iter(["pid", "create_time", "cpu_times"]):
        info = proc.info
        times = info.get("cpu_times")
        if info["pid"] == os.getpid() or times is None or info.get("create_time") is None:
            continue
        seconds[info["pid"]] = (float(info["create_time"]), times.user + times.system)
    return CpuSnapshot(time.monotonic(), time.time(), seconds, sample_cpus())


def other_cpus_since(before: CpuSnapshot) -> float:
    """How many CPUs, on average, processes other than this one used since ``before``, the
    trial run in between excluded (it has ended, and its CPU time is this process's
    children's): what the trial had to share the machine with. The larger of two counts: the
    busy time of the CPUs this process may use less this process's and its children's (as a
    run's :func:`~autotune.buildslots.cpus_left_free` counts it), which sees processes that started
    and ended in between (the dry pass of a short test run beside a calibration made CUBA
    1000's 2-thread loop 137 times its single-thread one and escaped the other count), and
    the other processes' own, where the host's count is not kept."""
    return others_between(before, other_cpu_snapshot())


def others_between(before: CpuSnapshot, after: CpuSnapshot) -> float:
    """:func:`other_cpus_since` between two snapshots."""
    by_process = 0.0
    for pid, (created, seconds) in after.seconds.items():
        earlier = before.seconds.get(pid)
        if earlier and earlier[0] == created:
            by_process += seconds - earlier[1]
        elif created >= before.wall - 0.1:  # started since (an older one missed is not known)
            by_process += seconds
    by_host = 0.0
    if before.cpus is not None and after.cpus is not None:
        by_host = ((after.cpus.busy - before.cpus.busy)
                   - (after.cpus.own - before.cpus.own))
    return max(by_process, by_host, 0.0) / max(after.taken - before.taken, 1e-3)
