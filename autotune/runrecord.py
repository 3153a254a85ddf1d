"""A full run made with an applied configuration: its prediction and what really happened.

Everything about a finished user run lives here: what Brian2 says the loop took (read in one
place, :func:`last_loop_seconds`, and added up over a script's runs, :func:`loop_seconds`), what
the runs simulated, the process tree's peak memory, the :class:`RunRecord`, and
writing it to the store. Nothing here imports Brian2: it reads the module the run imported.
"""

from __future__ import annotations

import logging
import os
import resource
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autotune.config import threads_in_key

if TYPE_CHECKING:  # apply imports this module
    from autotune.apply import Applied
    from autotune.buildslots import CpuSample

logger = logging.getLogger(__name__)

#: A run whose CPUs other work kept busy for more than this fraction of what it needed is
#: crowded (see :attr:`RunRecord.crowded`).
CROWDING = 0.10


@dataclass(frozen=True)
class RunRecord:
    """One real run, for checking predictions against reality.

    Attributes:
        fingerprint: host fingerprint.
        workload_signature: the profile's workload (None when no profile was used).
        profile_created_at: the profile's timestamp (identifies which profile predicted).
        config_key: the applied configuration.
        source: ``profile``, ``override`` or ``fallback``.
        script: the script's path, when run through ``brian2-autotune run``.
        simulated: simulated seconds of the run.
        predicted_total: predicted wall seconds (whole process), if a cost model knew.
        predicted_loop: predicted seconds of the simulation loop.
        actual_total: measured wall seconds since the process started, less the script's
            dry pass (paid once per script text, not by its runs: see
            :attr:`autotune.apply.Applied.dry_pass_seconds`).
        actual_build: measured seconds outside the loop in the script.
        actual_loop: measured seconds of the simulation loop.
        peak_rss: peak resident memory in bytes (process and children).
        exit_code: the script's exit status.
        created_at: ISO timestamp.
        script_digest: hash of the script's text (see :mod:`autotune.scriptcheck`): the
            runs of one script, learned from by later runs of it.
        cold: the build folder (or Cython cache) was new, so the build compiled everything.
        neurons: neurons in the model's groups.
        synapses: synapses in the model.
        pgo_phase: for a profile-guided configuration, ``generate`` when this run was the
            instrumented one that took the profile, ``use`` when it was built with it.
        free_cpus: CPUs that other work left this run, on average, of those it may use
            (:func:`autotune.buildslots.cpus_left_free`; None when unknown): a run of a
            parallel sweep shares its CPUs, and its times are not the configuration's.
        cpus: the CPUs it may use (None when unknown).
        loop_cpu_share: CPU seconds its process tree spent per wall second of its simulation
            loops (about 1 for one thread with a CPU of its own; None when unknown or too
            short to tell).
        setup_cpu_share: the same outside them, from ``apply`` to its end.
        dry_neurons: the model's neurons as the script's dry pass counted them, before the
            run (None without one): the size its prediction was made for, under which its
            runs are learned from (:func:`autotune.learned.of_size`). Unlike ``neurons``,
            counted from the last network the run ran, it is the same for every run of a
            model, however many networks the script runs.
        dry_synapses: its synapses, likewise.
        compile_seconds: wall seconds the run spent compiling its generated code, measured:
            Brian2's Cython extensions made or loaded, the standalone build's ``make`` (None:
            not measured, a run recorded before it was). Most of a cold run's set-up where
            it compiled; what its warm set-up is, is what is left.
    """

    fingerprint: str
    workload_signature: str | None
    profile_created_at: str | None
    config_key: str
    source: str
    script: str | None
    simulated: float | None
    predicted_total: float | None
    predicted_loop: float | None
    actual_total: float | None
    actual_build: float | None
    actual_loop: float | None
    peak_rss: int | None
    exit_code: int | None
    created_at: str
    script_digest: str | None = None
    cold: bool | None = None
    neurons: int | None = None
    synapses: int | None = None
    pgo_phase: str | None = None
    free_cpus: float | None = None
    cpus: int | None = None
    loop_cpu_share: float | None = None
    setup_cpu_share: float | None = None
    dry_neurons: int | None = None
    dry_synapses: int | None = None
    compile_seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (column names of ``autotune_runs``)."""
        return asdict(self)

    @property
    def cpus_needed(self) -> int:
        """CPUs the run kept busy: its OpenMP threads, else one; every CPU it may use for a
        cold standalone build (Brian2 runs ``make -j``)."""
        threads = threads_in_key(self.config_key)
        if threads is not None and self.cold and self.cpus:
            return self.cpus
        return max(1, threads or 1)

    @property
    def crowded(self) -> bool:
        """Whether other work took more than :data:`CROWDING` of the CPUs the run needed, on
        average (a run of a parallel sweep): its times are then those of a run sharing its
        CPUs, which would mislead a choice, or a prediction's check, for a run that does not
        (unknown: not crowded).

        Measured on 2 CPUs, three runs of one sweep started together: the warm one was left
        0.29 of a CPU, the two that built their own folders 0.95 (their builds took 23.9 s
        against 15.0 s alone)."""
        if self.free_cpus is None:
            return False
        return self.free_cpus < (1 - CROWDING) * self.cpus_needed

    def times_alone(self) -> tuple[float, float] | None:
        """Its seconds outside the loop and in it, as with CPUs of its own: as measured for a
        run that had them; for a crowded one, where it kept one CPU busy (one thread, a warm
        build), its times at the pace of its own CPU time (a run that got a third of a CPU
        took three times as long as its CPU seconds; a phase too short to tell takes the
        other's pace); None for other crowded runs and runs without both times.

        Measured on 2 CPUs, a CUBA-like script of 2000 neurons run 5 s, three runs started
        together: a warm one without OpenMP took 20.0 s at 0.32 of a CPU, 6.38 s at its CPU
        pace; run alone next, 6.93 and 6.78 s."""
        if self.actual_build is None or self.actual_loop is None:
            return None
        if not self.crowded:
            return self.actual_build, self.actual_loop
        single = threads_in_key(self.config_key) in (None, 0, 1) and not self.cold
        setup = self.setup_cpu_share if self.setup_cpu_share is not None else self.loop_cpu_share
        loop = self.loop_cpu_share if self.loop_cpu_share is not None else self.setup_cpu_share
        if not single or setup is None or loop is None:
            return None
        return self.actual_build * min(1.0, setup), self.actual_loop * min(1.0, loop)

    @property
    def total_error(self) -> float | None:
        """Relative error of the predicted total wall time, or None."""
        if not self.predicted_total or self.actual_total is None:
            return None
        return (self.actual_total - self.predicted_total) / self.predicted_total


def random_draws(config_key: str) -> str:
    """How a configuration (by key) draws Brian2's random numbers: seeded alike, each code
    generation target, and in cpp_standalone each OpenMP thread count (one generator per
    thread, seeded ``seed + i``), draws other numbers. Brian2 reproduces a seed's draws only
    with the same target and, in standalone, the same number of threads."""
    target = config_key.partition("-")[0]
    if target != "cpp_standalone":
        return {"numpy": "numpy", "cython": "Cython"}.get(target, target)
    threads = threads_in_key(config_key)
    return ("cpp_standalone without OpenMP" if not threads
            else f"cpp_standalone with {threads} OpenMP thread{'s' if threads != 1 else ''}")


def random_draws_note(runs: Sequence[RunRecord], config_key: str,
                      plain_key: str | None = None) -> str:
    """A note for the reason of a run whose configuration draws random numbers unlike the
    script's previous successful run, or, before its first one, unlike ``plain_key`` (Brian2's
    default: what ``python script.py`` uses); empty when they draw alike. Its results that
    depend on random numbers will differ from that run's, although the script and its seed
    did not change."""
    done = [r for r in runs if r.exit_code in (0, None)]
    now = random_draws(config_key)
    if not done:
        if plain_key is None or random_draws(plain_key) == now:
            return ""
        return (f"; random numbers are drawn with {now}, a plain run of the script (python, "
                f"Brian2's default) draws them with {random_draws(plain_key)}: for the same "
                "seed Brian2 draws other numbers, so results that depend on them will differ "
                "from a plain run's")
    before = random_draws(max(done, key=lambda r: r.created_at).config_key)
    if before == now:
        return ""
    return (f"; random numbers are drawn with {now}, the script's previous run drew them with "
            f"{before}: for the same seed Brian2 draws other numbers, so results that depend on "
            "them will differ from that run's (pin the configuration, e.g. --num-threads, to "
            "keep them)")


def last_loop_seconds() -> float | None:
    """Seconds the last Brian2 run's simulation loop took (the standalone binary's own loop
    time), or None when this process ran no simulation. Brian2 keeps it in a private
    attribute of its device; this is the one place that reads it."""
    brian2 = sys.modules.get("brian2")
    if brian2 is None:
        return None
    loop = getattr(brian2.get_device(), "_last_run_time", None)
    return None if loop is None else float(loop)


def loop_seconds() -> float | None:
    """Seconds the simulation loops of this process's Brian2 runs took: every runtime run's,
    summed, once :func:`watch_model` watches them (a script may call ``run()`` many times); else
    the last run's (a standalone binary runs once), None when nothing was simulated."""
    if _RUNTIME_RUNS.count:
        return _RUNTIME_RUNS.loop
    return last_loop_seconds()


def simulated_seconds() -> float | None:
    """Simulated seconds of this process's Brian2 runs: summed over every runtime run once
    :func:`watch_model` watches them, else the default clock's time (standalone's one run).

    The clock alone is not enough: a script that runs three fresh networks of 1.2, 1.2 and
    0.5 s (``Tsodyks_Pawelzik_Markram_1998.py``) ends with the clock at 0.5 s."""
    if _RUNTIME_RUNS.count:
        return _RUNTIME_RUNS.simulated
    brian2 = sys.modules.get("brian2")
    if brian2 is None:
        return None
    try:
        return time_of(brian2.defaultclock)
    except Exception:  # noqa: BLE001 - a clock we cannot read (standalone never built)
        return None


def peak_rss() -> int:
    """Peak resident memory of this process or its largest child (compiler, binary), bytes."""
    scale = 1 if sys.platform == "darwin" else 1024
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) * scale


#: The objects of the network Brian2 runs now in this process (see :func:`watch_model`); held
#: only while its run lasts, unless :func:`keep_last_model` asked for them afterwards.
_LAST_MODEL: list[Any] = []
#: Neurons and synapses of the last network run, counted before its objects were let go.
_LAST_SIZE: list[int | None] = [None, None]
#: Whether the last network's objects are kept once its run is over (:func:`keep_last_model`).
_KEEP_LAST_MODEL: list[bool] = [False]


@dataclass
class _RuntimeRuns:
    """The runtime device's runs in this process (see :func:`watch_model`): their loops'
    seconds and the time they simulated, summed."""

    loop: float = 0.0
    simulated: float = 0.0
    count: int = 0


_RUNTIME_RUNS = _RuntimeRuns()


@dataclass
class _LoopPace:
    """Wall and CPU seconds (this process and its finished children) of every simulation
    loop in this process: a runtime run's, or a standalone binary's whole run."""

    wall: float = 0.0
    cpu: float = 0.0

    def add(self, since: tuple[float, float], until: tuple[float, float] | None = None
            ) -> None:
        """Add the time from ``since`` to ``until`` (:func:`_own_clock` readings; None: now)."""
        wall, cpu = until or _own_clock()
        self.wall += wall - since[0]
        self.cpu += cpu - since[1]


_LOOP_PACE = _LoopPace()
#: Shorter than this (wall seconds), a share of CPU seconds counted in clock ticks is too coarse.
MIN_PACED_WALL = 0.5


def _own_clock() -> tuple[float, float]:
    """(monotonic wall seconds, CPU seconds of this process and its finished children), as
    :class:`~autotune.buildslots.CpuSample` counts them."""
    from autotune.buildslots import own_cpu_seconds

    return time.monotonic(), own_cpu_seconds()


def watch_model() -> None:
    """Keep the groups of every network Brian2 runs from now on, for :func:`model_size`, and
    add up what each runtime run simulated and how long its loop took, for
    :func:`loop_seconds` and :func:`simulated_seconds`.

    A script run with ``runpy`` drops its globals when it ends, and standalone cannot count
    synapses before the run: the groups are taken when the run starts and counted after it.
    Brian2 keeps only the last run's loop time: a script that runs twice (5 s to settle, then
    5 s recorded, as ``Brette_2004.py``) would otherwise count half its loop as set-up.
    """
    from brian2.core.network import Network

    if getattr(Network.before_run, "_autotune_watch", False):
        return
    original_before, original_after = Network.before_run, Network.after_run

    def before_run(self: Any, run_namespace: Any) -> Any:
        _LAST_MODEL[:] = list(self.objects)
        _LAST_SIZE[:] = [None, None]
        self._autotune_started_at = time_of(self)
        result = original_before(self, run_namespace)
        self._autotune_clock = _own_clock()  # the loop starts now (runtime)
        return result

    def after_run(self: Any) -> Any:
        ended = _own_clock()
        result = original_after(self)
        try:
            _count_runtime_run(self, ended)
        except Exception as e:  # noqa: BLE001 - bookkeeping must never fail the user's run
            logger.warning("could not count this run() of the script (%s: %s); its record "
                           "will lack it", type(e).__name__, e)
        _let_the_model_go()
        return result

    before_run._autotune_watch = True  # type: ignore[attr-defined]
    Network.before_run = before_run  # type: ignore[method-assign]
    Network.after_run = after_run  # type: ignore[method-assign]
    _watch_standalone_binary()
    _watch_compilers()


@dataclass
class _Compiling:
    """Wall seconds this process spent compiling generated code (see :func:`_watch_compilers`)."""

    seconds: float = 0.0


_COMPILING = _Compiling()


def compile_seconds() -> float:
    """Wall seconds this process's Brian2 runs spent compiling their code, once
    :func:`watch_model` watches them: Cython extensions made (or, where Brian2's cache held
    them, loaded: milliseconds each) and standalone builds' ``make`` (milliseconds for a folder
    already built)."""
    return _COMPILING.seconds


def _timed(original: Any) -> Any:
    """``original``, adding the wall seconds of each call to :data:`_COMPILING`."""

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        try:
            return original(*args, **kwargs)
        finally:
            _COMPILING.seconds += time.monotonic() - started

    return timed


def _watch_compilers() -> None:
    """Time what compiles a run's generated code: where a run's first build compiled it
    all, its set-up less this is its warm set-up, measured (a Cython compile took 40 s on a
    busy host where the profile guessed 5 s, and the script's next runs were predicted 38 s of
    warm set-up where they took 3 s)."""
    from brian2.devices.cpp_standalone.device import CPPStandaloneDevice

    CPPStandaloneDevice.compile_source = _timed(  # type: ignore[method-assign]
        CPPStandaloneDevice.compile_source)
    try:
        from brian2.codegen.runtime.cython_rt.extension_manager import CythonExtensionManager
    except ImportError:  # Brian2 without its Cython target: nothing of it to time
        return
    CythonExtensionManager.create_extension = _timed(  # type: ignore[method-assign]
        CythonExtensionManager.create_extension)


def _watch_standalone_binary() -> None:
    """Time the standalone binary's run (its loop and its own short set-up) for
    :data:`_LOOP_PACE`."""
    from brian2.devices.cpp_standalone.device import CPPStandaloneDevice

    original = CPPStandaloneDevice.run

    def run(self: Any, *args: Any, **kwargs: Any) -> Any:
        clock = _own_clock()
        try:
            return original(self, *args, **kwargs)
        finally:
            _LOOP_PACE.add(clock)
            _let_the_model_go()

    CPPStandaloneDevice.run = run  # type: ignore[method-assign]


def cpu_shares(since: CpuSample | None) -> tuple[float | None, float | None]:
    """CPU seconds per wall second of this process tree in its simulation loops, and outside
    them since ``since`` (``apply``'s sample); None where unknown or too short to tell."""
    loop = (_LOOP_PACE.cpu / _LOOP_PACE.wall if _LOOP_PACE.wall >= MIN_PACED_WALL else None)
    if since is None:
        return loop, None
    wall, cpu = _own_clock()
    setup_wall = wall - since.wall - _LOOP_PACE.wall
    setup = ((cpu - since.own - _LOOP_PACE.cpu) / setup_wall if setup_wall >= MIN_PACED_WALL
             else None)
    return loop, setup


def time_of(owner: Any) -> float | None:
    """A network's or clock's time (``t_``) in seconds (None where it is no single number). A
    network keeps a float, but after a ``stop()`` (from a ``network_operation``, say) the
    clock's variable view, which ``float()`` refused: Brian2's ``network_operation_stop.py``
    failed under ``run`` with a traceback from this bookkeeping."""
    import numpy as np

    try:
        values = np.asarray(owner.t_, dtype=float).reshape(-1)
    except (TypeError, ValueError, AttributeError):
        return None
    return float(values[0]) if values.size == 1 else None


def _count_runtime_run(network: Any, ended: tuple[float, float]) -> None:
    """Add a finished runtime run to :data:`_RUNTIME_RUNS`, and its loop, which ``ended``
    (an :func:`_own_clock` reading), to :data:`_LOOP_PACE` (standalone's ``run()`` only
    generates code: its binary's loop is timed once, by Brian2, after the build)."""
    from brian2.devices.device import RuntimeDevice, get_device

    device = get_device()
    started_at = getattr(network, "_autotune_started_at", None)
    loop = getattr(device, "_last_run_time", None)
    if not isinstance(device, RuntimeDevice) or started_at is None or loop is None:
        return
    ended_at = time_of(network)
    if ended_at is None:
        return
    _RUNTIME_RUNS.loop += float(loop)
    _RUNTIME_RUNS.simulated += max(0.0, ended_at - started_at)
    _RUNTIME_RUNS.count += 1
    clock = getattr(network, "_autotune_clock", None)
    if clock is not None:
        _LOOP_PACE.add(clock, ended)


def _let_the_model_go() -> None:
    """Count the network just run, then drop our references to its objects, unless kept.

    Held on, a finished network's objects keep their names taken: Brian2 names a new object
    after the first free name of its class, so a script that builds a network per panel
    (Brian2's ``Brunel_2000.py``) got ``synapses_1`` where a plain run reuses ``synapses``.
    Its code then differed from what plain Brian2 had compiled, and the run compiled 7 Cython
    modules again (29 s of set-up), holding the previous panel's 15 million synapses too. In
    standalone the synapses can only be counted once the binary ran: they are kept until then.
    """
    size = _count(_LAST_MODEL)
    if size is None:
        return
    _LAST_SIZE[:] = list(size)
    if not _KEEP_LAST_MODEL[0]:
        _LAST_MODEL.clear()


def keep_last_model() -> None:
    """Keep the last network's objects once its run is over, for :func:`last_model` (a
    precision check reads the monitors a script leaves behind)."""
    _KEEP_LAST_MODEL[0] = True


def last_model() -> list[Any]:
    """The objects of the last network Brian2 ran in this process, where
    :func:`keep_last_model` asked for them (see :func:`watch_model`)."""
    return list(_LAST_MODEL)


def _count(objects: list[Any]) -> tuple[int, int] | None:
    brian2 = sys.modules.get("brian2")
    if brian2 is None or not objects:
        return None
    try:
        # counted as the dry pass counts them (autotune.features): inputs such as a
        # PoissonGroup are neurons too, so that show and the dry pass's log line agree
        neurons = sum(int(o.N) for o in objects if isinstance(o, brian2.NeuronGroup) or (
            isinstance(o, brian2.Group) and not isinstance(o, brian2.Synapses)
            and hasattr(o, "N") and not hasattr(o, "source")))
        synapses = sum(len(o) for o in objects if isinstance(o, brian2.Synapses))
    except Exception:  # noqa: BLE001 - standalone before its binary ran, or unreadable
        return None
    return neurons, synapses


def model_size() -> tuple[int | None, int | None]:
    """Neurons and synapses of the last network run in this process (None, None when no run
    was watched or they cannot be read)."""
    if _LAST_SIZE[0] is not None:
        return _LAST_SIZE[0], _LAST_SIZE[1]
    size = _count(_LAST_MODEL)  # a run that did not end through after_run (stopped, failed)
    return (None, None) if size is None else size


def _process_wall() -> float | None:
    """Seconds since this process started (what a full run costs the user)."""
    since_boot = _process_wall_from_proc()
    if since_boot is not None:
        return since_boot
    try:
        import psutil

        return max(0.0, time.time() - psutil.Process().create_time())
    except Exception:  # noqa: BLE001 - a missing number must not break the user's exit
        return None


def _process_wall_from_proc() -> float | None:
    """Seconds since this process started, to a clock tick, where Linux's ``/proc`` says
    (None elsewhere). psutil's start time adds the process's start, counted from boot, to a
    boot time that Linux gives in whole seconds, so every run seemed up to a second longer
    than it was: 0.30 s on one VM, 15 % of a 2-s run."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22, starttime
        return max(0.0, time.clock_gettime(time.CLOCK_BOOTTIME) - started)
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def finished_run(applied: Applied, script: str | None = None, exit_code: int | None = None
                 ) -> RunRecord | None:
    """What the run that ``applied`` prepared really cost, or None if Brian2 never ran."""
    from datetime import datetime, timezone

    from autotune.buildslots import cpus_left_free

    if sys.modules.get("brian2") is None:
        return None
    loop, simulated = loop_seconds(), simulated_seconds()
    if loop is None or not simulated:
        return None
    total = _process_wall()
    if total is not None:
        total = max(0.0, total - applied.dry_pass_seconds)
    cost = applied.cost
    neurons, synapses = model_size()
    loop_share, setup_share = cpu_shares(applied.cpu_sample)
    return RunRecord(
        fingerprint=applied.fingerprint, workload_signature=applied.workload,
        profile_created_at=applied.profile_created_at, config_key=applied.config.key,
        source=applied.source, script=script, simulated=simulated,
        predicted_total=(cost.predict(simulated) + (cost.cold_extra if applied.cold else 0.0)
                         if cost else None),
        predicted_loop=cost.rate * simulated if cost else None,
        actual_total=total, actual_loop=float(loop),
        actual_build=(total - float(loop)) if total is not None else None,
        peak_rss=peak_rss(), exit_code=exit_code,
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        script_digest=applied.script_digest, cold=_cold(applied),
        neurons=neurons, synapses=synapses,
        pgo_phase=applied.guided.phase if applied.guided is not None else None,
        free_cpus=cpus_left_free(applied.cpu_sample),
        cpus=applied.cpu_sample.cpus if applied.cpu_sample is not None else None,
        loop_cpu_share=loop_share, setup_cpu_share=setup_share,
        dry_neurons=applied.dry_size[0] if applied.dry_size else None,
        dry_synapses=applied.dry_size[1] if applied.dry_size else None,
        compile_seconds=compile_seconds())


def _cold(applied: Applied) -> bool | None:
    """Whether the run compiled everything: a new build folder, or a profile-guided build that
    changed phase."""
    return True if applied.guided is not None and applied.guided.rebuilt else applied.cold


def record_run(applied: Applied, script: str | None = None, exit_code: int | None = None
               ) -> RunRecord | None:
    """Store the finished run's actual times next to its prediction; never raises."""
    record = finished_run(applied, script, exit_code)
    if record is None or applied.store_url is None:
        return record
    from autotune.store.lite import record_run as lite_record_run
    from autotune.store.location import display_url

    try:
        if lite_record_run(applied.store_url, record):
            return record
        if not applied.store_url.startswith("sqlite") and applied.node_dir is not None:
            # a server: queue it, a background process sends it
            from autotune.store import nodecopy

            folder = nodecopy.copy_folder(applied.node_dir, applied.store_url)
            nodecopy.queue_run(folder, record.to_dict())
            nodecopy.spawn_refresh(applied.store_url, applied.fingerprint, folder)
            return record
        from autotune.store.repository import open_store

        with open_store(applied.store_url) as store:
            store.record_run(record)
    except Exception as e:  # noqa: BLE001 - recording must never fail the user's run
        logger.warning("could not record the run in %s: %s", display_url(applied.store_url), e)
    return record
