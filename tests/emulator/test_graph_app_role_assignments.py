"""Graph app role assignments (the Exchange.ManageAsApp grant) through msgraph-sdk, from the
principal's side (appRoleAssignments) and the resource's side (appRoleAssignedTo), with every
validation error the real service gives."""

from __future__ import annotations

import asyncio
import time
import uuid

from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.models.app_role_assignment import AppRoleAssignment
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.unified_role_assignment import UnifiedRoleAssignment
from msgraph.generated.service_principals.item.service_principal_item_request_builder import (
    ServicePrincipalItemRequestBuilder,
)

from emulator import directory_data as dd
from tests.support.graph import graph_error

MANAGE_AS_APP = uuid.UUID(dd.EXCHANGE_MANAGE_AS_APP_ROLE_ID)


def grant(principal_id: str, resource_id: str, app_role_id: uuid.UUID = MANAGE_AS_APP) -> AppRoleAssignment:
    return AppRoleAssignment(
        principal_id=uuid.UUID(principal_id), resource_id=uuid.UUID(resource_id), app_role_id=app_role_id
    )


async def test_exomi_grants_manage_as_app_to_a_managed_identity(emulator):
    mi = emulator.seed_principal("automation-mi", visible=True)
    exo = emulator.exchange_service_principal_id
    graph = emulator.graph(credential=emulator.app_credential())
    created = await graph.service_principals.by_service_principal_id(mi["id"]).app_role_assignments.post(
        grant(mi["id"], exo)
    )
    assert created.app_role_id == MANAGE_AS_APP
    assert created.principal_id == uuid.UUID(mi["id"]) and created.resource_id == uuid.UUID(exo)
    assert created.principal_display_name == "automation-mi"
    assert created.resource_display_name == "Office 365 Exchange Online"
    assert created.principal_type == "ServicePrincipal" and created.created_date_time is not None

    held = await graph.service_principals.by_service_principal_id(mi["id"]).app_role_assignments.get()
    assert [a.id for a in held.value] == [created.id]
    on_exchange = await graph.service_principals.by_service_principal_id(exo).app_role_assigned_to.get()
    assert [a.id for a in on_exchange.value] == [created.id]
    item = (
        await graph.service_principals.by_service_principal_id(mi["id"])
        .app_role_assignments.by_app_role_assignment_id(created.id)
        .get()
    )
    assert item.app_role_id == MANAGE_AS_APP
    # Expanding the principal's grants shows the same assignment.
    expanded = await graph.service_principals.by_service_principal_id(mi["id"]).get(
        RequestConfiguration(
            query_parameters=ServicePrincipalItemRequestBuilder.ServicePrincipalItemRequestBuilderGetQueryParameters(
                expand=["appRoleAssignments"], select=["id", "displayName"]
            )
        )
    )
    assert [a.id for a in expanded.app_role_assignments] == [created.id]
    assert expanded.display_name == "automation-mi" and expanded.app_id is None


async def test_grant_through_app_role_assigned_to_and_revoke_it(emulator):
    mi = emulator.seed_principal("uai", visible=True)
    exo = emulator.exchange_service_principal_id
    graph = emulator.graph(credential=emulator.app_credential())
    on_resource = graph.service_principals.by_service_principal_id(exo).app_role_assigned_to
    created = await on_resource.post(grant(mi["id"], exo))
    assert created.resource_id == uuid.UUID(exo)

    await on_resource.by_app_role_assignment_id(created.id).delete()
    held = await graph.service_principals.by_service_principal_id(mi["id"]).app_role_assignments.get()
    assert held.value == []
    error = await graph_error(on_resource.by_app_role_assignment_id(created.id).delete())
    assert error.response_status_code == 404 and error.error.code == "Request_ResourceNotFound"
    assert [e["status"] for e in emulator.log(service="graph") if e["method"] == "DELETE"] == [204, 404]


async def test_assignment_validation_errors(emulator):
    mi = emulator.seed_principal("validated", visible=True)
    exo = emulator.exchange_service_principal_id
    graph = emulator.graph()
    assignments = graph.service_principals.by_service_principal_id(mi["id"]).app_role_assignments

    unknown_role = await graph_error(assignments.post(grant(mi["id"], exo, uuid.uuid4())))
    assert (unknown_role.response_status_code, unknown_role.error.code, unknown_role.error.message) == (
        400,
        "Request_BadRequest",
        "Permission being assigned was not found on application",
    )
    # A Graph app role id is not an app role of Exchange Online either.
    graph_role = uuid.UUID(dd.GRAPH_PERMISSIONS["Directory.Read.All"])
    assert (await graph_error(assignments.post(grant(mi["id"], exo, graph_role)))).response_status_code == 400

    missing = str(uuid.uuid4())
    unknown_resource = await graph_error(assignments.post(grant(mi["id"], missing)))
    assert unknown_resource.response_status_code == 404
    assert unknown_resource.error.message.startswith(f"Resource '{missing}' does not exist")

    other = emulator.seed_principal("someone-else", visible=True)
    mismatch = await graph_error(assignments.post(grant(other["id"], exo)))
    assert (mismatch.response_status_code, mismatch.error.code, mismatch.error.message) == (
        400,
        "Request_BadRequest",
        "Not a valid reference update.",
    )
    wrong_resource = graph.service_principals.by_service_principal_id(exo).app_role_assigned_to
    mismatch = await graph_error(wrong_resource.post(grant(mi["id"], emulator.graph_service_principal_id)))
    assert mismatch.error.message == "Not a valid reference update."

    await assignments.post(grant(mi["id"], exo))
    duplicate = await graph_error(assignments.post(grant(mi["id"], exo)))
    assert (duplicate.response_status_code, duplicate.error.code, duplicate.error.message) == (
        400,
        "Request_BadRequest",
        "Permission being assigned already exists on the object",
    )
    state = next(p for p in emulator.principals() if p["id"] == mi["id"])
    assert len(state["appRoleAssignments"]) == 1


async def test_unknown_principal_and_invalid_guids(emulator):
    exo = emulator.exchange_service_principal_id
    graph = emulator.graph()
    missing = str(uuid.uuid4())
    error = await graph_error(
        graph.service_principals.by_service_principal_id(missing).app_role_assignments.post(
            grant(missing, exo)
        )
    )
    assert error.response_status_code == 404 and error.error.code == "Request_ResourceNotFound"
    error = await graph_error(
        graph.service_principals.by_service_principal_id("not-a-guid").app_role_assignments.get()
    )
    assert (error.response_status_code, error.error.code, error.error.message) == (
        400,
        "Request_BadRequest",
        "Invalid object identifier 'not-a-guid'.",
    )

    # The SDK only sends UUIDs in these fields; a raw body can carry anything.
    mi = emulator.seed_principal("raw", visible=True)
    response = emulator.graph_http(
        "POST",
        f"/servicePrincipals/{mi['id']}/appRoleAssignments",
        json={"principalId": mi["id"], "resourceId": "exchange", "appRoleId": str(MANAGE_AS_APP)},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BadRequest"
    assert (
        response.json()["error"]["message"]
        == "Cannot convert the literal 'exchange' to the expected type 'Edm.Guid'."
    )
    assert response.headers["content-type"].startswith("application/json")
    response = emulator.graph_http(
        "POST", f"/servicePrincipals/{mi['id']}/appRoleAssignments", json={"appRoleId": str(MANAGE_AS_APP)}
    )
    assert (
        response.status_code == 400
        and response.json()["error"]["message"] == "One or more properties are invalid."
    )


async def test_grant_to_a_replicating_identity_is_404_until_it_replicates(emulator):
    emulator.set_timings(replication_delay=1.0)
    mi = emulator.seed_principal("just-created")
    exo = emulator.exchange_service_principal_id
    graph = emulator.graph(credential=emulator.app_credential())
    on_exchange = graph.service_principals.by_service_principal_id(exo).app_role_assigned_to
    error = await graph_error(on_exchange.post(grant(mi["id"], exo)))
    assert error.response_status_code == 404 and error.error.message.startswith(f"Resource '{mi['id']}'")
    deadline = time.monotonic() + 10
    while True:
        try:
            created = await on_exchange.post(grant(mi["id"], exo))
            break
        except ODataError as error:
            assert error.response_status_code == 404 and time.monotonic() < deadline
            await asyncio.sleep(0.1)
    assert created.principal_id == uuid.UUID(mi["id"])


async def test_deleting_a_principal_removes_its_assignments(emulator):
    mi = emulator.seed_principal("short-lived", visible=True)
    exo = emulator.exchange_service_principal_id
    graph = emulator.graph()
    await graph.service_principals.by_service_principal_id(mi["id"]).app_role_assignments.post(
        grant(mi["id"], exo)
    )
    await graph.role_management.directory.role_assignments.post(
        UnifiedRoleAssignment(
            principal_id=mi["id"],
            role_definition_id=dd.EXCHANGE_SUPPORTED_ROLES["Exchange Administrator"],
            directory_scope_id="/",
        )
    )
    emulator.ctl("DELETE", f"/principals/{mi['id']}")

    on_exchange = await graph.service_principals.by_service_principal_id(exo).app_role_assigned_to.get()
    assert on_exchange.value == []
    roles = await graph.role_management.directory.role_assignments.get()
    assert mi["id"] not in {a.principal_id for a in roles.value}
    error = await graph_error(
        graph.service_principals.by_service_principal_id(mi["id"]).app_role_assignments.get()
    )
    assert error.response_status_code == 404

    # Deleting the resource side (Exchange Online) takes the grants on it along.
    other = emulator.seed_principal("keeps-living", visible=True)
    await graph.service_principals.by_service_principal_id(other["id"]).app_role_assignments.post(
        grant(other["id"], exo)
    )
    emulator.ctl("DELETE", "/exchange-service-principal")
    held = await graph.service_principals.by_service_principal_id(other["id"]).app_role_assignments.get()
    assert held.value == []
