"""Benchmark: provisioning one target, against the critical-path bound of its plan.

    .venv/bin/python bench/provision.py [--runs 3] [--latency-ms 100] [--kinds aa,aa-ua,vm[,vm-linux]] [--no-sequential]

Starts its own Azurite and tenant emulator with known emulated times (module import 4 s, LRO 1 s, job
start 1 s and run 1 s, Run Command 2 s, replication 2 s, propagation 3 s) and a latency on every ARM and
Graph call, then for each target kind, in turn in one run:

- **exomi (CLI)**: ``exomi provision`` as a child process, spawn to exit (start-up included);
- **exomi (Function app)**: ``exomi provision --no-wait`` records and queues it, the real
  function_app.py under devhost (warm: it has served a work item before) carries it to the end; from
  the request's record to its end (stored times);
- **sequential script**: the seed procedure, step by step in its own order with the real SDKs, in this
  process (tests/emulator/test_seed_procedure.py's ``Procedure``), waiting exactly the propagation time;

and prints each one's wall time over the **bound**: the longest path through the plan's dependency graph
(shared/engine/plan.py), each step costing the calls it must make (look before write included) times the
latency plus the emulated waits. Also printed: the writes each provision made (ARM/Graph PUT, PATCH,
POST, DELETE) against the minimum, and the writes of running a provisioned target again (0).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import httpx
from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devhost.azurite import AzuriteProcess  # noqa: E402
from devhost.process import DevHostProcess  # noqa: E402
from emulator.process import EmulatorProcess  # noqa: E402
from emulator.timings import Timings  # noqa: E402
from shared.engine.plan import plan_for  # noqa: E402
from shared.ids import TargetKind  # noqa: E402
from shared.models import Operation  # noqa: E402
from shared.work_queue import encode  # noqa: E402
from tests.engine.conftest import Targets  # noqa: E402
from tests.support.api import QUIET_TIMERS  # noqa: E402
from tests.support.emulator import Emulator  # noqa: E402
from tests.support.exomi import ROOT, ExomiRunner  # noqa: E402

TIMINGS = Timings(
    replication_delay=2.0,
    propagation_delay=3.0,
    module_import=4.0,
    lro=1.0,
    job_start=1.0,
    job_run=1.0,
    run_command=2.0,
    event_delivery=0.0,
    event_retry=0.1,
    retry_after=1,
)
LATENCY_PATH = r"^/(subscriptions|v1\.0)(/|$)"  # ARM and Graph; the token endpoints keep their speed
# The fewest writes a fresh target needs: 3 module PUTs, runbook PUT + draft + publish, job, 2 grants;
# with 7.4 one more (the runtime environment); on a VM 2 Run Commands and the 2 grants.
MINIMUM_WRITES = {"aa": 9, "aa-ua": 10, "vm": 4, "vm-linux": 4}
VM_KINDS = (
    "vm",
    "vm-linux",
)  # a Linux VM takes the same steps and writes (RunShellScript); no seed procedure


# ------------------------------------------------------------------------------------------- the bound


def step_costs(kind: str, t: Timings, lat: float, visible_at: float) -> dict[str, Callable[[float], float]]:
    """For each step: when it is done, given when its prerequisites are (seconds from the start)."""

    def verify_aa(start: float, propagated: float) -> float:
        put_job = max(start + 2 * lat, propagated - t.job_start)  # GET 404, PUT; it runs after job_start
        # The GET that sees Completed, then its output: a job's output is read once it has ended (read
        # while it runs, it may still lack the end of the connect test's output).
        return put_job + t.job_start + t.job_run + 2 * lat

    def verify_vm(start: float, propagated: float) -> float:
        post = max(start + lat, propagated - t.run_command)  # the script runs run_command after the POST
        return post + t.run_command + lat  # status, then the result

    costs: dict[str, Callable[[float], float]] = {
        "identity": lambda s: s + (2 if kind == "aa-ua" else 1) * lat,
        "principal": lambda s: max(s + lat, visible_at),
        "exchange-sp": lambda s: s + lat,
        "app-role": lambda s: s + 2 * lat,  # list, grant
        "entra-role": lambda s: s + 2 * lat,  # list, assign
        "runtime-environment": lambda s: s + (2 * lat if kind == "aa-ua" else 0),
        "modules": lambda s: s + 2 * lat + t.module_import,  # GET + PUT of all at once, the import
        "runbook": lambda s: s + 4 * lat + 2 * t.lro,  # GET, PUT, draft + LRO, publish + LRO
        "vm-modules": lambda s: s + 2 * lat + t.run_command,  # POST, the run, the result
    }
    costs["verify"] = verify_aa if kind not in VM_KINDS else verify_vm  # type: ignore[assignment]
    return costs


def bound(kind: str, t: Timings, lat: float, visible_at: float) -> float:
    """The critical path through the plan's graph: every step as early as its prerequisites allow."""
    target_kind = TargetKind.VIRTUAL_MACHINE if kind in VM_KINDS else TargetKind.AUTOMATION_ACCOUNT
    plan = plan_for(Operation.PROVISION, target_kind)
    costs = step_costs(kind, t, lat, visible_at)
    done: dict[str, float] = {}
    for step in plan.in_order():
        start = max((done[d] for d in plan.needs[step.name]), default=0.0)
        if step.name == "verify":
            propagated = max(done["app-role"], done["entra-role"]) + t.propagation_delay
            done[step.name] = costs["verify"](start, propagated)  # type: ignore[call-arg]
        else:
            done[step.name] = costs[step.name](start)
    return max(done.values())


# ------------------------------------------------------------------------------------------- the runs


class PacedRunner(ExomiRunner):
    """exomi told what an operator would tell it: how long this tenant's waits take."""

    def env(self) -> dict[str, str]:
        return {
            **super().env(),
            "EXOMI_POLL_SECONDS": "0.2",
            "EXOMI_MAX_POLL_SECONDS": "1",
            "EXOMI_MIN_POLL_SECONDS": "0.1",
            "EXOMI_PROPAGATION_SECONDS": str(TIMINGS.propagation_delay),
            "EXOMI_EXPECTED_IMPORT_SECONDS": str(TIMINGS.module_import),
            "EXOMI_EXPECTED_JOB_SECONDS": str(TIMINGS.job_start + TIMINGS.job_run),
            "EXOMI_EXPECTED_JOB_START_SECONDS": str(TIMINGS.job_start),
            "EXOMI_EXPECTED_RUN_COMMAND_SECONDS": str(TIMINGS.run_command),
        }


class Bench:
    def __init__(self, emulator: Emulator, storage: str, latency_ms: float) -> None:
        self.emulator = emulator
        self.storage = storage
        self.latency_ms = latency_ms

    def fresh(self, kind: str) -> tuple[list[str], ExomiRunner, float]:
        """A new tenant and target (made without latency); returns (exomi's target arguments, a runner,
        the replication time left when exomi starts)."""
        self.emulator.reset()
        self.emulator.set_timings(**TIMINGS.as_dict())
        targets = Targets(self.emulator)
        created = time.monotonic()
        extra: list[str] = []
        if kind in VM_KINDS:
            target = targets.virtual_machine(linux=kind == "vm-linux")
        elif kind == "aa-ua":
            identity = targets.user_assigned_identity()
            created = time.monotonic()  # the account links it: exomi waits for the identity's replication
            target = targets.automation_account(system=False, user_assigned=[identity.id])
            extra = ["--identity", identity.id, "--runtime", "7.4"]
        else:
            target = targets.automation_account()
        runner = PacedRunner(self.emulator, self.storage)
        left = max(TIMINGS.replication_delay - (time.monotonic() - created), 0.0)
        self.emulator.add_fault(path=LATENCY_PATH, kind="latency", latency_ms=self.latency_ms)
        return ["--target", target.id, "--organization", self.emulator.organization, *extra], runner, left

    def cli(self, kind: str) -> dict[str, float]:
        target, runner, left = self.fresh(kind)
        position = self.emulator.log_position()
        started = time.monotonic()
        code, output, stderr = runner.run("provision", *target, timeout=600)
        wall = time.monotonic() - started
        if code != 0:
            raise SystemExit(f"exomi provision ({kind}) failed: {stderr or output}")
        writes = len(self.emulator.writes_since(position))
        position = self.emulator.log_position()
        code, output, stderr = runner.run("provision", *target, timeout=600)
        if code != 0:
            raise SystemExit(f"exomi provision ({kind}) again failed: {stderr or output}")
        rerun_writes = len(self.emulator.writes_since(position))
        return {"wall": wall, "left": left, "writes": writes, "rerun_writes": rerun_writes}

    def function_app(self, kind: str) -> dict[str, float]:
        target, runner, left = self.fresh(kind)
        env = {
            **runner.env(),
            "FUNCTIONS_WORKER_RUNTIME": "python",
            # How often the host looks at an idle queue (host.json maxPollingInterval, an app setting).
            "AzureFunctionsJobHost__extensions__queues__maxPollingInterval": "00:00:00.100",
            **QUIET_TIMERS,
        }
        with tempfile.TemporaryDirectory() as logs:
            host = DevHostProcess(ROOT, env=env, log_file=Path(logs) / "host.log")
            host.start()
            try:
                self.warm_up(Path(logs) / "host.log")
                code, output, stderr = runner.run("provision", *target, "--no-wait")
                if code != 0:
                    raise SystemExit(f"exomi provision --no-wait ({kind}) failed: {stderr or output}")
                deadline = time.monotonic() + 300
                while time.monotonic() < deadline:
                    _, status, _ = runner.run("status", output["id"])
                    if status["status"] not in ("queued", "running", "waiting"):
                        break
                    time.sleep(0.5)
            finally:
                host.stop()
        if status["status"] != "succeeded":
            raise SystemExit(
                f"the Function app's request ({kind}) ended {status['status']}: {status['message']}"
            )
        recorded = datetime.fromisoformat(status["created_at"])
        ended = datetime.fromisoformat(status["updated_at"])
        return {"wall": (ended - recorded).total_seconds(), "left": left}

    def warm_up(self, log: Path) -> None:
        """A worker that has served a work item before (what a running Function app is): one for an
        unknown request loads the code and opens the state, then is dropped."""
        # encode() gives the message body as exomi sends it (base64 already): no encode policy on top.
        queue = QueueClient.from_connection_string(self.storage, "exomi-work")
        with contextlib.suppress(ResourceExistsError):
            queue.create_queue()
        queue.send_message(encode(str(uuid.uuid4())))
        deadline = time.monotonic() + 60
        while "unknown request" not in log.read_text():
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"the Function app did not take the warm-up work item:\n{log.read_text()[-2000:]}"
                )
            time.sleep(0.1)

    def sequential(self, kind: str) -> dict[str, float]:
        """The seed procedure in its own order, one call after another (from after the resource exists)."""
        from tests.emulator.test_seed_procedure import ALL_MODULES, Admin, Procedure

        self.emulator.reset()
        self.emulator.set_timings(**TIMINGS.as_dict())

        async def run() -> float:
            procedure = Procedure(
                Admin(self.emulator),
                "vm" if kind == "vm" else "automation",
                "user" if kind == "aa-ua" else "system",
            )
            procedure.create_resource()
            self.emulator.add_fault(path=LATENCY_PATH, kind="latency", latency_ms=self.latency_ms)
            started = time.monotonic()
            while True:  # $MI_ID: looked up until the new identity has replicated
                try:
                    await procedure.store_identity()
                    break
                except Exception:  # noqa: BLE001 - not visible yet
                    await asyncio.sleep(0.05)
            procedure.add_modules(ALL_MODULES)
            await procedure.grant_manage_as_app()
            await procedure.assign_entra_role()
            procedure.admin.wait_for_propagation(TIMINGS.propagation_delay)
            outcome = procedure.connect(account_id=procedure.account_id)
            if not outcome.lists_the_accepted_domains:
                raise SystemExit(f"the sequential procedure ({kind}) did not connect: {outcome}")
            return time.monotonic() - started

        return {"wall": asyncio.run(run())}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--kinds", default="aa,aa-ua,vm")
    parser.add_argument("--no-sequential", action="store_true")
    parser.add_argument("--no-function-app", action="store_true")
    args = parser.parse_args()
    lat = args.latency_ms / 1000
    kinds = args.kinds.split(",")
    results: dict[str, dict[str, list[dict[str, float]]]] = {k: {} for k in kinds}
    with tempfile.TemporaryDirectory() as state_dir, AzuriteProcess() as storage:
        process = EmulatorProcess("--fast", state_dir=Path(state_dir))
        info = process.start()
        import os

        os.environ.update(info.identity_env())
        try:
            control = httpx.Client(verify=info.raw["ca_bundle"], timeout=60)
            emulator = Emulator(
                {**info.raw, **control.post(f"{info.raw['control_endpoint']}/reset", json={}).json()}, control
            )
            bench = Bench(emulator, storage, args.latency_ms)
            ways: list[tuple[str, Callable[[str], dict[str, float]]]] = [("cli", bench.cli)]
            if not args.no_function_app:
                ways.append(("function_app", bench.function_app))
            if not args.no_sequential:
                ways.append(("sequential", bench.sequential))
            for run in range(args.runs):
                for kind in kinds:
                    order = ways if run % 2 == 0 else list(reversed(ways))  # A B, B A, ...
                    for name, way in order:
                        if name == "sequential" and kind == "vm-linux":
                            continue  # the seed procedure is Microsoft's, for Windows
                        result = way(kind)
                        results[kind].setdefault(name, []).append(result)
                        print(
                            f"run {run} {kind:6} {name:13} {json.dumps({k: round(v, 2) for k, v in result.items()})}",
                            flush=True,
                        )
        finally:
            process.stop()

    print()
    print(f"latency {args.latency_ms:.0f} ms; emulated times {TIMINGS.as_dict()}")
    print(
        f"{'kind':6} {'bound':>6} {'cli':>6} {'cli/bound':>9} {'app':>6} {'app/bound':>9} {'seq':>6} {'cli/seq':>7} {'app/seq':>7} {'writes':>8} {'rerun':>5}"
    )
    for kind in kinds:
        by = results[kind]

        def median(name: str, key: str = "wall", by: dict[str, list[dict[str, float]]] = by) -> float:
            return statistics.median(r[key] for r in by[name]) if name in by else float("nan")

        left = statistics.median(r["left"] for r in by["cli"])
        limit = bound(kind, TIMINGS, lat, left)
        cli, app, seq = median("cli"), median("function_app"), median("sequential")
        writes = f"{int(median('cli', 'writes'))}/{MINIMUM_WRITES[kind]}"
        print(
            f"{kind:6} {limit:6.2f} {cli:6.2f} {cli / limit:9.2f} {app:6.2f} {app / limit:9.2f} {seq:6.2f} "
            f"{cli / seq:7.2f} {app / seq:7.2f} {writes:>8} {int(median('cli', 'rerun_writes')):5}"
        )


if __name__ == "__main__":
    main()
