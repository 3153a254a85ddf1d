"""The command line's arguments: every command's options, parsed into plain values that
:mod:`autotune.cli` turns into the library's settings objects. A bad value is a one-line usage
error with exit code 2."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from autotune.costmodel import PROBE_LOOP
from autotune.search import DEFAULT_TRIALS
from autotune.validate import DEFAULT_TOLERANCE
from autotune.values import is_non_negative_number, is_positive_number

EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _checked(parse: Callable[[str], Any], check: Callable[[Any], bool], need: str
             ) -> Callable[[str], Any]:
    """An argparse type: ``parse`` the text, then refuse what fails ``check`` in one line."""
    what = "an integer" if parse is int else "a number"

    def convert(text: str) -> Any:
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not check(value):
            raise argparse.ArgumentTypeError(f"must be {need}, got {text}")
        return value

    return convert


_positive_float = _checked(float, is_positive_number, "a positive number")
_non_negative_float = _checked(float, is_non_negative_number, "a number >= 0")
_non_negative_int = _checked(int, lambda v: v >= 0, ">= 0")
_positive_int = _checked(int, lambda v: v >= 1, "at least 1")


def _duration(text: str) -> float:
    """An argparse type for a run length: ``10``, ``10s``, ``500ms``, ``2*minute``."""
    from autotune.errors import ConfigError
    from autotune.values import as_seconds

    try:
        return as_seconds(text)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _add_db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", metavar="URL",
                        help="SQLAlchemy URL or SQLite path of the store "
                             "(default: $BRIAN2_AUTOTUNE_DB or the user data directory)")


#: The options that take a value (the token after one is not where the script starts) of
#: the commands that run a script, or with ``-m`` a module.
_VALUE_OPTIONS = {
    "run": frozenset({"--device", "--num-threads", "--precision", "--workload", "--duration",
                      "--db"}),
    "check-precision": frozenset({"--observe", "--tolerance", "--db"}),
}


def parse_arguments(argv: Sequence[str]) -> argparse.Namespace:
    """Parse a command line. ``run ... -m MODULE ARGS`` (and ``check-precision``) runs a
    module as ``python -m`` does: everything after MODULE is the module's (argparse would take
    a ``--duration`` there as ``run``'s own)."""
    argv = list(argv)
    parser = build_parser()
    flag = _module_flag(argv)
    if flag is None:
        args = parser.parse_args(argv)
    elif flag + 1 >= len(argv):
        command = next(token for token in argv if not token.startswith("-"))
        parser.error(f"{command} -m needs a module's name, e.g. {command} -m mypackage.sim")
    else:
        args = parser.parse_args(argv[:flag])
        args.module, args.args = argv[flag + 1], argv[flag + 2:]
    if args.command in _VALUE_OPTIONS and args.module is None and args.script is None:
        parser.error(f"{args.command} needs a script ({args.command} sim.py ARGS) or a module "
                     f"({args.command} -m package.sim ARGS)")
    return args


def _module_flag(argv: list[str]) -> int | None:
    """Where ``-m`` stands among the options of a command that runs a script, before any
    script (None if it does not)."""
    command = next((i for i, token in enumerate(argv) if not token.startswith("-")), None)
    if command is None or argv[command] not in _VALUE_OPTIONS:
        return None
    takes_value = _VALUE_OPTIONS[argv[command]]
    i = command + 1
    while i < len(argv):
        token = argv[i]
        if token == "-m":
            return i
        if not token.startswith("-"):
            return None  # the script: what follows is its own
        i += 2 if token in takes_value else 1
    return None


def _add_script(parser: argparse.ArgumentParser) -> None:
    """The script and its arguments, or ``-m MODULE`` and its arguments."""
    parser.add_argument("-m", dest="module", metavar="MODULE",
                        help="run a module as `python -m MODULE` would (from this folder); "
                             "what follows MODULE is its arguments")
    parser.add_argument("script", nargs="?", help="the Brian2 script")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="arguments passed to the script")


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
    p.add_argument("--target-duration", type=_duration, default=10.0, metavar="T",
                   help="simulated time of the runs to optimise for: 10, 10s, 500ms (10 s)")
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
                   help="after the search, re-measure at most N configurations close to the "
                        "best (or tied with it) in interleaved rounds (3; 0: no confirmation)")
    p.add_argument("--confirm-within", type=float, default=0.25, metavar="F",
                   help="how close to the best a configuration's predicted time must be to be "
                        "confirmed, as a fraction (0.25 = within 25 %%)")
    p.add_argument("--confirm-rounds", type=_non_negative_int, nargs=2, default=[2, 6],
                   metavar=("MIN", "MAX"),
                   help="confirmation rounds: every contender runs MIN; those that might still "
                        "be more than 5 %% faster than the leader go on up to MAX (2 6)")
    p.add_argument("--probe-loop", type=_non_negative_float, default=PROBE_LOOP, metavar="S",
                   help="run a configuration whose loop is too short to time once more, long "
                        f"enough for an S-second loop ({PROBE_LOOP}; 0: never)")
    p.add_argument("--heartbeat", type=_positive_int, default=30, metavar="S",
                   help="seconds between a running trial's heartbeats; nodes sharing a "
                        "calibration measure again a trial silent for 3 of them (30)")
    p.add_argument("--no-pgo", dest="pgo", action="store_false",
                   help="leave profile-guided standalone builds out of the search (each costs "
                        "an instrumented build and run and a second cold build to measure)")
    p.add_argument("--resume", action="store_true",
                   help="continue this host's interrupted calibration of the workload")
    p.add_argument("--suite", action="store_true",
                   help="calibrate the built-in suite (cuba, coba-hh and stdp at two sizes "
                        "each, synfire at one; one configuration per family), from which "
                        "scripts never calibrated are predicted; members already calibrated "
                        "are kept")
    p.add_argument("--suite-members", nargs="+", metavar="NAME:SIZE",
                   help="with --suite: these members instead (e.g. cuba:1000 stdp:500)")
    _add_db(p)
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")

    p = sub.add_parser("show", help="show this host's profiles")
    p.add_argument("--workload", help="only this workload (name or file)")
    p.add_argument("--size", type=_positive_int, help="size of a built-in workload")
    p.add_argument("--duration", type=_duration, metavar="T",
                   help="rank for this run length (10, 10s, 500ms) instead of the calibration's "
                        "target")
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
    p.add_argument("--duration", type=_duration, default=10.0, metavar="T",
                   help="simulated time of the run to compare: 10, 10s, 500ms (10 s)")
    p.add_argument("--plot", metavar="FILE.png", type=Path, help="also draw a PNG")
    _add_db(p)
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")

    p = sub.add_parser("run", help="apply the profile, then run an unmodified Brian2 script")
    p.add_argument("--device", choices=["runtime", "cpp_standalone"], help="override the device")
    p.add_argument("--num-threads", type=int, metavar="N",
                   help="override OpenMP threads (implies cpp_standalone)")
    p.add_argument("--precision", choices=["float64", "float32"], help="override precision")
    p.add_argument("--pgo", action=argparse.BooleanOptionalAction, default=None,
                   help="ask for a profile-guided standalone build (the first run takes the "
                        "profile, slower; later runs build with it), or with --no-pgo forbid "
                        "one (default: as the profile decides)")
    p.add_argument("--no-profile", action="store_true", help="ignore stored profiles")
    p.add_argument("--workload", help="use the profile of this workload (default: newest)")
    p.add_argument("--duration", type=_duration, metavar="T",
                   help="simulated time the script runs, e.g. 10, 10s, 500ms (picks the best "
                        "config for it)")
    _add_db(p)
    _add_script(p)

    p = sub.add_parser("clean", help="remove the build cache (standalone builds, their "
                       "profile-guided profiles, Cython caches, dry-pass features); builds in "
                       "use by running processes are kept")
    p.add_argument("--pgo-only", action="store_true",
                   help="remove only the profiles of profile-guided builds (the next run of "
                        "each takes a fresh one)")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")

    p = sub.add_parser("check-precision",
                       help="run a script in float64 and float32 and compare its results; "
                            "float32 is applied to it only once this passes")
    p.add_argument("--observe", action="append", default=[], metavar="EXPR",
                   help="what to compare, an expression over the script's globals, e.g. "
                        "'M.num_spikes' or 'mean(G.v)' (repeatable; default: every monitor "
                        "of its last run)")
    p.add_argument("--tolerance", type=_positive_float, default=DEFAULT_TOLERANCE, metavar="F",
                   help=f"relative deviation allowed per observable ({DEFAULT_TOLERANCE})")
    _add_db(p)
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    _add_script(p)
    return parser
