"""Graph /roleManagement/directory through msgraph-sdk: finding a built-in Entra role by name and
assigning it (the seed procedure's last Graph step), listing with filters, expansion and paging, and
the service's validation errors."""

from __future__ import annotations

import asyncio
import time
import uuid

from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.service_principal import ServicePrincipal
from msgraph.generated.models.unified_role_assignment import UnifiedRoleAssignment
from msgraph.generated.role_management.directory.role_assignments.role_assignments_request_builder import (
    RoleAssignmentsRequestBuilder,
)
from msgraph.generated.role_management.directory.role_definitions.role_definitions_request_builder import (
    RoleDefinitionsRequestBuilder,
)

from emulator import directory_data as dd
from tests.support.graph import graph_error

EXCHANGE_ADMIN = dd.EXCHANGE_SUPPORTED_ROLES["Exchange Administrator"]
GLOBAL_ADMIN = dd.EXCHANGE_SUPPORTED_ROLES["Global Administrator"]


def definitions_config(**query) -> RequestConfiguration:
    return RequestConfiguration(
        query_parameters=RoleDefinitionsRequestBuilder.RoleDefinitionsRequestBuilderGetQueryParameters(
            **query
        )
    )


def assignments_config(**query) -> RequestConfiguration:
    return RequestConfiguration(
        query_parameters=RoleAssignmentsRequestBuilder.RoleAssignmentsRequestBuilderGetQueryParameters(
            **query
        )
    )


def assignment(
    principal_id: str, role_id: str = EXCHANGE_ADMIN, scope: str | None = "/"
) -> UnifiedRoleAssignment:
    return UnifiedRoleAssignment(
        principal_id=principal_id, role_definition_id=role_id, directory_scope_id=scope
    )


async def test_seed_procedure_assigns_exchange_administrator_found_by_name(emulator):
    mi = emulator.seed_principal("automation-mi", visible=True)
    graph = emulator.graph(credential=emulator.app_credential())
    definitions = graph.role_management.directory.role_definitions
    found = await definitions.get(definitions_config(filter="DisplayName eq 'Exchange Administrator'"))
    assert [(r.id, r.template_id, r.is_built_in) for r in found.value] == [
        (EXCHANGE_ADMIN, EXCHANGE_ADMIN, True)
    ]

    created = await graph.role_management.directory.role_assignments.post(
        assignment(mi["id"], found.value[0].id)
    )
    assert created.principal_id == mi["id"] and created.role_definition_id == EXCHANGE_ADMIN
    assert created.directory_scope_id == "/" and created.id

    mine = await graph.role_management.directory.role_assignments.get(
        assignments_config(filter=f"principalId eq '{mi['id']}'", expand=["roleDefinition"])
    )
    assert [a.id for a in mine.value] == [created.id]
    assert mine.value[0].role_definition.display_name == "Exchange Administrator"
    fetched = await graph.role_management.directory.role_assignments.by_unified_role_assignment_id(
        created.id
    ).get()
    assert fetched.principal_id == mi["id"]


async def test_every_supported_exchange_role_is_a_built_in_definition(emulator):
    graph = emulator.graph()
    definitions = graph.role_management.directory.role_definitions
    for name, role_id in dd.EXCHANGE_SUPPORTED_ROLES.items():
        by_id = await definitions.by_unified_role_definition_id(role_id.upper()).get()
        assert by_id.display_name == name and by_id.template_id == role_id and by_id.is_built_in
    by_template = await definitions.get(definitions_config(filter=f"templateId eq '{GLOBAL_ADMIN}'"))
    assert [r.display_name for r in by_template.value] == ["Global Administrator"]
    built_in = await definitions.get(
        definitions_config(filter="isBuiltIn eq true", select=["id", "displayName"])
    )
    assert len(built_in.value) == len(emulator_definitions()) and built_in.value[0].description is None
    custom = await definitions.get(definitions_config(filter="isBuiltIn eq false"))
    assert custom.value == []
    by_id_filter = await definitions.get(definitions_config(filter=f"id eq '{EXCHANGE_ADMIN}'"))
    assert [r.display_name for r in by_id_filter.value] == ["Exchange Administrator"]

    missing = str(uuid.uuid4())
    error = await graph_error(definitions.by_unified_role_definition_id(missing).get())
    assert error.response_status_code == 404 and error.error.code == "Request_ResourceNotFound"
    error = await graph_error(definitions.get(definitions_config(filter="isBuiltIn eq 'yes'")))
    assert error.error.code == "BadRequest" and "incompatible types" in error.error.message
    error = await graph_error(definitions.get(definitions_config(filter="version eq '1'")))
    assert error.error.code == "Request_UnsupportedQuery"


def emulator_definitions() -> list[str]:
    return [*dd.EXCHANGE_SUPPORTED_ROLES, *dd.OTHER_BUILT_IN_ROLES]


async def test_assignments_filter_expand_principal_and_page(emulator):
    identities = [emulator.seed_principal(f"mi-{i}", visible=True) for i in range(3)]
    graph = emulator.graph()
    assignments = graph.role_management.directory.role_assignments
    for mi in identities:
        await assignments.post(assignment(mi["id"]))
    await assignments.post(assignment(identities[0]["id"], dd.EXCHANGE_SUPPORTED_ROLES["Security Reader"]))

    both = await assignments.get(
        assignments_config(
            filter=f"principalId eq '{identities[0]['id']}' and roleDefinitionId eq '{EXCHANGE_ADMIN}'",
            expand=["principal"],
        )
    )
    assert len(both.value) == 1
    principal = both.value[0].principal
    assert isinstance(principal, ServicePrincipal) and principal.display_name == "mi-0"
    assert principal.service_principal_type == "ManagedIdentity"

    page = await assignments.get(assignments_config(filter=f"roleDefinitionId eq '{EXCHANGE_ADMIN}'", top=2))
    ids = [a.id for a in page.value]
    assert page.odata_next_link
    page = await assignments.with_url(page.odata_next_link).get()
    ids += [a.id for a in page.value]
    assert page.odata_next_link is None
    assert len(ids) == len(set(ids)) == 3

    everyone = await assignments.get()
    # The admin's Global Administrator plus the four created here.
    assert len(everyone.value) == 5
    error = await graph_error(assignments.get(assignments_config(expand=["colour"])))
    assert error.error.message.startswith("Parsing OData Select and Expand failed: Could not find a property")


async def test_assignment_validation_errors(emulator):
    mi = emulator.seed_principal("validated", visible=True)
    graph = emulator.graph()
    assignments = graph.role_management.directory.role_assignments
    await assignments.post(assignment(mi["id"]))

    duplicate = await graph_error(assignments.post(assignment(mi["id"])))
    assert (duplicate.response_status_code, duplicate.error.code, duplicate.error.message) == (
        400,
        "Request_BadRequest",
        "A conflicting object with one or more of the specified property values is present in the directory.",
    )
    missing = str(uuid.uuid4())
    unknown_principal = await graph_error(assignments.post(assignment(missing)))
    assert unknown_principal.response_status_code == 404
    assert unknown_principal.error.message.startswith(f"Resource '{missing}' does not exist")
    unknown_role = await graph_error(assignments.post(assignment(mi["id"], missing)))
    assert unknown_role.response_status_code == 404 and unknown_role.error.code == "Request_ResourceNotFound"
    for scope in ("", "/subscriptions/x", None):
        bad_scope = await graph_error(assignments.post(assignment(mi["id"], GLOBAL_ADMIN, scope)))
        assert (bad_scope.response_status_code, bad_scope.error.message) == (
            400,
            "Must specify valid property scope of entity RoleAssignment",
        )
    unit = str(uuid.uuid4())
    no_unit = await graph_error(
        assignments.post(assignment(mi["id"], GLOBAL_ADMIN, f"/administrativeUnits/{unit}"))
    )
    assert no_unit.response_status_code == 404 and unit in no_unit.error.message
    not_guid = await graph_error(assignments.post(assignment("my-identity")))
    assert (not_guid.response_status_code, not_guid.error.message) == (
        400,
        "Invalid object identifier 'my-identity'.",
    )
    # Nothing but the first assignment was created.
    mine = await assignments.get(assignments_config(filter=f"principalId eq '{mi['id']}'"))
    assert len(mine.value) == 1


async def test_assignment_to_a_replicating_identity_is_404_until_it_replicates(emulator):
    emulator.set_timings(replication_delay=1.0)
    mi = emulator.seed_principal("just-created")
    graph = emulator.graph(credential=emulator.app_credential())
    assignments = graph.role_management.directory.role_assignments
    error = await graph_error(assignments.post(assignment(mi["id"])))
    assert error.response_status_code == 404 and error.error.code == "Request_ResourceNotFound"
    deadline = time.monotonic() + 10
    while True:
        try:
            created = await assignments.post(assignment(mi["id"]))
            break
        except ODataError as error:
            assert error.response_status_code == 404 and time.monotonic() < deadline
            await asyncio.sleep(0.1)
    assert created.principal_id == mi["id"]


async def test_delete_assignment(emulator):
    mi = emulator.seed_principal("temporary", visible=True)
    graph = emulator.graph(credential=emulator.app_credential())
    assignments = graph.role_management.directory.role_assignments
    created = await assignments.post(assignment(mi["id"]))
    await assignments.by_unified_role_assignment_id(created.id).delete()
    error = await graph_error(assignments.by_unified_role_assignment_id(created.id).get())
    assert error.response_status_code == 404
    error = await graph_error(assignments.by_unified_role_assignment_id(created.id).delete())
    assert error.response_status_code == 404 and error.error.code == "Request_ResourceNotFound"
    assert [e["status"] for e in emulator.log(service="graph") if e["method"] == "DELETE"] == [204, 404]
    remaining = await assignments.get(assignments_config(filter=f"principalId eq '{mi['id']}'"))
    assert remaining.value == []
