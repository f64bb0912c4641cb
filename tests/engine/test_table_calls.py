"""What one provision costs in Table Storage round trips, counted by exomi's own per-call counter
(shared/state/tables.py, the one bench/per_target_cpu.py prints), in one process against Azurite."""

from __future__ import annotations

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


async def test_a_provision_of_one_identity_makes_at_most_26_table_calls(emulator, azurite, targets):
    emulator.set_timings(replication_delay=0)  # the new identity is visible at once: one pass
    identity = targets.user_assigned_identity()
    env = ExomiRunner(emulator, azurite).env()
    async with await ExomiApp.open(Settings.load(env)) as app:
        prefix = app.state.tables.prefix
        before = app.state.tables.calls.snapshot(prefix)
        service = ExomiService(app)
        body = {"target": identity.id, "organization": emulator.organization}
        submission = await service.submit_provision(
            body, requester=Requester.operator("test"), channel=Channel.CLI
        )
        record = await service.run_to_end(submission.request.id)
        calls = made(before, app.state.tables.calls.snapshot(prefix))
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
    # 48 before a pass kept what it read and wrote its records in batches, 24 since (3 of them once per
    # process or deployment: the learned durations, the principals index marker and its scan).
    assert total <= 26, calls
    assert "(tables)" not in calls  # the tables were created when the app opened, once
