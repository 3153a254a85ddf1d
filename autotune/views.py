"""Derived views of profiles: thread scaling, devices side by side, precision, machines compared.

Pure functions from profiles to rows (plain dicts), shared by the rich tables, the ``--json``
output and the plots, so the three always agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from autotune.config import RunConfig
from autotune.errors import BadInput
from autotune.profile import Profile, ProfileEntry


def thread_scaling_rows(profile: Profile) -> list[dict[str, Any]]:
    """Per OpenMP thread count: standalone loop rate, speed-up, parallel efficiency, memory.

    Threads are compared within one precision and flag preset (the family measured at the most
    thread counts, float64 with Brian2's flags first), so only the thread count differs. Speed-up
    is the loop's (per simulated second) against the fewest threads measured; the efficiency
    divides it by the thread ratio (OpenMP off counts as one thread).
    """
    families: dict[tuple[str, str], dict[int, ProfileEntry]] = {}
    for entry in profile.valid:
        if entry.config.device == "cpp_standalone":
            family = families.setdefault((entry.config.precision, entry.config.flags), {})
            family[entry.config.threads] = entry
    if not families:
        return []
    key = max(families, key=lambda k: (len(families[k]), k == ("float64", "default")))
    best = families[key]
    base_threads = min(best)
    base_rate = best[base_threads].cost.rate  # type: ignore[union-attr]
    rows = []
    for threads in sorted(best):
        entry = best[threads]
        cost = entry.cost
        assert cost is not None
        speedup = base_rate / cost.rate if cost.rate > 0 else None
        ideal = max(threads, 1) / max(base_threads, 1)
        rows.append({
            "threads": threads, "config": entry.config.key, "rate_s_per_s": cost.rate,
            "speedup": speedup, "ideal_speedup": ideal,
            "efficiency": (speedup / ideal) if speedup is not None else None,
            "peak_rss": cost.peak_rss,
            "memory_per_thread": (cost.peak_rss / max(threads, 1)) if cost.peak_rss else None,
        })
    return rows


def device_rows(profile: Profile, duration: float | None = None) -> list[dict[str, Any]]:
    """The best runtime and the best cpp_standalone configuration, side by side."""
    d = profile.target_duration if duration is None else duration
    rows = []
    for device in ("runtime", "cpp_standalone"):
        entries = [e for e in profile.ranked(d) if e.config.device == device]
        if not entries:
            continue
        cost = entries[0].cost
        assert cost is not None
        rows.append({"device": device, "config": entries[0].config.key, "fixed_s": cost.fixed,
                     "rate_s_per_s": cost.rate, "predicted_s": cost.predict(d),
                     "peak_rss": cost.peak_rss})
    return rows


def precision_rows(profile: Profile, duration: float | None = None) -> list[dict[str, Any]]:
    """Configurations measured in both precisions: float32's speed-up and validation result."""
    d = profile.target_duration if duration is None else duration
    by_config = {e.config: e for e in profile.entries}
    rows = []
    for config, single in by_config.items():
        if config.precision != "float32":
            continue
        double = by_config.get(RunConfig(config.device, config.target, config.threads,
                                         "float64", config.flags))
        if double is None or double.cost is None:
            continue
        row: dict[str, Any] = {
            "config": double.config.key.replace("-float64", ""), "float32_status": single.status,
            "float32_deviation": single.max_deviation, "float32_reason": single.reason,
            "float64_predicted_s": double.cost.predict(d),
            "float32_predicted_s": single.cost.predict(d) if single.cost else None,
        }
        row["float32_speedup"] = (row["float64_predicted_s"] / row["float32_predicted_s"]
                                  if row["float32_predicted_s"] else None)
        rows.append(row)
    return rows


def host_label(fingerprint: str, hosts: Mapping[str, Mapping[str, Any]]) -> str:
    """``hostname (fingerprint prefix)`` where the hostname is known."""
    info = hosts.get(fingerprint, {}).get("info", {})
    name = info.get("hostname") or hosts.get(fingerprint, {}).get("components", {}).get(
        "cpu_model", "host")
    return f"{name} ({fingerprint[:8]})"


def compare_rows(profiles: Sequence[Profile], hosts: Mapping[str, Mapping[str, Any]],
                 duration: float, reference: str | None = None) -> list[dict[str, Any]]:
    """Machines side by side per workload: best config, prediction, throughput, speed-ups.

    ``reference`` is the fingerprint the relative speed is measured against (default: the first
    host of each workload, in the order given).
    """
    by_workload: dict[str, list[Profile]] = {}
    for profile in profiles:
        by_workload.setdefault(str(profile.workload.get("signature")), []).append(profile)
    rows = []
    for group in by_workload.values():
        predictions: dict[str, float] = {}
        for profile in group:
            best = profile.best(duration)
            if best is not None and best.cost is not None:
                predictions[profile.fingerprint] = best.cost.predict(duration)
        ref = reference if reference in predictions else next(iter(predictions), None)
        for profile in group:
            best = profile.best(duration)
            predicted = predictions.get(profile.fingerprint)
            baseline = profile.entry(profile.baseline) if profile.baseline else None
            base_pred = (baseline.cost.predict(duration) if baseline and baseline.cost
                         else None)
            rows.append({
                "workload": profile.workload.get("name"), "size": profile.workload.get("size"),
                "workload_signature": profile.workload.get("signature"),
                "host": host_label(profile.fingerprint, hosts),
                "fingerprint": profile.fingerprint,
                "best": best.config.key if best else None, "predicted_s": predicted,
                "throughput": (duration / predicted) if predicted else None,
                "speedup_vs_default": (base_pred / predicted) if base_pred and predicted
                else None,
                "relative_to_reference": (predictions[ref] / predicted)
                if ref and predicted else None,
                "reference": ref == profile.fingerprint,
                "busy": profile.busy,
            })
    return rows


def matching_hosts(prefix: str, fingerprints: Iterable[str]) -> list[str]:
    """The stored fingerprints starting with ``prefix``.

    Raises:
        BadInput: none does.
    """
    found = [fp for fp in fingerprints if fp.startswith(prefix)]
    if not found:
        raise BadInput(f"no stored host matches {prefix!r}; import its export first")
    return found


def one_host(prefix: str, fingerprints: Iterable[str], option: str) -> str:
    """The one stored fingerprint starting with ``prefix`` (given as ``option``).

    Raises:
        BadInput: none or several do.
    """
    found = matching_hosts(prefix, fingerprints)
    if len(found) != 1:
        raise BadInput(f"{option} {prefix!r} matches {len(found)} stored hosts; give a longer "
                       "fingerprint (see `brian2-autotune compare`)")
    return found[0]
