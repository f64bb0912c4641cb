"""Benchmark: CPU per provisioned identity in one process (what a queue worker spends per target).

    .venv/bin/python bench/per_target_cpu.py [--n 50] [--rate-limits '<json>'] [--no-pacing] [--profile out.prof]

Starts its own Azurite and tenant emulator (no latency, no replication delay), creates N user-assigned
identities with the admin's SDK clients, then in this process, through the service layer, submits them
all at once (``ExomiService.submit_provision``: what the HTTP handler does) and then runs them all at
once (``run_to_end``: what the queue worker does). One identity is provisioned first so that imports and
first-call costs are not counted. Prints the CPU time of this process per identity
(``time.process_time``: the emulator and Azurite run in other processes), in all and by phase
(``submit``, ``worker``), the ARM,
Graph and Table Storage calls per identity (the Table calls also by table and operation), and the 429s the emulator answered (its counter, by limit) and exomi's pacer saw.
``--rate-limits '<json>'`` turns the emulator's limits on (a body as ``PUT /_control/ratelimits`` takes, on
the wall clock unless it says otherwise), e.g. ``'{"limits": {"graph_resource_units": {"size": 20,
"refill_per_second": 40}}}'``; ``--no-pacing`` sends every request at once, as exomi did before it paced
(for the comparison); ``--profile`` writes a cProfile of the measured part.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devhost.azurite import AzuriteProcess  # noqa: E402
from emulator.process import EmulatorProcess  # noqa: E402
from emulator.timings import fast_timings  # noqa: E402
from tests.engine.conftest import Targets  # noqa: E402
from tests.support.emulator import Emulator  # noqa: E402
from tests.support.exomi import ExomiRunner  # noqa: E402


async def submit_all(service: Any, ids: list[str], organization: str) -> list[str]:
    """What the HTTP handler does for each target: validate, authorize, record the request (its id)."""
    from shared.models import Channel, Requester

    requester = Requester.operator("bench")

    async def one(target: str) -> str:
        submission = await service.submit_provision(
            {"target": target, "organization": organization}, requester=requester, channel=Channel.CLI
        )
        return str(submission.request.id)

    return await asyncio.gather(*(one(t) for t in ids))


async def run_all(service: Any, request_ids: list[str]) -> list[str]:
    """What the queue worker does for each request: its passes, to the end (the final statuses)."""

    async def one(request_id: str) -> str:
        record = await service.run_to_end(request_id)
        return str(record.status.value)

    return await asyncio.gather(*(one(r) for r in request_ids))


class Phases:
    """The CPU time of this process (and the wall time) spent in each phase, and in all."""

    def __init__(self, profile: str | None) -> None:
        self.cpu: dict[str, float] = {}
        self.wall = 0.0
        self.profiler = cProfile.Profile() if profile else None

    async def measure(self, name: str, work: Any) -> Any:
        wall, cpu = time.perf_counter(), time.process_time()
        if self.profiler:
            self.profiler.enable()
        result = await work
        if self.profiler:
            self.profiler.disable()
        self.cpu[name] = time.process_time() - cpu
        self.wall += time.perf_counter() - wall
        return result


def table_calls(
    before: dict[str, dict[str, int]], after: dict[str, dict[str, int]], n: int
) -> dict[str, Any]:
    """Table Storage calls per identity, in all and by table and operation (exomi's own counter)."""
    by_table: dict[str, dict[str, float]] = {}
    total = 0
    for table, operations in after.items():
        for operation, count in operations.items():
            made = count - before.get(table, {}).get(operation, 0)
            if made:
                total += made
                by_table.setdefault(table, {})[operation] = round(made / n, 2)
    return {"table_calls_per_identity": round(total / n, 2), "table_calls_by_table": by_table}


class Unpaced:
    """A limiter that lets everything through at once (the comparison without pacing)."""

    gates: dict[str, Any] = {}

    def try_acquire(self, key: str) -> float:
        return 0.0

    def release(self, key: str, status: int | None, headers: Any = None) -> None:
        return None


async def measure(
    emulator: Emulator, storage: str, n: int, profile: str | None, pacing: bool
) -> dict[str, Any]:
    runner = ExomiRunner(emulator, storage)
    env = runner.env()
    os.environ.update({k: v for k, v in env.items() if k.startswith(("EXOMI_", "Azure", "IDENTITY_"))})
    from shared.service import ExomiApp, ExomiService
    from shared.settings import Settings

    targets = Targets(emulator)
    ids = [targets.user_assigned_identity(f"bench-mi-{i}").id for i in range(n + 1)]
    async with await ExomiApp.open(Settings.load(env)) as app:
        if not pacing:
            app.clients.pacer.limiter = Unpaced()  # type: ignore[assignment]
        service = ExomiService(app)
        # One identity first, so that imports, tokens and tables are not counted.
        await run_all(service, await submit_all(service, ids[:1], emulator.organization))
        start_log = emulator.log_position()
        calls = app.state.tables.calls
        calls_before = calls.snapshot(app.state.tables.prefix)
        phases = Phases(profile)
        request_ids = await phases.measure("submit", submit_all(service, ids[1:], emulator.organization))
        statuses = await phases.measure("worker", run_all(service, request_ids))
        if phases.profiler and profile:
            phases.profiler.dump_stats(profile)
        calls_after = calls.snapshot(app.state.tables.prefix)
    entries = emulator.log(start_log)
    by_service: dict[str, int] = {}
    for entry in entries:
        by_service[entry["service"]] = by_service.get(entry["service"], 0) + 1
    return {
        "n": n,
        "succeeded": statuses.count("succeeded"),
        "cpu_ms_per_identity": round(1000 * sum(phases.cpu.values()) / n, 1),
        # The HTTP handler's share (validate, authorize, record) and the queue worker's (the passes).
        "cpu_ms_per_identity_by_phase": {k: round(1000 * v / n, 1) for k, v in phases.cpu.items()},
        "wall_s": round(phases.wall, 2),
        "arm_calls_per_identity": round(by_service.get("arm", 0) / n, 2),
        "graph_calls_per_identity": round(by_service.get("graph", 0) / n, 2),
        **table_calls(calls_before, calls_after, n),
        "http_429": sum(1 for e in entries if e["status"] == 429),
        "emulator_429s_by_limit": emulator.rate_limits().get("throttled", {}),
        "pacer_429s_by_gate": app.clients.pacer.throttled() if pacing else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--rate-limits", default=None, metavar="JSON")
    parser.add_argument("--no-pacing", action="store_true")
    parser.add_argument("--profile", default=None)
    args = parser.parse_args()
    azurite = AzuriteProcess()
    storage = azurite.start()
    emulator_process = EmulatorProcess("--fast", state_dir=Path(tempfile.mkdtemp()))
    info = emulator_process.start()
    os.environ.update(info.identity_env())
    control = httpx.Client(verify=info.ca_bundle, timeout=60)
    try:
        timings = {**fast_timings().as_dict(), "replication_delay": 0.0}
        control.patch(f"{info.control_endpoint}/timings", json=timings).raise_for_status()
        reset = control.post(f"{info.control_endpoint}/reset", json={})
        reset.raise_for_status()
        emulator = Emulator({**info.raw, **reset.json()}, control)
        if args.rate_limits is not None:
            emulator.set_rate_limits(**{"clock": "wall", **json.loads(args.rate_limits)})
        result = asyncio.run(measure(emulator, storage, args.n, args.profile, not args.no_pacing))
        print(json.dumps(result, indent=2))
    finally:
        control.close()
        emulator_process.stop()
        azurite.stop()


if __name__ == "__main__":
    main()
