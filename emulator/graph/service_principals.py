"""Microsoft Graph ``/servicePrincipals``: list (with ``$filter``, ``$select``, paging, ...), get by
object id or by the ``appId`` alternate key, and create a tenant's service principal for a
first-party app (how "Office 365 Exchange Online" appears in a tenant that never used Exchange).

Also the control route ``POST /_control/principals`` that seeds a principal directly, for tests that
need a managed identity without its ARM resource.
"""

from __future__ import annotations

import json
import math
from typing import Any

from aiohttp import web

from emulator.control import ControlError, body_of
from emulator.graph import directory as d
from emulator.graph.query import (
    matches_search,
    parse_collection_query,
    parse_item_query,
    respond_collection,
    respond_entity,
)
from emulator.graph.router import GraphContext, GraphRouter
from emulator.graph.schema import EntityType
from emulator.http import GraphError, json_response
from emulator.runtime import EmulatorRuntime
from emulator.tenant import iso

# What a service principal's navigation properties expand to, for nested $select.
DIRECTORY_OBJECT = EntityType(
    name="directoryObject",
    resource="DirectoryObject",
    properties={"id": "Edm.String", "deletedDateTime": "Edm.DateTimeOffset"},
)
RELATED = {
    nav: (d.APP_ROLE_ASSIGNMENT if nav in ("appRoleAssignments", "appRoleAssignedTo") else DIRECTORY_OBJECT)
    for nav in d.SERVICE_PRINCIPAL.navigations
    if nav not in ("remoteDesktopSecurityConfiguration", "synchronization")
}


class DetailedGraphError(GraphError):
    """A Graph error whose body also lists ``details`` (as Entra ID adds for property errors)."""

    def __init__(self, status: int, code: str, message: str, details: list[dict[str, Any]]) -> None:
        super().__init__(status, code, message)
        self.details = details

    def response(self, request_id: str | None = None, client_request_id: str | None = None) -> web.Response:
        response = super().response(request_id, client_request_id)
        body = json.loads(response.body)
        body["error"]["details"] = self.details
        response.body = json.dumps(body).encode()
        return response


def _expander(ctx: GraphContext):
    return lambda item, navigation: d.service_principal_navigation(ctx.tenant, item, navigation)


async def list_service_principals(ctx: GraphContext) -> web.Response:
    options = parse_collection_query(ctx, d.SERVICE_PRINCIPAL, RELATED)
    items = [d.service_principal_json(sp) for sp in d.visible_principals(ctx.tenant)]
    return respond_collection(ctx, items, options, "servicePrincipals", _expander(ctx))


async def count_service_principals(ctx: GraphContext) -> web.Response:
    """``GET /servicePrincipals/$count``: the number as ``text/plain``, an advanced query (only with
    ``ConsistencyLevel: eventual``; ``$filter`` and ``$search`` narrow it)."""
    if ctx.request.headers.get("ConsistencyLevel", "").lower() != "eventual":
        raise GraphError(400, "Request_BadRequest", "$count is not currently supported.")
    options = parse_collection_query(ctx, d.SERVICE_PRINCIPAL, RELATED)
    items = [d.service_principal_json(sp) for sp in d.visible_principals(ctx.tenant)]
    if options.predicate is not None:
        items = [i for i in items if options.predicate(i)]
    if options.search is not None:
        items = [i for i in items if matches_search(i, options.search)]
    return web.Response(
        text=str(len(items)), content_type="text/plain", charset="utf-8", headers=ctx.headers()
    )


async def get_service_principal(ctx: GraphContext) -> web.Response:
    options = parse_item_query(ctx, d.SERVICE_PRINCIPAL, RELATED)
    sp = d.require_principal(ctx, ctx.params["id"])
    return respond_entity(ctx, d.service_principal_json(sp), options, "servicePrincipals", _expander(ctx))


async def get_by_app_id(ctx: GraphContext) -> web.Response:
    options = parse_item_query(ctx, d.SERVICE_PRINCIPAL, RELATED)
    app_id = ctx.params["app_id"]
    sp = ctx.tenant.principal_by_app_id(app_id)
    if sp is None or not sp.is_visible():
        raise d.not_found(app_id)
    return respond_entity(ctx, d.service_principal_json(sp), options, "servicePrincipals", _expander(ctx))


async def create_service_principal(ctx: GraphContext) -> web.Response:
    body = await ctx.json_object()
    app_id = body.get("appId")
    if not isinstance(app_id, str) or not app_id:
        raise GraphError(
            400,
            "Request_BadRequest",
            "A value is required for property 'appId' of resource 'ServicePrincipal'.",
        )
    existing = ctx.tenant.principal_by_app_id(app_id)
    if existing is not None and existing.is_visible():
        raise GraphError(
            409,
            "Request_MultipleObjectsWithSameKeyValue",
            "The service principal cannot be created, updated, or restored because the service principal "
            f"name {app_id} is already in use.",
        )
    if not d.is_exchange_app(app_id):
        # The emulated tenant knows no application objects besides the first-party ones.
        message = (
            f"The appId '{app_id}' of the service principal does not reference a valid application object."
        )
        raise DetailedGraphError(
            400,
            "Request_BadRequest",
            message,
            [{"code": "NoBackingApplicationObject", "message": message, "target": "appId"}],
        )
    sp = ctx.tenant.add_exchange_sp()
    options = parse_item_query(ctx, d.SERVICE_PRINCIPAL)
    return respond_entity(ctx, d.service_principal_json(sp), options, "servicePrincipals", status=201)


def register(router: GraphRouter) -> None:
    router.add("GET", "/servicePrincipals", list_service_principals, permissions=d.READ_PRINCIPALS)
    router.add("POST", "/servicePrincipals", create_service_principal, permissions=d.CREATE_PRINCIPALS)
    router.add(
        "GET",
        r"/servicePrincipals\(appId='(?P<app_id>[^']*)'\)",
        get_by_app_id,
        permissions=d.READ_PRINCIPALS,
    )
    router.add("GET", r"/servicePrincipals/\$count", count_service_principals, permissions=d.READ_PRINCIPALS)
    router.add(
        "GET", rf"/servicePrincipals/(?P<id>{d.ID})", get_service_principal, permissions=d.READ_PRINCIPALS
    )


# --------------------------------------------------------------------------------------------------
# Control API


def register_control(app: web.Application, runtime: EmulatorRuntime) -> None:
    async def seed_principal(request: web.Request) -> web.Response:
        """``{"displayName", "type": "ManagedIdentity"|"Application", "visible"?, "resourceId"?}``.

        A managed identity stays invisible to Graph for the replication delay unless ``visible`` is
        true; it stands for a user-assigned identity (``resourceId``, or one in resource group
        "seeded" of the default subscription), so it can also get tokens by client id.
        """
        body = await body_of(request)
        unknown = set(body) - {"displayName", "type", "visible", "resourceId"}
        if unknown:
            raise ControlError(400, f"unknown field(s): {', '.join(sorted(unknown))}")
        name = body.get("displayName")
        sp_type = body.get("type", "ManagedIdentity")
        if not isinstance(name, str) or not name:
            raise ControlError(400, "missing field(s): displayName")
        if sp_type not in ("ManagedIdentity", "Application"):
            raise ControlError(400, "type must be ManagedIdentity or Application")
        tenant = runtime.tenant
        resource_id = None
        if sp_type == "ManagedIdentity":
            resource_id = body.get("resourceId") or (
                f"/subscriptions/{tenant.default_subscription_id}/resourcegroups/seeded/providers/"
                f"Microsoft.ManagedIdentity/userAssignedIdentities/{name}"
            )
        visible = bool(body.get("visible", sp_type == "Application"))
        sp = tenant.add_principal(name, sp_type=sp_type, visible=visible, mi_resource_id=resource_id)
        return json_response(
            {
                "id": sp.id,
                "appId": sp.app_id,
                "displayName": sp.display_name,
                "type": sp.sp_type,
                "miResourceId": sp.mi_resource_id,
                "visibleAt": iso(sp.visible_at) if math.isfinite(sp.visible_at) else None,
            },
            201,
        )

    async def delete_principal(request: web.Request) -> web.Response:
        """Deletes a principal and every assignment naming it (as deleting its identity would)."""
        sp = runtime.tenant.principal(request.match_info["principal_id"])
        if sp is None:
            raise ControlError(404, "no such principal")
        runtime.tenant.delete_principal(sp.id)
        return json_response({"deleted": True})

    async def replicate_principal(request: web.Request) -> web.Response:
        """Ends a principal's replication delay now (the way to release one while replication is held)."""
        sp = runtime.tenant.replicate(request.match_info["principal_id"])
        if sp is None:
            raise ControlError(404, "no such principal")
        return json_response({"id": sp.id, "visible": sp.is_visible()})

    async def get_replication(request: web.Request) -> web.Response:
        return json_response({"held": runtime.tenant.replication_held})

    async def put_replication(request: web.Request) -> web.Response:
        """``{"held": true}``: new managed identities stay invisible to Graph until replicated one by one;
        ``{"held": false}``: the timed delay again, and every principal still held becomes visible."""
        body = await body_of(request)
        held = body.get("held")
        if not isinstance(held, bool) or set(body) != {"held"}:
            raise ControlError(400, 'the body must be {"held": true} or {"held": false}')
        tenant = runtime.tenant
        tenant.replication_held = held
        if not held:
            for sp in tenant.service_principals.values():
                if not math.isfinite(sp.visible_at):
                    tenant.replicate(sp.id)
        return json_response({"held": held})

    app.router.add_post("/_control/principals", seed_principal)
    app.router.add_post("/_control/principals/{principal_id}/replicate", replicate_principal)
    app.router.add_get("/_control/replication", get_replication)
    app.router.add_put("/_control/replication", put_replication)
    app.router.add_delete("/_control/principals/{principal_id}", delete_principal)
