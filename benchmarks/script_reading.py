"""How long reading a script takes before a run, made afresh and kept (``apply()``'s way).

    python benchmarks/script_reading.py SCRIPT [SCRIPT ...] [--repeats 100]

``autotune.apply()`` reads the running script, its own modules and the user's code it imports
from elsewhere (``PYTHONPATH``) before every run (:func:`autotune.scriptcheck.analyse_script`).
This times that reading in one process that has imported Brian2, made afresh each time and
taken from a kept analysis (the files' sizes and modification times checked), and checks that
both give the same analysis. Prints the median per script of each, in milliseconds, and their
ratio. Run it with the ``PYTHONPATH`` the scripts are run with.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from autotune.scriptcheck import analyse_script  # noqa: E402


def _median_ms(read: Callable[[Path], object], scripts: list[Path], repeats: int) -> float:
    """Median wall time per script of ``read`` over ``repeats`` rounds of all ``scripts``."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        for script in scripts:
            read(script)
        times.append((time.perf_counter() - started) / len(scripts) * 1000)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scripts", nargs="+", type=Path)
    parser.add_argument("--repeats", type=int, default=100)
    options = parser.parse_args()
    import brian2  # noqa: F401 - as in apply(), which runs in a script that imports it

    with tempfile.TemporaryDirectory() as cache:
        kept = Path(cache)
        for script in options.scripts:
            if analyse_script(script) != analyse_script(script, cache_dir=kept):
                print(f"{script}: the kept analysis differs from the one made")
                return 1
        fresh = _median_ms(analyse_script, options.scripts, options.repeats)
        reused = _median_ms(lambda s: analyse_script(s, cache_dir=kept), options.scripts,
                            options.repeats)
    print(f"{len(options.scripts)} scripts, {options.repeats} rounds: made {fresh:.3f} ms, "
          f"kept {reused:.3f} ms per script (ratio {reused / fresh:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
