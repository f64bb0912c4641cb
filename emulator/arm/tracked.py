"""Handler helpers for tracked resources that live directly in a resource group (Automation accounts,
VMs, user-assigned identities): lookup by the route's name parameter, location, idempotent delete and
list by subscription, answered the way ARM answers them for every such type, and the routes of those
calls. Use it as a module
(``tracked.require(ctx, VM_TYPE, "vmName")``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from emulator.arm.router import ArmContext, ArmRouter, Handler, not_found, paged, require_resource_group
from emulator.http import ArmError
from emulator.tenant import ArmResource


def resource_id(ctx: ArmContext, rg_id: str, resource_type: str, name_param: str) -> str:
    """The id of the resource the route names (``{rg id}/providers/{type}/{name}``)."""
    return f"{rg_id}/providers/{resource_type}/{ctx.params[name_param]}"


def find(ctx: ArmContext, resource_type: str, name_param: str) -> ArmResource | None:
    """The resource the route names, or None (404 ResourceGroupNotFound when its group is missing)."""
    rg_id = require_resource_group(ctx)
    return ctx.tenant.get_resource(resource_id(ctx, rg_id, resource_type, name_param))


def require(ctx: ArmContext, resource_type: str, name_param: str) -> ArmResource:
    """The resource the route names; 404 ResourceNotFound when it does not exist."""
    resource = find(ctx, resource_type, name_param)
    if resource is None:
        raise not_found(resource_type, ctx.params[name_param], ctx.params["resourceGroupName"])
    return resource


def require_location(body: dict[str, Any]) -> str:
    """The body's ``location`` as ARM stores it ("West Europe" -> "westeurope"); 400 when missing."""
    location = body.get("location")
    if not location:
        raise ArmError(400, "LocationRequired", "The location property is required for this definition.")
    return str(location).replace(" ", "").lower()


def require_same_location(
    ctx: ArmContext, existing: ArmResource | None, name: str, location: str, *, status: int = 409
) -> None:
    """A PUT may not move an existing resource to another location (ARM's InvalidResourceLocation)."""
    if existing is None or existing.location == location:
        return
    raise ArmError(
        status,
        "InvalidResourceLocation",
        f"The resource '{name}' already exists in location '{existing.location}' in resource group "
        f"'{ctx.params['resourceGroupName']}'. A resource with the same name cannot be created in location "
        f"'{location}'. Please select a new resource name.",
    )


def touch(resource: ArmResource, ctx: ArmContext) -> None:
    """Records a write by the caller (what ``systemData.lastModified*`` shows)."""
    resource.modified_at = time.time()
    resource.modified_by = ctx.caller.principal.app_id


def already_deleted(ctx: ArmContext) -> web.Response:
    """DELETE of a resource that does not exist: ARM answers 204 and changes (and announces) nothing."""
    ctx.emit_event = False
    return web.Response(status=204)


def in_subscription(ctx: ArmContext, resource_type: str) -> list[ArmResource]:
    """The subscription's resources of ``resource_type``, in id order (the list-by-subscription calls)."""
    prefix = f"/subscriptions/{ctx.subscription_id}/".lower()
    return [
        r
        for k, r in sorted(ctx.tenant.resources.items())
        if k.startswith(prefix) and r.type.lower() == resource_type.lower()
    ]


def in_resource_group(ctx: ArmContext, resource_type: str) -> list[ArmResource]:
    """The request's resource group's resources of ``resource_type``, in id order (404 when it is missing)."""
    rg_id = require_resource_group(ctx)
    return ctx.tenant.children(f"{rg_id}/providers/{resource_type}")


Render = Callable[[ArmContext, ArmResource], dict[str, Any]]


def delete_handler(arm_type: str, name_param: str) -> Handler:
    """DELETE as ARM answers it for a tracked resource: 200, its children and system identity go with it;
    204 when it does not exist."""

    async def delete(ctx: ArmContext) -> web.Response:
        resource = find(ctx, arm_type, name_param)
        if resource is None:
            return already_deleted(ctx)
        ctx.tenant.delete_resource_tree(resource.id)
        return web.Response(status=200)

    return delete


def list_handlers(arm_type: str, render: Render) -> tuple[Handler, Handler]:
    """The list-by-resource-group and list-by-subscription calls, each resource shown by ``render``."""

    async def by_resource_group(ctx: ArmContext) -> web.Response:
        return paged(ctx, [render(ctx, r) for r in in_resource_group(ctx, arm_type)])

    async def by_subscription(ctx: ArmContext) -> web.Response:
        return paged(ctx, [render(ctx, r) for r in in_subscription(ctx, arm_type)])

    return by_resource_group, by_subscription


def add_routes(
    router: ArmRouter,
    arm_type: str,
    name_param: str,
    /,
    *,
    put: Handler,
    get: Handler,
    patch: Handler,
    delete: Handler | None = None,
    render: Render | None = None,
    list_by_resource_group: Handler | None = None,
    list_by_subscription: Handler | None = None,
    **route_args: Any,
) -> str:
    """Adds the six routes every tracked resource type has, with ARM's ``{type}/read|write|delete``
    actions; returns the item's route template (for the type's further routes). Without ``delete`` or
    the list handlers, the usual ones serve (the lists show each resource with ``render``). ``route_args``
    are ``ArmRouter.add``'s ``api_versions``, ``provider`` and ``resource_type``."""
    delete = delete or delete_handler(arm_type, name_param)
    if list_by_resource_group is None or list_by_subscription is None:
        if render is None:
            raise TypeError("add_routes needs render, or both list handlers")
        list_by_resource_group, list_by_subscription = list_handlers(arm_type, render)
    collection = (
        f"/subscriptions/{{subscriptionId}}/resourceGroups/{{resourceGroupName}}/providers/{arm_type}"
    )
    item = f"{collection}/{{{name_param}}}"
    router.add("PUT", item, put, action=f"{arm_type}/write", **route_args)
    router.add("GET", item, get, action=f"{arm_type}/read", **route_args)
    router.add("PATCH", item, patch, action=f"{arm_type}/write", **route_args)
    router.add("DELETE", item, delete, action=f"{arm_type}/delete", **route_args)
    router.add("GET", collection, list_by_resource_group, action=f"{arm_type}/read", **route_args)
    router.add(
        "GET",
        f"/subscriptions/{{subscriptionId}}/providers/{arm_type}",
        list_by_subscription,
        action=f"{arm_type}/read",
        **route_args,
    )
    return item
