"""Several steps or audit records of one request written together (entity group transactions) on Azurite:
what is stored, what a changed ETag or a record already there does, and sets larger than one transaction."""

from __future__ import annotations

import pytest

from shared.errors import ConcurrencyError
from shared.models import StepStatus
from shared.state import StepRecord
from tests.integration.test_state_steps_audit import audit, new_request


def calls(state, table: str) -> dict[str, int]:
    return state.tables.calls.snapshot(state.tables.prefix).get(table, {})


async def test_steps_saved_together_are_one_call_and_each_can_be_saved_again(state):
    request = await new_request(state)
    names = ["identity", "principal", "app-role", "entra-role"]
    before = calls(state, "steps").get("batch", 0)

    saved = await state.steps.save_all(
        [
            StepRecord(request_id=request.id, name=n, index=i, status=StepStatus.DONE)
            for i, n in enumerate(names)
        ]
    )

    assert calls(state, "steps").get("batch", 0) == before + 1
    assert [s.name for s in await state.steps.list(request.id)] == names
    # Each comes back with the ETag it was stored with: the next write of it is conditioned on that.
    again = saved[0].model_copy(update={"message": "looked again"})
    await state.steps.save(again)
    assert (await state.steps.get(request.id, "identity")).message == "looked again"


async def test_a_step_changed_since_it_was_read_writes_none_of_the_transaction(state):
    request = await new_request(state)
    names = ["identity", "principal", "app-role"]
    saved = await state.steps.save_all(
        [StepRecord(request_id=request.id, name=n, index=i) for i, n in enumerate(names)]
    )
    await state.steps.save(saved[1].model_copy(update={"message": "another pass"}))  # its ETag changes

    with pytest.raises(ConcurrencyError):
        await state.steps.save_all([s.model_copy(update={"status": StepStatus.DONE}) for s in saved])

    stored = {s.name: s for s in await state.steps.list(request.id)}
    assert {s.status for s in stored.values()} == {StepStatus.PENDING}  # not one of them was written
    assert stored["principal"].message == "another pass"


async def test_audit_records_written_together_keep_a_record_that_was_there_first(state):
    request = await new_request(state)
    first, added = await state.audit.append(audit(request.id, "app-role", 1, after={"assignment_id": "a-1"}))
    assert added
    records = [
        audit(request.id, "app-role", 1, after={"assignment_id": "a-replayed"}),  # a replay of the first
        audit(request.id, "entra-role", 1, after={"assignment_id": "r-1"}),
        audit(request.id, "modules", 1, after={"version": "3.5.0"}),
    ]

    await state.audit.append_all(records)

    stored = {(r.step, r.sequence): r for r in await state.audit.list_for_request(request.id)}
    assert stored[("app-role", 1)].after == {"assignment_id": "a-1"}  # never overwritten
    assert stored[("entra-role", 1)].after == {"assignment_id": "r-1"}
    assert stored[("modules", 1)].after == {"version": "3.5.0"}


async def test_more_steps_than_one_transaction_holds_are_all_written(state):
    request = await new_request(state)
    steps = [StepRecord(request_id=request.id, name=f"step-{i:03d}", index=i) for i in range(150)]
    before = calls(state, "steps").get("batch", 0)

    await state.steps.save_all(steps)

    assert calls(state, "steps").get("batch", 0) == before + 2  # at most 100 entities per transaction
    assert len(await state.steps.list(request.id)) == 150
