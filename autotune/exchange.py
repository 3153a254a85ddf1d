"""Move profiles between machines: versioned JSON export and a strict, idempotent import.

An export holds one host (its fingerprint components and a little information), the newest
profile of each workload calibrated there, and per-configuration trial summaries. Import treats
the file as hostile: it is only parsed as JSON (nothing in it is executed or used as a path),
limited in size, checked against a fixed schema with unknown keys refused, every number
range-checked (through :class:`~autotune.profile.Profile`), and the fingerprint recomputed from
the components, so a doctored file is refused as a whole before anything is written.
"""

from __future__ import annotations

import json
import math
import platform
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from autotune.errors import ProfileError
from autotune.host import CHECKED_COMPONENTS, HostFingerprint
from autotune.profile import Profile

FORMAT = "brian2-autotune-export"
EXPORT_VERSION = 1
MAX_FILE_BYTES = 20 * 1024 * 1024
_INFO_KEYS = {"hostname", "kernel", "affinity_cpus", "cgroup_cpus", "governor", "turbo"}
_SUMMARY_KEYS = {"workload_signature", "config", "trials", "ok", "median_total",
                 "median_run_per_second"}


def default_export_path(host: HostFingerprint, folder: Path = Path("profiles")) -> Path:
    """``profiles/<hostname>-<fingerprint>.json`` (hostname made filesystem-safe)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", str(host.info.get("hostname") or platform.node()))
    return folder / f"{name or 'host'}-{host.fingerprint}.json"


def build_export(host: HostFingerprint, profiles: list[Profile],
                 summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """The export document of one host."""
    return {
        "format": FORMAT,
        "format_version": EXPORT_VERSION,
        "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "host": {"fingerprint": host.fingerprint, "components": dict(host.components),
                 "info": {k: v for k, v in host.info.items() if k in _INFO_KEYS}},
        "profiles": [p.to_dict() for p in profiles],
        "trial_summaries": summaries,
    }


def _scalar(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, (str, int, bool)) and (
        not isinstance(value, str) or len(value) <= 500)


def _check_host(data: Any) -> HostFingerprint:
    if not isinstance(data, Mapping) or set(data) - {"fingerprint", "components", "info"}:
        raise ProfileError("export host must be an object with fingerprint, components, info")
    components, info = data.get("components"), data.get("info") or {}
    if not isinstance(components, Mapping) or set(components) != set(CHECKED_COMPONENTS):
        raise ProfileError("export host components must list exactly: "
                           + ", ".join(CHECKED_COMPONENTS))
    if not isinstance(info, Mapping) or set(info) - _INFO_KEYS:
        raise ProfileError(f"export host info may only hold: {', '.join(sorted(_INFO_KEYS))}")
    for key, value in [*components.items(), *info.items()]:
        if not _scalar(value):
            raise ProfileError(f"export host field {key!r} must be a plain value")
    host = HostFingerprint(dict(components), dict(info))
    if host.fingerprint != data.get("fingerprint"):
        raise ProfileError("export host fingerprint does not match its components (the file "
                           "was edited or damaged)")
    return host


def _check_summaries(data: Any) -> None:
    if not isinstance(data, list):
        raise ProfileError("export trial_summaries must be a list")
    for item in data:
        if not isinstance(item, Mapping) or set(item) - _SUMMARY_KEYS:
            raise ProfileError(f"export trial summary keys must be among "
                               f"{', '.join(sorted(_SUMMARY_KEYS))}")
        if not all(_scalar(v) for v in item.values()):
            raise ProfileError("export trial summary values must be plain values")


def _refuse_non_finite(name: str) -> Any:
    raise ValueError(f"{name} is not a number an export may hold (numbers must be finite)")


def parse_export(text: str | bytes, source: str = "<export>") -> tuple[HostFingerprint,
                                                                       list[Profile]]:
    """Validate an export document completely; return its host and profiles.

    Raises:
        ProfileError: malformed JSON, unknown format or version, unknown keys, bad values,
            a fingerprint that does not match, or profiles of another host.
    """
    if len(text) > MAX_FILE_BYTES:
        raise ProfileError(f"{source} is larger than {MAX_FILE_BYTES // 2**20} MiB; not an export")
    try:
        data = json.loads(text, parse_constant=_refuse_non_finite)
    except (ValueError, RecursionError) as e:
        raise ProfileError(f"{source} is not valid JSON: {e}") from None
    if not isinstance(data, Mapping) or data.get("format") != FORMAT:
        raise ProfileError(f"{source} is not a brian2-autotune export (format {FORMAT!r})")
    if data.get("format_version") != EXPORT_VERSION:
        raise ProfileError(f"{source} has export version {data.get('format_version')!r}; this "
                           f"brian2-autotune reads version {EXPORT_VERSION}")
    unknown = set(data) - {"format", "format_version", "exported_at", "host", "profiles",
                           "trial_summaries"}
    if unknown:
        raise ProfileError(f"{source} has unknown keys: {', '.join(sorted(map(str, unknown)))}")
    host = _check_host(data.get("host"))
    profiles_data = data.get("profiles")
    if not isinstance(profiles_data, list):
        raise ProfileError(f"{source}: profiles must be a list")
    profiles = []
    for item in profiles_data:
        profile = Profile.from_dict(item)
        if profile.fingerprint != host.fingerprint or dict(profile.host_components) != dict(
                host.components):
            raise ProfileError(f"{source}: a profile belongs to another host than the file's")
        profiles.append(profile)
    _check_summaries(data.get("trial_summaries", []))
    return host, profiles


def read_export(path: Path) -> tuple[HostFingerprint, list[Profile]]:
    """Read and validate an export file.

    Raises:
        ProfileError: unreadable, too large or invalid file.
    """
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ProfileError(f"{path} is larger than {MAX_FILE_BYTES // 2**20} MiB; "
                               "not an export")
        text = path.read_bytes()
    except FileNotFoundError:
        raise ProfileError(f"{path} does not exist") from None
    except OSError as e:
        raise ProfileError(f"cannot read {path}: {e.strerror}") from None
    return parse_export(text, str(path))


def export_host(db: str | None, host_prefix: str | None = None, output: Path | None = None
                ) -> tuple[Path, HostFingerprint, int]:
    """Write a host's profiles (this host's, or the stored host whose fingerprint starts with
    ``host_prefix``) to ``output`` (default: :func:`default_export_path`). Returns the path,
    the host and the number of profiles.

    Raises:
        BadInput: no such host, several, or no profile stored for it.
        StoreError: the store cannot be read.
    """
    from autotune.errors import BadInput
    from autotune.host import collect_host
    from autotune.store import open_store
    from autotune.views import one_host

    with open_store(db) as store:
        if host_prefix is None:
            host = collect_host()
        else:
            hosts = {h["fingerprint"]: h for h in store.hosts()}
            found = hosts[one_host(host_prefix, hosts, "--host")]
            host = HostFingerprint(found["components"], found["info"])
        profiles = store.profiles(host.fingerprint)
        summaries = store.trial_summaries(host.fingerprint)
    if not profiles:
        raise BadInput(f"no profile stored for host {host.fingerprint}; calibrate first")
    path = output or default_export_path(host)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(build_export(host, profiles, summaries), indent=1) + "\n")
    return path, host, len(profiles)


def import_files(paths: list[Path], db: str | None) -> list[dict[str, Any]]:
    """Validate every file, then load them all (one bad file imports nothing); re-importing
    changes nothing. Returns per file: ``file``, ``fingerprint``, ``profiles``, ``added``.

    Raises:
        ProfileError: a file is unreadable, malformed or hostile.
        StoreError: the store cannot be written.
    """
    from autotune.store import open_store

    documents = [(path, *read_export(path)) for path in paths]
    results = []
    with open_store(db) as store:
        for path, host, profiles in documents:
            added = store.import_profiles(host, profiles)
            results.append({"file": str(path), "fingerprint": host.fingerprint,
                            "profiles": len(profiles), "added": added})
    return results
