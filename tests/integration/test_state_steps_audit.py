"""Steps and the audit trail on Azurite: per-step state, replay-safe audit, large values."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from shared.errors import ConcurrencyError, InputError
from shared.models import Channel, ProvisionRequest, StepStatus
from shared.policy import load_policy
from shared.state import AuditRecord, StepRecord
from shared.state.codec import MAX_JSON_PARTS, MAX_PROPERTY_CHARS, is_truncated
from shared.state.records import utcnow

SUB = "6a2b5c1e-0d3f-4e8a-9b7c-1d2e3f4a5b6c"
AA = f"/subscriptions/{SUB}/resourceGroups/rg-exo/providers/Microsoft.Automation/automationAccounts/aa-exo-01"
POLICY = load_policy(
    json.dumps({"allowed_organizations": ["*.onmicrosoft.com"], "allowed_scopes": [f"/subscriptions/{SUB}"]})
)


async def new_request(state, target: str = AA, **kwargs):
    request = ProvisionRequest.parse(
        {
            "target": target,
            "organization": "contoso.onmicrosoft.com",
            "requested_by": "alice",
            "channel": "http",
        }
    )
    return (await state.submit(request, POLICY.evaluate(request), **kwargs)).request


def audit(request_id: str, step: str, sequence: int, **fields) -> AuditRecord:
    return AuditRecord(
        request_id=request_id,
        step=step,
        sequence=sequence,
        action=fields.pop("action", "grant Exchange.ManageAsApp"),
        target=AA,
        requested_by="alice",
        channel=Channel.HTTP,
        **fields,
    )


async def test_steps_are_saved_per_request_and_listed_in_plan_order(state):
    request = await new_request(state)
    later = utcnow() + timedelta(minutes=2)
    await state.steps.save(StepRecord(request_id=request.id, name="verify", index=6))
    await state.steps.save(
        StepRecord(request_id=request.id, name="resolve-identity", index=0, status=StepStatus.DONE)
    )
    await state.steps.save(
        StepRecord(
            request_id=request.id,
            name="import-modules",
            index=1,
            status=StepStatus.WAITING,
            action="import ExchangeOnlineManagement 3.5.1",
            observed={"provisioningState": "Creating"},
            check_again_at=later,
            attempts=2,
            message="waiting for the module import",
        )
    )
    steps = await state.steps.list(request.id)
    assert [s.name for s in steps] == ["resolve-identity", "import-modules", "verify"]
    waiting = await state.steps.get(request.id, "import-modules")
    assert waiting.status is StepStatus.WAITING
    assert waiting.observed == {"provisioningState": "Creating"}
    assert waiting.check_again_at == later and waiting.attempts == 2
    assert await state.steps.get(request.id, "runbook") is None
    other = await new_request(state, AA.replace("aa-exo-01", "aa-exo-02"))
    assert await state.steps.list(other.id) == []


async def test_a_step_saved_with_a_stale_etag_is_refused(state, open_state):
    request = await new_request(state)
    saved = await state.steps.save(StepRecord(request_id=request.id, name="grant-app-role"))
    other_process = await open_state()
    theirs = await other_process.steps.get(request.id, "grant-app-role")
    await state.steps.save(saved.model_copy(update={"status": StepStatus.DONE}))
    with pytest.raises(ConcurrencyError):
        await other_process.steps.save(theirs.model_copy(update={"status": StepStatus.FAILED}))
    assert (await state.steps.get(request.id, "grant-app-role")).status is StepStatus.DONE


async def test_step_reads_refuse_hostile_keys(state):
    with pytest.raises(InputError) as caught:
        await state.steps.list("' or 1 eq 1")
    assert caught.value.field == "request_id"


async def test_a_large_observation_round_trips_and_a_huge_one_is_truncated_with_a_note(state):
    request = await new_request(state)
    output = {"jobOutput": "Get-AcceptedDomain: contoso.onmicrosoft.com\r\n" * 3_000}  # ~140,000 characters
    await state.steps.save(StepRecord(request_id=request.id, name="verify", observed=output))
    assert (await state.steps.get(request.id, "verify")).observed == output
    huge = {"jobOutput": "x" * 3_000_000}
    await state.steps.save(
        StepRecord(request_id=request.id, name="verify", observed=huge, message="y" * 50_000)
    )
    stored = await state.steps.get(request.id, "verify")
    assert is_truncated(stored.observed)
    assert stored.observed["preview"].startswith('{"jobOutput":"xxxx')
    assert stored.message.endswith("[truncated: 50000 characters in total]")


async def test_the_submission_is_audited_with_who_and_through_which_channel(state):
    request = await new_request(state)
    (entry,) = await state.audit.list_for_request(request.id)
    assert (entry.step, entry.sequence, entry.action) == ("request", 0, "provision request accepted")
    assert (entry.requested_by, entry.channel, entry.target) == ("alice", Channel.HTTP, AA)
    assert entry.after["status"] == "queued"
    assert entry.after["decision"]["role"] == "Exchange Recipient Administrator"


async def test_audit_appends_are_idempotent_on_replay_and_never_overwrite(state):
    request = await new_request(state)
    first = audit(
        request.id,
        "grant-app-role",
        1,
        before=None,
        after={"appRoleAssignmentId": "OpOmUGiFmkuNaF0FkmNbdkRuk2rfRKNAnQ08fp6ZDIA"},
        service_request_id="7c9a0f1e-2b3d-4c5e-8f70-0a1b2c3d4e5f",
    )
    stored, created = await state.audit.append(first)
    assert created
    # The step is replayed after a crash and records the same action again (maybe with what it saw now).
    replayed, created_again = await state.audit.append(first.model_copy(update={"after": {"seen": "later"}}))
    assert not created_again
    assert replayed.after == first.after and replayed.service_request_id == first.service_request_id
    await state.audit.append(audit(request.id, "grant-app-role", 2, action="re-grant"))
    entries = await state.audit.list_for_request(request.id)
    assert [(e.step, e.sequence) for e in entries] == [
        ("request", 0),
        ("grant-app-role", 1),
        ("grant-app-role", 2),
    ]


async def test_the_submission_audit_is_not_lost_when_a_crash_hit_right_after_the_request_was_written(state):
    request = ProvisionRequest.parse(
        {"target": AA, "organization": "contoso.onmicrosoft.com", "requested_by": "alice", "channel": "http"}
    )
    decision = POLICY.evaluate(request)
    first = await state.submit(request, decision, idempotency_key="k-1")
    # Simulate the crash: the audit record never made it (remove it behind the repository's back).
    await state.tables.audit.delete_entity(first.request.id, "request:000000")
    assert await state.audit.list_for_request(first.request.id) == []
    replay = await state.submit(request, decision, idempotency_key="k-1")
    assert not replay.created
    assert [e.action for e in await state.audit.list_for_request(first.request.id)] == [
        "provision request accepted"
    ]


async def test_audit_can_be_read_per_target_with_paging(state):
    first = await new_request(state)
    await state.finish(first, "succeeded")
    second = await new_request(state)
    for n in range(1, 4):
        await state.audit.append(audit(second.id, "assign-role", n))
    other = await new_request(state, AA.replace("aa-exo-01", "aa-exo-02"))
    page = await state.audit.list_for_target(AA.upper().replace(SUB.upper(), SUB), page_size=3)
    rest = await state.audit.list_for_target(AA, page_size=3, continuation_token=page.continuation_token)
    entries = page.items + rest.items
    assert len(entries) == 5 and {e.request_id for e in entries} == {first.id, second.id}
    assert other.id not in {e.request_id for e in entries}


async def test_large_before_and_after_values_fit_one_audit_entity(state):
    request = await new_request(state)
    # Each value just under the per-value limit: the entity is then as large as exomi ever writes.
    line = "Connect-ExchangeOnline -ManagedIdentity -Organization contoso.onmicrosoft.com\n"
    escaped = len(json.dumps(line)) - 2  # the characters one line takes in stored JSON
    big = {"content": line * ((MAX_PROPERTY_CHARS * MAX_JSON_PARTS - 100) // escaped)}
    await state.audit.append(audit(request.id, "runbook", 1, before=big, after={**big, "published": True}))
    (_, entry) = await state.audit.list_for_request(request.id)
    assert entry.before == big and entry.after == {**big, "published": True}
