"""Graph /servicePrincipals through the real msgraph-sdk: the seed procedure's look-ups, query
options and their errors, replication, paging and creating the Exchange Online principal."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.service_principal import ServicePrincipal
from msgraph.generated.service_principals.item.service_principal_item_request_builder import (
    ServicePrincipalItemRequestBuilder,
)
from msgraph.generated.service_principals.service_principals_request_builder import (
    ServicePrincipalsRequestBuilder,
)

from emulator import directory_data as dd
from tests.support.graph import graph_error

EXO_APP_ID = dd.EXCHANGE_APP_ID
MANAGE_AS_APP = uuid.UUID(dd.EXCHANGE_MANAGE_AS_APP_ROLE_ID)


def list_config(**query) -> RequestConfiguration:
    return RequestConfiguration(
        query_parameters=ServicePrincipalsRequestBuilder.ServicePrincipalsRequestBuilderGetQueryParameters(
            **query
        )
    )


def item_config(**query) -> RequestConfiguration:
    return RequestConfiguration(
        query_parameters=ServicePrincipalItemRequestBuilder.ServicePrincipalItemRequestBuilderGetQueryParameters(
            **query
        )
    )


async def test_seed_procedure_finds_exchange_principal_and_its_manage_as_app_role(emulator):
    graph = emulator.graph(credential=emulator.app_credential())
    found = await graph.service_principals.get(
        list_config(filter=f"AppId eq '{EXO_APP_ID}'", select=["id", "appId", "displayName", "appRoles"])
    )
    assert [sp.id for sp in found.value] == [emulator.exchange_service_principal_id]
    exo = found.value[0]
    assert exo.display_name == "Office 365 Exchange Online" and exo.app_id == EXO_APP_ID
    # $select really limits the object: unselected properties are absent.
    assert exo.service_principal_type is None and exo.service_principal_names is None
    roles = {role.value: role for role in exo.app_roles}
    assert roles["Exchange.ManageAsApp"].id == MANAGE_AS_APP
    assert roles["Exchange.ManageAsApp"].allowed_member_types == ["Application"]
    # The look-alikes exist too, with other ids.
    assert {"Exchange.ManageAsAppV2", "Exchange.AdminAPI.ManageAsApp"} <= set(roles)
    assert roles["Exchange.ManageAsAppV2"].id != MANAGE_AS_APP


async def test_get_by_id_and_by_app_id_alternate_key_ignore_id_case(emulator):
    graph = emulator.graph()
    exo_id = emulator.exchange_service_principal_id
    by_id = await graph.service_principals.by_service_principal_id(exo_id.upper()).get()
    by_app_id = await graph.service_principals_with_app_id(EXO_APP_ID.upper()).get()
    assert by_id.id == by_app_id.id == exo_id
    assert by_id.app_owner_organization_id == uuid.UUID(dd.MICROSOFT_TENANT_ID)
    assert "https://outlook.office365.com/" in by_id.service_principal_names
    selected = await graph.service_principals.by_service_principal_id(exo_id).get(
        item_config(select=["appId"])
    )
    assert selected.app_id == EXO_APP_ID and selected.display_name is None

    missing = str(uuid.uuid4())
    error = await graph_error(graph.service_principals.by_service_principal_id(missing).get())
    assert error.response_status_code == 404 and error.error.code == "Request_ResourceNotFound"
    assert error.error.message == (
        f"Resource '{missing}' does not exist or one of its queried reference-property objects are not present."
    )
    error = await graph_error(graph.service_principals_with_app_id(str(uuid.uuid4())).get())
    assert error.response_status_code == 404


async def test_managed_identity_principal_has_the_managed_identity_shape(emulator):
    seeded = emulator.seed_principal("uai-exo", visible=True)
    graph = emulator.graph()
    sp = await graph.service_principals.by_service_principal_id(seeded["id"]).get()
    assert sp.service_principal_type == "ManagedIdentity"
    assert sp.app_id == seeded["appId"] and sp.display_name == "uai-exo"
    assert sp.alternative_names == ["isExplicit=True", seeded["miResourceId"]]
    assert seeded["appId"] in sp.service_principal_names
    assert sp.app_owner_organization_id is None and sp.app_roles == []
    # Filtering by type finds it (and the emulator's own identities), never the first-party apps.
    managed = await graph.service_principals.get(
        list_config(filter="servicePrincipalType eq 'ManagedIdentity'")
    )
    assert seeded["id"] in {p.id for p in managed.value}
    assert emulator.exchange_service_principal_id not in {p.id for p in managed.value}
    # A managed identity is found by its resource id through alternativeNames.
    by_resource = await graph.service_principals.get(
        list_config(filter=f"alternativeNames/any(x:x eq '{seeded['miResourceId']}')")
    )
    assert [p.id for p in by_resource.value] == [seeded["id"]]


async def test_filters_combine_with_and_and_match_case_insensitively(emulator):
    emulator.seed_principal("exomi-target-one", visible=True)
    emulator.seed_principal("exomi-target-two", visible=True)
    graph = emulator.graph()
    found = await graph.service_principals.get(
        list_config(
            filter="startswith(displayName,'EXOMI-TARGET') and servicePrincipalType eq 'ManagedIdentity'"
        )
    )
    assert sorted(p.display_name for p in found.value) == ["exomi-target-one", "exomi-target-two"]
    exact = await graph.service_principals.get(
        list_config(filter="displayName eq 'office 365 exchange online'")
    )
    assert [p.id for p in exact.value] == [emulator.exchange_service_principal_id]
    by_id = await graph.service_principals.get(list_config(filter=f"id eq '{emulator.app_principal_id}'"))
    assert [p.app_id for p in by_id.value] == [emulator.app_client_id]
    nothing = await graph.service_principals.get(
        list_config(filter=f"appId eq '{EXO_APP_ID}' and displayName eq 'Something else'")
    )
    assert nothing.value == []


@pytest.mark.parametrize(
    ("filter_text", "status", "code", "message"),
    [
        (
            "appId eq",
            400,
            "BadRequest",
            "Invalid filter clause: Expression expected at position 8 in 'appId eq'.",
        ),
        (
            "appId eq '0000",
            400,
            "BadRequest",
            "Invalid filter clause: There is an unterminated string literal at position 9 in 'appId eq '0000'.",
        ),
        (
            "colour eq 'blue'",
            400,
            "BadRequest",
            "Invalid filter clause: Could not find a property named 'colour' on type 'microsoft.graph.servicePrincipal'.",
        ),
        (
            "appRoleAssignmentRequired eq true",
            400,
            "Request_UnsupportedQuery",
            "Unsupported or invalid query filter clause specified for property 'appRoleAssignmentRequired' "
            "of resource 'ServicePrincipal'.",
        ),
        (
            f"appOwnerOrganizationId eq '{dd.MICROSOFT_TENANT_ID}'",
            400,
            "BadRequest",
            "Invalid filter clause: A binary operator with incompatible types was detected. Found operand "
            "types 'Edm.Guid' and 'Edm.String' for operator kind 'Equal'.",
        ),
        (
            "displayName ne 'x'",
            400,
            "Request_UnsupportedQuery",
            "Operator 'ne' is not supported because the required parameters might be missing. Try adding "
            "$count=true query parameter and ConsistencyLevel:eventual header. Refer to "
            "https://aka.ms/graph-docs/advanced-queries for more information",
        ),
        (
            "contains(displayName,'x')",
            400,
            "Request_UnsupportedQuery",
            "Unsupported property filter clause operator 'Contains'.",
        ),
        (
            "displayName",
            400,
            "BadRequest",
            "Invalid filter clause: The $filter expression must evaluate to a single boolean value.",
        ),
    ],
)
async def test_bad_filters_get_the_real_errors(emulator, filter_text, status, code, message):
    graph = emulator.graph()
    error = await graph_error(graph.service_principals.get(list_config(filter=filter_text)))
    assert (error.response_status_code, error.error.code, error.error.message) == (status, code, message)


async def test_advanced_queries_need_consistency_level_and_count(emulator):
    emulator.seed_principal("advanced-one", visible=True)
    graph = emulator.graph()
    config = list_config(filter="displayName ne 'advanced-one'", count=True)
    error = await graph_error(graph.service_principals.get(config))
    assert error.error.code == "Request_UnsupportedQuery"
    config.headers.add("ConsistencyLevel", "eventual")
    found = await graph.service_principals.get(config)
    assert "advanced-one" not in {p.display_name for p in found.value}
    assert found.odata_count == len(found.value) == len(emulator.principals()) - 1
    # Without the header $count=true is silently ignored, as on the real service.
    plain = await graph.service_principals.get(list_config(count=True))
    assert plain.odata_count is None and len(plain.value) == len(emulator.principals())


async def test_bad_select_and_top_values_are_rejected(emulator):
    graph = emulator.graph()
    error = await graph_error(graph.service_principals.get(list_config(select=["id", "colour"])))
    assert error.response_status_code == 400 and error.error.code == "BadRequest"
    assert error.error.message == (
        "Parsing OData Select and Expand failed: Could not find a property named 'colour' on type "
        "'microsoft.graph.servicePrincipal'."
    )
    for top in (0, 1000):
        error = await graph_error(graph.service_principals.get(list_config(top=top)))
        assert error.response_status_code == 400 and error.error.code == "Request_UnsupportedQuery"
        assert (
            error.error.message
            == f"Invalid page size specified: '{top}'. Must be between 1 and 999 inclusive."
        )
    error = await graph_error(graph.service_principals.get(list_config(expand=["displayName"])))
    assert (
        error.error.code == "BadRequest"
        and "Only navigation properties can be expanded" in error.error.message
    )


async def test_paging_follows_absolute_next_links_over_several_pages(emulator):
    for index in range(5):
        emulator.seed_principal(f"paged-{index}", visible=True)
    graph = emulator.graph()
    page = await graph.service_principals.get(list_config(top=3, select=["id", "displayName"]))
    assert page.odata_next_link.startswith(emulator.graph_endpoint + "/servicePrincipals?")
    seen, pages = [p.id for p in page.value], 1
    while page.odata_next_link:
        page = await graph.service_principals.with_url(page.odata_next_link).get()
        assert len(page.value) <= 3 and all(p.service_principal_type is None for p in page.value)
        seen.extend(p.id for p in page.value)
        pages += 1
    everyone = {p["id"] for p in emulator.principals()}
    assert pages == -(-len(everyone) // 3) > 2
    assert sorted(seen) == sorted(everyone)


async def test_new_managed_identity_is_not_found_until_it_has_replicated(emulator):
    emulator.set_timings(replication_delay=1.0)
    seeded = emulator.seed_principal("fresh-identity")
    graph = emulator.graph()
    error = await graph_error(graph.service_principals.by_service_principal_id(seeded["id"]).get())
    assert error.response_status_code == 404 and error.error.code == "Request_ResourceNotFound"
    listed = await graph.service_principals.get(list_config(filter=f"id eq '{seeded['id']}'"))
    assert listed.value == []
    deadline = time.monotonic() + 10
    while True:
        try:
            sp = await graph.service_principals.by_service_principal_id(seeded["id"]).get()
            break
        except ODataError as error:
            assert error.response_status_code == 404 and time.monotonic() < deadline
            await asyncio.sleep(0.1)
    assert sp.display_name == "fresh-identity"
    statuses = [e["status"] for e in emulator.log(service="graph") if seeded["id"] in e["path"]]
    assert statuses[0] == 404 and statuses[-1] == 200


async def test_tenant_without_exchange_principal_gets_it_created(emulator):
    emulator.reset(with_exchange_sp=False)
    graph = emulator.graph(credential=emulator.app_credential())
    found = await graph.service_principals.get(list_config(filter=f"appId eq '{EXO_APP_ID}'"))
    assert found.value == []

    created = await graph.service_principals.post(ServicePrincipal(app_id=EXO_APP_ID))
    assert created.app_id == EXO_APP_ID and created.display_name == "Office 365 Exchange Online"
    assert MANAGE_AS_APP in {role.id for role in created.app_roles}
    again = await graph.service_principals.get(list_config(filter=f"appId eq '{EXO_APP_ID}'"))
    assert [p.id for p in again.value] == [created.id]
    assert [e["status"] for e in emulator.log(service="graph") if e["method"] == "POST"] == [201]

    error = await graph_error(graph.service_principals.post(ServicePrincipal(app_id=EXO_APP_ID)))
    assert error.response_status_code == 409
    assert error.error.code == "Request_MultipleObjectsWithSameKeyValue"


async def test_creating_a_principal_for_an_unknown_app_is_refused(emulator):
    graph = emulator.graph()
    app_id = str(uuid.uuid4())
    error = await graph_error(graph.service_principals.post(ServicePrincipal(app_id=app_id)))
    assert error.response_status_code == 400 and error.error.code == "Request_BadRequest"
    assert error.error.message == (
        f"The appId '{app_id}' of the service principal does not reference a valid application object."
    )
    assert error.error.details[0].code == "NoBackingApplicationObject"
    assert error.error.details[0].target == "appId"
