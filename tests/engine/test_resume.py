"""The resume pass (``reconcile._resume``, run every 30 seconds) against Azurite, on a work queue nobody
reads (a backlog that does not move), driven with an explicit ``now``: a backlog of work items is not
queued again, a work item that was really lost is queued again within a minute (and every one of them
should the queue lose what it held), a request
whose worker died is resumed and then backed off from, and the active-requests index heals what a crash
leaves (a row without its request, a row of an ended request, a request recorded before the index)."""

from __future__ import annotations

import base64
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest
from azure.data.tables import TableClient
from azure.storage.queue import QueueClient

from shared.models import Channel, Requester, RequestStatus
from shared.reconcile import ReconcileReport, _resume
from shared.service import ExomiApp, ExomiService
from shared.settings import Settings
from shared.state.records import RequestRecord, new_request_id, utcnow
from tests.support.exomi import ExomiRunner

OPERATOR = Requester.operator("resume test")


class World:
    """exomi's service on tables and a queue of its own; the queue's messages, counted per request."""

    def __init__(self, emulator, azurite, targets) -> None:
        self.emulator, self.azurite, self.targets = emulator, azurite, targets
        self.runner = ExomiRunner(emulator, azurite)
        self.queue_name = f"resume-{uuid.uuid4().hex[:12]}"
        self.apps: list[ExomiApp] = []

    async def open(self) -> ExomiService:
        """A process of its own (as the next instance, or a restart, would be)."""
        env = {**self.runner.env(), "EXOMI_QUEUE_NAME": self.queue_name}
        app = await ExomiApp.open(Settings.load(env))
        self.apps.append(app)
        return ExomiService(app)

    async def submit(self, service: ExomiService, name: str, *, send: bool = True) -> RequestRecord:
        """A provision request as exomi's command or the HTTP API records it and queues it; ``send=False``: the process died before it
        queued the work item (or the queue did not answer)."""
        identity = self.targets.user_assigned_identity(name)
        body = {"target": identity.id, "organization": self.emulator.organization}
        submission = await service.submit_provision(body, requester=OPERATOR, channel=Channel.CLI)
        if send:
            assert await service.try_enqueue(submission.request)
        return submission.request

    def work_items(self) -> Counter[str]:
        """How many work items the queue holds for each request."""
        queue = QueueClient.from_connection_string(self.azurite, self.queue_name)
        counts: Counter[str] = Counter()
        for message in queue.peek_messages(max_messages=32):
            counts[json.loads(base64.b64decode(message.content))["request_id"]] += 1
        return counts

    def index_table(self) -> TableClient:
        return TableClient.from_connection_string(self.azurite, f"{self.runner.table_prefix}active")


@pytest.fixture
async def world(emulator, azurite, targets) -> AsyncIterator[World]:
    world = World(emulator, azurite, targets)
    yield world
    for app in world.apps:
        await app.close()


async def resume(service: ExomiService, now: datetime) -> int:
    report = ReconcileReport()
    await _resume(service, now, report)
    return report.resumed


def whole_seconds(moment: datetime) -> datetime:
    """``now`` for the passes: whole seconds, so that the times they store read back exactly."""
    return moment.replace(microsecond=0) + timedelta(seconds=1)


async def indexed(service: ExomiService) -> set[str]:
    return {entry.request_id async for entry in service.app.state.requests.active_entries()}


async def test_a_backlog_is_not_queued_again_and_again_and_a_lost_work_item_is(world):
    service = await world.open()
    start = utcnow()
    backlog = [await world.submit(service, f"ScaleMI{i}") for i in range(4)]
    lost = await world.submit(service, "LostMI", send=False)
    t0 = whole_seconds(utcnow())
    assert t0 - start < timedelta(seconds=30)  # every mark below is then well inside its grace
    assert world.work_items() == {r.id: 1 for r in backlog}

    # A resume pass every 30 s for 15 minutes while nothing takes the work items (defaults: queued_grace
    # 30 s for a work item perhaps never sent, resume_grace 300 s for one in the queue).
    resumed = {}
    for seconds in range(40, 1000, 30):
        resumed[seconds] = await resume(service, t0 + timedelta(seconds=seconds))
    # Only the lost work item, within a minute. The backlog's work items wait at the front of the queue:
    # queueing them again would only add to its end.
    assert {at: n for at, n in resumed.items() if n} == {40: 1}
    assert world.work_items() == {**{r.id: 1 for r in backlog}, lost.id: 1}
    # (The resume pass before this queued every one of them again on each pass: 32 work items each.)

    # Should the queue lose what it held (cleared by hand), every one of them is queued again, once.
    QueueClient.from_connection_string(world.azurite, world.queue_name).clear_messages()
    assert await resume(service, t0 + timedelta(seconds=1000)) == 5
    assert await resume(service, t0 + timedelta(seconds=1030)) == 0
    assert world.work_items() == {**{r.id: 1 for r in backlog}, lost.id: 1}


async def test_a_request_whose_worker_died_is_resumed_then_backed_off_from(world):
    service = await world.open()
    record = await world.submit(service, "RunningMI")
    requests = service.app.state.requests
    sent = whole_seconds(utcnow())
    # A pass claimed it and died: the lease it held ran out (EXOMI_LEASE_SECONDS 30).
    running = await requests.update(
        record.model_copy(
            update={"status": RequestStatus.RUNNING, "lease_until": sent + timedelta(seconds=9)}
        )
    )
    # While work items wait in the queue, the resume pass does not read a request whose work item was sent
    # less than resume_grace (300 s) before (a backlog costs no reads): a first pass whose worker died
    # waits that long then (without a backlog it is read, and resumed, at once: test_nothing_lost.py).
    assert await resume(service, sent + timedelta(seconds=40)) == 0
    t0 = sent + timedelta(seconds=300)
    assert await resume(service, t0 + timedelta(seconds=1)) == 1
    # Its new work item is behind a backlog: it is not queued again every 30 s, but after 60 s, 120 s...
    assert await resume(service, t0 + timedelta(seconds=31)) == 0
    assert await resume(service, t0 + timedelta(seconds=61)) == 1
    assert await resume(service, t0 + timedelta(seconds=91)) == 0
    assert await resume(service, t0 + timedelta(seconds=151)) == 0
    assert await resume(service, t0 + timedelta(seconds=181)) == 1
    assert world.work_items() == {record.id: 4}

    # It moved (another pass took it over and died as well): resumed at once, the backoff starts again.
    await requests.update(running.model_copy(update={"lease_until": t0 + timedelta(seconds=190)}))
    assert await resume(service, t0 + timedelta(seconds=200)) == 1
    assert await resume(service, t0 + timedelta(seconds=230)) == 0
    assert await resume(service, t0 + timedelta(seconds=260)) == 1


async def test_the_index_heals_what_a_crash_leaves_and_nothing_is_queued_for_it(world):
    service = await world.open()
    requests = service.app.state.requests
    ended = await world.submit(service, "EndedMI")
    assert await indexed(service) == {ended.id}
    await service.app.state.finish(await requests.get(ended.id), RequestStatus.SUCCEEDED)
    assert await indexed(service) == set()  # an ended request leaves the index

    # A crash between ending a request and deleting its row; one between writing a row and its request.
    await requests.active.add(ended.id)
    orphan = new_request_id()
    await requests.active.add(orphan)
    t0 = whole_seconds(utcnow())
    assert await resume(service, t0 + timedelta(seconds=40)) == 0
    assert await indexed(service) == {orphan}  # the ended one's row is gone; the other may still be written
    assert await resume(service, t0 + timedelta(minutes=11)) == 0
    assert await indexed(service) == set()
    assert world.work_items() == {ended.id: 1}  # only the work item it was given when it was submitted


async def test_requests_recorded_before_the_index_existed_are_indexed_and_resumed(world):
    service = await world.open()
    old = await world.submit(service, "OldMI", send=False)  # and its work item was lost as well
    table = world.index_table()
    for entity in list(table.list_entities()):  # as a deployment before the index left it: no rows, no marker
        table.delete_entity(entity["PartitionKey"], entity["RowKey"])

    later = await world.open()  # the next process builds the index once
    t0 = whole_seconds(utcnow())
    assert await resume(later, t0 + timedelta(seconds=40)) == 1
    assert await indexed(later) == {old.id}
    assert world.work_items() == {old.id: 1}
    assert {e["RowKey"] for e in table.query_entities("PartitionKey eq 'index'")} == {"built"}
