"""Automation accounts through azure-mgmt-automation: lifecycle, identities, listing and errors."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from tests.support.automation import ACCOUNT, RG, body_of, create_account, raw_response
from tests.support.shapes import assert_shape, load_example


def _principal(emulator, principal_id):
    return next((p for p in emulator.principals() if p["id"] == principal_id), None)


def test_create_matches_the_spec_example_and_gives_the_account_a_system_identity(emulator):
    emulator.set_timings(replication_delay=30)  # the new principal stays invisible to Graph meanwhile
    emulator.resources().resource_groups.create_or_update(RG, {"location": "westus"})
    client = emulator.automation()
    raw = client.automation_account.create_or_update(
        RG,
        ACCOUNT,
        {
            "location": "West US",
            "identity": {"type": "SystemAssigned"},
            "properties": {"sku": {"name": "Free"}},
        },
        cls=raw_response,
    )
    assert raw[0].status_code == 201
    body = body_of(raw)
    assert_shape(load_example("automation_createOrUpdateAutomationAccount.json")["body"], body)
    account = raw[1]
    assert account.sku.name == "Free" and account.state == "Ok" and account.location == "westus"
    assert account.identity.type == "SystemAssigned" and account.identity.tenant_id == emulator.tenant_id
    guid = account.automation_hybrid_service_url.rsplit("/", 1)[1]
    assert account.automation_hybrid_service_url.startswith(f"https://{guid}.jrds.")
    # The identity is a managed-identity service principal named after the account, not yet visible to Graph.
    principal = _principal(emulator, account.identity.principal_id)
    assert principal["displayName"] == ACCOUNT and principal["type"] == "ManagedIdentity"
    assert principal["miResourceId"] == account.id and principal["visible"] is False

    fetched = client.automation_account.get(RG.lower(), ACCOUNT.upper(), cls=raw_response)
    assert_shape(load_example("automation_getAutomationAccount.json")["body"], body_of(fetched))
    assert (
        fetched[1].id == account.id
        and fetched[1].automation_hybrid_service_url == account.automation_hybrid_service_url
    )

    again = client.automation_account.create_or_update(
        RG,
        ACCOUNT,
        {"location": "westus", "identity": {"type": "SystemAssigned"}, "tags": {"a": "b"}},
        cls=raw_response,
    )
    assert again[0].status_code == 200 and again[1].tags == {"a": "b"}
    assert again[1].identity.principal_id == account.identity.principal_id


def test_system_identity_is_visible_through_the_managed_identity_provider(emulator):
    account = create_account(emulator)
    identity = emulator.msi().system_assigned_identities.get_by_scope(account.id)
    assert identity.principal_id == account.identity.principal_id
    assert identity.tenant_id == emulator.tenant_id
    assert _principal(emulator, identity.principal_id)["appId"] == identity.client_id

    emulator.automation().automation_account.update(RG, ACCOUNT, {"identity": {"type": "None"}})
    with pytest.raises(ResourceNotFoundError):
        emulator.msi().system_assigned_identities.get_by_scope(account.id)


def test_update_tags_properties_and_identity(emulator):
    account = create_account(emulator, identity={"type": "None"})
    assert account.identity.type == "None"
    client = emulator.automation()
    updated = client.automation_account.update(
        RG,
        ACCOUNT,
        {
            "tags": {"exo-organization": "contoso.onmicrosoft.com"},
            "properties": {"publicNetworkAccess": False},
        },
    )
    assert (
        updated.tags == {"exo-organization": "contoso.onmicrosoft.com"}
        and updated.public_network_access is False
    )

    enabled = client.automation_account.update(RG, ACCOUNT, {"identity": {"type": "SystemAssigned"}})
    assert enabled.identity.principal_id and _principal(emulator, enabled.identity.principal_id)
    with pytest.raises(HttpResponseError) as info:
        client.automation_account.update(
            RG, ACCOUNT, {"properties": {"sku": {"name": "Premium"}}, "tags": {}}
        )
    assert info.value.status_code == 400
    assert client.automation_account.get(RG, ACCOUNT).tags == {"exo-organization": "contoso.onmicrosoft.com"}
    disabled = client.automation_account.update(RG, ACCOUNT, {"identity": {"type": "None"}})
    assert disabled.identity.type == "None"
    assert _principal(emulator, enabled.identity.principal_id) is None  # the principal goes with it


def test_user_assigned_identity_is_linked_with_its_client_and_principal_ids(emulator):
    emulator.resources().resource_groups.create_or_update(RG, {"location": "westus"})
    uai = emulator.msi().user_assigned_identities.create_or_update(RG, "ContosoMI1", {"location": "westus"})
    account = create_account(
        emulator, identity={"type": "SystemAssigned, UserAssigned", "userAssignedIdentities": {uai.id: {}}}
    )
    assert account.identity.type == "SystemAssigned, UserAssigned"
    (linked,) = account.identity.user_assigned_identities.values()
    assert linked.client_id == uai.client_id and linked.principal_id == uai.principal_id


def test_exomi_identity_cannot_link_a_user_assigned_identity_it_may_not_assign(emulator):
    emulator.resources().resource_groups.create_or_update(RG, {"location": "westus"})
    uai = emulator.msi().user_assigned_identities.create_or_update(RG, "ContosoMI1", {"location": "westus"})
    app_client = emulator.automation(credential=emulator.app_credential())
    with pytest.raises(HttpResponseError) as info:
        create_account(
            emulator, app_client, identity={"type": "UserAssigned", "userAssignedIdentities": {uai.id: {}}}
        )
    assert info.value.status_code == 403 and info.value.error.code == "LinkedAuthorizationFailed"


def test_list_by_resource_group_and_subscription_and_delete(emulator):
    first = create_account(emulator)
    create_account(emulator, name="ContosoAzAuto2")
    emulator.resources().resource_groups.create_or_update("OtherRG", {"location": "westus"})
    emulator.automation().automation_account.create_or_update("OtherRG", "OtherAuto", {"location": "westus"})
    client = emulator.automation()
    assert sorted(a.name for a in client.automation_account.list_by_resource_group(RG)) == [
        "ContosoAzAuto1",
        "ContosoAzAuto2",
    ]
    assert len(list(client.automation_account.list())) == 3

    client.module.create_or_update(
        RG,
        ACCOUNT,
        "PowerShellGet",
        {"properties": {"contentLink": {"uri": "https://x/api/v2/package/PowerShellGet/2.2.5"}}},
    )
    client.automation_account.delete(RG, ACCOUNT)
    assert _principal(emulator, first.identity.principal_id) is None
    with pytest.raises(ResourceNotFoundError) as info:
        client.automation_account.get(RG, ACCOUNT)
    assert info.value.error.code == "ResourceNotFound"
    assert info.value.error.message.startswith(
        f"The Resource 'Microsoft.Automation/automationAccounts/{ACCOUNT}' under resource group '{RG}' was not found."
    )
    # Its children went with it.
    create_account(emulator)
    assert "PowerShellGet" not in {
        m.name for m in client.module.list_by_automation_account(RG, ACCOUNT) if not m.is_global
    }
    raw = client.automation_account.delete(RG, "NoSuchAccount", cls=raw_response)
    assert raw[0].status_code == 204


@pytest.mark.parametrize(
    ("name", "body", "code"),
    [
        ("aa", {"location": "westus"}, "BadRequest"),
        ("1ContosoAuto", {"location": "westus"}, "BadRequest"),
        (ACCOUNT, {"properties": {}}, "LocationRequired"),
        (ACCOUNT, {"location": "westus", "properties": {"sku": {"name": "Premium"}}}, "BadRequest"),
        (ACCOUNT, {"location": "westus", "identity": {"type": "Magic"}}, "InvalidIdentityType"),
        (ACCOUNT, {"location": "westus", "tags": "owner"}, "InvalidRequestContent"),
    ],
)
def test_invalid_creates_are_rejected(emulator, name, body, code):
    emulator.resources().resource_groups.create_or_update(RG, {"location": "westus"})
    with pytest.raises(HttpResponseError) as info:
        emulator.automation().automation_account.create_or_update(RG, name, body)
    assert info.value.status_code == 400 and info.value.error.code == code
    assert not any(p["miResourceId"] for p in emulator.principals())  # no identity was left behind


def test_moving_an_account_to_another_location_is_refused(emulator):
    create_account(emulator)
    with pytest.raises(HttpResponseError) as info:
        emulator.automation().automation_account.create_or_update(RG, ACCOUNT, {"location": "eastus"})
    assert info.value.error.code == "InvalidResourceLocation"


def test_missing_resource_group_and_unsupported_api_version(emulator):
    with pytest.raises(ResourceNotFoundError) as info:
        emulator.automation().automation_account.get("NoSuchRG", ACCOUNT)
    assert info.value.error.code == "ResourceGroupNotFound"
    create_account(emulator)
    account_url = (
        f"{emulator.arm_endpoint}/subscriptions/{emulator.subscription_id}/resourceGroups/{RG}"
        f"/providers/Microsoft.Automation/automationAccounts/{ACCOUNT}"
    )
    token = emulator.token(client_id=emulator.admin_client_id)
    with emulator.http() as http:
        response = http.get(
            f"{account_url}?api-version=2016-01-01", headers={"Authorization": f"Bearer {token}"}
        )
    assert response.status_code == 400 and response.json()["error"]["code"] == "NoRegisteredProviderFound"


def test_exomi_identity_manages_accounts_and_loses_write_access_without_automation_contributor(emulator):
    app_client = emulator.automation(credential=emulator.app_credential())
    account = create_account(emulator, app_client)
    assert account.identity.principal_id
    emulator.ctl(
        "DELETE", "/rbac", {"principal_id": emulator.app_principal_id, "role": "Automation Contributor"}
    )
    assert app_client.automation_account.get(RG, ACCOUNT).name == ACCOUNT  # Reader still reads
    with pytest.raises(HttpResponseError) as info:
        app_client.automation_account.update(RG, ACCOUNT, {"tags": {"a": "b"}})
    assert info.value.status_code == 403 and info.value.error.code == "AuthorizationFailed"
    assert "Microsoft.Automation/automationAccounts/write" in info.value.error.message
