"""The requests table on Azurite: create, get, list/filter/page, ETag races, idempotency, one active request."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import timedelta

import pytest

from shared.errors import ConcurrencyError, Conflict, IdempotencyConflict, InputError, NotFound
from shared.models import Channel, Operation, ProvisionRequest, RequestStatus, RevokeRequest, Role
from shared.policy import load_policy

SUB = "6a2b5c1e-0d3f-4e8a-9b7c-1d2e3f4a5b6c"
RG = f"/subscriptions/{SUB}/resourceGroups/rg-exo"
POLICY = load_policy(
    json.dumps({"allowed_organizations": ["*.onmicrosoft.com"], "allowed_scopes": [f"/subscriptions/{SUB}"]})
)


def aa(name: str = "aa-exo-01") -> str:
    return f"{RG}/providers/Microsoft.Automation/automationAccounts/{name}"


def provision(target: str | None = None, **changes) -> ProvisionRequest:
    body = {
        "target": target or aa(),
        "organization": "contoso.onmicrosoft.com",
        "requested_by": "alice",
        "channel": "http",
    }
    return ProvisionRequest.parse({**body, **changes})


async def submit(state, request, **kwargs):
    return await state.submit(request, POLICY.evaluate(request).raise_if_refused(), **kwargs)


async def test_a_submitted_request_reads_back_as_it_was_accepted(state):
    request = provision(role="Security Reader", runtime="7.4", external_reference="INC0012345")
    submission = await submit(state, request)
    assert submission.created
    record = await state.requests.get(submission.request.id)
    assert record.status is RequestStatus.QUEUED
    assert record.operation is Operation.PROVISION
    assert record.request == request
    assert record.decision.role is Role.SECURITY_READER
    assert record.decision.runtime_environment == "exomi-powershell-7-4"
    assert (record.target, record.target_key) == (aa(), request.target_id.key)
    assert (record.channel, record.requested_by, record.external_reference) == (
        Channel.HTTP,
        "alice",
        "INC0012345",
    )
    assert record.etag


async def test_revoke_requests_round_trip(state):
    revoke = RevokeRequest.parse({"target": aa(), "requested_by": "tag-handler", "channel": "tag"})
    submission = await state.submit(revoke, POLICY.evaluate(revoke))
    record = await state.requests.get(submission.request.id)
    assert record.operation is Operation.REVOKE
    assert isinstance(record.request, RevokeRequest)
    assert record.decision is None


async def test_unknown_and_hostile_request_ids(state):
    with pytest.raises(NotFound):
        await state.requests.get("01a21869-78cc-7973-9fae-985366b6a790")
    with pytest.raises(InputError) as caught:
        await state.requests.get("x' or PartitionKey ne 'y")
    assert caught.value.field == "request_id"


async def test_a_policy_refusal_cannot_be_submitted(state):
    request = provision(role="Global Administrator")
    with pytest.raises(Exception, match="allow_global_administrator"):
        await state.submit(request, POLICY.evaluate(request))
    assert (await state.requests.list()).items == []


async def test_filters_select_exactly_the_matching_requests(state):
    first = (await submit(state, provision(aa("aa-exo-01"), external_reference="INC1"))).request
    second = (
        await submit(state, provision(aa("aa-exo-02"), channel="ticket", external_reference="INC2"))
    ).request
    third = (await submit(state, provision(aa("aa-exo-03"), channel="ticket"))).request
    third = await state.finish(third, RequestStatus.FAILED, message="module import failed")

    async def ids(**filters):
        return [r.id for r in (await state.requests.list(**filters)).items]

    assert await ids() == [first.id, second.id, third.id]  # oldest first
    assert await ids(channel="ticket") == [second.id, third.id]
    assert await ids(status="queued") == [first.id, second.id]
    assert await ids(status=[RequestStatus.FAILED, RequestStatus.SUCCEEDED]) == [third.id]
    assert await ids(channel=Channel.TICKET, status="queued") == [second.id]
    assert await ids(target=aa("AA-EXO-02").lower()) == [second.id]  # any casing of the id
    assert await ids(external_reference="INC1") == [first.id]
    assert await ids(operation="revoke") == []


async def test_filter_values_with_quotes_are_values_not_odata(state):
    hostile = "INC1' or RowKey eq 'request"
    quoted = (await submit(state, provision(aa("aa-exo-01"), external_reference=hostile))).request
    await submit(state, provision(aa("aa-exo-02"), external_reference="INC1"))
    matches = (await state.requests.list(external_reference=hostile)).items
    assert [r.id for r in matches] == [quoted.id]
    assert (await state.requests.list(external_reference="' or 1 eq 1 or '")).items == []
    assert (await state.requests.list(external_reference="x' or Status ne 'y")).items == []


@pytest.mark.parametrize(
    ("filters", "field"),
    [
        ({"status": "queued' or 1 eq 1"}, "status"),
        ({"channel": "http or Channel ne ''"}, "channel"),
        ({"target": "' or 1 eq 1"}, "target"),
        ({"external_reference": "x" * 500}, "external_reference"),
        ({"page_size": 0}, "page_size"),
        ({"page_size": 10_000}, "page_size"),
        ({"continuation_token": "not-a-token"}, "continuation_token"),
        ({"continuation_token": "eyJwayI6IDEsICJyayI6IDJ9"}, "continuation_token"),
    ],
)
async def test_bad_filter_values_are_refused_naming_the_field(state, filters, field):
    with pytest.raises(InputError) as caught:
        await state.requests.list(**filters)
    assert caught.value.field == field


async def test_paging_returns_every_request_once_in_order(state):
    created = [(await submit(state, provision(aa(f"aa-exo-{n:02d}")))).request.id for n in range(7)]
    seen, token, pages = [], None, 0
    while True:
        page = await state.requests.list(page_size=3, continuation_token=token)
        assert len(page.items) <= 3
        seen += [r.id for r in page.items]
        pages += 1
        token = page.continuation_token
        if token is None:
            break
    assert seen == created
    assert pages == 3


async def test_paging_with_a_filter(state):
    wanted = []
    for n in range(6):
        channel = "ticket" if n % 2 else "http"
        record = (await submit(state, provision(aa(f"aa-exo-{n:02d}"), channel=channel))).request
        if channel == "ticket":
            wanted.append(record.id)
    first = await state.requests.list(channel="ticket", page_size=2)
    second = await state.requests.list(
        channel="ticket", page_size=2, continuation_token=first.continuation_token
    )
    assert [r.id for r in first.items + second.items] == wanted
    assert (
        second.continuation_token is None
        or (
            await state.requests.list(
                channel="ticket", page_size=2, continuation_token=second.continuation_token
            )
        ).items
        == []
    )


async def test_an_etag_race_between_two_writers_is_lost_by_the_second(state, open_state):
    other_process = await open_state()
    record = (await submit(state, provision())).request
    mine = await state.requests.get(record.id)
    theirs = await other_process.requests.get(record.id)
    await state.requests.update(mine.model_copy(update={"status": RequestStatus.RUNNING, "message": "mine"}))
    with pytest.raises(ConcurrencyError) as caught:
        await other_process.requests.update(theirs.model_copy(update={"status": RequestStatus.CANCELLED}))
    assert record.id in caught.value.message
    stored = await state.requests.get(record.id)
    assert (stored.status, stored.message) == (RequestStatus.RUNNING, "mine")
    # Re-reading and trying again works.
    again = await other_process.requests.update(
        stored.model_copy(update={"message": "theirs, after re-reading"})
    )
    assert (await state.requests.get(record.id)).message == again.message


async def test_the_same_idempotency_key_and_body_returns_the_original_request(state):
    first = await submit(state, provision(), idempotency_key="order-7")
    again = await submit(state, provision(), idempotency_key="order-7")
    assert first.created and not again.created
    assert again.request.id == first.request.id
    assert len((await state.requests.list()).items) == 1


async def test_the_same_key_with_another_body_is_a_conflict(state):
    first = await submit(state, provision(), idempotency_key="order-7")
    with pytest.raises(IdempotencyConflict) as caught:
        await submit(state, provision(role="Security Reader"), idempotency_key="order-7")
    assert caught.value.original_request_id == first.request.id
    assert len((await state.requests.list()).items) == 1


async def test_keys_are_per_caller(state):
    alice = await submit(state, provision(aa("aa-exo-01")), idempotency_key="k")
    bob = await submit(state, provision(aa("aa-exo-02"), requested_by="bob"), idempotency_key="k")
    assert bob.created and bob.request.id != alice.request.id


async def test_a_replay_after_a_crash_before_the_request_was_written_completes_it(state):
    request = provision()
    body_hash = hashlib.sha256(request.fingerprint().encode()).hexdigest()
    # What submit had done when the process died: the lock and the key, but not the request entity.
    crashed_id = "01a21869-78cc-7973-9fae-985366b6a790"
    await state.acquire_target(request.target_id, crashed_id)
    assert await state.idempotency.create("alice", "order-9", crashed_id, body_hash)
    replay = await submit(state, request, idempotency_key="order-9")
    assert replay.created and replay.request.id == crashed_id
    assert (await state.active_request(request.target_id)).id == crashed_id
    audit = await state.audit.list_for_request(crashed_id)
    assert [a.action for a in audit] == ["provision request accepted"]


async def test_one_active_request_per_target(state):
    first = (await submit(state, provision())).request
    with pytest.raises(Conflict) as caught:
        await submit(state, provision(role="Security Reader", channel="tag"), idempotency_key="second")
    assert caught.value.active_request_id == first.id
    assert first.id in caught.value.message and "queued" in caught.value.message
    # Nothing was written for the refused request: not a request, not its idempotency key.
    assert [r.id for r in (await state.requests.list()).items] == [first.id]
    assert await state.idempotency.get("alice", "second") is None
    # Other targets are independent.
    assert (await submit(state, provision(aa("aa-exo-02")))).created
    # Once the first request ends, the target is free again.
    await state.finish(await state.requests.get(first.id), RequestStatus.SUCCEEDED, message="done")
    second = await submit(state, provision(role="Security Reader", channel="tag"), idempotency_key="second")
    assert second.created
    assert (await state.active_request(provision().target_id)).id == second.request.id


async def test_concurrent_submissions_for_one_target_let_exactly_one_through(state, open_state):
    stores = [state] + [await open_state() for _ in range(3)]
    outcomes = await asyncio.gather(
        *(submit(store, provision(requested_by=f"user{n}")) for n, store in enumerate(stores)),
        return_exceptions=True,
    )
    accepted = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(accepted) == 1
    assert all(isinstance(o, Conflict) for o in outcomes if isinstance(o, BaseException))
    assert [r.id for r in (await state.requests.list()).items] == [accepted[0].request.id]


async def test_concurrent_replays_of_one_key_create_one_request(state, open_state):
    stores = [state] + [await open_state() for _ in range(3)]
    outcomes = await asyncio.gather(*(submit(store, provision(), idempotency_key="same") for store in stores))
    assert len({o.request.id for o in outcomes}) == 1
    assert len((await state.requests.list()).items) == 1


async def test_a_lock_left_by_a_finished_request_does_not_block(state):
    first = (await submit(state, provision())).request
    # A crash between marking the request finished and releasing the lock.
    await state.requests.update(first.model_copy(update={"status": RequestStatus.SUCCEEDED}))
    assert await state.active_request(provision().target_id) is None
    assert (await submit(state, provision(role="Security Reader"))).created


async def test_a_request_frees_its_target_with_the_lock_it_wrote_not_a_newer_holders(state):
    first = (await submit(state, provision())).request
    assert first.lock_etag  # kept with the request: its end deletes the row without reading it
    # A crash between marking it finished and releasing the lock; the next request takes the target.
    await state.requests.update(first.model_copy(update={"status": RequestStatus.SUCCEEDED}))
    second = (await submit(state, provision(role="Security Reader"))).request
    assert second.lock_etag != first.lock_etag

    assert not await state.release_target(first.target_key, first.id, lock_etag=first.lock_etag)
    assert (await state.active_request(provision().target_id)).id == second.id
    await state.finish(second, RequestStatus.SUCCEEDED, message="done")
    assert await state.targets.get_lock(second.target_key) is None


async def test_a_target_freed_by_an_older_exomi_is_taken_again(state):
    # Before 2026-12-04 a release kept the lock row with no holder; now it deletes the row, and a new
    # request first tries a plain insert. A row left the old way still lets the next request in.
    target = provision().target_id
    lock = await state.targets.write_lock(target.key, target.canonical, None, replacing=None)
    assert lock.request_id is None
    second = await submit(state, provision(role="Security Reader"))
    assert second.created
    assert (await state.active_request(target)).id == second.request.id
    await state.finish(second.request, RequestStatus.SUCCEEDED, message="done")
    assert await state.targets.get_lock(target.key) is None  # released: no row left behind


async def test_a_lock_whose_request_was_never_written_expires(state, open_state):
    target = provision().target_id
    await state.acquire_target(target, "01a21869-78cc-7973-9fae-985366b6a790")  # then the process died
    with pytest.raises(Conflict) as caught:
        await submit(state, provision())
    assert "being recorded" in caught.value.message
    patient = await open_state(stale_lock_after=timedelta(0))
    assert (await submit(patient, provision())).created


async def test_finish_needs_a_terminal_status_and_the_current_etag(state, open_state):
    record = (await submit(state, provision())).request
    with pytest.raises(ValueError):
        await state.finish(record, RequestStatus.WAITING)
    await state.requests.update(record.model_copy(update={"status": RequestStatus.RUNNING}))
    with pytest.raises(ConcurrencyError):
        await state.finish(record, RequestStatus.SUCCEEDED)  # stale copy
    assert (await state.active_request(provision().target_id)).id == record.id


async def test_release_by_a_request_that_does_not_hold_the_target_changes_nothing(state):
    record = (await submit(state, provision())).request
    assert not await state.release_target(record.target_key, "01a21869-78cc-7973-9fae-985366b6a791")
    assert (await state.active_request(provision().target_id)).id == record.id


async def test_a_huge_message_is_stored_truncated_with_a_note(state):
    record = (await submit(state, provision())).request
    updated = await state.requests.update(
        record.model_copy(update={"message": "Import failed: " + "x" * 100_000})
    )
    stored = await state.requests.get(updated.id)
    assert stored.message.startswith("Import failed: ")
    assert stored.message.endswith("characters in total]")
