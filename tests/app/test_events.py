"""Tags drive provisioning through Event Grid and the local Functions host. The admin tags a resource
through the Tags API (or creates it with tags) and it gets provisioned; changing a tag re-provisions;
a write that changes nothing makes no request; removing the opt-in tag or deleting the resource
revokes. Every outcome is read back from the tenant and from exomi's requests."""

from __future__ import annotations

import pytest

from tests.app.tagging import (
    TagRunner,
    delete_tags,
    delivered,
    merge_tags,
    put_tags,
    requests,
    subscribe,
    wait_for_requests,
    wait_until_ended,
)
from tests.engine.conftest import RG
from tests.engine.test_provision import (
    EXCHANGE_ADMIN,
    GLOBAL_READER,
    RECIPIENT_ADMIN,
    exchange_grants,
    grants_of,
)


@pytest.fixture
def exomi(emulator, azurite) -> TagRunner:
    return TagRunner(emulator, azurite)


@pytest.fixture
def subscribed(emulator, function_host):
    subscribe(emulator, function_host)
    return function_host


async def held_roles(emulator, principal_id: str) -> tuple[int, list[str]]:
    """(Exchange.ManageAsApp grants, Entra role definition ids) the identity holds."""
    app_roles, roles = await grants_of(emulator, principal_id)
    return len(exchange_grants(app_roles, emulator.exchange_service_principal_id)), sorted(
        r.role_definition_id for r in roles
    )


def provisioned(exomi, count: int = 1, **filters: str) -> dict:
    """Waits for the newest of ``count`` requests to end; it must have succeeded."""
    newest = wait_for_requests(exomi, count, **filters)[-1]
    final = wait_until_ended(exomi, newest["id"])
    assert final["status"] == "succeeded", final
    return final


async def test_tagging_an_automation_account_provisions_it_and_removing_the_opt_in_revokes(
    emulator, exomi, targets, subscribed
):
    account = targets.automation_account()
    put_tags(emulator, account.id, {"exo-organization": emulator.organization, "env": "prod"})
    final = provisioned(exomi)
    assert final["channel"] == "tag" and final["operation"] == "provision"
    assert final["requested_by"] == emulator.admin_client_id  # who wrote the tags (an app: its app id)
    assert final["request"]["organization"] == emulator.organization
    assert await held_roles(emulator, account.identity.principal_id) == (1, [RECIPIENT_ADMIN])
    runbook = emulator.automation().runbook.get_content(RG, account.name, "exomi-connect-exchange")
    assert f"-Organization {emulator.organization}" in runbook
    # exomi's own writes (modules, runbook, job) raised events as well: none of them made a request.
    assert len(requests(exomi)) == 1

    delete_tags(emulator, account.id, "EXO-Organization")  # tag names are case-insensitive
    revoke = wait_for_requests(exomi, 2)[-1]
    assert (revoke["operation"], revoke["channel"]) == ("revoke", "tag")
    assert wait_until_ended(exomi, revoke["id"])["status"] == "revoked"
    assert await held_roles(emulator, account.identity.principal_id) == (0, [])
    names = [r.name for r in emulator.automation().runbook.list_by_automation_account(RG, account.name)]
    assert "exomi-connect-exchange" not in names


async def test_a_changed_role_tag_reprovisions_and_a_write_that_changes_nothing_does_not(
    emulator, exomi, targets, subscribed
):
    account = targets.automation_account()
    put_tags(emulator, account.id, {"exo-organization": emulator.organization})
    first = provisioned(exomi)
    assert first["decision"]["role"] == "Exchange Recipient Administrator"  # the policy's default

    # Writes that leave the desired state as it is: an unrelated tag, and the account itself.
    events_before = len(delivered(emulator, account.name))
    merge_tags(emulator, account.id, {"owner": "ops"})
    emulator.automation().automation_account.update(
        RG, account.name, {"properties": {"sku": {"name": "Basic"}}}
    )
    assert len(delivered(emulator, account.name)) >= events_before + 2
    assert len(requests(exomi)) == 1

    merge_tags(emulator, account.id, {"Exo-Role": "exchange administrator"})  # any casing, name and value
    second = provisioned(exomi, 2)
    assert second["decision"]["role"] == "Exchange Administrator"
    # The role exomi granted before is gone; the new one is held.
    assert await held_roles(emulator, account.identity.principal_id) == (1, [EXCHANGE_ADMIN])


async def test_deleting_a_tagged_account_revokes_the_grants_of_its_user_assigned_identity(
    emulator, exomi, targets, subscribed
):
    uai = targets.user_assigned_identity("ContosoMI1")
    account = targets.automation_account("ContosoAzAuto1", system=False, user_assigned=[uai.id])
    # exo-identity may name a user-assigned identity in the same resource group by its name.
    put_tags(
        emulator,
        account.id,
        {"exo-organization": emulator.organization, "exo-identity": "ContosoMI1", "exo-runtime": "7.4"},
    )
    final = provisioned(exomi)
    assert final["request"]["identity"].lower() == uai.id.lower()
    assert final["decision"]["runtime"] == "7.4"
    assert await held_roles(emulator, uai.principal_id) == (1, [RECIPIENT_ADMIN])

    emulator.automation().automation_account.delete(RG, account.name)
    revoke = wait_for_requests(exomi, 2)[-1]
    assert revoke["operation"] == "revoke"
    assert wait_until_ended(exomi, revoke["id"])["status"] == "revoked"
    # The identity outlives the account; what exomi granted it does not.
    assert await held_roles(emulator, uai.principal_id) == (0, [])


async def test_a_user_assigned_identity_tagged_on_its_own_gets_its_grants(
    emulator, exomi, targets, subscribed
):
    uai = targets.user_assigned_identity("ContosoMI2")
    put_tags(emulator, uai.id, {"exo-organization": emulator.organization, "exo-role": "Global Reader"})
    final = provisioned(exomi)
    assert final["target"].lower() == uai.id.lower()
    assert [s["name"] for s in final["steps"]] == [
        "identity",
        "principal",
        "exchange-sp",
        "app-role",
        "entra-role",
    ]
    assert await held_roles(emulator, uai.principal_id) == (1, [GLOBAL_READER])


async def test_a_virtual_machine_tagged_through_its_own_update_is_provisioned(
    emulator, exomi, targets, subscribed
):
    vm = targets.virtual_machine("contoso-vm1")
    emulator.compute().virtual_machines.begin_update(
        RG, vm.name, {"tags": {"exo-organization": emulator.organization}}
    ).result()
    final = provisioned(exomi)
    assert final["target"].lower() == vm.id.lower()
    assert {s["name"]: s["status"] for s in final["steps"]}["verify"] == "done"
    assert await held_roles(emulator, vm.identity.principal_id) == (1, [RECIPIENT_ADMIN])


async def test_a_function_app_tagged_is_granted_and_untagging_revokes(emulator, exomi, targets, subscribed):
    site = targets.function_app("contoso-func9")
    put_tags(emulator, site.id, {"exo-organization": emulator.organization})
    final = provisioned(exomi)
    assert final["target"].lower() == site.id.lower()
    assert {s["name"]: s["status"] for s in final["steps"]}["function-app"] == "done"
    assert await held_roles(emulator, site.identity.principal_id) == (1, [RECIPIENT_ADMIN])

    delete_tags(emulator, site.id, "exo-organization")
    revoked = wait_until_ended(exomi, wait_for_requests(exomi, 2)[-1]["id"])
    assert revoked["status"] == "revoked", revoked
    assert await held_roles(emulator, site.identity.principal_id) == (0, [])


async def test_a_scale_set_tagged_is_provisioned_on_its_instances_and_untagging_revokes(
    emulator, exomi, targets, subscribed
):
    emulator.set_timings(propagation_delay=0.2, run_command=0.3)
    scale_set = targets.scale_set("contoso-vmss9", capacity=2)
    put_tags(emulator, scale_set.id, {"exo-organization": emulator.organization})
    final = provisioned(exomi)
    assert final["target"].lower() == scale_set.id.lower()
    steps = {s["name"]: s for s in final["steps"]}
    assert steps["vmss-modules"]["status"] == "done" and steps["verify"]["status"] == "done"
    assert await held_roles(emulator, scale_set.identity.principal_id) == (1, [RECIPIENT_ADMIN])

    delete_tags(emulator, scale_set.id, "exo-organization")
    revoked = wait_until_ended(exomi, wait_for_requests(exomi, 2)[-1]["id"])
    assert revoked["status"] == "revoked", revoked
    assert await held_roles(emulator, scale_set.identity.principal_id) == (0, [])
