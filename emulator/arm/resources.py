"""Microsoft.Resources: subscriptions and resource groups."""

from __future__ import annotations

import time

from aiohttp import web

from emulator.arm import api_versions
from emulator.arm.router import ArmContext, ArmRouter, arm_json, paged, validate_tags
from emulator.http import ArmError
from emulator.tenant import ArmResource, Subscription

RG_TYPE = "Microsoft.Resources/resourceGroups"


def subscription_json(sub: Subscription, tenant_id: str) -> dict:
    return {
        "id": f"/subscriptions/{sub.id}",
        "subscriptionId": sub.id,
        "tenantId": tenant_id,
        "displayName": sub.display_name,
        "state": "Enabled",
        "subscriptionPolicies": {
            "locationPlacementId": "Public_2014-09-01",
            "quotaId": "PayAsYouGo_2014-09-01",
            "spendingLimit": "Off",
        },
        "authorizationSource": "RoleBased",
    }


def resource_group_json(rg: ArmResource) -> dict:
    return {
        "id": rg.id,
        "name": rg.name,
        "type": RG_TYPE,
        "location": rg.location,
        "tags": rg.tags,
        "properties": {"provisioningState": "Succeeded"},
    }


async def list_subscriptions(ctx: ArmContext) -> web.Response:
    tenant = ctx.tenant
    visible = [
        s
        for s in tenant.subscriptions.values()
        if tenant.authorize(ctx.caller.id, "Microsoft.Resources/subscriptions/read", f"/subscriptions/{s.id}")
    ]
    return paged(ctx, [subscription_json(s, tenant.tenant_id) for s in visible])


async def get_subscription(ctx: ArmContext) -> web.Response:
    sub = ctx.tenant.subscriptions[ctx.subscription_id.lower()]
    return arm_json(subscription_json(sub, ctx.tenant.tenant_id))


def _rg_id(ctx: ArmContext) -> str:
    return f"/subscriptions/{ctx.subscription_id}/resourceGroups/{ctx.params['resourceGroupName']}"


def _get_rg(ctx: ArmContext) -> ArmResource:
    rg = ctx.tenant.get_resource(_rg_id(ctx))
    if rg is None:
        raise ArmError(
            404,
            "ResourceGroupNotFound",
            f"Resource group '{ctx.params['resourceGroupName']}' could not be found.",
        )
    return rg


async def put_resource_group(ctx: ArmContext) -> web.Response:
    body = await ctx.json_object()
    name = ctx.params["resourceGroupName"]
    if len(name) > 90 or not all(c.isalnum() or c in "-_.()" for c in name) or name.endswith("."):
        raise ArmError(
            400,
            "InvalidResourceGroup",
            f"The provided resource group name '{name}' has these invalid characters: the name can only include "
            "alphanumeric, underscore, parentheses, hyphen, period (except at end), and Unicode characters that match the allowed characters.",
        )
    location = body.get("location")
    if not location:
        raise ArmError(400, "LocationRequired", "The location property is required for this definition.")
    existing = ctx.tenant.get_resource(_rg_id(ctx))
    tags = validate_tags(body.get("tags"))
    if existing is not None:
        if (
            existing.location
            and existing.location.replace(" ", "").lower() != str(location).replace(" ", "").lower()
        ):
            raise ArmError(
                409,
                "InvalidResourceGroupLocation",
                f"Invalid resource group location '{location}'. The Resource group already exists in location '{existing.location}'.",
            )
        existing.tags = tags
        existing.modified_at = time.time()
        existing.modified_by = ctx.caller.principal.app_id
        return arm_json(resource_group_json(existing), 200)
    rg = ArmResource(
        id=_rg_id(ctx),
        type=RG_TYPE,
        name=name,
        location=str(location).replace(" ", "").lower(),
        tags=tags,
        created_by=ctx.caller.principal.app_id,
        modified_by=ctx.caller.principal.app_id,
    )
    ctx.tenant.put_resource(rg)
    return arm_json(resource_group_json(rg), 201)


async def get_resource_group(ctx: ArmContext) -> web.Response:
    return arm_json(resource_group_json(_get_rg(ctx)))


async def head_resource_group(ctx: ArmContext) -> web.Response:
    exists = ctx.tenant.get_resource(_rg_id(ctx)) is not None
    return web.Response(status=204 if exists else 404)


async def patch_resource_group(ctx: ArmContext) -> web.Response:
    rg = _get_rg(ctx)
    body = await ctx.json_object()
    if "tags" in body:
        rg.tags = validate_tags(body["tags"])
    rg.modified_at = time.time()
    return arm_json(resource_group_json(rg))


async def delete_resource_group(ctx: ArmContext) -> web.Response:
    rg = ctx.tenant.get_resource(_rg_id(ctx))
    if rg is None:
        raise ArmError(
            404,
            "ResourceGroupNotFound",
            f"Resource group '{ctx.params['resourceGroupName']}' could not be found.",
        )
    removed = ctx.tenant.delete_resource_tree(rg.id)
    # Every deleted resource gets its own delete event, as ARM sends for a resource group deletion.
    for resource in removed:
        if (
            resource is not rg
            and resource.id.lower().count("/providers/") == 1
            and resource.id.count("/") == 8
        ):
            ctx.publish(resource.id, f"{resource.type}/delete", "Microsoft.Resources.ResourceDeleteSuccess")
    location = ctx.absolute(
        f"/subscriptions/{ctx.subscription_id}/operationresults/{ctx.correlation_id}?api-version={ctx.api_version}"
    )
    return web.Response(
        status=202, headers={"Location": location, "Retry-After": str(ctx.runtime.timings.retry_after)}
    )


async def get_operation_result(ctx: ArmContext) -> web.Response:
    # Deletions complete at once in the emulator; the poll confirms it.
    return web.Response(status=200)


async def list_resource_groups(ctx: ArmContext) -> web.Response:
    prefix = f"/subscriptions/{ctx.subscription_id}/resourcegroups/".lower()
    groups = [
        r for k, r in sorted(ctx.tenant.resources.items()) if r.type == RG_TYPE and k.startswith(prefix)
    ]
    return paged(ctx, [resource_group_json(g) for g in groups])


def register(router: ArmRouter) -> None:
    sub = "/subscriptions/{subscriptionId}"
    rg = sub + "/resourcegroups/{resourceGroupName}"
    common = {"provider": "Microsoft.Resources"}
    router.add(
        "GET",
        "/subscriptions",
        list_subscriptions,
        action="Microsoft.Resources/subscriptions/read",
        api_versions=api_versions.SUBSCRIPTIONS | api_versions.RESOURCES,
        resource_type="subscriptions",
        check_scope=False,  # a tenant-level list: the handler keeps the subscriptions the caller may read
        **common,
    )
    router.add(
        "GET",
        sub,
        get_subscription,
        action="Microsoft.Resources/subscriptions/read",
        api_versions=api_versions.SUBSCRIPTIONS | api_versions.RESOURCES,
        resource_type="subscriptions",
        **common,
    )
    rg_args = {"api_versions": api_versions.RESOURCES, "resource_type": "resourceGroups", **common}
    router.add(
        "GET",
        sub + "/resourcegroups",
        list_resource_groups,
        action="Microsoft.Resources/subscriptions/resourceGroups/read",
        **rg_args,
    )
    router.add(
        "PUT",
        rg,
        put_resource_group,
        action="Microsoft.Resources/subscriptions/resourceGroups/write",
        **rg_args,
    )
    router.add(
        "GET",
        rg,
        get_resource_group,
        action="Microsoft.Resources/subscriptions/resourceGroups/read",
        **rg_args,
    )
    router.add(
        "HEAD",
        rg,
        head_resource_group,
        action="Microsoft.Resources/subscriptions/resourceGroups/read",
        **rg_args,
    )
    router.add(
        "PATCH",
        rg,
        patch_resource_group,
        action="Microsoft.Resources/subscriptions/resourceGroups/write",
        **rg_args,
    )
    router.add(
        "DELETE",
        rg,
        delete_resource_group,
        action="Microsoft.Resources/subscriptions/resourceGroups/delete",
        **rg_args,
    )
    router.add(
        "GET",
        sub + "/operationresults/{operationId}",
        get_operation_result,
        action="Microsoft.Resources/subscriptions/resourceGroups/read",
        **rg_args,
    )
