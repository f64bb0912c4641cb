"""Benchmark: a burst of N targets on 1, 2 and 4 instances of the Function app, under rate limits.

    .venv/bin/python bench/scale.py [--targets 100] [--instances 1,2,4] [--channels http,tags]
                                    [--speed 1] [--scale 0.01] [--growth] [--latency-ms 0]
                                    [--event-delivery concurrent|serial]

Starts its own Azurite and tenant emulator (short emulated waits), creates N user-assigned identities,
then for each channel and instance count: starts that many devhost processes running function_app.py
(host.json as shipped) on one storage account and one work queue, turns the emulator's rate limits on
at the published values (emulator/ratelimits.py) with every refill rate times ``--speed`` and every
bucket size times ``--scale`` (small buckets: the sustained rate binds, not the burst allowance), and
submits all N at once:

- **http**: ``POST /api/requests`` for every identity, 32 in flight, spread over the instances (a load
  balancer in front of them);
- **tags**: ``exo-organization`` written on every identity through the Tags API, 32 in flight; the
  emulator delivers the Event Grid events to the instances' webhook through a round-robin front door
  (as Azure spreads a function app's HTTP traffic), each event as soon as it is due without waiting
  for the answer to the last (``--event-delivery concurrent``, the default) or one at a time
  (``serial``, the emulator's default; which of the two Azure does is not documented,
  emulator/README.md). The tag settle time is 1 s.

It prints, per run: completion (first submission to the last request's end, stored times), the
**rate bound** (for every limit exomi's calls drew from: calls beyond the bucket's size over its refill
rate; the largest, and which limit it is), completion over bound, exomi's Graph and ARM calls per
target, 429s, lost (a target whose request did not succeed), duplicate grants (an identity holding
Exchange.ManageAsApp or an Entra role twice), the work items the resume pass added and those that found
their request held by another pass (from the hosts' logs), each instance's peak RSS (VmHWM), and the
CPU time each instance, Azurite and the emulator used (with the machine's load average: is it the limit
or the machine that binds). ``--verbose`` adds the calls charged per limit and the Graph writes served
per 20 s.
``--growth`` runs 10N too (on the smallest instance count) and prints time(10N) / time(N). With more than
one instance count it prints the speed-up from the fewest instances to each other count, against linear.

A bucket that holds less than one second of refill (ARM reads at the default ``--scale 0.01``: 2 tokens,
25 per second) is slower than its bound says: Retry-After is whole seconds, at least 1, so a client that
waits it out gets about the bucket's size per second. ``--scale 0.1`` keeps every bucket at a second of
refill or more, as Azure's are (ARM reads: 250 tokens, ten seconds' worth).

The machine matters: every instance, Azurite and the emulator share its cores, so instances beyond
the core count measure the machine, not exomi. On Azure each instance has its own cores and an instance
is bound by what it runs at once (host.json: 16 + 8 work items) times how long Azure takes to answer.
To measure that scale-out on a small machine, make the answers slow and the limits wide, so that the
instances wait rather than compute (2026-12-04, 2 cores: 200 identities, 1 -> 4 instances 2.89x through
HTTP, 2.75x through tags):

    .venv/bin/python bench/scale.py --targets 200 --instances 1,2,4 --speed 100 --scale 1 --latency-ms 1000
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
from aiohttp import web
from azure.core.exceptions import HttpResponseError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devhost.azurite import AzuriteProcess  # noqa: E402
from devhost.process import DevHostProcess  # noqa: E402
from emulator.process import EmulatorProcess  # noqa: E402
from emulator.ratelimits import RateLimitConfig  # noqa: E402
from emulator.throttling import graph_cost  # noqa: E402
from emulator.timings import fast_timings  # noqa: E402
from tests.engine.conftest import Targets  # noqa: E402
from tests.support.emulator import MANAGE_AS_APP_ROLE_ID, Emulator  # noqa: E402
from tests.support.exomi import ROOT, ExomiRunner, policy_for  # noqa: E402
from tests.support.threaded_server import ThreadedServer  # noqa: E402

ACTIVE = "awaiting_approval,queued,running,waiting"
IN_FLIGHT = 32  # submissions at once (what a script or Logic App loop would do)
WEBHOOK = "runtime/webhooks/eventgrid?functionName=on_resource_event"
QUIET = 60.0  # seconds with no active request and no new one: the run is over


class FrontDoor(ThreadedServer[int]):
    """Forwards each request to the next instance in turn (the function app's one URL in Azure)."""

    def __init__(self, origins: list[str]) -> None:
        super().__init__()
        self.origins = origins
        self._next = 0
        self._client: httpx.AsyncClient | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=120)
        origin = self.origins[self._next % len(self.origins)]
        self._next += 1
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        answer = await self._client.request(
            request.method, f"{origin}{request.path_qs}", headers=headers, content=await request.read()
        )
        return web.Response(
            status=answer.status_code,
            body=answer.content,
            headers={
                k: v
                for k, v in answer.headers.items()
                if k.lower() in ("content-type", "webhook-allowed-origin")
            },
        )


@dataclass
class Run:
    channel: str
    instances: int
    targets: int
    completion: float = math.nan
    bound: float = math.nan
    binding: str = ""
    graph_calls: int = 0
    arm_calls: int = 0
    throttled: Counter[str] = field(default_factory=Counter)
    lost: int = 0
    duplicates: int = 0
    rss_mb: list[float] = field(default_factory=list)
    succeeded: int = 0
    resumed: int = 0  # work items the resume pass added (a request queued or due too long)
    held: int = 0  # work items that found their request held by another pass
    # CPU seconds used from the first submission to the end: each instance, Azurite, the emulator.
    cpu_s: list[float] = field(default_factory=list)
    azurite_cpu_s: float = math.nan
    emulator_cpu_s: float = math.nan
    load: tuple[float, float] = (math.nan, math.nan)  # the machine's 1-minute load average, start and end

    def line(self) -> str:
        # No limit binds (every call fitted a bucket): there is no ratio to give.
        ratio = f"{self.completion / self.bound:6.2f}" if self.bound > 0 else f"{'-':>6}"
        binding = self.binding if self.bound > 0 else "none"
        return (
            f"{self.channel:5} {self.instances:2} {self.targets:6} {self.completion:8.1f} {self.bound:7.1f} "
            f"{ratio} {binding:25} {self.graph_calls / self.targets:6.2f} "
            f"{self.arm_calls / self.targets:5.2f} {self.throttled['graph']:5} {self.throttled['arm']:5} "
            f"{self.lost:4} {self.duplicates:4} {self.resumed:5} {self.held:5} "
            f"{' '.join(f'{r:.0f}' for r in self.rss_mb)}\n"
            f"      CPU s: instances {' + '.join(f'{c:.0f}' for c in self.cpu_s)}, Azurite "
            f"{self.azurite_cpu_s:.0f}, emulator {self.emulator_cpu_s:.0f} (cores x completion: "
            f"{os.cpu_count() or 1} x {self.completion:.0f}); load average {self.load[0]:.1f} -> {self.load[1]:.1f}"
        )


HEADER = (
    f"{'chan':5} {'in':>2} {'N':>6} {'done s':>8} {'bound':>7} {'ratio':>6} {'binding limit':25} "
    f"{'graph/t':>6} {'arm/t':>5} {'g429':>5} {'a429':>5} {'lost':>4} {'dup':>4} {'resum':>5} {'held':>5} peak RSS MB per instance"
)


class Bench:
    def __init__(
        self, emulator: Emulator, storage: str, args: argparse.Namespace, pids: dict[str, int]
    ) -> None:
        self.emulator, self.storage, self.args = emulator, storage, args
        self.pids = pids  # Azurite's and the emulator's processes, whose CPU time is counted

    def run(self, channel: str, instances: int, n: int) -> Run:
        emulator = self.emulator
        emulator.reset()
        emulator.set_timings(**fast_timings().as_dict())
        targets = Targets(emulator)
        with ThreadPoolExecutor(16) as pool:
            identities = list(pool.map(lambda i: targets.user_assigned_identity(f"ScaleMI{i:05}"), range(n)))
        runner = ExomiRunner(emulator, self.storage, policy=policy_for(emulator))
        env = {
            **runner.env(),
            "FUNCTIONS_WORKER_RUNTIME": "python",
            "EXOMI_QUEUE_NAME": f"scale-{uuid.uuid4().hex[:12]}",  # a queue of its own per run
            "EXOMI_TAG_SETTLE_SECONDS": "1",
        }
        result = Run(channel, instances, n)
        with tempfile.TemporaryDirectory() as logs, contextlib.ExitStack() as stack:
            hosts = []
            for i in range(instances):
                host = DevHostProcess(ROOT, env=env, log_file=Path(logs) / f"host{i}.log")
                stack.callback(host.stop)
                host.start()
                hosts.append(host)
            clients = [
                httpx.Client(base_url=h.url, timeout=120, headers={"x-functions-key": h.info["function_key"]})
                for h in hosts
            ]
            for client in clients:  # warm: each instance has loaded the app's code once
                client.get("/api/requests", params={"page_size": 1}).raise_for_status()
            if channel == "tags":
                front_door = FrontDoor([h.url for h in hosts]).start()
                stack.callback(front_door.stop)
                emulator.subscribe_events(
                    "exomi-events",
                    f"{front_door.origin}/{WEBHOOK}",
                    included_event_types=["Microsoft.Resources.ResourceWriteSuccess"],
                )
                concurrent = self.args.event_delivery == "concurrent"
                emulator.ctl("PATCH", "/eventgrid/behaviour", {"concurrent": concurrent})
            limits = {"enabled": True, "clock": "wall", "scale": self.args.scale, "speed": self.args.speed}
            emulator.ctl("PUT", "/ratelimits", limits)
            if self.args.latency_ms:
                path = r"^/(subscriptions|v1\.0)(/|$)"
                emulator.add_fault(path=path, kind="latency", latency_ms=self.args.latency_ms)
            position = emulator.log_position()
            started = datetime.now(UTC)
            load = os.getloadavg()[0]
            cpu = [cpu_seconds(h.process.pid) for h in hosts if h.process is not None]
            others = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
            self.submit(channel, identities, clients)
            requests = self.wait(clients[0], n, deadline=time.monotonic() + self.args.timeout)
            result.rss_mb = [peak_rss_mb(h) for h in hosts]
            result.cpu_s = [
                cpu_seconds(h.process.pid) - before for h, before in zip(hosts, cpu, strict=True) if h.process
            ]
            result.azurite_cpu_s = cpu_seconds(self.pids["azurite"]) - others["azurite"]
            result.emulator_cpu_s = cpu_seconds(self.pids["emulator"]) - others["emulator"]
            result.load = (load, os.getloadavg()[0])
            for log_file in Path(logs).glob("host*.log"):
                text = log_file.read_text(errors="replace")
                result.resumed += text.count("had no work item in time")
                result.held += text.count("is held by another pass")
            for client in clients:
                client.close()
        ends = [datetime.fromisoformat(r["updated_at"]) for r in requests if r["status"] not in ACTIVE]
        result.completion = (max(ends) - started).total_seconds() if ends else math.nan
        self.tally(result, requests, identities, position, RateLimitConfig.from_dict(limits))
        return result

    def submit(self, channel: str, identities: list[Any], clients: list[httpx.Client]) -> None:
        organization = self.emulator.organization

        def http(item: tuple[int, Any]) -> None:
            n, identity = item
            body = {"target": identity.id, "organization": organization}
            answer = clients[n % len(clients)].post("/api/requests", json=body)
            if answer.status_code != 202:
                raise SystemExit(f"POST /api/requests answered {answer.status_code}: {answer.text}")

        def tag(item: tuple[int, Any]) -> None:
            _, identity = item
            body = {"properties": {"tags": {"exo-organization": organization}}}
            while True:  # ARM paces the writer too (its own write bucket): wait as told, as az does
                try:
                    self.emulator.resources().tags.begin_create_or_update_at_scope(identity.id, body).result()
                    return
                except HttpResponseError as error:
                    if error.status_code != 429:
                        raise
                    time.sleep(int(error.response.headers.get("Retry-After", "1")))

        with ThreadPoolExecutor(IN_FLIGHT) as pool:
            list(pool.map(http if channel == "http" else tag, enumerate(identities)))

    def wait(self, client: httpx.Client, n: int, deadline: float) -> list[dict[str, Any]]:
        """Every request once all N exist and none is active, or nothing moved for QUIET seconds (a
        tag event that made no request: that target counts as lost), or the deadline passed."""
        interval = max(1.0, n / 500)
        seen, quiet_since = -1, time.monotonic()
        while True:
            active = client.get("/api/requests", params={"status": ACTIVE, "page_size": 1}).json()["value"]
            if not active:
                requests = list_all(client)
                if len(requests) != seen:
                    seen, quiet_since = len(requests), time.monotonic()
                if len(requests) >= n or time.monotonic() - quiet_since > QUIET:
                    return requests
            if time.monotonic() > deadline:
                return list_all(client)
            time.sleep(interval)

    def tally(
        self,
        result: Run,
        requests: list[dict[str, Any]],
        identities: list[Any],
        position: int,
        limits: RateLimitConfig,
    ) -> None:
        emulator = self.emulator
        succeeded = {r["target"].lower() for r in requests if r["status"] == "succeeded"}
        result.succeeded = len(succeeded)
        result.lost = sum(1 for i in identities if i.id.lower() not in succeeded)
        ours = {i.principal_id for i in identities}
        exchange = emulator.exchange_service_principal_id
        for principal in emulator.principals():
            if principal["id"] not in ours:
                continue
            app_roles = sum(
                1
                for a in principal["appRoleAssignments"]
                if a["resourceId"] == exchange and a["appRoleId"] == MANAGE_AS_APP_ROLE_ID
            )
            roles = Counter(r["roleDefinitionId"] for r in principal["directoryRoles"])
            result.duplicates += max(app_roles - 1, 0) + sum(c - 1 for c in roles.values())
        log = emulator.log(position)
        app = emulator.app_principal_id
        charged: Counter[str] = Counter()
        write_times: list[datetime] = []  # Graph writes served: how their pace compares with the limit's
        for entry in log:
            if entry["status"] == 429:
                result.throttled[entry["service"]] += 1
                continue  # a refused request takes no token
            write = entry["method"] not in ("GET", "HEAD")
            if entry["service"] == "graph" and entry["caller_id"] == app:
                result.graph_calls += 1
                query = dict(parse_qsl(entry["query"]))
                charged["graph_resource_units"] += graph_cost(entry["method"], entry["path"][5:], query)
                if write:
                    write_times.append(datetime.fromisoformat(entry["time"]))
                    charged["graph_writes"] += 1
                    charged["graph_tenant_writes"] += 1
            elif entry["service"] == "arm" and entry["path"].lower().startswith("/subscriptions/"):
                kind = {"GET": "reads", "HEAD": "reads", "DELETE": "deletes"}.get(entry["method"], "writes")
                charged[f"arm_global_{kind}"] += 1  # every caller in the subscription
                # Per principal: exomi's own calls, and the tag writer's (it is paced as well).
                who = "exomi" if entry["caller_id"] == app else "tag writer"
                charged[f"arm_{kind} ({who})"] += 1
                if who == "exomi":
                    result.arm_calls += 1
        bounds = {}
        for name, calls in charged.items():
            spec = limits.effective(name.split(" ")[0])
            if spec is not None:
                bounds[name] = max(calls - spec.size, 0) / spec.refill_per_second
        result.binding, result.bound = max(bounds.items(), key=lambda kv: kv[1], default=("", math.nan))
        if self.args.verbose:
            print(f"  calls charged per limit: {dict(charged)}; bounds {bounds}", flush=True)
            if write_times:
                first = min(write_times)
                per_window = Counter(int((t - first).total_seconds() // 20) for t in write_times)
                windows = " ".join(str(per_window[w]) for w in range(max(per_window) + 1))
                print(f"  Graph writes per 20 s from the first one: {windows}", flush=True)


def speed_ups(runs: list[Run]) -> list[str]:
    """Per channel and N: completion on the fewest instances over completion on each larger count, against
    linear (the ratio of the counts); the goal is within 1.5x of linear where no rate limit binds."""
    lines = []
    for run in runs:
        base = min(
            (r for r in runs if (r.channel, r.targets) == (run.channel, run.targets)),
            key=lambda r: r.instances,
        )
        if run.instances == base.instances or not run.completion:
            continue
        speed_up, linear = base.completion / run.completion, run.instances / base.instances
        verdict = "within 1.5x of linear" if speed_up * 1.5 >= linear else "NOT within 1.5x of linear"
        lines.append(
            f"speed-up {run.channel} N={run.targets}: {base.instances} -> {run.instances} instances "
            f"{speed_up:.2f}x (linear {linear:.0f}x; {verdict})"
        )
    return lines


def list_all(client: httpx.Client) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    page = client.get("/api/requests", params={"page_size": 200}).json()
    while True:
        items.extend(page["value"])
        if not page.get("nextLink"):
            return items
        page = client.get(page["nextLink"]).json()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/<pid>/stat fields 14 and 15, in clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(host: DevHostProcess) -> float:
    """The instance's peak resident set (VmHWM): devhost runs the app in its own process."""
    assert host.process is not None
    for line in Path(f"/proc/{host.process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return math.nan


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--targets", type=int, default=100, help="N (1000 and 5000 for the full run)")
    parser.add_argument("--instances", default="1,2,4")
    parser.add_argument("--channels", default="http,tags")
    parser.add_argument(
        "--event-delivery",
        choices=("concurrent", "serial"),
        default="concurrent",
        help="Event Grid sends each event when due (concurrent) or after the last one's answer (serial)",
    )
    parser.add_argument("--speed", type=float, default=1.0, help="refill rates x this (1 = published)")
    parser.add_argument("--scale", type=float, default=0.01, help="bucket sizes x this")
    parser.add_argument("--growth", action="store_true", help="also 10N on the first instance count")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="on every ARM and Graph call")
    parser.add_argument("--timeout", type=float, default=3600.0, help="give up on a run after this")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    instance_counts = [int(i) for i in args.instances.split(",")]
    runs: list[Run] = []
    storage_process = AzuriteProcess()
    with tempfile.TemporaryDirectory() as state_dir, storage_process as storage:
        process = EmulatorProcess("--fast", state_dir=Path(state_dir))
        info = process.start()
        os.environ.update(info.identity_env())
        try:
            control = httpx.Client(verify=info.raw["ca_bundle"], timeout=120)
            emulator = Emulator(
                {**info.raw, **control.post(f"{info.raw['control_endpoint']}/reset", json={}).json()}, control
            )
            assert storage_process.process is not None and process.process is not None
            pids = {"azurite": storage_process.process.pid, "emulator": process.process.pid}
            bench = Bench(emulator, storage, args, pids)
            plan = [(c, k, args.targets) for c in args.channels.split(",") for k in instance_counts]
            if args.growth:
                plan += [(c, instance_counts[0], 10 * args.targets) for c in args.channels.split(",")]
            print(f"rate limits: published refill x {args.speed}, bucket sizes x {args.scale}", flush=True)
            print(HEADER, flush=True)
            for channel, instances, n in plan:
                run = bench.run(channel, instances, n)
                runs.append(run)
                print(run.line(), flush=True)
        finally:
            process.stop()
    for line in speed_ups(runs):
        print(line)
    if args.growth:
        for channel in args.channels.split(","):
            small = next(r for r in runs if r.channel == channel and r.targets == args.targets)
            large = next(r for r in runs if r.channel == channel and r.targets == 10 * args.targets)
            print(
                f"growth {channel}: {args.targets} -> {10 * args.targets} targets on {small.instances} "
                f"instance(s): {large.completion / small.completion:.2f}x the time (10x is linear)"
            )
    print(json.dumps([r.__dict__ for r in runs], default=str))


if __name__ == "__main__":
    main()
