"""What one provision costs in Table Storage round trips, counted by exomi's own per-call counter
(shared/state/tables.py, the one bench/per_target_cpu.py prints), in one process against Azurite."""

from __future__ import annotations

from typing import Any

from shared.models import Channel, Requester
from shared.service import ExomiApp, ExomiService
from shared.settings import Settings
from tests.support.exomi import ExomiRunner

RECIPIENT_ADMIN = "31392ffb-586c-42d1-9346-e59415a2cc4e"


def made(before: dict[str, dict[str, int]], after: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    calls: dict[str, dict[str, int]] = {}
    for table, operations in after.items():
        for operation, count in operations.items():
            if count > before.get(table, {}).get(operation, 0):
                calls.setdefault(table, {})[operation] = count - before.get(table, {}).get(operation, 0)
    return calls


async def provision_counting(app: ExomiApp, target: str, organization: str) -> tuple[Any, dict]:
    """Provisions ``target`` through the service layer to its end; returns the request and the Table
    calls it made, by table and operation."""
    prefix = app.state.tables.prefix
    before = app.state.tables.calls.snapshot(prefix)
    service = ExomiService(app)
    body = {"target": target, "organization": organization}
    submission = await service.submit_provision(
        body, requester=Requester.operator("test"), channel=Channel.CLI
    )
    record = await service.run_to_end(submission.request.id)
    return record, made(before, app.state.tables.calls.snapshot(prefix))


async def test_a_provision_of_one_identity_makes_at_most_27_table_calls(emulator, azurite, targets):
    emulator.set_timings(replication_delay=0)  # the new identity is visible at once: one pass
    identity = targets.user_assigned_identity()
    env = ExomiRunner(emulator, azurite).env()
    async with await ExomiApp.open(Settings.load(env)) as app:
        record, calls = await provision_counting(app, identity.id, emulator.organization)
        steps = await app.state.steps.list(record.id)
        audit = await app.state.audit.list_for_request(record.id)
        target = await app.state.targets.get(record.target_key)

    assert record.status == "succeeded", record.message
    assert emulator.exchange_access(identity.principal_id) == (1, [RECIPIENT_ADMIN])
    # Everything the provision found is stored: every step done, both grants' intents and results, and
    # the target's record naming them.
    assert {s.name: s.status.value for s in steps} == {
        "identity": "done",
        "principal": "done",
        "exchange-sp": "done",
        "app-role": "done",
        "entra-role": "done",
    }
    results = sorted(a.step for a in audit if a.step in ("app-role", "entra-role"))
    assert results == ["app-role", "app-role", "entra-role", "entra-role"]  # each: intent and result
    assert target is not None and target.granted.app_role_assignment_id and target.granted.role_assignment_id
    total = sum(sum(operations.values()) for operations in calls.values())
    # bench/per_target_cpu.py: 48 calls per identity before a pass kept what it read and wrote its records
    # in batches, 22 since; a first provision in a new deployment adds 3 made once per process or
    # deployment (the learned durations, the principals index marker and its scan), and the
    # active-requests index 2 (its row is written with the request and deleted when it ends: docs/STATE.md).
    # Its end deletes the target's lock row with the ETag it wrote, without reading it (one call less).
    assert total <= 26, calls
    assert calls["targets"]["delete"] == 1 and calls["targets"]["get"] == 1, calls  # the target's record
    assert "(tables)" not in calls  # the tables were created when the app opened, once


async def test_the_passes_of_a_request_in_one_process_read_its_steps_and_audit_never(
    emulator, azurite, targets
):
    # The new identity is invisible to Graph for a while and no wait is held in a pass: the principal
    # step waits, each pass ends, and the next one starts later, in the same process.
    emulator.set_timings(replication_delay=1.0)
    identity = targets.user_assigned_identity()
    env = {**ExomiRunner(emulator, azurite).env(), "EXOMI_HOLD_SECONDS": "0.05"}
    async with await ExomiApp.open(Settings.load(env)) as app:
        record, calls = await provision_counting(app, identity.id, emulator.organization)
        steps = await app.state.steps.list(record.id)

    assert record.status == "succeeded", record.message
    assert emulator.exchange_access(identity.principal_id) == (1, [RECIPIENT_ADMIN])
    principal = next(s for s in steps if s.name == "principal")
    assert principal.attempts > 1  # it waited: the request took more than one pass
    assert calls["requests"]["update"] >= 2 * principal.attempts  # each pass claimed and left the request
    # The first pass knew there was nothing to read (queued), each later one had what the one before
    # wrote (the request's ETag said nobody else had written it since).
    assert "query" not in calls.get("steps", {}) and "query" not in calls.get("audit", {}), calls
