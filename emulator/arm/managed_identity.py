"""Microsoft.ManagedIdentity: user-assigned identities (each one is a service principal in the
directory) and the system-assigned identity view of any resource."""

from __future__ import annotations

import re
import time

from aiohttp import web

from emulator.arm import api_versions, tracked
from emulator.arm.router import (
    ArmContext,
    ArmRouter,
    arm_json,
    require_resource_group,
    system_data,
    validate_tags,
)
from emulator.http import ArmError
from emulator.tenant import ArmResource

UAI_TYPE = "Microsoft.ManagedIdentity/userAssignedIdentities"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{2,127}$")


def uai_json(resource: ArmResource) -> dict:
    return {
        "id": resource.id.replace("/resourceGroups/", "/resourcegroups/"),
        "name": resource.name,
        "type": UAI_TYPE,
        "location": resource.location,
        "tags": resource.tags,
        "systemData": system_data(resource),
        "properties": {
            "tenantId": resource.properties["tenantId"],
            "principalId": resource.properties["principalId"],
            "clientId": resource.properties["clientId"],
            "isolationScope": resource.properties.get("isolationScope", "None"),
        },
    }


def _uai_id(ctx: ArmContext, rg_id: str) -> str:
    return tracked.resource_id(ctx, rg_id, UAI_TYPE, "resourceName")


def _get(ctx: ArmContext) -> ArmResource:
    return tracked.require(ctx, UAI_TYPE, "resourceName")


async def put_identity(ctx: ArmContext) -> web.Response:
    rg_id = require_resource_group(ctx)
    body = await ctx.json_object()
    name = ctx.params["resourceName"]
    if not NAME_RE.match(name):
        raise ArmError(
            400,
            "InvalidResourceName",
            f"Resource name {name} is invalid. The name can be between 3 and 128 characters long and may contain "
            "alphanumerics, hyphens and underscores, starting with a letter or number.",
        )
    location = tracked.require_location(body)
    isolation = (body.get("properties") or {}).get("isolationScope", "None")
    if isolation not in ("None", "Regional"):
        raise ArmError(
            400,
            "InvalidIsolationScope",
            f"The isolation scope '{isolation}' is invalid; use 'None' or 'Regional'.",
        )
    tags = validate_tags(body.get("tags"))
    existing = ctx.tenant.get_resource(_uai_id(ctx, rg_id))
    if existing is not None:
        existing.tags = tags
        existing.properties["isolationScope"] = isolation
        tracked.touch(existing, ctx)
        return arm_json(uai_json(existing), 200)
    resource_id = _uai_id(ctx, rg_id)
    principal = ctx.tenant.create_managed_identity(name, resource_id)
    resource = ArmResource(
        id=resource_id,
        type=UAI_TYPE,
        name=name,
        location=location,
        tags=tags,
        properties={
            "tenantId": ctx.tenant.tenant_id,
            "principalId": principal.id,
            "clientId": principal.app_id,
            "isolationScope": isolation,
        },
        created_by=ctx.caller.principal.app_id,
        modified_by=ctx.caller.principal.app_id,
    )
    ctx.tenant.put_resource(resource)
    return arm_json(uai_json(resource), 201)


async def get_identity(ctx: ArmContext) -> web.Response:
    return arm_json(uai_json(_get(ctx)))


async def patch_identity(ctx: ArmContext) -> web.Response:
    resource = _get(ctx)
    body = await ctx.json_object()
    if "tags" in body:
        resource.tags = validate_tags(body["tags"])
    resource.modified_at = time.time()
    return arm_json(uai_json(resource))


async def get_system_assigned(ctx: ArmContext) -> web.Response:
    scope = ctx.params["scope"]
    resource = ctx.tenant.get_resource(scope)
    if resource is None or resource.identity is None or not resource.identity.system_principal_id:
        raise ArmError(404, "ResourceNotFound", f"The system assigned identity of '{scope}' was not found.")
    return arm_json(
        {
            "id": f"{resource.id}/providers/Microsoft.ManagedIdentity/identities/default",
            "name": "default",
            "type": "Microsoft.ManagedIdentity/Identities",
            "location": resource.location,
            "tags": resource.tags,
            "properties": {
                "tenantId": ctx.tenant.tenant_id,
                "principalId": resource.identity.system_principal_id,
                "clientId": resource.identity.system_client_id,
                # Real ARM returns a credentials URL of the identity service; nothing reads it here.
                "clientSecretUrl": f"https://control-{resource.location}.identity.azure.net{resource.id}/credentials/v2/identities",
            },
        }
    )


def register(router: ArmRouter) -> None:
    common = {
        "api_versions": api_versions.MANAGED_IDENTITY,
        "provider": "Microsoft.ManagedIdentity",
        "resource_type": "userAssignedIdentities",
    }
    tracked.add_routes(
        router,
        UAI_TYPE,
        "resourceName",
        put=put_identity,
        get=get_identity,
        patch=patch_identity,
        render=lambda _ctx, resource: uai_json(resource),
        **common,
    )
    router.add(
        "GET",
        "{scope*}/providers/Microsoft.ManagedIdentity/identities/default",
        get_system_assigned,
        action="Microsoft.ManagedIdentity/identities/read",
        **{**common, "resource_type": "identities"},
    )
