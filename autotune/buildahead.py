"""Building ahead: a cold standalone build made beside a run of another configuration.

A script never run here has no build of its own, and rent-or-buy (:func:`autotune.choice.
mind_cold_builds`) keeps a slower configuration while the build would not pay back over the
runs the script is expected to get. On a host with no history that is one run: a 10-s STDP
script had numpy predicted 11.0 s against standalone's 4.3 s plus a 9.1 s build, so numpy ran
twice before the build came, and four runs took 47.0 s against standalone's 27.3 s (0.58).

Where a CPU is free beside the run chosen instead, and the wait for the build after that run
is repaid by the runs expected (:func:`worth_building_ahead`), ``brian2-autotune run`` makes the
build in a child process at the lowest priority while the run goes on
(:mod:`autotune._build_child`): the next run finds the binary built. The child takes its
own build slot, so a concurrent run never shares it, and ``run`` waits for it before it
exits, so no build outlives the command that started it.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from autotune.config import RunConfig
from autotune.paths import ModuleToRun, module_document

logger = logging.getLogger(__name__)

#: The longest a finished run waits for its build, in predicted cold builds (plus a minute).
MAX_WAIT_FACTOR = 3.0
#: Where the child's error output is kept, in the configuration's folder of slots.
LOG_NAME = "build-ahead.log"
#: Holds the digest of a script text whose build beside a run failed, so that it is not tried
#: again beside every run (a script standalone cannot serve would fail each time).
FAILED_NAME = "build-ahead.failed"


@dataclass(frozen=True)
class AheadPlan:
    """A standalone build to make beside the coming run.

    Attributes:
        config: the configuration to build (the one put off for its cold build).
        folder: its folder of build slots for this script (:func:`autotune.paths.
            standalone_build_dir`).
        cold_extra: what its cold build was predicted to cost (seconds).
        digest: the hash of the script's text, under which a failed build is remembered.
    """

    config: RunConfig
    folder: Path
    cold_extra: float
    digest: str | None = None


@dataclass
class BuildAhead:
    """A build going on beside the run (see :func:`start`)."""

    plan: AheadPlan
    process: subprocess.Popen[bytes]
    log: IO[bytes]
    started: float


def worth_building_ahead(chosen: RunConfig, predicted: float | None, put_off: RunConfig,
                         put_off_warm: float, cold_extra: float, usable_cpus: int,
                         cpus_in_use: int, runs: int = 1) -> bool:
    """Whether ``put_off``, a standalone configuration passed over for its cold build
    (``cold_extra`` seconds on all ``usable_cpus``), is built beside a run of ``chosen``
    predicted ``predicted`` seconds, with ``cpus_in_use`` kept busy by other work.

    The build gets the CPUs the run and that work leave (at least one), so it is predicted to
    take ``cold_extra`` times the share of CPUs it lost. What it lasts beyond the run is a wait
    at the run's end; it is worth it when ``runs`` later runs of ``put_off`` (warm:
    ``put_off_warm`` seconds each) save at least that wait: the rule of
    :func:`autotune.choice.mind_cold_builds`, for a build that now costs only its wait. A 10-s
    STDP script on 2 CPUs: numpy predicted 24.0 s, standalone 5.5 s warm with a 19.6-s build,
    so 39.2 s beside the run, a 15.2-s wait against 18.5 s saved by the next run."""
    free = usable_cpus - cpus_in_use - max(1, chosen.threads)
    if (put_off.device != "cpp_standalone" or put_off.pgo or put_off == chosen
            or predicted is None or free < 1):
        return False
    beside = cold_extra * usable_cpus / free
    wait = max(0.0, beside - predicted)
    saving = predicted - put_off_warm
    return saving > 0 and wait <= saving * max(1, runs)


def start(plan: AheadPlan, script: Path, args: list[str],
          module: ModuleToRun | None = None) -> BuildAhead | None:
    """Start building ``plan``'s configuration for ``script`` run with ``args`` (as the module
    ``module`` names, where the run is ``run -m``); None when the child cannot be started."""
    spec = {"config": plan.config.to_dict(), "folder": str(plan.folder),
            "script": str(script), "args": list(args),
            "module": module_document(module)}
    try:
        plan.folder.mkdir(parents=True, exist_ok=True)
        log = (plan.folder / LOG_NAME).open("wb")
    except OSError as e:
        logger.debug("cannot build %s ahead: %s", plan.config.key, e)
        return None
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "autotune._build_child", json.dumps(spec)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
    except OSError as e:
        log.close()
        logger.debug("cannot build %s ahead: %s", plan.config.key, e)
        return None
    logger.info("building %s beside this run, for the next one", plan.config.key)
    return BuildAhead(plan, process, log, time.perf_counter())


def finish(ahead: BuildAhead, interrupted: bool = False) -> bool:
    """Wait for the build (stop it when the run was ``interrupted``, or when it takes
    :data:`MAX_WAIT_FACTOR` times its predicted build and a minute more); whether it built."""
    if interrupted:
        ahead.process.kill()
    waited = time.perf_counter()
    try:
        code = ahead.process.wait(timeout=MAX_WAIT_FACTOR * ahead.plan.cold_extra + 60.0)
    except subprocess.TimeoutExpired:
        ahead.process.kill()
        code = ahead.process.wait()
        logger.info("building %s beside this run took too long and was stopped",
                    ahead.plan.config.key)
    waited = time.perf_counter() - waited
    ahead.log.close()
    key = ahead.plan.config.key
    if code == 0:
        logger.info("%s is built for the next run (%.1f s beside this run%s)", key,
                    time.perf_counter() - ahead.started,
                    f", {waited:.1f} s of it after the run ended" if waited >= 0.5 else "")
        return True
    if not interrupted:
        _remember_failure(ahead.plan)
        logger.info("building %s beside this run did not succeed (exit %d, see %s): the next "
                    "run weighs its cold build again", key, code, ahead.plan.folder / LOG_NAME)
    return False


def failed_before(folder: Path, digest: str | None) -> bool:
    """Whether building this script text beside a run already failed in ``folder``."""
    try:
        return digest is not None and (folder / FAILED_NAME).read_text() == digest
    except OSError:
        return False


def _remember_failure(plan: AheadPlan) -> None:
    if plan.digest is None:
        return
    try:
        (plan.folder / FAILED_NAME).write_text(plan.digest)
    except OSError as e:
        logger.debug("cannot note the failed build in %s: %s", plan.folder, e)
