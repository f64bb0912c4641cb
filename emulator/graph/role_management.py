"""Microsoft Graph ``/roleManagement/directory``: Entra role definitions (the built-ins, e.g.
"Exchange Administrator") and role assignments (granting one to a principal at the tenant scope "/").

Assignment creation validates as Entra ID does: GUIDs, a principal Graph can see (404 while a new
managed identity replicates), an existing role definition, a valid directory scope, and no duplicate.
"""

from __future__ import annotations

import re

from aiohttp import web

from emulator.graph import directory as d
from emulator.graph.query import parse_collection_query, parse_item_query, respond_collection, respond_entity
from emulator.graph.router import GraphContext, GraphRouter, is_guid
from emulator.graph.schema import EntityType
from emulator.http import GraphError
from emulator.tenant import DirectoryRoleAssignment, Tenant

ROLE_DEFINITION = EntityType(
    name="unifiedRoleDefinition",
    resource="UnifiedRoleDefinition",
    properties={
        "id": "Edm.String",
        "description": "Edm.String",
        "displayName": "Edm.String",
        "isBuiltIn": "Edm.Boolean",
        "isEnabled": "Edm.Boolean",
        "resourceScopes": "Collection(Edm.String)",
        "rolePermissions": "Collection(microsoft.graph.unifiedRolePermission)",
        "templateId": "Edm.String",
        "version": "Edm.String",
    },
    navigations=frozenset({"inheritsPermissionsFrom"}),
    filters={
        "id": frozenset({"eq", "in"}),
        "templateId": frozenset({"eq", "in"}),
        "displayName": frozenset({"eq", "in", "startsWith"}),
        "isBuiltIn": frozenset({"eq"}),
        "isEnabled": frozenset({"eq"}),
    },
    directory_object=False,
)
ROLE_ASSIGNMENT = EntityType(
    name="unifiedRoleAssignment",
    resource="UnifiedRoleAssignment",
    properties={
        "id": "Edm.String",
        "appScopeId": "Edm.String",
        "condition": "Edm.String",
        "directoryScopeId": "Edm.String",
        "principalId": "Edm.String",
        "principalOrganizationId": "Edm.String",
        "roleDefinitionId": "Edm.String",
    },
    navigations=frozenset({"appScope", "directoryScope", "principal", "roleDefinition"}),
    filters={
        "principalId": frozenset({"eq", "in"}),
        "roleDefinitionId": frozenset({"eq", "in"}),
        "directoryScopeId": frozenset({"eq"}),
    },
    directory_object=False,
)
ASSIGNMENTS = "roleManagement/directory/roleAssignments"
DEFINITIONS = "roleManagement/directory/roleDefinitions"
# "/" (the tenant), "/administrativeUnits/{id}" or "/{application object id}".
SCOPE = re.compile(r"^/(?:administrativeUnits/)?(?P<object_id>[^/]+)$", re.IGNORECASE)
INVALID_SCOPE = "Must specify valid property scope of entity RoleAssignment"


# --------------------------------------------------------------------------------------------------
# Role definitions


async def list_role_definitions(ctx: GraphContext) -> web.Response:
    options = parse_collection_query(ctx, ROLE_DEFINITION, {"inheritsPermissionsFrom": ROLE_DEFINITION})
    items = [dict(definition) for definition in ctx.tenant.role_definitions]
    return respond_collection(ctx, items, options, DEFINITIONS, lambda item, nav: [])


async def get_role_definition(ctx: GraphContext) -> web.Response:
    options = parse_item_query(ctx, ROLE_DEFINITION, {"inheritsPermissionsFrom": ROLE_DEFINITION})
    definition = ctx.tenant.role_definition(ctx.params["id"])
    if definition is None:
        raise d.not_found(ctx.params["id"])
    return respond_entity(ctx, dict(definition), options, DEFINITIONS, lambda item, nav: [])


# --------------------------------------------------------------------------------------------------
# Role assignments


def role_assignment_json(assignment: DirectoryRoleAssignment, tenant: Tenant) -> dict:
    return {
        "id": assignment.id,
        "principalId": assignment.principal_id,
        "roleDefinitionId": assignment.role_definition_id,
        "directoryScopeId": assignment.directory_scope_id,
        "principalOrganizationId": tenant.tenant_id,
        "appScopeId": None,
        "condition": None,
    }


def _visible_assignments(tenant: Tenant) -> list[DirectoryRoleAssignment]:
    return [a for a in tenant.directory_role_assignments.values() if tenant.visible_principal(a.principal_id)]


def _expander(tenant: Tenant):
    def expand(item: dict, navigation: str) -> dict | None:
        if navigation == "roleDefinition":
            definition = tenant.role_definition(item["roleDefinitionId"])
            return dict(definition) if definition else None
        sp = tenant.visible_principal(item["principalId"])
        if sp is None:
            return None
        return {"@odata.type": "#microsoft.graph.servicePrincipal", **d.service_principal_json(sp)}

    return expand


RELATED = {"roleDefinition": ROLE_DEFINITION, "principal": d.SERVICE_PRINCIPAL}


async def list_role_assignments(ctx: GraphContext) -> web.Response:
    options = parse_collection_query(ctx, ROLE_ASSIGNMENT, RELATED)
    items = [role_assignment_json(a, ctx.tenant) for a in _visible_assignments(ctx.tenant)]
    return respond_collection(ctx, items, options, ASSIGNMENTS, _expander(ctx.tenant))


def _find_assignment(ctx: GraphContext) -> DirectoryRoleAssignment:
    assignment_id = ctx.params["id"]
    found = next((a for a in _visible_assignments(ctx.tenant) if a.id == assignment_id), None)
    if found is None:
        raise d.not_found(assignment_id)
    return found


async def get_role_assignment(ctx: GraphContext) -> web.Response:
    options = parse_item_query(ctx, ROLE_ASSIGNMENT, RELATED)
    assignment = _find_assignment(ctx)
    return respond_entity(
        ctx, role_assignment_json(assignment, ctx.tenant), options, ASSIGNMENTS, _expander(ctx.tenant)
    )


async def delete_role_assignment(ctx: GraphContext) -> web.Response:
    ctx.tenant.remove_directory_role_assignment(_find_assignment(ctx).id)
    return ctx.no_content()


def _validate_scope(scope: object) -> None:
    """Only the tenant scope exists here: administrative units and application objects are not
    emulated, so a well-formed scope naming one is "not found"."""
    if scope == "/":
        return
    match = SCOPE.match(scope) if isinstance(scope, str) else None
    if match is None or not is_guid(match["object_id"]):
        raise GraphError(400, "Request_BadRequest", INVALID_SCOPE)
    raise d.not_found(match["object_id"])


async def create_role_assignment(ctx: GraphContext) -> web.Response:
    body = await ctx.json_object()
    principal_id, definition_id = body.get("principalId"), body.get("roleDefinitionId")
    if not isinstance(principal_id, str) or not isinstance(definition_id, str):
        raise d.invalid_properties()
    d.require_guid(principal_id)
    d.require_guid(definition_id)
    _validate_scope(body.get("directoryScopeId"))
    tenant = ctx.tenant
    principal = tenant.visible_principal(principal_id)
    if principal is None:
        raise d.not_found(principal_id)
    definition = tenant.role_definition(definition_id)
    if definition is None:
        raise d.not_found(definition_id)
    if any(
        a.principal_id == principal.id
        and a.role_definition_id == definition["id"]
        and a.directory_scope_id == "/"
        for a in tenant.directory_role_assignments.values()
    ):
        raise GraphError(
            400,
            "Request_BadRequest",
            "A conflicting object with one or more of the specified property values is present in the directory.",
        )
    assignment = tenant.assign_directory_role(principal.id, definition["id"], "/")
    options = parse_item_query(ctx, ROLE_ASSIGNMENT, RELATED)
    return respond_entity(
        ctx, role_assignment_json(assignment, tenant), options, ASSIGNMENTS, _expander(tenant), status=201
    )


def register(router: GraphRouter) -> None:
    definitions, assignments = f"/{DEFINITIONS}", f"/{ASSIGNMENTS}"
    router.add("GET", definitions, list_role_definitions, permissions=d.READ_ROLES)
    router.add("GET", rf"{definitions}/(?P<id>{d.ID})", get_role_definition, permissions=d.READ_ROLES)
    router.add("GET", assignments, list_role_assignments, permissions=d.READ_ROLES)
    router.add("POST", assignments, create_role_assignment, permissions=d.WRITE_ROLES)
    router.add("GET", rf"{assignments}/(?P<id>{d.ID})", get_role_assignment, permissions=d.READ_ROLES)
    router.add("DELETE", rf"{assignments}/(?P<id>{d.ID})", delete_role_assignment, permissions=d.WRITE_ROLES)
