"""Benchmark: the tenant inventory at 10x the holders costs about 10x, with a constant number of reads
of exomi's own tables (one pass over targets and ledgers, not one query per principal).

    .venv/bin/python bench/inventory.py [--small 200] [--large 2000]

Runs the real ``exomi inventory`` against a fresh emulator tenant and Azurite, once with --small and
once with --large principals holding Exchange.ManageAsApp and an Entra role, side by side, and prints
the time and Graph calls per holder of each and their ratios. A ratio of time per holder near 1.0
means the inventory scales linearly; Graph calls per holder stay near 1 (one principal read; lists
come 100 per page).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devhost.azurite import AzuriteProcess  # noqa: E402
from emulator.process import EmulatorProcess  # noqa: E402
from emulator.timings import fast_timings  # noqa: E402
from tests.support.emulator import Emulator  # noqa: E402
from tests.support.exomi import ExomiRunner  # noqa: E402


def measure(emulator: Emulator, storage: str, holders: int) -> tuple[float, int, int]:
    """(seconds, Graph calls, holders listed) for one inventory over ``holders`` seeded principals."""
    emulator.reset()
    for number in range(holders):
        principal = emulator.seed_principal(f"bench-job-{number:05}", type="Application")
        emulator.grant_exchange_access(principal["id"], directory_role="Exchange Recipient Administrator")
    runner = ExomiRunner(emulator, storage)
    position = emulator.log_position()
    started = time.perf_counter()
    code, listed, stderr = runner.run("inventory", timeout=1800)
    elapsed = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"exomi inventory failed: {stderr}")
    calls = len(emulator.log(position, service="graph"))
    return elapsed, calls, len(listed)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", type=int, default=200)
    parser.add_argument("--large", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as state_dir, AzuriteProcess() as storage:
        process = EmulatorProcess("--fast", state_dir=Path(state_dir))
        info = process.start()
        try:
            control = httpx.Client(verify=info.raw["ca_bundle"], timeout=60)
            base = info.raw["control_endpoint"]
            control.patch(f"{base}/timings", json=fast_timings().as_dict()).raise_for_status()
            emulator = Emulator({**info.raw, **control.post(f"{base}/reset", json={}).json()}, control)
            rows = []
            for holders in (args.small, args.large):
                seconds, calls, listed = measure(emulator, storage, holders)
                rows.append((holders, listed, seconds, calls))
                print(
                    f"{holders:>6} holders: listed {listed} in {seconds:6.2f} s, {seconds / holders * 1000:6.2f} ms "
                    f"and {calls / holders:4.2f} Graph calls per holder",
                    flush=True,
                )
        finally:
            process.stop()
    (small, _, small_s, small_calls), (large, _, large_s, large_calls) = rows
    print(f"time per holder, large/small:        {(large_s / large) / (small_s / small):.2f}  (1.0 = linear)")
    print(f"Graph calls per holder, large/small: {(large_calls / large) / (small_calls / small):.2f}")


if __name__ == "__main__":
    main()
