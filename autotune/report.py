"""Tables and JSON for profiles: pure formatting, no measuring and no store access.

Every table has a JSON twin built from the same rows (``*_rows`` functions), so ``--json`` and the
human output always say the same thing.
"""

from __future__ import annotations

from typing import Any

from autotune.profile import Profile

MIB = 1024**2


def _fmt_seconds(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.3g} s" if x < 100 else f"{x:.0f} s"


def _fmt_mib(x: int | None) -> str:
    return "-" if not x else f"{x / MIB:.0f} MiB"


def ranking_rows(profile: Profile, duration: float | None = None) -> list[dict[str, Any]]:
    """One row per valid configuration, fastest first, with its cost model and prediction."""
    d = profile.target_duration if duration is None else duration
    baseline_entry = profile.entry(profile.baseline) if profile.baseline else None
    baseline = (baseline_entry.cost.predict(d) if baseline_entry and baseline_entry.cost
                else None)
    rows = []
    for rank, entry in enumerate(profile.ranked(d), start=1):
        cost = entry.cost
        assert cost is not None
        low, high = cost.interval(d)
        predicted = cost.predict(d)
        rows.append({
            "rank": rank, "config": entry.config.key, "description": entry.config.describe(),
            "fixed_s": cost.fixed, "rate_s_per_s": cost.rate, "predicted_s": predicted,
            "interval_s": [low, high], "cold_build_extra_s": cost.cold_extra,
            "peak_rss": cost.peak_rss,
            "speedup_vs_default": (baseline / predicted) if baseline and predicted > 0 else None,
            "max_deviation": entry.max_deviation,
        })
    return rows


def rejected_rows(profile: Profile) -> list[dict[str, Any]]:
    """Configurations that failed or were invalid, with the reason."""
    return [{"config": e.config.key, "status": e.status, "reason": e.reason}
            for e in profile.entries if e.status != "valid"]


def profile_summary(profile: Profile, duration: float | None = None) -> dict[str, Any]:
    """The JSON form ``show --json`` prints for one profile."""
    d = profile.target_duration if duration is None else duration
    best = profile.best(d)
    baseline_entry = profile.entry(profile.baseline) if profile.baseline else None
    baseline_pred = (baseline_entry.cost.predict(d) if baseline_entry and baseline_entry.cost
                     else None)
    best_pred = best.cost.predict(d) if best and best.cost else None
    return {
        "fingerprint": profile.fingerprint,
        "workload": profile.workload,
        "created_at": profile.created_at,
        "calibration_id": profile.calibration_id,
        "target_duration": d,
        "tolerance": profile.tolerance,
        "best": best.config.to_dict() if best else None,
        "best_key": best.config.key if best else None,
        "best_predicted_s": best_pred,
        "baseline": profile.baseline.key if profile.baseline else None,
        "baseline_predicted_s": baseline_pred,
        "speedup_vs_default": (baseline_pred / best_pred) if baseline_pred and best_pred else None,
        "ranking": ranking_rows(profile, d),
        "rejected": rejected_rows(profile),
        "notes": list(profile.notes),
    }


def workload_label(profile: Profile) -> str:
    """``cuba (size 4000)`` or the file name."""
    w = profile.workload
    return f"{w['name']} (size {w['size']})" if w.get("size") else str(w["name"])


def profile_renderables(profile: Profile, duration: float | None = None) -> list[Any]:
    """Rich renderables for one profile: a headline, the ranking, the rejected configs."""
    from rich.table import Table
    from rich.text import Text

    summary = profile_summary(profile, duration)
    d = summary["target_duration"]
    head = Text()
    head.append(f"{workload_label(profile)}", style="bold")
    head.append(f" — profile of {profile.created_at}, for {d:g} s simulated runs\n")
    if summary["best"]:
        head.append(f"best: {summary['best_key']}", style="bold green")
        head.append(f", predicted {_fmt_seconds(summary['best_predicted_s'])}")
        if summary["speedup_vs_default"]:
            head.append(f"; Brian2's default ({summary['baseline']}) "
                        f"{_fmt_seconds(summary['baseline_predicted_s'])}: "
                        f"{summary['speedup_vs_default']:.2f}× faster")
    else:
        head.append("no valid configuration", style="bold red")
    for note in profile.notes:
        head.append(f"\nnote: {note}", style="yellow")
    table = Table(title=None, show_lines=False)
    for column in ("#", "configuration", "fixed", "per sim. s", f"predicted ({d:g} s)",
                   "interval", "cold build +", "peak RSS", "vs default"):
        table.add_column(column, justify="left" if column == "configuration" else "right",
                         no_wrap=True)
    for row in summary["ranking"]:
        low, high = row["interval_s"]
        table.add_row(str(row["rank"]), row["config"], _fmt_seconds(row["fixed_s"]),
                      _fmt_seconds(row["rate_s_per_s"]), _fmt_seconds(row["predicted_s"]),
                      f"{low:.3g}–{high:.3g} s", _fmt_seconds(row["cold_build_extra_s"]),
                      _fmt_mib(row["peak_rss"]),
                      f"{row['speedup_vs_default']:.2f}×" if row["speedup_vs_default"] else "-")
    out: list[Any] = [head, table]
    if summary["rejected"]:
        rejected = Table(title="rejected configurations")
        rejected.add_column("configuration")
        rejected.add_column("status")
        rejected.add_column("reason")
        for row in summary["rejected"]:
            rejected.add_row(row["config"], row["status"], row["reason"] or "")
        out.append(rejected)
    return out
