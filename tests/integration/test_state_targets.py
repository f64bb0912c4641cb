"""The targets table on Azurite: provisioned state per target, its ETag, and who shares an identity."""

from __future__ import annotations

import asyncio

import pytest

from shared.errors import ConcurrencyError, InputError
from shared.ids import TargetKind, parse_resource_id
from shared.models import Role, Runtime, TargetStatus
from shared.state import Grants, ModuleGrant, TargetRecord
from shared.state.records import utcnow
from shared.state.targets import _state_to_entity

SUB = "6a2b5c1e-0d3f-4e8a-9b7c-1d2e3f4a5b6c"
RG = f"/subscriptions/{SUB}/resourceGroups/rg-exo"
UAI = f"{RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/uai-shared"
SHARED_PRINCIPAL = "3f1d2c4b-5a69-4788-9a0b-1c2d3e4f5a6b"


def target(name: str, kind: str = "Microsoft.Automation/automationAccounts", **fields) -> TargetRecord:
    resource = parse_resource_id(f"{RG}/providers/{kind}/{name}")
    return TargetRecord(target=resource.canonical, target_key=resource.key, kind=resource.kind, **fields)


async def test_target_state_round_trips(state):
    record = target(
        "aa-exo-01",
        identity=UAI,
        principal_id=SHARED_PRINCIPAL,
        client_id="9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a",
        organization="contoso.onmicrosoft.com",
        role=Role.EXCHANGE_RECIPIENT_ADMINISTRATOR,
        runtime=Runtime.PS74,
        granted=Grants(
            app_role_assignment_id="OpOmUGiFmkuNaF0FkmNbdkRuk2rfRKNAnQ08fp6ZDIA",
            role_assignment_id="lAPpYvVpN0KRkAEhdxReEJC2sEqbR_9Hr48lds9SGHI-1",
            modules=[
                ModuleGrant(
                    name="ExchangeOnlineManagement",
                    version="3.5.1",
                    runtime_environment="exomi-powershell-7-4",
                )
            ],
            runtime_environment="exomi-powershell-7-4",
            runbook_name="exomi-connect-exchange",
        ),
        status=TargetStatus.PROVISIONED,
        last_request_id="01a21869-78cc-7973-9fae-985366b6a790",
    )
    saved = await state.targets.save(record)
    loaded = await state.targets.get(record.target_key)
    assert loaded.model_dump(exclude={"etag", "updated_at"}) == record.model_dump(
        exclude={"etag", "updated_at"}
    )
    assert loaded.etag == saved.etag
    assert loaded.kind is TargetKind.AUTOMATION_ACCOUNT
    assert (
        await state.targets.get(
            parse_resource_id(f"{RG}/providers/Microsoft.Compute/virtualMachines/vm-9").key
        )
        is None
    )


async def test_target_state_updates_use_etags(state, open_state):
    await state.targets.save(target("aa-exo-01", identity="system"))
    with pytest.raises(ConcurrencyError):
        await state.targets.save(target("aa-exo-01", identity="system"))  # created meanwhile by someone else
    other_process = await open_state()
    mine = await state.targets.get(target("aa-exo-01", identity="system").target_key)
    theirs = await other_process.targets.get(mine.target_key)
    await state.targets.save(mine.model_copy(update={"status": TargetStatus.REVOKING}))
    with pytest.raises(ConcurrencyError):
        await other_process.targets.save(theirs.model_copy(update={"status": TargetStatus.FAILED}))
    assert (await state.targets.get(mine.target_key)).status is TargetStatus.REVOKING


async def test_targets_sharing_a_user_assigned_identity_are_found_by_principal_id(state):
    await state.targets.save(target("aa-exo-01", identity=UAI, principal_id=SHARED_PRINCIPAL))
    await state.targets.save(
        target("vm-01", "Microsoft.Compute/virtualMachines", identity=UAI, principal_id=SHARED_PRINCIPAL)
    )
    await state.targets.save(
        target("aa-exo-02", identity="system", principal_id="0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d")
    )
    await state.targets.save(target("aa-exo-03", identity="system"))
    sharing = await state.targets.list_by_principal(SHARED_PRINCIPAL.upper())
    assert sorted(t.target.rsplit("/", 1)[1] for t in sharing) == ["aa-exo-01", "vm-01"]


async def test_a_target_whose_identity_changed_is_listed_only_under_its_new_one(state):
    other = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
    saved = await state.targets.save(target("aa-exo-01", identity=UAI, principal_id=SHARED_PRINCIPAL))
    await state.targets.save(saved.model_copy(update={"identity": "system", "principal_id": other}))
    assert await state.targets.list_by_principal(SHARED_PRINCIPAL) == []
    assert [t.principal_id for t in await state.targets.list_by_principal(other)] == [other]


async def test_targets_saved_before_the_index_existed_are_indexed_once(state, open_state):
    # A target as an earlier version wrote it: its state only, no index entry.
    legacy = target("aa-old", identity=UAI, principal_id=SHARED_PRINCIPAL)
    await state.tables.targets.create_entity(
        _state_to_entity(legacy.model_copy(update={"updated_at": utcnow()}))
    )
    await state.targets.save(
        target("vm-new", "Microsoft.Compute/virtualMachines", identity=UAI, principal_id=SHARED_PRINCIPAL)
    )

    found = await state.targets.list_by_principal(SHARED_PRINCIPAL)
    assert sorted(t.target.rsplit("/", 1)[1] for t in found) == ["aa-old", "vm-new"]
    # Another process reads the index, not the whole table: the marker says it was built.
    later = target("aa-later", identity=UAI, principal_id=SHARED_PRINCIPAL)
    await state.tables.targets.create_entity(
        _state_to_entity(later.model_copy(update={"updated_at": utcnow()}))
    )
    other_process = await open_state()
    found = await other_process.targets.list_by_principal(SHARED_PRINCIPAL)
    assert sorted(t.target.rsplit("/", 1)[1] for t in found) == ["aa-old", "vm-new"]


async def test_a_hostile_principal_id_is_refused(state):
    with pytest.raises(InputError) as caught:
        await state.targets.list_by_principal("x' or PrincipalId ne '")
    assert caught.value.field == "principal_id"


async def test_the_lock_row_does_not_disturb_the_state_row(state):
    record = await state.targets.save(target("aa-exo-01", identity="system"))
    await state.acquire_target(parse_resource_id(record.target), "01a21869-78cc-7973-9fae-985366b6a790")
    # The state's etag is unchanged by taking the lock: a writer holding it can still save.
    saved = await state.targets.save(record.model_copy(update={"status": TargetStatus.PROVISIONED}))
    assert (await state.targets.get(saved.target_key)).status is TargetStatus.PROVISIONED


async def test_two_handlers_of_one_targets_tag_writes_cannot_both_write_its_tag_state(state):
    """Deliveries for a target handled at the same time both read its tag state before they decide; the
    one that writes second would overwrite a refusal the first recorded, so its write fails instead."""
    record = target("aa-tagged", identity="system")
    first, second = await asyncio.gather(*(state.targets.tag_state(record.target_key) for _ in range(2)))
    refused = first.model_copy(update={"refused_desired": "fingerprint", "refused_by": "tagger"})
    saved = await state.targets.save_tag_state(record.target_key, record.target, refused)

    with pytest.raises(ConcurrencyError):
        await state.targets.save_tag_state(record.target_key, record.target, second)
    stored = await state.targets.tag_state(record.target_key)
    assert (stored.refused_desired, stored.refused_by, stored.etag) == ("fingerprint", "tagger", saved.etag)
    # Deciding again from what is stored, the second one's write goes through.
    await state.targets.save_tag_state(
        record.target_key, record.target, stored.model_copy(update={"refused_desired": None})
    )
    assert (await state.targets.tag_state(record.target_key)).refused_desired is None
