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
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from autotune.errors import AutotuneError, BadInput

logger = logging.getLogger("autotune.cli")
EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


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
    p.add_argument("--trials", type=_positive_int, help="configurations to measure (default 12)")
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
                   help="re-measure the best N configurations interleaved at the end (3)")
    p.add_argument("--resume", action="store_true",
                   help="continue this host's interrupted calibration of the workload")
    _add_db(p)
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")

    p = sub.add_parser("show", help="show this host's profiles")
    p.add_argument("--workload", help="only this workload (name or file)")
    p.add_argument("--size", type=_positive_int, help="size of a built-in workload")
    p.add_argument("--duration", type=_positive_float, metavar="S",
                   help="rank for this run length instead of the calibration's target")
    _add_db(p)
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")

    p = sub.add_parser("run", help="apply the profile, then run an unmodified Brian2 script")
    p.add_argument("--device", choices=["runtime", "cpp_standalone"], help="override the device")
    p.add_argument("--num-threads", type=int, metavar="N",
                   help="override OpenMP threads (implies cpp_standalone)")
    p.add_argument("--precision", choices=["float64", "float32"], help="override precision")
    p.add_argument("--no-profile", action="store_true", help="ignore stored profiles")
    p.add_argument("--workload", help="use the profile of this workload (default: newest)")
    p.add_argument("--duration", type=_positive_float, metavar="S",
                   help="simulated seconds the script runs (picks the best config for it)")
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
            console.print(f"  re-measuring the top {data['top']} configurations interleaved")
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

    trials = args.trials if args.trials or args.minutes else 12
    settings = CalibrationSettings(
        target_duration=args.target_duration, tolerance=args.tolerance,
        durations=tuple(args.durations), budget=Budget(trials=trials, minutes=args.minutes),
        trial_timeout=args.trial_timeout, max_threads=args.max_threads, seed=args.seed,
        targets=tuple(args.targets), max_repeats=args.max_repeats,
        confirm_top=args.confirm_top)
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
    from autotune.report import profile_renderables, profile_summary
    from autotune.store import open_store
    from autotune.workloads import resolve_workload

    host = collect_host()
    signature = resolve_workload(args.workload, args.size).signature if args.workload else None
    with open_store(args.db) as store:
        profiles = [p for p in store.profiles(host.fingerprint)
                    if signature is None or p.workload.get("signature") == signature]
        runs = store.runs(host.fingerprint)
    if args.json:
        _print_json({"fingerprint": host.fingerprint,
                     "profiles": [profile_summary(p, args.duration, runs) for p in profiles]})
        return EXIT_OK
    console = _console()
    if not profiles:
        console.print(f"no profile for this host ({host.fingerprint}); run "
                      "`brian2-autotune calibrate` first")
        return EXIT_OK
    for profile in profiles:
        for renderable in profile_renderables(profile, args.duration, runs):
            console.print(renderable)
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    """``run``: analyse the script, apply a configuration, run it, log what happened."""
    from autotune.apply import apply, record_run
    from autotune.paths import script_owner
    from autotune.runner import analyse_script, execute_script

    analysis = analyse_script(args.script)
    if analysis.own_device:
        logger.info("the script chooses its own device/target: applying nothing")
        applied = None
    else:
        if not analysis.standalone_ok:
            logger.info("cpp_standalone cannot serve %s: %s", args.script,
                        "; ".join(analysis.reasons))
        applied = apply(args.workload, args.duration, args.db, device=args.device,
                        threads=args.num_threads, precision=args.precision,
                        use_profile=not args.no_profile, standalone_ok=analysis.standalone_ok,
                        cython_ok=analysis.cython_ok, owner=script_owner(args.script),
                        record=False)
        logger.info("applied %s [%s: %s]%s", applied.config.describe(), applied.source,
                    applied.reason, f", predicted {applied.predicted:.2f} s"
                    if applied.predicted else "")
    report = execute_script(args.script, args.args)
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
            "run": cmd_run}


def _setup_logging(verbose: bool) -> None:
    from rich.logging import RichHandler

    handler = RichHandler(console=_console(stderr=True), show_time=False, show_path=False,
                          markup=False)
    logging.basicConfig(level=logging.WARNING, handlers=[handler], format="%(message)s")
    logging.getLogger("autotune").setLevel(logging.DEBUG if verbose else logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code."""
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    try:
        return COMMANDS[args.command](args)
    except AutotuneError as e:
        sys.stderr.write(f"brian2-autotune: error: {e}\n")
        return e.exit_code if not isinstance(e, BadInput) else EXIT_BAD_INPUT
    except KeyboardInterrupt:
        sys.stderr.write("brian2-autotune: interrupted; completed trials are saved, continue "
                         "with `calibrate --resume`\n")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
