"""The ``brian2-autotune`` command line: a thin shell over the Python API.

Every command parses its arguments, calls the library, and prints either rich output or (with
``--json``) one JSON document on stdout. Library errors are caught once, in :func:`main`, and
become one line on stderr with exit code 2 (bad input) or 1 (failure); Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import shlex
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

from autotune.cliargs import parse_arguments
from autotune.errors import AutotuneError, BadInput
from autotune.search import DEFAULT_TRIALS

logger = logging.getLogger("autotune.cli")
EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal:  # a pipe or a file: wide enough that tables do not wrap
        console = Console(stderr=stderr, highlight=False, width=160)
    return console


def _say(console: Any, message: str) -> None:
    """Print a plain message as one line, however long, and as written: a path split over
    lines cannot be copied or matched, and ``[...]`` in a path is not rich markup."""
    console.print(message, soft_wrap=True, markup=False)


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
        _say(console, f"  {key:15} {value}")
    return EXIT_OK


def cmd_calibrate(args: argparse.Namespace) -> int:
    """``calibrate``: run the search and store the profile, then show it."""
    from autotune.calibrate import CalibrationSettings, calibrate
    from autotune.report import calibration_progress, profile_renderables, profile_summary
    from autotune.search import Budget

    trials = args.trials if args.trials or args.minutes else DEFAULT_TRIALS
    settings = CalibrationSettings(
        target_duration=args.target_duration, tolerance=args.tolerance,
        durations=tuple(args.durations), budget=Budget(trials=trials, minutes=args.minutes),
        trial_timeout=args.trial_timeout, max_threads=args.max_threads, seed=args.seed,
        targets=tuple(args.targets), max_repeats=args.max_repeats,
        confirm_top=args.confirm_top, confirm_within=args.confirm_within,
        confirm_rounds=args.confirm_rounds[0],
        confirm_max_rounds=args.confirm_rounds[1], probe_loop=args.probe_loop or None,
        heartbeat=args.heartbeat, pgo=args.pgo)
    if args.suite:
        return _calibrate_suite(args, settings)
    status, on_event = (None, None) if args.json else calibration_progress(
        _console(stderr=True), trials)
    kwargs = {"size": args.size, "settings": settings, "db": args.db, "resume": args.resume,
              "progress": on_event}
    with status if status is not None else contextlib.nullcontext():
        outcome = calibrate(args.workload, **kwargs)
    if args.json:
        _print_json({"calibration_id": outcome.calibration_id, "measured": outcome.measured,
                     "resumed": outcome.resumed, "joined": outcome.joined,
                     "load": outcome.load, "profile": profile_summary(outcome.profile)
                     if outcome.profile else None})
        return EXIT_OK
    console = _console()
    if outcome.profile is None:
        console.print(f"this node measured {outcome.measured} configuration(s) of calibration "
                      f"{outcome.calibration_id}, shared with other nodes; another node "
                      "confirms the finalists and writes the profile (`brian2-autotune show` "
                      "once it is done)")
        return EXIT_OK
    for renderable in profile_renderables(outcome.profile):
        console.print(renderable)
    return EXIT_OK


def _calibrate_suite(args: argparse.Namespace, settings: Any) -> int:
    """``calibrate --suite``: every member not yet calibrated, then what each concluded."""
    from autotune.report import calibration_progress, profile_summary
    from autotune.suite import SUITE, calibrate_suite, parse_members

    if args.workload != "cuba" or args.size is not None or args.resume:
        raise BadInput("--suite calibrates its own members: drop --workload, --size and "
                       "--resume (choose members with --suite-members NAME:SIZE ...)")
    members = parse_members(args.suite_members) if args.suite_members else list(SUITE)
    status, on_event = (None, None) if args.json else calibration_progress(
        _console(stderr=True), 4)
    started = time.perf_counter()
    with status if status is not None else contextlib.nullcontext():
        profiles = calibrate_suite(settings, members=members, db=args.db, progress=on_event)
    seconds = time.perf_counter() - started
    if args.json:
        _print_json({"seconds": seconds, "members": [profile_summary(p) for p in profiles]})
        return EXIT_OK
    console = _console()
    console.print(f"suite of {len(profiles)} models calibrated in {seconds:.0f} s; scripts "
                  "never calibrated are now predicted from it")
    for profile in profiles:
        best = profile.best()
        console.print(f"  {profile.workload['name']} {profile.workload.get('size')}: "
                      f"{best.config.describe() if best else 'nothing valid'}")
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    """``show``: this host's profiles, ranked."""
    from autotune.cache import cache_line, cache_summary, cache_usage
    from autotune.host import collect_host
    from autotune.paths import default_cache_root
    from autotune.plots import plot_profiles
    from autotune.report import (
        overview_renderable,
        profile_renderables,
        profile_summary,
        views_renderables,
    )
    from autotune.scriptreport import (
        precision_check_rows,
        precision_checks_renderable,
        script_rows,
        scripts_renderable,
        suite_line,
        suite_summary,
    )
    from autotune.store import open_store
    from autotune.views import device_rows, precision_rows, thread_scaling_rows
    from autotune.workloads import resolve_workload

    host = collect_host()
    signature = resolve_workload(args.workload, args.size).signature if args.workload else None
    with open_store(args.db) as store:
        profiles = [p for p in store.profiles(host.fingerprint)
                    if signature is None or p.workload.get("signature") == signature]
        runs = store.runs(host.fingerprint)
        checks = precision_check_rows(store.precision_checks())
    plots = plot_profiles(profiles, args.plot, args.duration) if args.plot else []
    if args.json:
        _print_json({"fingerprint": host.fingerprint, "plots": [str(p) for p in plots],
                     "profiles": [{**profile_summary(p, args.duration, runs),
                                   "thread_scaling": thread_scaling_rows(p),
                                   "devices": device_rows(p, args.duration),
                                   "precision": precision_rows(p, args.duration)}
                                  for p in profiles],
                     "scripts": script_rows(runs), "float32_checks": checks,
                     "suite": suite_summary(profiles),
                     "cache": cache_summary(cache_usage(default_cache_root()))})
        return EXIT_OK
    console = _console()
    if not profiles:
        console.print(f"no profile for this host ({host.fingerprint}); run "
                      "`brian2-autotune calibrate` first")
        return EXIT_OK
    if len(profiles) > 1 and not args.workload:
        console.print(overview_renderable(profiles, args.duration))
    else:
        for profile in profiles:
            for renderable in [*profile_renderables(profile, args.duration, runs),
                               *views_renderables(profile, args.duration)]:
                console.print(renderable)
    for table in (scripts_renderable(script_rows(runs)), precision_checks_renderable(checks)):
        if table is not None:
            console.print(table)
    _say(console, suite_line(suite_summary(profiles)))
    _say(console, cache_line(cache_usage(default_cache_root())))
    for path in plots:
        _say(console, f"plot written to {path}")
    return EXIT_OK


def cmd_clean(args: argparse.Namespace) -> int:
    """``clean``: remove the build cache (or only the profile-guided builds' profiles)."""
    from autotune.cache import clean_cache, human_bytes
    from autotune.paths import default_cache_root

    root = default_cache_root()
    outcome = clean_cache(root, profiles_only=args.pgo_only)
    if args.json:
        _print_json({"cache": str(root), "removed_bytes": outcome.removed,
                     "in_use": [str(p) for p in outcome.in_use]})
        return EXIT_OK
    what = "profile-guided profiles" if args.pgo_only else "build cache"
    console = _console()
    _say(console, f"removed {human_bytes(outcome.removed)} of {what} from {root}")
    if outcome.in_use:
        _say(console, f"kept {len(outcome.in_use)} build folder(s) that running processes use")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    """``export``: write a host's profiles as a versioned JSON document."""
    from autotune.exchange import export_host

    path, host, count = export_host(args.db, None if args.host == "current" else args.host,
                                    args.output)
    _say(_console(), f"exported {count} profile(s) of {host.fingerprint} to {path}")
    return EXIT_OK


def cmd_import(args: argparse.Namespace) -> int:
    """``import``: validate every file first, then load them; re-importing changes nothing."""
    from autotune.exchange import import_files

    results = import_files(args.files, args.db)
    if args.json:
        _print_json({"imported": results})
        return EXIT_OK
    console = _console()
    for r in results:
        _say(console, f"{r['file']}: host {r['fingerprint']}, {r['added']} of {r['profiles']} "
                      "profile(s) added" + (" (already imported)" if not r["added"] else ""))
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    """``compare``: machines side by side, from the store (imported files included)."""
    from autotune.host import collect_host
    from autotune.report import compare_renderables
    from autotune.store import open_store
    from autotune.views import compare_rows, matching_hosts, one_host
    from autotune.workloads import resolve_workload

    signature = resolve_workload(args.workload, args.size).signature if args.workload else None
    with open_store(args.db) as store:
        hosts = {h["fingerprint"]: h for h in store.hosts()}
        profiles = store.profiles()
    wanted = {fp for prefix in args.hosts or [] for fp in matching_hosts(prefix, hosts)}
    profiles = [p for p in profiles
                if (signature is None or p.workload.get("signature") == signature)
                and (not args.hosts or p.fingerprint in wanted)]
    reference: str | None
    if args.reference:
        reference = one_host(args.reference, hosts, "--reference")
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
        _say(console, f"plot written to {plot}")
    return EXIT_OK


#: Set when ``run`` starts itself again without what cannot serve the script (see
#: :func:`cmd_run`); each holds the reason.
_RETRY_ENV = {"cpp_standalone": "BRIAN2_AUTOTUNE_RUNTIME_RETRY",
              "numpy": "BRIAN2_AUTOTUNE_NUMPY_RETRY"}


def cmd_run(args: argparse.Namespace) -> int:
    """``run``: analyse the script, apply a configuration, run it, log what happened.

    A script that cpp_standalone or numpy turns out unable to serve at its first ``run()``
    (what the analysis could not see: a state read before the run, a network_operation, GSL)
    failed or was stopped before anything was simulated or shown; this process then starts
    again, same command line, with that ruled out.
    """
    import os

    from autotune.errors import CannotServe
    from autotune.runner import RunOptions, run_script

    ruled_out = {what: os.environ.pop(name) for what, name in _RETRY_ENV.items()
                 if name in os.environ}
    options = RunOptions(workload=args.workload, duration=args.duration, db=args.db,
                         device=args.device, threads=args.num_threads, precision=args.precision,
                         use_profile=not args.no_profile, pgo=args.pgo, ruled_out=ruled_out)
    try:
        return run_script(args.script, args.args, options, module=args.module).report.exit_code
    except CannotServe as e:
        if e.ruled_out in ruled_out:  # ruled out already: starting again would loop
            raise
        again = "under runtime" if e.ruled_out == "cpp_standalone" else f"without {e.ruled_out}"
        logger.info("%s: nothing was simulated or shown; running it again %s", e, again)
        sys.stdout.flush()
        sys.stderr.flush()
        for what, reason in {**ruled_out, e.ruled_out: e.reason}.items():
            os.environ[_RETRY_ENV[what]] = reason
        os.execv(sys.executable, [sys.executable, "-m", "autotune.cli", *args.argv])


def cmd_check_precision(args: argparse.Namespace) -> int:
    """``check-precision``: compare the script's float32 results with its float64 ones and
    store the verdict; exit 0 when float32 may be applied to it, 1 when not."""
    from autotune.precision import check_precision
    from autotune.scriptreport import precision_check_renderables

    check = check_precision(args.script, args.args, observe=args.observe,
                            tolerance=args.tolerance, db=args.db, module=args.module)
    if args.json:
        _print_json(check.to_dict())
    else:
        console = _console()
        for renderable in precision_check_renderables(check):
            console.print(renderable)
    return EXIT_OK if check.passed else 1


COMMANDS = {"fingerprint": cmd_fingerprint, "calibrate": cmd_calibrate, "show": cmd_show,
            "run": cmd_run, "export": cmd_export, "import": cmd_import, "compare": cmd_compare,
            "check-precision": cmd_check_precision, "clean": cmd_clean}


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


def _how_to_continue(args: argparse.Namespace) -> str:
    """What an interrupted calibration kept, and the command that goes on from there (the
    user's own arguments: a bare ``--resume`` would resume CUBA, the default workload)."""
    if args.suite:
        return (f"the members it finished are kept: run `brian2-autotune "
                f"{shlex.join(args.argv)}` again to calibrate the others")
    again = [a for a in args.argv if a != "--resume"] + ["--resume"]
    return f"completed trials are saved, continue with `brian2-autotune {shlex.join(again)}`"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_arguments(argv)
    args.argv = argv
    _setup_logging(args.verbose)
    if args.command not in ("run", "check-precision"):  # a user script keeps Python's own
        # signal behaviour
        signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        return COMMANDS[args.command](args)
    except AutotuneError as e:
        sys.stderr.write(f"brian2-autotune: error: {e}\n")
        return e.exit_code if not isinstance(e, BadInput) else EXIT_BAD_INPUT
    except KeyboardInterrupt as e:
        if args.command == "calibrate":
            sys.stderr.write(f"brian2-autotune: interrupted; {_how_to_continue(args)}\n")
        else:
            sys.stderr.write("brian2-autotune: interrupted\n")
        return EXIT_TERMINATED if isinstance(e, Terminated) else EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
