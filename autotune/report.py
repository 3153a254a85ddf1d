"""Tables and JSON for profiles: pure formatting, no measuring and no store access.

Every table has a JSON twin built from the same rows (``*_rows`` functions), so ``--json`` and the
human output always say the same thing.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from autotune.confirm import CONFIRM_MARGIN
from autotune.profile import PREFERENCE_MARGIN, Profile
from autotune.runrecord import RunRecord

MIB = 1024**2
#: A profile whose real runs miss their prediction by more than this (median) is flagged.
RECALIBRATE_THRESHOLD = 0.25
RECALIBRATE_MIN_RUNS = 2


def prediction_quality(profile: Profile, runs: Sequence[RunRecord],
                       threshold: float = RECALIBRATE_THRESHOLD) -> dict[str, Any]:
    """How well the profile predicted the real runs made with it (those that had their CPUs
    to themselves).

    Returns the number of runs, the median signed and absolute relative errors of the total wall
    time, and ``recalibrate`` with a reason when the median absolute error exceeds ``threshold``
    over at least :data:`RECALIBRATE_MIN_RUNS` runs.
    """
    mine = [r for r in runs if r.workload_signature == profile.workload.get("signature")
            and r.profile_created_at == profile.created_at and r.total_error is not None
            and not r.crowded]  # a run sharing its CPUs is slow for reasons of its own
    errors = [r.total_error for r in mine if r.total_error is not None]
    if not errors:
        return {"runs": 0, "median_error": None, "median_abs_error": None,
                "recalibrate": False, "reason": None}
    median_abs = statistics.median(abs(e) for e in errors)
    median = statistics.median(errors)
    flagged = len(errors) >= RECALIBRATE_MIN_RUNS and median_abs > threshold
    reason = None
    if flagged:
        direction = "slower" if median > 0 else "faster"
        reason = (f"real runs were {100 * median_abs:.0f} % {direction} than predicted "
                  f"(median of {len(errors)}); recalibrate, ideally on a workload file like "
                  "your scripts")
    return {"runs": len(errors), "median_error": median, "median_abs_error": median_abs,
            "recalibrate": flagged, "reason": reason}


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
            "peak_rss": cost.peak_rss, "spread": cost.spread, "samples": cost.samples,
            "phases": dict(entry.phases), "phase_spread": dict(entry.phase_spread),
            "speedup_vs_default": (baseline / predicted) if baseline and predicted > 0 else None,
            "max_deviation": entry.max_deviation,
        })
    return rows


def rejected_rows(profile: Profile) -> list[dict[str, Any]]:
    """Configurations that failed or were invalid, with the reason."""
    return [{"config": e.config.key, "status": e.status, "reason": e.reason}
            for e in profile.entries if e.status != "valid"]


def profile_summary(profile: Profile, duration: float | None = None,
                    runs: Sequence[RunRecord] = ()) -> dict[str, Any]:
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
        "tied_with_best": [e.config.key for e in profile.tied(d)],
        "confirmed": list(profile.confirmed),
        "confirmation": dict(profile.confirmation),
        "busy": profile.busy,
        "ranking": ranking_rows(profile, d),
        "rejected": rejected_rows(profile),
        "notes": list(profile.notes),
        "predictions": prediction_quality(profile, runs),
    }


def _percent(ratio: float | None) -> str:
    return "?" if ratio is None else f"{100 * (ratio - 1):+.1f} %"


def confirmation_line(profile: Profile) -> str:
    """One line on the confirmation: the paired gaps of the configurations closest to the best
    after the search (at the calibration's target length), or why there was none."""
    record = profile.confirmation
    if not record and not profile.confirmed:
        return ""
    if not profile.confirmed:
        within = record.get("within", CONFIRM_MARGIN)
        return (f"confirmation: no other configuration came within {100 * within:.0f} % "
                "of the best")
    gaps = record.get("gaps", {})
    parts = [f"{profile.confirmed[0]} fastest"]
    for key in profile.confirmed[1:]:
        gap = gaps.get(key)
        if not gap:
            parts.append(key)
            continue
        verdict = "slower" if gap["low"] is not None and gap["low"] > 1 else "within noise"
        parts.append(f"{key} {_percent(gap['ratio'])} (80 %: {_percent(gap['low'])} to "
                     f"{_percent(gap['high'])}, {gap['rounds']} rounds: {verdict})")
    rounds = record.get("rounds")
    head = (f"confirmed in {rounds} interleaved rounds, paired" if rounds
            else "confirmed by interleaved re-measurement")
    return f"{head}: " + "; ".join(parts)


def workload_label(profile: Profile) -> str:
    """``cuba (size 4000)`` or the file name."""
    w = profile.workload
    return f"{w['name']} (size {w['size']})" if w.get("size") else str(w["name"])


def profile_renderables(profile: Profile, duration: float | None = None,
                        runs: Sequence[RunRecord] = ()) -> list[Any]:
    """Rich renderables for one profile: a headline, the ranking, the rejected configs."""
    from rich.table import Table
    from rich.text import Text

    summary = profile_summary(profile, duration, runs)
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
    tied = [k for k in summary["tied_with_best"] if k != summary["best_key"]]
    if tied:
        head.append(f"\nstatistically tied with: {', '.join(tied)} (of those predicted "
                    f"within {PREFERENCE_MARGIN:.0%} of the fastest, the cheapest is chosen: "
                    "fewest threads, then materially less memory)")
    confirmation = confirmation_line(profile)
    if confirmation:
        head.append(f"\n{confirmation}")
    if profile.busy:
        head.append("\nMEASURED UNDER LOAD: timings may be off; recalibrate on a quiet host",
                    style="bold yellow")
    for note in profile.notes:
        head.append(f"\nnote: {note}", style="yellow")
    quality = summary["predictions"]
    if quality["runs"]:
        head.append(f"\nreal runs: {quality['runs']}, median prediction error "
                    f"{100 * quality['median_error']:+.0f} %")
        if quality["recalibrate"]:
            head.append(f"\nRECALIBRATE: {quality['reason']}", style="bold red")
    table = Table(title=None, show_lines=False)
    for column in ("#", "configuration", "fixed", "per sim. s", f"predicted ({d:g} s)",
                   "interval", "spread", "n", "cold build +", "peak RSS", "vs default"):
        table.add_column(column, justify="left" if column == "configuration" else "right",
                         no_wrap=True)
    for row in summary["ranking"]:
        low, high = row["interval_s"]
        table.add_row(str(row["rank"]), row["config"], _fmt_seconds(row["fixed_s"]),
                      _fmt_seconds(row["rate_s_per_s"]), _fmt_seconds(row["predicted_s"]),
                      f"{low:.3g}–{high:.3g} s", f"±{100 * row['spread']:.1f} %",
                      str(row["samples"]), _fmt_seconds(row["cold_build_extra_s"]),
                      _fmt_mib(row["peak_rss"]),
                      f"{row['speedup_vs_default']:.2f}×" if row["speedup_vs_default"] else "-")
    out: list[Any] = [head, table]
    if summary["rejected"]:
        rejected = Table(title="rejected configurations")
        rejected.add_column("configuration")
        rejected.add_column("status")
        rejected.add_column("reason")
        for row in summary["rejected"]:
            rejected.add_row(row["config"], row["status"], _plain(row["reason"] or ""))
        out.append(rejected)
    return out


def _table(title: str, columns: list[str], rows: list[list[str]]) -> Any:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right", no_wrap=True)
    for row in rows:
        table.add_row(*(_plain(cell) for cell in row))
    return table


def _plain(text: str) -> Any:
    """``text`` as rich shows it verbatim: not markup, so that a script's digest
    (``mine.py [f45c4512]``) or a path with brackets is not read as a style and dropped."""
    from rich.text import Text

    return Text(text)


def _fmt(x: float | None, spec: str, suffix: str = "") -> str:
    return "-" if x is None else f"{x:{spec}}{suffix}"


def views_renderables(profile: Profile, duration: float | None = None) -> list[Any]:
    """The monitoring views: thread scaling, runtime vs standalone, float32 vs float64."""
    from autotune.views import device_rows, precision_rows, thread_scaling_rows

    out: list[Any] = []
    scaling = thread_scaling_rows(profile)
    if scaling:
        out.append(_table("thread scaling (cpp_standalone)",
                          ["threads", "configuration", "per sim. s", "speed-up", "ideal",
                           "efficiency", "peak RSS", "memory / thread"],
                          [[str(r["threads"]), r["config"], _fmt(r["rate_s_per_s"], ".3g", " s"),
                            _fmt(r["speedup"], ".2f", "×"), _fmt(r["ideal_speedup"], ".0f", "×"),
                            _fmt(r["efficiency"] and 100 * r["efficiency"], ".0f", " %"),
                            _fmt_mib(r["peak_rss"]), _fmt_mib(r["memory_per_thread"])]
                           for r in scaling]))
    devices = device_rows(profile, duration)
    if devices:
        out.append(_table("runtime vs cpp_standalone (best of each)",
                          ["device", "configuration", "fixed", "per sim. s", "predicted",
                           "peak RSS"],
                          [[r["device"], r["config"], _fmt_seconds(r["fixed_s"]),
                            _fmt_seconds(r["rate_s_per_s"]), _fmt_seconds(r["predicted_s"]),
                            _fmt_mib(r["peak_rss"])] for r in devices]))
    precision = precision_rows(profile, duration)
    if precision:
        out.append(_table("float32 vs float64",
                          ["configuration", "float64", "float32", "float32 speed-up",
                           "deviation from reference", "float32 valid?"],
                          [[r["config"], _fmt_seconds(r["float64_predicted_s"]),
                            _fmt_seconds(r["float32_predicted_s"]),
                            _fmt(r["float32_speedup"], ".2f", "×"),
                            _fmt(r["float32_deviation"] and 100 * r["float32_deviation"], ".2f",
                                 " %"), r["float32_status"]] for r in precision]))
    return out


def overview_renderable(profiles: Sequence[Profile], duration: float | None = None) -> Any:
    """One table row per profile, for ``show`` on a host with several (a suite's members):
    the best configuration, its predicted time, its speed against Brian2's default and what
    OpenMP threads did to the standalone loop."""
    from autotune.views import thread_scaling_rows

    rows = []
    for profile in profiles:
        summary = profile_summary(profile, duration)
        scaling = thread_scaling_rows(profile)
        threaded = scaling[-1] if len(scaling) > 1 else None
        flags = "UNDER LOAD" if profile.busy else ""
        rows.append([workload_label(profile), summary["best_key"] or "no valid configuration",
                     f"{summary['target_duration']:g} s: "
                     f"{_fmt_seconds(summary['best_predicted_s'])}",
                     _fmt(summary["speedup_vs_default"], ".2f", "×"),
                     f"{threaded['threads']}: {threaded['speedup']:.2f}×"
                     if threaded and threaded["speedup"] else "-",
                     profile.created_at[:16].replace("T", " "), flags])
    return _table("this host's calibrations (`show --workload NAME --size N` for one in full)",
                  ["workload", "best", "predicted", "vs default", "threads: loop speed-up",
                   "calibrated (UTC)", "note"], rows)


def compare_renderables(rows: list[dict[str, Any]], duration: float) -> list[Any]:
    """One table per workload comparing machines."""
    out: list[Any] = []
    for signature in dict.fromkeys(r["workload_signature"] for r in rows):
        group = [r for r in rows if r["workload_signature"] == signature]
        name = group[0]["workload"] + (f" (size {group[0]['size']})" if group[0]["size"] else "")
        out.append(_table(
            f"{name}: {duration:g} s simulated",
            ["host", "best configuration", "predicted", "sim. s per wall s", "vs default",
             "vs reference"],
            [[r["host"] + (" *" if r["reference"] else "") + (" (busy)" if r["busy"] else ""),
              r["best"] or "-", _fmt_seconds(r["predicted_s"]), _fmt(r["throughput"], ".2f"),
              _fmt(r["speedup_vs_default"], ".2f", "×"),
              _fmt(r["relative_to_reference"], ".2f", "×")] for r in group]))
    return out


def calibration_progress(console: Any, budget_trials: int | None) -> tuple[Any, Any]:
    """(a rich status or None, a progress callback for :func:`autotune.calibrate`): a live
    status line on a terminal, one line per configuration otherwise."""
    from rich.markup import escape
    from rich.status import Status

    status = Status("starting calibration", console=console) if console.is_terminal else None
    state: dict[str, Any] = {"best": None, "failures": 0, "done": 0}

    def on_event(event: str, data: dict[str, Any]) -> None:
        total = f" of {budget_trials}" if budget_trials else ""
        if event == "member":  # calibrate --suite: a new model, so a new best
            state.update(best=None, failures=0, done=0,
                          member=f"{data['name']} {data['size']} ({data['number']} of "
                                 f"{data['count']})")
            kept = data["kept"]
            console.print(escape(f"{state['member']}: ") + (
                "already calibrated on this host, kept" if kept else "calibrating"))
        elif event == "trial" and status is not None:
            what = ("confirming" if data.get("purpose") == "confirm"
                    else f"config {state['done'] + 1}{total}")
            status.update((escape(f"{state['member']}, ") if state.get("member") else "")
                          + f"{what}: {data['config'].key}, {data['duration']:g} s simulated"
                          + (f" — best so far {state['best'][0]} ({state['best'][1]:.2f} s)"
                             if state["best"] else "")
                          + (f" — {state['failures']} failed" if state["failures"] else ""))
        elif event == "confirm":
            console.print(f"  confirming, in interleaved rounds, the {len(data['contenders'])} "
                          "configurations closest to the best: "
                          + ", ".join(c.key for c in data["contenders"]))
        elif event == "evaluated":
            evaluation = data["evaluation"]
            state["done"] = data["done"]
            if evaluation.objective is None:
                state["failures"] += 1
                verdict = f"[red]failed[/red]: {escape(str(evaluation.reason))}"
            elif not evaluation.feasible:
                verdict = f"[yellow]invalid[/yellow]: {escape(str(evaluation.reason))}"
            else:
                verdict = f"predicted {evaluation.objective:.2f} s"
                if state["best"] is None or evaluation.objective < state["best"][1]:
                    state["best"] = (evaluation.config.key, evaluation.objective)
            console.print(f"  {data['done']}{total} {evaluation.config.key}: {verdict}")

    return status, on_event
