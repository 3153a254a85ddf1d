"""PNG plots (matplotlib, the optional ``plot`` extra): thread scaling, ranking, machines.

Drawn from the same rows as the tables (:mod:`autotune.views`, :mod:`autotune.report`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from autotune.errors import BadInput
from autotune.profile import Profile
from autotune.report import ranking_rows, workload_label
from autotune.views import thread_scaling_rows


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise BadInput("plots need matplotlib: pip install 'brian2-autotune[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise BadInput(f"plot file must end in .png, got {path}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def plot_profile(profile: Profile, path: Path, duration: float | None = None) -> Path:
    """Thread scaling (with the ideal line) and the configuration ranking with error bars."""
    plt = _pyplot()
    d = profile.target_duration if duration is None else duration
    scaling = thread_scaling_rows(profile)
    ranking = ranking_rows(profile, d)
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5),
                                      gridspec_kw={"width_ratios": [1, 1.6]})
    if scaling:
        threads = [max(r["threads"], 1) for r in scaling]
        left.plot(threads, [r["speedup"] for r in scaling], "o-", label="measured")
        left.plot(threads, [r["ideal_speedup"] for r in scaling], "--", color="grey",
                  label="ideal (linear)")
        for row, x in zip(scaling, threads, strict=True):
            if row["threads"] == 0:
                left.annotate("no OpenMP", (x, row["speedup"]), textcoords="offset points",
                              xytext=(5, -12), fontsize=8)
        left.set_xticks(sorted(set(threads)))
        left.legend()
    else:
        left.text(0.5, 0.5, "no cpp_standalone measurements", ha="center", va="center",
                  transform=left.transAxes)
    left.set_xlabel("OpenMP threads")
    left.set_ylabel("speed-up of the simulation loop (×)")
    left.set_title("cpp_standalone thread scaling")
    names = [r["config"] for r in ranking][::-1]
    values = [r["predicted_s"] for r in ranking][::-1]
    errors = [[r["predicted_s"] - r["interval_s"][0] for r in ranking][::-1],
              [r["interval_s"][1] - r["predicted_s"] for r in ranking][::-1]]
    right.barh(names, values, xerr=errors, color="tab:blue", capsize=3)
    right.set_xlabel(f"predicted wall time of a {d:g} s simulated run (s)")
    right.set_title("valid configurations, fastest on top")
    right.tick_params(axis="y", labelsize=8)
    fig.suptitle(f"{workload_label(profile)} on {profile.fingerprint}")
    return _save(fig, path)


def plot_comparison(rows: Sequence[dict[str, Any]], path: Path, duration: float) -> Path:
    """Predicted wall time of the best configuration per host, grouped by workload."""
    plt = _pyplot()
    workloads = sorted({f"{r['workload']} ({r['size']})" if r["size"] else str(r["workload"])
                        for r in rows})
    hosts = sorted({r["host"] for r in rows})
    fig, ax = plt.subplots(figsize=(max(6, 2.5 * len(workloads) * max(1, len(hosts)) / 2), 5))
    width = 0.8 / max(1, len(hosts))
    for h, host in enumerate(hosts):
        xs, ys, labels = [], [], []
        for w, workload in enumerate(workloads):
            for r in rows:
                label = f"{r['workload']} ({r['size']})" if r["size"] else str(r["workload"])
                if r["host"] == host and label == workload and r["predicted_s"]:
                    xs.append(w + h * width)
                    ys.append(r["predicted_s"])
                    labels.append(r["best"])
        bars = ax.bar(xs, ys, width=width, label=host)
        for bar, text, y in zip(bars, labels, ys, strict=True):
            centre = bar.get_x() + bar.get_width() / 2
            # the configuration inside its bar, the time on top: nothing overlaps the legend
            ax.text(centre, y * 0.03, text, ha="center", va="bottom", fontsize=8, rotation=90,
                    color="white")
            ax.text(centre, y, f"{y:.2f} s", ha="center", va="bottom", fontsize=8)
    ax.set_xticks([w + width * (len(hosts) - 1) / 2 for w in range(len(workloads))])
    ax.set_xticklabels(workloads)
    ax.set_ylabel(f"predicted wall time of a {duration:g} s simulated run (s)")
    ax.set_title("machines compared: best configuration per host")
    ax.set_ylim(0, max((r["predicted_s"] or 0 for r in rows), default=1) * 1.3)
    ax.legend(title="host", loc="upper right", fontsize=8)
    return _save(fig, path)


def plot_profiles(profiles: list[Any], path: Path, duration: float | None) -> list[Path]:
    """One PNG per profile: ``path`` itself for one, ``STEM-<workload>-<sig>.png`` for several."""
    if len(profiles) == 1:
        return [plot_profile(profiles[0], path, duration)]
    return [plot_profile(p, path.with_name(f"{path.stem}-{p.workload['name']}-"
                                           f"{p.workload['signature'][:6]}{path.suffix}"),
                         duration) for p in profiles]
