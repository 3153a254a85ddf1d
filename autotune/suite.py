"""``calibrate --suite``: calibrate a host on several built-in models, for models never calibrated.

One calibration tells what is fastest for its own model; the best configuration flips with the
model (CUBA runs fastest here without OpenMP, Hodgkin-Huxley networks with 2 threads). The suite
calibrates models that differ in what drives their cost (state variables per neuron, costly
functions in the equations, synapses per neuron, plasticity, noise), most at two sizes, and
:mod:`autotune.transfer` fits each configuration's costs across them, so that a user's own
model is predicted from its features.

Each member measures one configuration per family (Brian2's default, numpy, standalone without
OpenMP and with the memory-aware thread count), in float64: what a prediction chooses among.
float32 is not transferred (it is allowed only on a model where it was checked), nor are compiler
flag presets (none won beyond noise where measured). A member this host already calibrated is
kept, not measured again (only its features are read if its profile lacks them).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from autotune.calibrate import (
    CalibrationOutcome,
    calibrate,
    cython_available,
    first_configs,
    read_features,
)
from autotune.errors import ProfileError, WorkloadError
from autotune.features import ModelFeatures
from autotune.host import HostFingerprint, collect_host
from autotune.measure import ProgressCallback
from autotune.profile import Profile
from autotune.search import Budget
from autotune.settings import CalibrationSettings
from autotune.store import open_store
from autotune.workloads import resolve_workload

logger = logging.getLogger(__name__)

#: The suite: (built-in workload, size). Chosen to spread the features a cost follows: CUBA
#: (few state variables, 80 synapses per neuron), COBA (CUBA's network with conductances: with
#: CUBA, the second model whose loop is mostly synaptic events, so that either left out is
#: predicted from the other; with CUBA alone, 2 threads were predicted for CUBA 4000 left out,
#: which ran 1.4 to 2.4 times slower with them than without OpenMP), COBA-HH (six state
#: variables per neuron, costly functions of the membrane potential), STDP (1 neuron, inputs
#: onto plastic synapses), the synfire chain (noise drawn for every neuron each step), Wang &
#: Buzsáki's interneurons (costly functions too, so that neither they nor COBA-HH is the only
#: model to say what such equations cost and how threads split them; at two sizes, since 2
#: threads pay only once the loop is heavy: on the development VM 1.06 times slower at 300
#: neurons, 0.64 at 1000). COBA, STDP and the synfire chain at one size, to keep the suite near
#: 10 minutes.
SUITE: tuple[tuple[str, int], ...] = (
    ("cuba", 1000), ("cuba", 4000),
    ("coba", 4000),
    ("coba-hh", 100), ("coba-hh", 400),
    ("stdp", 4000),
    ("synfire", 1000),
    ("wang-buzsaki", 300), ("wang-buzsaki", 1000),
)


def suite_settings(settings: CalibrationSettings, host: HostFingerprint) -> CalibrationSettings:
    """The member calibrations' settings: one configuration per family, no confirmation
    rounds (they rank configurations for the member's own model, which is not what the
    suite is for), and no profile-guided builds (not transferred, so a profile's note that
    none was measured would only mislead)."""
    threads = settings.max_threads if settings.max_threads is not None else host.max_threads
    families = len(first_configs(threads, cython_available(host)
                                 and "cython" in settings.targets))
    return replace(settings, budget=Budget(trials=families), confirm_top=0, pgo=False)


def parse_members(texts: Sequence[str]) -> list[tuple[str, int]]:
    """``NAME:SIZE`` texts as suite members (validated as workloads).

    Raises:
        WorkloadError: an unknown workload or a bad size.
    """
    members = []
    for text in texts:
        name, colon, size = text.partition(":")
        if colon and not size.isdigit():
            raise WorkloadError(f"suite member {text!r}: the size after ':' must be a whole "
                                "number, e.g. cuba:1000")
        spec = resolve_workload(name, int(size) if size else None)
        assert spec.size is not None
        members.append((spec.name, spec.size))
    return members


def calibrate_suite(
    settings: CalibrationSettings | None = None,
    *,
    members: Sequence[tuple[str, int]] = SUITE,
    db: str | None = None,
    cache_root: Path | None = None,
    host: HostFingerprint | None = None,
    progress: ProgressCallback | None = None,
) -> list[Profile]:
    """Calibrate every suite member this host has no profile of; return all members' profiles.

    Raises:
        WorkloadError, StoreError, CalibrationError, KeyboardInterrupt: as :func:`calibrate`,
            for the member being calibrated (members done so far are kept).
    """
    host = host or collect_host()
    settings = suite_settings(settings or CalibrationSettings(), host)
    profiles = []
    for number, (name, size) in enumerate(members, 1):
        kept = _kept_profile(db, host, name, size)
        if progress is not None:
            progress("member", {"name": name, "size": size, "number": number,
                                "count": len(members), "kept": kept})
        if kept is None:
            logger.info("suite: calibrating %s %d", name, size)
            outcome: CalibrationOutcome = calibrate(
                name, size=size, settings=settings, db=db, cache_root=cache_root, host=host,
                progress=progress)
            kept = outcome.profile
        if kept is not None:
            profiles.append(kept)
    return profiles


def _features_current(profile: Profile) -> bool:
    """Whether the profile's features are there and of this version (all counts present)."""
    try:
        ModelFeatures.from_dict(profile.workload["model"])
    except (KeyError, ProfileError):
        return False
    return True


def _kept_profile(db: str | None, host: HostFingerprint, name: str, size: int
                  ) -> Profile | None:
    """This host's profile of the member, with its features (read now if it had none, or of
    an older version)."""
    spec = resolve_workload(name, size)
    with open_store(db) as store:
        profile = store.latest_profile(host.fingerprint, spec.signature)
        if profile is None or _features_current(profile):
            return profile
        features = read_features(spec)
        if features is None:
            return profile
        logger.info("suite: keeping this host's profile of %s, with its features", spec.describe())
        profile = replace(profile, workload={**profile.workload, "model": features.to_dict()},
                          created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        store.save_profile(profile, host, spec)
        return profile
