"""Build folders that concurrent runs never share, and a count of the runs going on this node.

A cpp_standalone project folder holds generated code, objects, the binary and its results.
Two processes using one folder at once rebuild each other's code and read each other's results
(three runs of one sweep script started together: one printed another's answer with exit 0).
So every folder is a *slot* held under an exclusive ``flock`` for as long as the process uses
it: ``<base>/slot-<k>``, locked through ``<base>/slot-<k>.lock``. A run takes the lowest free
slot, so sequential reruns stay warm (slot 0, ``make`` re-links nothing) and concurrent ones
get slots of their own (cold the first time, warm afterwards).

``flock`` is not reliable on NFS between machines, so the node's name is part of every path
(:func:`node_dir`): nodes that share a home directory, even identical ones with one
fingerprint, never share a folder; within one node the kernel's ``flock`` is exact.

The same directory keeps a register of the runs going on this node (one locked file per
process, holding the cores it uses), so that a run started next to others chooses threads for
the cores that are free (:func:`register_run`). A file whose lock nobody holds belongs to a
process that is gone and is removed.
"""

from __future__ import annotations

import atexit
import fcntl
import logging
import os
import platform
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

#: Overrides the node's name (containers with random host names; tests playing several nodes).
NODE_ENV_VAR = "BRIAN2_AUTOTUNE_NODE"


def node_name() -> str:
    """This machine's host name (or ``$BRIAN2_AUTOTUNE_NODE``), made safe for a folder name."""
    name = os.environ.get(NODE_ENV_VAR) or platform.node() or "localhost"
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:64]


def node_dir(cache_root: Path, fingerprint: str) -> Path:
    """Folder of this node's build artefacts: ``<cache>/<fingerprint>/<node name>``."""
    return cache_root / fingerprint / node_name()


@dataclass
class FileLock:
    """An exclusive ``flock`` on one file, held until :meth:`release` or the process ends."""

    path: Path
    fd: int | None = field(default=None, repr=False)

    def write(self, content: str) -> None:
        """Replace the locked file's text (the holder's pid and what it uses)."""
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, content.encode(), 0)

    def release(self) -> None:
        """Unlock and close (idempotent)."""
        if self.fd is not None:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            finally:
                os.close(self.fd)
                self.fd = None


def try_lock(path: Path, content: str = "") -> FileLock | None:
    """Lock ``path`` exclusively without waiting; None when another process holds it.

    ``content`` (the holder's pid and what it uses) replaces the file's text once locked.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    lock = FileLock(path, fd)
    if content:
        lock.write(content)
    return lock


def wait_lock(path: Path, timeout: float, poll: float = 0.05) -> FileLock | None:
    """Lock ``path`` exclusively, waiting for its holder up to ``timeout`` seconds; None when
    it could not be had (held all that time, or the file cannot be made)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            lock = try_lock(path)
        except OSError as e:
            logger.debug("cannot lock %s: %s", path, e)
            return None
        if lock is not None or time.monotonic() >= deadline:
            return lock
        time.sleep(poll)


@dataclass
class BuildSlot:
    """A build folder this process holds exclusively (see the module docstring)."""

    path: Path
    index: int
    lock: FileLock

    def release(self) -> None:
        """Let another process use the folder."""
        self.lock.release()


def acquire_build_slot(base: Path, hold_until_exit: bool = False) -> BuildSlot:
    """The lowest free slot under ``base`` (a configuration's folder), locked for this process.

    Never waits: when every existing slot is in use, a new one is made (a cold build, but never
    a shared folder). ``hold_until_exit`` keeps the lock until the process ends (what a user's
    run needs: Brian2 uses the folder until then).
    """
    base.mkdir(parents=True, exist_ok=True)
    index = 0
    while True:
        lock = try_lock(base / f"slot-{index}.lock", f"{os.getpid()}\n")
        if lock is not None:
            break
        index += 1
    slot = BuildSlot(base / f"slot-{index}", index, lock)
    slot.path.mkdir(exist_ok=True)
    if hold_until_exit:
        atexit.register(slot.release)  # also keeps the lock object alive
    if index:
        logger.debug("build slots 0..%d of %s are in use: using slot %d", index - 1, base,
                     index)
    return slot


@dataclass(frozen=True)
class Neighbours:
    """Other runs going on this node, as their register files say."""

    runs: int
    cores: int


@dataclass
class RunRegistration:
    """This process's entry in the node's register of runs."""

    lock: FileLock
    neighbours: Neighbours

    def update(self, cores: int) -> None:
        """Record how many cores this run will use."""
        self.lock.write(f"{os.getpid()} {cores}\n")


def register_run(node: Path, cores: int = 1) -> RunRegistration:
    """Add this process to the node's register (until it exits) and count the others.

    Every run counts as at least one core until it says more (:meth:`RunRegistration.update`),
    so runs started at the same moment each see the others.
    """
    folder = node / "active"
    folder.mkdir(parents=True, exist_ok=True)
    own = folder / f"{os.getpid()}.run"
    # Locked under another name, then renamed: a file that others can see is always locked,
    # so nobody takes it for a dead run's file and removes it.
    pending = folder / f"{os.getpid()}.pending"
    lock = try_lock(pending, f"{os.getpid()} {cores}\n")
    if lock is None:
        raise OSError(f"cannot lock {pending}")
    os.replace(pending, own)
    lock.path = own
    atexit.register(lock.release)
    atexit.register(_unlink, own)
    return RunRegistration(lock, count_neighbours(folder, own))


def count_neighbours(folder: Path, own: Path | None = None) -> Neighbours:
    """Runs registered in ``folder`` other than ``own``, and the cores they said they use."""
    runs = cores = 0
    for path in folder.glob("*.run"):
        if path == own:
            continue
        stale = try_lock(path)
        if stale is not None:  # nobody holds it: its process is gone
            stale.release()
            _unlink(path)
            continue
        runs += 1
        cores += _cores_in(path)
    return Neighbours(runs, cores)


def _cores_in(path: Path) -> int:
    try:
        fields = path.read_text().split()
        return max(1, int(fields[1]))
    except (OSError, IndexError, ValueError):
        return 1


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def oversubscribed(threads: int, usable_cpus: int, neighbour_cores: int,
                   busy_elsewhere: int) -> bool:
    """Whether ``threads`` OpenMP threads would share cores with other work: more threads than
    the cores left free by the runs registered on this node, or by the other tasks keeping
    CPUs busy now (``busy_elsewhere``, see :func:`cpus_busy_elsewhere`).

    Only then do threads sleep while they wait (``OMP_WAIT_POLICY=PASSIVE``): on the 2-CPU VM
    a passive wait made CUBA 4000's loop 3.3x and STDP 1000's 5.4x slower on a quiet host, and
    CUBA's 0.58x (faster) with the other core busy (``benchmarks/wait_policy.py``).
    """
    if threads <= 1:
        return False
    busy = max(neighbour_cores, busy_elsewhere)
    return threads > max(1, usable_cpus - busy)


#: Where Linux counts the tasks runnable now (4th field of ``/proc/loadavg``: ``running/all``).
LOADAVG = Path("/proc/loadavg")


def cpus_busy_elsewhere(samples: int = 5, gap: float = 0.002) -> int:
    """How many CPUs other tasks keep busy now: the tasks runnable on this host less this one,
    at the quietest of ``samples`` looks ``gap`` seconds apart (a task that wakes for a moment
    is no job; one that keeps a core busy is runnable at every look). About 10 ms.

    Not the 1-minute load average: it still counts the runs that ended in the last minute, so
    a user's second run of a script, started just after the first, saw a core busy, made its 2
    threads wait passively, and lost their gain (Wang & Buzsaki 1000: loop 16.8 s with 2
    threads, as without OpenMP, against 10.2-11.7 s for the same binary run spinning). The
    load average is the answer only where the platform has no count of runnable tasks.
    """
    quietest: int | None = None
    for look in range(samples):
        if look:
            time.sleep(gap)
        running = _runnable_tasks()
        if running is None:
            return _rounded_load_average()
        quietest = running if quietest is None else min(quietest, running)
    return max(0, (quietest or 1) - 1)


def _runnable_tasks() -> int | None:
    """Tasks runnable on this host now, this one included (None where unknown)."""
    try:
        fields = LOADAVG.read_text().split()
        return int(fields[3].partition("/")[0])
    except (OSError, IndexError, ValueError):
        return None


def _rounded_load_average() -> int:
    try:
        return int(os.getloadavg()[0] + 0.5)
    except OSError:  # not available on this platform
        return 0


#: Where Linux counts each CPU's time by kind, in clock ticks since boot.
PROC_STAT = Path("/proc/stat")
#: Fields of a ``cpuN`` line of :data:`PROC_STAT` that are work (user, nice, system, irq,
#: softirq), not idle, I/O wait or time the hypervisor stole.
_BUSY_FIELDS = (0, 1, 2, 5, 6)


@dataclass(frozen=True)
class CpuSample:
    """CPU seconds spent so far on the CPUs this process may use: by everything, and by this
    process with its finished children (see :func:`sample_cpus`)."""

    wall: float
    busy: float
    own: float
    cpus: int


def sample_cpus() -> CpuSample | None:
    """What the CPUs this process may run on have done so far, and how much of it was this
    process's (None where the platform has no per-CPU count). Well under a millisecond."""
    try:
        allowed = os.sched_getaffinity(0)
        ticks = os.sysconf("SC_CLK_TCK")
        lines = PROC_STAT.read_text().splitlines()
    except (AttributeError, OSError, ValueError):
        return None
    busy = 0
    for line in lines:
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or not name[3:].isdigit() or int(name[3:]) not in allowed:
            continue
        fields = rest.split()
        busy += sum(int(fields[i]) for i in _BUSY_FIELDS if i < len(fields))
    return CpuSample(time.monotonic(), busy / ticks, own_cpu_seconds(), len(allowed))


def own_cpu_seconds() -> float:
    """CPU seconds spent so far by this process and its finished children."""
    own = os.times()
    return own.user + own.system + own.children_user + own.children_system


#: Runs shorter than this (wall seconds) are too short for a CPU count in clock ticks to tell
#: whether they shared the CPUs.
MIN_SAMPLED_WALL = 1.0


def cpus_left_free(since: CpuSample | None) -> float | None:
    """How many of this process's CPUs other work left free, on average, since ``since``: its
    CPUs less what other processes kept busy. None when unknown or too short to tell.

    Three runs of one sweep started together on 2 CPUs each have about 0.7 of a CPU left: each
    of their times is then that of a run sharing its CPU, not the configuration's.
    """
    now = sample_cpus()
    if since is None or now is None or now.wall - since.wall < MIN_SAMPLED_WALL:
        return None
    others = (now.busy - since.busy) - (now.own - since.own)
    return max(0.0, since.cpus - max(0.0, others) / (now.wall - since.wall))
