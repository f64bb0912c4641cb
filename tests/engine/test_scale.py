"""Many targets in one process, through the service layer (as one queue worker runs them): tenant facts
read once, and Graph paced to its rate limit, against the emulator and Azurite."""

from __future__ import annotations

import asyncio
import math
from typing import Any
from urllib.parse import parse_qsl

from emulator.throttling import graph_cost
from shared.models import Channel, Requester
from shared.service import ExomiApp, ExomiService
from shared.settings import Settings
from tests.support.exomi import ExomiRunner

EXO_APP_ID = "00000002-0000-0ff1-ce00-000000000000"
RECIPIENT_ADMIN = "31392ffb-586c-42d1-9346-e59415a2cc4e"


async def provision_at_once(emulator, azurite, identities: list[Any]) -> list[str]:
    """Every identity submitted and run to its end at the same time, in this process."""
    env = ExomiRunner(emulator, azurite).env()
    requester = Requester.operator("scale test")
    async with await ExomiApp.open(Settings.load(env)) as app:
        service = ExomiService(app)

        async def one(target: str) -> str:
            body = {"target": target, "organization": emulator.organization}
            submission = await service.submit_provision(body, requester=requester, channel=Channel.CLI)
            return str((await service.run_to_end(submission.request.id)).status.value)

        return await asyncio.gather(*(one(identity.id) for identity in identities))


def assert_granted_once(emulator, identities: list[Any]) -> None:
    """Each identity holds Exchange.ManageAsApp once and the policy's role once: no duplicate grant."""
    for identity in identities:
        assert emulator.exchange_access(identity.principal_id) == (1, [RECIPIENT_ADMIN]), identity.name


async def test_the_exchange_principal_is_read_once_for_many_targets(emulator, azurite, targets):
    identities = [targets.user_assigned_identity(f"mi-{i}") for i in range(10)]
    start = emulator.log_position()

    statuses = await provision_at_once(emulator, azurite, identities)

    assert statuses == ["succeeded"] * 10
    assert_granted_once(emulator, identities)
    reads = [
        e
        for e in emulator.log(start, service="graph")
        if e["method"] == "GET" and f"appId='{EXO_APP_ID}'" in e["path"]
    ]
    assert len(reads) == 1  # one read per process, not one per request (nor two, with the privilege check)


async def test_a_burst_paces_itself_to_graphs_rate_limit(emulator, azurite, targets):
    # A resource-unit bucket of 20 that refills 20 per second, on the manual clock: it refills only when
    # a caller waited out the Retry-After it was given, so every refill costs at least one 429.
    size, refill = 20, 20
    identities = [targets.user_assigned_identity(f"mi-{i}") for i in range(20)]
    emulator.set_rate_limits(limits={"graph_resource_units": {"size": size, "refill_per_second": refill}})
    start = emulator.log_position()

    statuses = await provision_at_once(emulator, azurite, identities)

    assert statuses == ["succeeded"] * 20
    assert_granted_once(emulator, identities)
    graph = emulator.log(start, service="graph")
    served = sum(
        graph_cost(e["method"], e["path"].removeprefix("/v1.0"), dict(parse_qsl(e["query"])))
        for e in graph
        if e["status"] != 429
    )
    throttled = emulator.rate_limits()["throttled"]["total"]
    assert throttled == sum(1 for e in graph if e["status"] == 429) > 0
    # What the limit implies: the refills the resource units served needed (each one a Retry-After
    # waited out after a 429), and, before the first 429 told exomi anything, at most one request per
    # identity in flight that the empty bucket refused. Without pacing the same burst retries in a herd
    # that the emulator keeps refusing (bench/per_target_cpu.py --no-pacing: hundreds of 429s).
    refills = math.ceil((served - size) / refill)
    assert throttled <= len(identities) + refills, (throttled, served, refills)
