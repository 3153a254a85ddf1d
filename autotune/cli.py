"""The ``brian2-autotune`` command line: a thin shell over the Python API.

Every command parses its arguments, calls the library, and prints either rich output or (with
``--json``) one JSON document on stdout. Library errors are caught once, in :func:`main`, and
become one line on stderr with exit code 2 (bad input) or 1 (failure); Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from autotune.costmodel import PROBE_LOOP
from autotune.errors import AutotuneError, BadInput
from autotune.search import DEFAULT_TRIALS

logger = logging.getLogger("autotune.cli")
EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _duration(text: str) -> float:
    from autotune.durations import as_seconds
    from autotune.errors import ConfigError

    try:
        return as_seconds(text)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _add_db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", metavar="URL",
                        help="SQLAlchemy URL or SQLite path of the store "
                             "(default: $BRIAN2_AUTOTUNE_DB or the user data directory)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = _Parser(prog="brian2-autotune",
                     description="Calibrate this host for Brian2 and run scripts in the fastest "
                                 "valid configuration.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("fingerprint", help="show this host's fingerprint")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")

    p = sub.add_parser("calibrate", help="measure configurations and store this host's profile")
    p.add_argument("--workload", default="cuba",
                   help="built-in (cuba, coba-hh, stdp) or a .py file defining simulate(duration)")
    p.add_argument("--size", type=_positive_int, help="size of a built-in workload")
    p.add_argument("--trials", type=_positive_int,
                   help=f"configurations to measure (default {DEFAULT_TRIALS})")
    p.add_argument("--minutes", type=_positive_float, help="wall-clock budget in minutes")
    p.add_argument("--target-duration", type=_positive_float, default=10.0, metavar="S",
                   help="simulated seconds of the runs to optimise for (default 10)")
    p.add_argument("--tolerance", type=_positive_float, default=0.05, metavar="F",
                   help="relative tolerance of observables vs. the float64 reference (0.05)")
    p.add_argument("--durations", type=_positive_float, nargs="+", metavar="S",
                   default=[0.1, 0.4], help="simulated seconds of calibration runs (0.1 0.4)")
    p.add_argument("--max-threads", type=_non_negative_int,
                   help="most OpenMP threads to try (default: memory-aware usable CPUs)")
    p.add_argument("--trial-timeout", type=_positive_float, default=900.0, metavar="S",
                   help="seconds before a trial is killed (default 900)")
    p.add_argument("--seed", type=int, default=0, help="sampler seed")
    p.add_argument("--targets", nargs="+", choices=["numpy", "cython", "cpp"],
                   default=["numpy", "cython", "cpp"],
                   help="code-generation targets to try (cpp = cpp_standalone)")
    p.add_argument("--max-repeats", type=_non_negative_int, default=2, metavar="N",
                   help="extra repeats of a configuration while its timings disagree (2)")
    p.add_argument("--confirm-top", type=_non_negative_int, default=3, metavar="N",
                   help="after the search, re-measure at most N configurations within 25 %% of "
                        "the best (or tied with it) in interleaved rounds (3; 0: no confirmation)")
    p.add_argument("--confirm-rounds", type=_non_negative_int, nargs=2, default=[2, 6],
                   metavar=("MIN", "MAX"),
                   help="confirmation rounds: every contender runs MIN; those that might still "
                        "be more than 5 %% faster than the leader go on up to MAX (2 6)")
    p.add_argument("--probe-loop", type=_non_negative_float, default=PROBE_LOOP, metavar="S",
                   help="run a configuration whose loop is too short to time once more, long "
                        f"enough for an S-second loop ({PROBE_LOOP}; 0: never)")
    p.add_argument("--resume", action="store_true",
                   help="continue this host's interrupted calibration of the workload")
    _add_db(p)
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")

    p = sub.add_parser("show", help="show this host's profiles")
    p.add_argument("--workload", help="only this workload (name or file)")
    p.add_argument("--size", type=_positive_int, help="size of a built-in workload")
    p.add_argument("--duration", type=_positive_float, metavar="S",
                   help="rank for this run length instead of the calibration's target")
    p.add_argument("--plot", metavar="FILE.png", type=Path,
                   help="also draw thread scaling and the ranking (one PNG per workload: "
                        "FILE-<workload>.png when there are several)")
    _add_db(p)
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")

    p = sub.add_parser("export", help="write this host's profiles to a JSON file")
    p.add_argument("--host", default="current", metavar="current|FP",
                   help="the host to export (default: this one)")
    p.add_argument("-o", "--output", type=Path, metavar="FILE",
                   help="default: profiles/<hostname>-<fingerprint>.json")
    _add_db(p)

    p = sub.add_parser("import", help="load exported profiles into the store")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    _add_db(p)
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")

    p = sub.add_parser("compare", help="compare machines' profiles side by side")
    p.add_argument("--workload", help="only this workload (name or file)")
    p.add_argument("--size", type=_positive_int, help="size of a built-in workload")
    p.add_argument("--hosts", nargs="+", metavar="FP",
                   help="fingerprints (or prefixes) to compare (default: all in the store)")
    p.add_argument("--reference", metavar="FP", help="host the others are compared with "
                   "(default: this host when present)")
    p.add_argument("--duration", type=_positive_float, default=10.0, metavar="S",
                   help="simulated seconds of the run to compare (10)")
    p.add_argument("--plot", metavar="FILE.png", type=Path, help="also draw a PNG")
    _add_db(p)
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")

    p = sub.add_parser("run", help="apply the profile, then run an unmodified Brian2 script")
    p.add_argument("--device", choices=["runtime", "cpp_standalone"], help="override the device")
    p.add_argument("--num-threads", type=int, metavar="N",
                   help="override OpenMP threads (implies cpp_standalone)")
    p.add_argument("--precision", choices=["float64", "float32"], help="override precision")
    p.add_argument("--no-profile", action="store_true", help="ignore stored profiles")
    p.add_argument("--workload", help="use the profile of this workload (default: newest)")
    p.add_argument("--duration", type=_duration, metavar="T",
                   help="simulated time the script runs, e.g. 10, 10s, 500ms (picks the best "
                        "config for it)")
    _add_db(p)
    p.add_argument("script", help="the Brian2 script")
    p.add_argument("args", nargs=argparse.REMAINDER, help="arguments passed to the script")
    return parser


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal:  # a pipe or a file: wide enough that tables do not wrap
        console = Console(stderr=stderr, highlight=False, width=160)
    return console


def _print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")


def cmd_fingerprint(args: argparse.Namespace) -> int:
    """``fingerprint``: print the fingerprint and its components."""
    from autotune.host import collect_host

    host = collect_host()
    if args.json:
        _print_json(host.to_dict())
        return EXIT_OK
    console = _console()
    console.print(f"[bold]{host.fingerprint}[/bold]")
    for key, value in host.components.items():
        console.print(f"  {key:15} {value}")
    return EXIT_OK


def _progress_printer(args: argparse.Namespace, budget_trials: int | None) -> Any:
    """A progress callback: a live rich status line on a terminal, one line per configuration
    otherwise; nothing with --json."""
    console = _console(stderr=True)
    if args.json:
        return None, None
    from rich.status import Status

    status = Status("starting calibration", console=console) if console.is_terminal else None
    state: dict[str, Any] = {"best": None, "failures": 0, "done": 0}

    def on_event(event: str, data: dict[str, Any]) -> None:
        total = f" of {budget_trials}" if budget_trials else ""
        if event == "trial" and status is not None:
            what = ("confirming" if data.get("purpose") == "confirm"
                    else f"config {state['done'] + 1}{total}")
            status.update(f"{what}: {data['config'].key}, {data['duration']:g} s simulated"
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
                verdict = f"[red]failed[/red]: {evaluation.reason}"
            elif not evaluation.feasible:
                verdict = f"[yellow]invalid[/yellow]: {evaluation.reason}"
            else:
                verdict = f"predicted {evaluation.objective:.2f} s"
                if state["best"] is None or evaluation.objective < state["best"][1]:
                    state["best"] = (evaluation.config.key, evaluation.objective)
            console.print(f"  {data['done']}{total} {evaluation.config.key}: {verdict}")

    return status, on_event


def cmd_calibrate(args: argparse.Namespace) -> int:
    """``calibrate``: run the search and store the profile, then show it."""
    from autotune.calibrate import CalibrationSettings, calibrate
    from autotune.report import profile_renderables, profile_summary
    from autotune.search import Budget

    trials = args.trials if args.trials or args.minutes else DEFAULT_TRIALS
    settings = CalibrationSettings(
        target_duration=args.target_duration, tolerance=args.tolerance,
        durations=tuple(args.durations), budget=Budget(trials=trials, minutes=args.minutes),
        trial_timeout=args.trial_timeout, max_threads=args.max_threads, seed=args.seed,
        targets=tuple(args.targets), max_repeats=args.max_repeats,
        confirm_top=args.confirm_top, confirm_rounds=args.confirm_rounds[0],
        confirm_max_rounds=args.confirm_rounds[1], probe_loop=args.probe_loop or None)
    status, on_event = _progress_printer(args, trials)
    kwargs = {"size": args.size, "settings": settings, "db": args.db, "resume": args.resume,
              "progress": on_event}
    if status is not None:
        with status:
            outcome = calibrate(args.workload, **kwargs)
    else:
        outcome = calibrate(args.workload, **kwargs)
    if args.json:
        _print_json({"calibration_id": outcome.calibration_id, "measured": outcome.measured,
                     "resumed": outcome.resumed, "load": outcome.load,
                     "profile": profile_summary(outcome.profile)})
        return EXIT_OK
    console = _console()
    for renderable in profile_renderables(outcome.profile):
        console.print(renderable)
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    """``show``: this host's profiles, ranked."""
    from autotune.host import collect_host
    from autotune.report import profile_renderables, profile_summary, views_renderables
    from autotune.store import open_store
    from autotune.views import device_rows, precision_rows, thread_scaling_rows
    from autotune.workloads import resolve_workload

    host = collect_host()
    signature = resolve_workload(args.workload, args.size).signature if args.workload else None
    with open_store(args.db) as store:
        profiles = [p for p in store.profiles(host.fingerprint)
                    if signature is None or p.workload.get("signature") == signature]
        runs = store.runs(host.fingerprint)
    plots = _plot_profiles(profiles, args.plot, args.duration) if args.plot else []
    if args.json:
        _print_json({"fingerprint": host.fingerprint, "plots": [str(p) for p in plots],
                     "profiles": [{**profile_summary(p, args.duration, runs),
                                   "thread_scaling": thread_scaling_rows(p),
                                   "devices": device_rows(p, args.duration),
                                   "precision": precision_rows(p, args.duration)}
                                  for p in profiles]})
        return EXIT_OK
    console = _console()
    if not profiles:
        console.print(f"no profile for this host ({host.fingerprint}); run "
                      "`brian2-autotune calibrate` first")
        return EXIT_OK
    for profile in profiles:
        for renderable in [*profile_renderables(profile, args.duration, runs),
                           *views_renderables(profile, args.duration)]:
            console.print(renderable)
    for path in plots:
        console.print(f"plot written to {path}")
    return EXIT_OK


def _plot_profiles(profiles: list[Any], path: Path, duration: float | None) -> list[Path]:
    from autotune.plots import plot_profile

    if len(profiles) == 1:
        return [plot_profile(profiles[0], path, duration)]
    return [plot_profile(p, path.with_name(f"{path.stem}-{p.workload['name']}-"
                                           f"{p.workload['signature'][:6]}{path.suffix}"),
                         duration) for p in profiles]


def cmd_export(args: argparse.Namespace) -> int:
    """``export``: write a host's profiles as a versioned JSON document."""
    from autotune.exchange import build_export, default_export_path
    from autotune.host import HostFingerprint, collect_host
    from autotune.store import open_store

    with open_store(args.db) as store:
        if args.host == "current":
            host = collect_host()
        else:
            matches = [h for h in store.hosts() if h["fingerprint"].startswith(args.host)]
            if len(matches) != 1:
                raise BadInput(f"--host {args.host!r} matches {len(matches)} stored hosts; give "
                               "a longer fingerprint (see `brian2-autotune compare`)")
            host = HostFingerprint(matches[0]["components"], matches[0]["info"])
        profiles = store.profiles(host.fingerprint)
        summaries = store.trial_summaries(host.fingerprint)
    if not profiles:
        raise BadInput(f"no profile stored for host {host.fingerprint}; calibrate first")
    path = args.output or default_export_path(host)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(build_export(host, profiles, summaries), indent=1) + "\n")
    _console().print(f"exported {len(profiles)} profile(s) of {host.fingerprint} to {path}")
    return EXIT_OK


def cmd_import(args: argparse.Namespace) -> int:
    """``import``: validate every file first, then load them; re-importing changes nothing."""
    from autotune.exchange import read_export
    from autotune.store import open_store

    documents = [(path, *read_export(path)) for path in args.files]  # all valid, or nothing
    results = []
    with open_store(args.db) as store:
        for path, host, profiles in documents:
            added = store.import_profiles(host, profiles)
            results.append({"file": str(path), "fingerprint": host.fingerprint,
                            "profiles": len(profiles), "added": added})
    if args.json:
        _print_json({"imported": results})
        return EXIT_OK
    console = _console()
    for r in results:
        console.print(f"{r['file']}: host {r['fingerprint']}, {r['added']} of {r['profiles']} "
                      "profile(s) added" + (" (already imported)" if not r["added"] else ""))
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    """``compare``: machines side by side, from the store (imported files included)."""
    from autotune.host import collect_host
    from autotune.report import compare_renderables
    from autotune.store import open_store
    from autotune.views import compare_rows
    from autotune.workloads import resolve_workload

    signature = resolve_workload(args.workload, args.size).signature if args.workload else None
    with open_store(args.db) as store:
        hosts = {h["fingerprint"]: h for h in store.hosts()}
        profiles = store.profiles()
    wanted = args.hosts or []
    for prefix in wanted:
        if not any(fp.startswith(prefix) for fp in hosts):
            raise BadInput(f"no stored host matches {prefix!r}; import its export first")
    profiles = [p for p in profiles
                if (signature is None or p.workload.get("signature") == signature)
                and (not wanted or any(p.fingerprint.startswith(w) for w in wanted))]
    reference = args.reference
    if reference:
        found = [fp for fp in hosts if fp.startswith(reference)]
        if len(found) != 1:
            raise BadInput(f"--reference {reference!r} matches {len(found)} stored hosts")
        reference = found[0]
    else:
        current = collect_host().fingerprint
        reference = current if current in hosts else None
    rows = compare_rows(profiles, hosts, args.duration, reference)
    plot = None
    if args.plot:
        from autotune.plots import plot_comparison

        plot = plot_comparison(rows, args.plot, args.duration)
    if args.json:
        _print_json({"duration": args.duration, "reference": reference, "rows": rows,
                     "plot": str(plot) if plot else None})
        return EXIT_OK
    console = _console()
    if not rows:
        console.print("no profiles to compare; calibrate, or import other machines' exports")
    for renderable in compare_renderables(rows, args.duration):
        console.print(renderable)
    if plot:
        console.print(f"plot written to {plot}")
    return EXIT_OK


#: Set when ``run`` starts itself again under runtime (see :func:`cmd_run`); holds the reason.
_RUNTIME_RETRY_ENV = "BRIAN2_AUTOTUNE_RUNTIME_RETRY"


def cmd_run(args: argparse.Namespace) -> int:
    """``run``: analyse the script, apply a configuration, run it, log what happened.

    A script that turns out to read state before ``run()`` under cpp_standalone (what the
    analysis could not see) failed before anything was simulated or shown; this process then
    starts again, same command line, with standalone ruled out.
    """
    import os

    from autotune.apply import apply
    from autotune.errors import ConfigError, NeedsRuntime
    from autotune.paths import script_owner
    from autotune.runner import execute_script
    from autotune.runrecord import record_run
    from autotune.scriptcheck import analyse_script

    analysis = analyse_script(args.script)
    retry_reason = os.environ.pop(_RUNTIME_RETRY_ENV, None)
    standalone_ok, reasons = analysis.standalone_ok, list(analysis.reasons)
    if retry_reason is not None:
        standalone_ok, reasons = False, [*reasons, retry_reason]
    if analysis.own_device:
        logger.info("the script chooses its own device/target: applying nothing")
        applied = None
    else:
        if not standalone_ok:
            logger.info("cpp_standalone cannot serve %s: %s", args.script, "; ".join(reasons))
        applied = apply(args.workload, args.duration, args.db, device=args.device,
                        threads=args.num_threads, precision=args.precision,
                        use_profile=not args.no_profile, standalone_ok=standalone_ok,
                        cython_ok=analysis.cython_ok, owner=script_owner(args.script),
                        record=False, why_not_standalone="; ".join(reasons))
        logger.info("applied %s [%s: %s]%s", applied.config.describe(), applied.source,
                    applied.reason, f", predicted {applied.predicted:.2f} s"
                    if applied.predicted else "")
    standalone = applied is not None and applied.config.device == "cpp_standalone"
    try:
        report = execute_script(args.script, args.args, hold_until_run=standalone)
    except NeedsRuntime as e:
        if args.device == "cpp_standalone" or args.num_threads is not None:
            raise ConfigError(f"{e}; drop --device cpp_standalone/--num-threads") from e
        logger.info("%s: nothing was simulated or shown; running it again under runtime", e)
        sys.stdout.flush()
        sys.stderr.flush()
        os.environ[_RUNTIME_RETRY_ENV] = str(e).split(", which")[0]
        os.execv(sys.executable, [sys.executable, "-m", "autotune.cli", *args.argv])
    logger.info("run finished in %.2f s (build/set-up %s, simulation loop %s), peak memory "
                "%.0f MiB", report.wall,
                f"{report.build:.2f} s" if report.build is not None else "-",
                f"{report.loop:.2f} s" if report.loop is not None else "-",
                report.peak_rss / 2**20)
    if applied is not None:
        record = record_run(applied, str(Path(args.script).resolve()), report.exit_code)
        if record is not None and record.total_error is not None:
            logger.info("predicted %.2f s for the whole run, took %.2f s (%+.0f %%)",
                        record.predicted_total, record.actual_total, 100 * record.total_error)
    return report.exit_code


COMMANDS = {"fingerprint": cmd_fingerprint, "calibrate": cmd_calibrate, "show": cmd_show,
            "run": cmd_run, "export": cmd_export, "import": cmd_import, "compare": cmd_compare}


def _setup_logging(verbose: bool) -> None:
    from rich.logging import RichHandler

    handler = RichHandler(console=_console(stderr=True), show_time=False, show_path=False,
                          markup=False)
    logging.basicConfig(level=logging.WARNING, handlers=[handler], format="%(message)s")
    logging.getLogger("autotune").setLevel(logging.DEBUG if verbose else logging.INFO)


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: stop the running trial, keep every completed one."""


def _raise_terminated(signum: int, _frame: Any) -> None:
    raise Terminated(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    _setup_logging(args.verbose)
    if args.command != "run":  # a user script keeps Python's own signal behaviour
        signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        return COMMANDS[args.command](args)
    except AutotuneError as e:
        sys.stderr.write(f"brian2-autotune: error: {e}\n")
        return e.exit_code if not isinstance(e, BadInput) else EXIT_BAD_INPUT
    except KeyboardInterrupt as e:
        if args.command == "calibrate":
            sys.stderr.write("brian2-autotune: interrupted; completed trials are saved, "
                             "continue with `brian2-autotune calibrate --resume`\n")
        else:
            sys.stderr.write("brian2-autotune: interrupted\n")
        return EXIT_TERMINATED if isinstance(e, Terminated) else EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
