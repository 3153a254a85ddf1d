"""The one place that mutates Brian2's global device and preferences.

Both the trial child (to measure a configuration) and :mod:`autotune.apply` (to use one) go
through :func:`configure_brian2`, so a configuration means exactly the same thing when it is
measured and when it is applied. Importing this module does not import Brian2; calling it does.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

from autotune.config import RunConfig
from autotune.pgo import ProfileGuidedBuild

logger = logging.getLogger(__name__)


def configure_brian2(
    config: RunConfig,
    build_dir: Path | None = None,
    cython_cache_dir: Path | None = None,
    *,
    with_output: bool = False,
    passive_wait: bool = False,
) -> ProfileGuidedBuild | None:
    """Set Brian2's device and prefs for ``config``; for a profile-guided configuration, the
    object that drives its build through the phases (:mod:`autotune.pgo`), else None.

    Args:
        config: the configuration to apply.
        build_dir: stable folder for a cpp_standalone project (one per configuration, so that a
            later run with the same configuration only re-links what changed).
        cython_cache_dir: Cython cache folder; one per flag preset, since Brian2's Cython cache
            key ignores compiler flags.
        with_output: show the standalone binary's output (``report='text'`` progress) as a
            plain run would; trials keep it quiet.
        passive_wait: OpenMP threads sleep while they wait instead of spinning
            (``OMP_WAIT_POLICY=PASSIVE``): spinning threads on cores that other jobs use slow
            everyone down.
    """
    import numpy as np
    from brian2 import prefs, set_device

    prefs.core.default_float_dtype = np.float32 if config.precision == "float32" else np.float64
    if config.precision == "float32":
        # Brian2's NaN/overflow check compares float32 arrays with 1e50, which numpy warns about
        # on every run; the check itself still works.
        warnings.filterwarnings("ignore", message="overflow encountered in cast",
                                category=RuntimeWarning, module="brian2")
    if config.compiler_flags is not None:
        prefs.codegen.cpp.extra_compile_args_gcc = list(config.compiler_flags)
    if config.device == "runtime":
        set_device("runtime")
        prefs.codegen.target = config.target
        if config.target == "cython" and cython_cache_dir is not None:
            cython_cache_dir.mkdir(parents=True, exist_ok=True)
            prefs.codegen.runtime.cython.cache_dir = str(cython_cache_dir)
    else:
        directory = str(build_dir) if build_dir is not None else "output"
        if build_dir is not None:
            build_dir.mkdir(parents=True, exist_ok=True)
        prefs.devices.cpp_standalone.openmp_threads = config.threads
        if passive_wait and config.threads > 0:
            _sleep_while_waiting()
        set_device("cpp_standalone", directory=directory, build_on_run=True,
                   with_output=with_output)
    logger.debug("Brian2 configured for %s", config.describe())
    if not config.pgo:
        return None
    from brian2 import get_device

    from autotune import pgo

    return pgo.install(get_device(), Path(directory).resolve(), config.threads)


def wait_passively_if_crowded_at_launch(threads: int, usable_cpus: int,
                                        register: Path | None) -> None:
    """Look again, as the standalone binary starts, whether its ``threads`` OpenMP threads
    would share cores with other work, and if so let them sleep while they wait
    (``OMP_WAIT_POLICY=PASSIVE``, which the binary reads when it starts).

    ``apply`` looks once, before the build; the runs of a sweep started together register
    and compile after the first has looked. On 2 CPUs the first of three such runs chose 2
    threads, found both CPUs free, and spun: its loop took 30.6 s against 1.05 s alone.

    Args:
        register: this node's folder of registered runs (:func:`autotune.buildslots.register_run`),
            None where this run is not registered.
    """
    import os

    from brian2 import get_device

    from autotune.buildslots import count_neighbours, cpus_busy_elsewhere, oversubscribed

    device = get_device()
    original = device.run

    def run(*args: object, **kwargs: object) -> object:
        cores = 0
        if register is not None:
            cores = count_neighbours(register, register / f"{os.getpid()}.run").cores
        busy = cpus_busy_elsewhere()
        if oversubscribed(threads, usable_cpus, cores, busy):
            logger.info("other work now keeps %d of %d CPUs busy: the %d OpenMP threads sleep "
                        "while they wait", max(cores, busy), usable_cpus, threads)
            _sleep_while_waiting()
        return original(*args, **kwargs)

    device.run = run


def _sleep_while_waiting() -> None:
    """Make the standalone binary's OpenMP threads sleep while they wait
    (``OMP_WAIT_POLICY=PASSIVE``, passed to the binary when it starts)."""
    from brian2 import prefs

    environment = dict(prefs.devices.cpp_standalone.run_environment_variables)
    prefs.devices.cpp_standalone.run_environment_variables = {
        **environment, "OMP_WAIT_POLICY": "PASSIVE"}
