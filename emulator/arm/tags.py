"""Microsoft.Resources tags API: ``{scope}/providers/Microsoft.Resources/tags/default`` for a
subscription, a resource group or any resource.

The tags live on the target itself (``ArmResource.tags`` / ``Subscription.tags``), so a resource GET
shows them. Every successful PUT, PATCH or DELETE is published by the router as a
``Microsoft.Resources/tags/write|delete`` operation on ``.../providers/Microsoft.Resources/tags/default``,
which is the subject Event Grid sends for tag changes.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from emulator.arm import api_versions
from emulator.arm.router import ArmContext, ArmRouter, arm_json, not_found, validate_tags
from emulator.http import ArmError
from emulator.tenant import ArmResource, Subscription

PATCH_OPERATIONS = ("Merge", "Replace", "Delete")


def _target(ctx: ArmContext) -> tuple[ArmResource | Subscription, str]:
    """The object whose tags the request addresses and its canonical id; 404 as ARM answers it."""
    scope = ctx.params["scope"]
    parts = [p for p in scope.split("/") if p]
    if len(parts) == 2 and parts[0].lower() == "subscriptions":
        # The router has already answered 404 SubscriptionNotFound for unknown subscriptions.
        subscription = ctx.tenant.subscriptions[parts[1].lower()]
        return subscription, f"/subscriptions/{subscription.id}"
    resource = ctx.tenant.get_resource(scope)
    if resource is not None:
        return resource, resource.id
    if len(parts) >= 4 and parts[0].lower() == "subscriptions" and parts[2].lower() == "resourcegroups":
        rg_id = "/" + "/".join(parts[:4])
        if len(parts) == 4 or ctx.tenant.get_resource(rg_id) is None:
            raise ArmError(404, "ResourceGroupNotFound", f"Resource group '{parts[3]}' could not be found.")
        lowered = [p.lower() for p in parts]
        if "providers" in lowered:
            provider_path = parts[lowered.index("providers") + 1 :]
            if len(provider_path) >= 3:
                resource_type = "/".join([provider_path[0], *provider_path[1::2]])
                name = "/".join(provider_path[2::2])
                raise not_found(resource_type, name, parts[3])
    raise ArmError(
        400,
        "InvalidScope",
        f"The scope '{scope}' is not valid for tags. Use a subscription, resource group or resource id.",
    )


def tags_json(scope_id: str, tags: dict[str, str]) -> dict[str, Any]:
    return {
        "id": f"{scope_id}/providers/Microsoft.Resources/tags/default",
        "name": "default",
        "type": "Microsoft.Resources/tags",
        "properties": {"tags": tags},
    }


def _store(ctx: ArmContext, target: ArmResource | Subscription, tags: dict[str, str]) -> None:
    target.tags = validate_tags(tags)
    if isinstance(target, ArmResource):
        target.modified_at = time.time()
        target.modified_by = ctx.caller.principal.app_id


def _requested_tags(body: dict[str, Any]) -> dict[str, str]:
    properties = body.get("properties")
    if not isinstance(properties, dict):
        raise ArmError(
            400,
            "InvalidRequestContent",
            "The request content was invalid and could not be deserialized: 'Required property 'properties' not found in JSON.'",
        )
    return validate_tags(properties.get("tags"))


def _find_key(tags: dict[str, str], name: str) -> str | None:
    """Tag names are case-insensitive in ARM: the existing key that ``name`` addresses, if any."""
    return next((k for k in tags if k.lower() == name.lower()), None)


async def get_tags(ctx: ArmContext) -> web.Response:
    target, scope_id = _target(ctx)
    return arm_json(tags_json(scope_id, target.tags))


async def put_tags(ctx: ArmContext) -> web.Response:
    target, scope_id = _target(ctx)
    _store(ctx, target, _requested_tags(await ctx.json_object()))
    return arm_json(tags_json(scope_id, target.tags))


async def patch_tags(ctx: ArmContext) -> web.Response:
    target, scope_id = _target(ctx)
    body = await ctx.json_object()
    raw_operation = body.get("operation")
    operation = next((o for o in PATCH_OPERATIONS if str(raw_operation).lower() == o.lower()), None)
    if raw_operation is None or operation is None:
        raise ArmError(
            400,
            "InvalidRequestContent",
            f"The request content was invalid and could not be deserialized: 'Error converting value "
            f"\"{raw_operation}\" to type 'TagsPatchOperation'. Path 'operation'.'",
        )
    requested = _requested_tags(body)
    current = dict(target.tags)
    if operation == "Replace":
        current = requested
    elif operation == "Merge":
        for name, value in requested.items():
            current[_find_key(current, name) or name] = value
    else:  # Delete: by name, or by name and value when a value is given
        for name, value in requested.items():
            key = _find_key(current, name)
            if key is not None and (not value or current[key] == value):
                del current[key]
    _store(ctx, target, current)
    return arm_json(tags_json(scope_id, target.tags))


async def delete_tags(ctx: ArmContext) -> web.Response:
    target, _ = _target(ctx)
    _store(ctx, target, {})
    return web.Response(status=200)


def register(router: ArmRouter) -> None:
    template = "{scope*}/providers/Microsoft.Resources/tags/default"
    common = {
        "api_versions": api_versions.RESOURCES,
        "provider": "Microsoft.Resources",
        "resource_type": "tags",
    }
    router.add("GET", template, get_tags, action="Microsoft.Resources/tags/read", **common)
    router.add("PUT", template, put_tags, action="Microsoft.Resources/tags/write", **common)
    router.add("PATCH", template, patch_tags, action="Microsoft.Resources/tags/write", **common)
    router.add("DELETE", template, delete_tags, action="Microsoft.Resources/tags/delete", **common)
