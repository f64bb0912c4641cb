"""App role assignments (application permissions such as Exchange.ManageAsApp), from both ends:

* ``/servicePrincipals/{id}/appRoleAssignments``: the grants ``id`` HOLDS (``principalId == id``);
* ``/servicePrincipals/{id}/appRoleAssignedTo``: the grants made ON resource ``id`` (``resourceId == id``).

Both list, create (201), get and delete (204), validating as Entra ID does: GUIDs, the path object
matching the body, both principals existing (404 while a new one replicates), the app role being one
the resource defines, and no duplicate grant.
"""

from __future__ import annotations

from aiohttp import web

from emulator.graph import directory as d
from emulator.graph.query import parse_collection_query, parse_item_query, respond_collection, respond_entity
from emulator.graph.router import GraphContext, GraphRouter, is_guid
from emulator.http import GraphError
from emulator.tenant import AppRoleAssignment, ServicePrincipal

DEFAULT_ACCESS_ROLE_ID = "00000000-0000-0000-0000-000000000000"
# Which body property the path's service principal must match, per navigation.
PATH_SIDE = {"appRoleAssignments": "principalId", "appRoleAssignedTo": "resourceId"}


def _navigation(ctx: GraphContext) -> str:
    """The canonical navigation name (the path may use any casing)."""
    return "appRoleAssignments" if ctx.params["nav"].lower() == "approleassignments" else "appRoleAssignedTo"


def _fragment(sp: ServicePrincipal, navigation: str) -> str:
    return f"servicePrincipals('{sp.id}')/{navigation}"


def _assignments(ctx: GraphContext, sp: ServicePrincipal, navigation: str) -> list[AppRoleAssignment]:
    if navigation == "appRoleAssignments":
        return d.assignments_held_by(ctx.tenant, sp.id)
    return d.assignments_granted_on(ctx.tenant, sp.id)


def _find(ctx: GraphContext, sp: ServicePrincipal, navigation: str) -> AppRoleAssignment:
    assignment_id = ctx.params["assignment_id"]
    found = next((a for a in _assignments(ctx, sp, navigation) if a.id == assignment_id), None)
    if found is None:
        raise d.not_found(assignment_id)
    return found


async def list_assignments(ctx: GraphContext) -> web.Response:
    navigation = _navigation(ctx)
    options = parse_collection_query(ctx, d.APP_ROLE_ASSIGNMENT)
    sp = d.require_principal(ctx, ctx.params["id"])
    items = [d.app_role_assignment_json(a) for a in _assignments(ctx, sp, navigation)]
    return respond_collection(ctx, items, options, _fragment(sp, navigation))


async def get_assignment(ctx: GraphContext) -> web.Response:
    navigation = _navigation(ctx)
    options = parse_item_query(ctx, d.APP_ROLE_ASSIGNMENT)
    sp = d.require_principal(ctx, ctx.params["id"])
    assignment = _find(ctx, sp, navigation)
    return respond_entity(ctx, d.app_role_assignment_json(assignment), options, _fragment(sp, navigation))


async def delete_assignment(ctx: GraphContext) -> web.Response:
    navigation = _navigation(ctx)
    sp = d.require_principal(ctx, ctx.params["id"])
    ctx.tenant.remove_app_role_assignment(_find(ctx, sp, navigation).id)
    return ctx.no_content()


def _guid_property(body: dict, name: str) -> str:
    value = body.get(name)
    if value is None:
        if name == "appRoleId":
            return DEFAULT_ACCESS_ROLE_ID  # an omitted appRoleId means "default access"
        raise d.invalid_properties()
    if not is_guid(value):
        raise GraphError(
            400, "BadRequest", f"Cannot convert the literal '{value}' to the expected type 'Edm.Guid'."
        )
    return value.lower()


async def create_assignment(ctx: GraphContext) -> web.Response:
    navigation = _navigation(ctx)
    sp = d.require_principal(ctx, ctx.params["id"])
    body = await ctx.json_object()
    principal_id, resource_id, app_role_id = (
        _guid_property(body, name) for name in ("principalId", "resourceId", "appRoleId")
    )
    path_value = principal_id if PATH_SIDE[navigation] == "principalId" else resource_id
    if path_value != sp.id.lower():
        raise GraphError(400, "Request_BadRequest", "Not a valid reference update.")
    tenant = ctx.tenant
    principal = tenant.visible_principal(principal_id)
    if principal is None:
        raise d.not_found(principal_id)
    resource = tenant.visible_principal(resource_id)
    if resource is None:
        raise d.not_found(resource_id)
    role = next(
        (r for r in resource.app_roles if r["id"].lower() == app_role_id and r.get("isEnabled", True)), None
    )
    if role is None and not (app_role_id == DEFAULT_ACCESS_ROLE_ID and not resource.app_roles):
        raise GraphError(400, "Request_BadRequest", "Permission being assigned was not found on application")
    role_id = role["id"] if role else DEFAULT_ACCESS_ROLE_ID
    duplicate = any(
        a.principal_id == principal.id
        and a.resource_id == resource.id
        and a.app_role_id.lower() == app_role_id
        for a in tenant.app_role_assignments.values()
    )
    if duplicate:
        raise GraphError(400, "Request_BadRequest", "Permission being assigned already exists on the object")
    assignment = tenant.add_app_role_assignment(principal.id, resource.id, role_id)
    options = parse_item_query(ctx, d.APP_ROLE_ASSIGNMENT)
    return respond_entity(
        ctx, d.app_role_assignment_json(assignment), options, _fragment(sp, navigation), status=201
    )


def register(router: GraphRouter) -> None:
    collection = rf"/servicePrincipals/(?P<id>{d.ID})/(?P<nav>appRoleAssignments|appRoleAssignedTo)"
    item = collection + rf"/(?P<assignment_id>{d.ID})"
    router.add("GET", collection, list_assignments, permissions=d.READ_PRINCIPALS)
    router.add("POST", collection, create_assignment, permissions=d.WRITE_APP_ROLE_ASSIGNMENTS)
    router.add("GET", item, get_assignment, permissions=d.READ_PRINCIPALS)
    router.add("DELETE", item, delete_assignment, permissions=d.WRITE_APP_ROLE_ASSIGNMENTS)
