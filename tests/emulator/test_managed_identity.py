"""User-assigned identities through azure-mgmt-msi: each is a service principal in the directory."""

from __future__ import annotations

import json

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from tests.support.shapes import assert_shape, load_example


@pytest.fixture
def rg(emulator):
    emulator.resources().resource_groups.create_or_update("ContosoRG2", {"location": "westus"})
    return "ContosoRG2"


def _principal(emulator, principal_id):
    return next((p for p in emulator.principals() if p["id"] == principal_id), None)


def test_create_matches_the_spec_example_and_makes_a_service_principal(emulator, rg):
    client = emulator.msi()
    raw = client.user_assigned_identities.create_or_update(
        rg,
        "ContosoMI1",
        {"location": "West US", "tags": {"key1": "value1"}},
        cls=lambda pipeline_response, obj, headers: (pipeline_response.http_response, obj),
    )
    response, identity = raw
    assert response.status_code == 201
    assert_shape(load_example("msi_IdentityCreate.json")["body"], json.loads(response.text()))
    assert identity.client_id != identity.principal_id  # the two ids the manual procedure mixes up
    assert identity.tenant_id == emulator.tenant_id
    principal = _principal(emulator, identity.principal_id)
    assert principal["appId"] == identity.client_id and principal["type"] == "ManagedIdentity"
    assert principal["miResourceId"].endswith("/userAssignedIdentities/ContosoMI1")

    again = client.user_assigned_identities.create_or_update(
        rg, "ContosoMI1", {"location": "westus", "tags": {"k": "v"}}
    )
    assert again.principal_id == identity.principal_id and again.tags == {"k": "v"}


def test_get_update_list_and_delete(emulator, rg):
    client = emulator.msi()
    created = client.user_assigned_identities.create_or_update(rg, "mi1", {"location": "westus"})
    client.user_assigned_identities.create_or_update(rg, "mi2", {"location": "westus"})
    assert client.user_assigned_identities.get(rg.lower(), "MI1").client_id == created.client_id
    updated = client.user_assigned_identities.update(
        rg, "mi1", {"tags": {"exo-organization": "contoso.onmicrosoft.com"}}
    )
    assert updated.tags == {"exo-organization": "contoso.onmicrosoft.com"}
    assert sorted(i.name for i in client.user_assigned_identities.list_by_resource_group(rg)) == [
        "mi1",
        "mi2",
    ]
    assert len(list(client.user_assigned_identities.list_by_subscription())) == 2

    client.user_assigned_identities.delete(rg, "mi1")
    assert _principal(emulator, created.principal_id) is None  # the principal goes with the identity
    with pytest.raises(ResourceNotFoundError) as info:
        client.user_assigned_identities.get(rg, "mi1")
    assert info.value.error.code == "ResourceNotFound"
    client.user_assigned_identities.delete(rg, "mi1")  # deleting again is a quiet 204


def test_validation_errors(emulator, rg):
    client = emulator.msi()
    with pytest.raises(HttpResponseError) as info:
        client.user_assigned_identities.create_or_update(rg, "x", {"location": "westus"})
    assert info.value.status_code == 400 and info.value.error.code == "InvalidResourceName"
    with pytest.raises(HttpResponseError) as info:
        client.user_assigned_identities.create_or_update(rg, "mi1", {"tags": {}})
    assert info.value.error.code == "LocationRequired"
    with pytest.raises(ResourceNotFoundError) as info:
        client.user_assigned_identities.create_or_update("nope", "mi1", {"location": "westus"})
    assert info.value.error.code == "ResourceGroupNotFound"


def test_exomi_identity_can_read_but_not_create_identities(emulator, rg):
    emulator.msi().user_assigned_identities.create_or_update(rg, "mi1", {"location": "westus"})
    app_client = emulator.msi(credential=emulator.app_credential())
    assert app_client.user_assigned_identities.get(rg, "mi1").name == "mi1"
    with pytest.raises(HttpResponseError) as info:
        app_client.user_assigned_identities.create_or_update(rg, "mi2", {"location": "westus"})
    assert info.value.status_code == 403 and info.value.error.code == "AuthorizationFailed"
