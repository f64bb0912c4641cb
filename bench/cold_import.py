"""Benchmark: what loading the Function app costs the host, against loading azure.functions alone.

    .venv/bin/python bench/cold_import.py [--runs 7]

Each side is measured in a fresh interpreter (``python -X importtime`` is not used: it slows imports
down), taken in turn (A B, B A, ...), and the medians are printed with their ratio: wall time of the
import and the process's peak RSS afterwards. The goal: ``import function_app`` at most 3x the time of
``import azure.functions`` and at most 60 MB more memory. The heavy parts (Azure SDKs, msgraph-sdk,
the engine) load on the first invocation of a trigger, not when the host indexes the functions.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROBE = """
import json, resource, sys, time
started = time.perf_counter()
import {module}
elapsed = time.perf_counter() - started
print(json.dumps({{"seconds": elapsed, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "modules": len(sys.modules)}}))
"""


def measure(module: str) -> dict[str, float]:
    completed = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )
    return json.loads(completed.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    sides = {"azure.functions": [], "function_app": []}
    for run in range(args.runs):
        order = list(sides) if run % 2 == 0 else list(reversed(sides))
        for module in order:
            sides[module].append(measure(module))
    base, app = (
        {key: statistics.median(r[key] for r in sides[m]) for key in ("seconds", "rss_mb", "modules")}
        for m in ("azure.functions", "function_app")
    )
    for name, figures in (("import azure.functions", base), ("import function_app", app)):
        print(
            f"{name:24} {figures['seconds'] * 1000:7.1f} ms  {figures['rss_mb']:6.1f} MB peak RSS  "
            f"{figures['modules']:5.0f} modules  (median of {args.runs})"
        )
    print(f"time ratio:  {app['seconds'] / base['seconds']:.2f}  (goal <= 3)")
    print(f"RSS above:   {app['rss_mb'] - base['rss_mb']:.1f} MB  (goal <= 60)")


if __name__ == "__main__":
    main()
