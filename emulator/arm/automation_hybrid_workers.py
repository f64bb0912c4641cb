"""Hybrid Runbook Worker groups of an Automation account (``{AA}/hybridRunbookWorkerGroups/{name}``).

Shapes from azure-rest-api-specs ``Microsoft.Automation/stable/2023-11-01/hybridRunbookWorkerGroup.json``
and its examples (getHybridRunbookWorkerGroup.json): ``groupType`` is "User" for groups people create,
``credential`` is optional. The workers themselves (machines) are not modelled, so a job started with
``runOn`` set to a group stays Queued (automation_jobs.py); see emulator/README.md.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from emulator.arm.automation_common import (
    AA,
    ACCOUNT_TYPE,
    aa_time,
    check_name,
    child_not_found,
    object_property,
    require_parent_account,
    route_args,
)
from emulator.arm.router import ArmContext, ArmRouter, arm_json, paged
from emulator.tenant import ArmResource, Tenant

GROUP_TYPE = f"{ACCOUNT_TYPE}/hybridRunbookWorkerGroups"
JSON_TYPE = "Microsoft.Automation/AutomationAccounts/HybridRunbookWorkerGroups"
# Naming rules page: 1-128 characters, none of <>*%&:\?.+/ and no control characters (guess: the
# emulator takes the letters, digits, '-', '_' and spaces people use).
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _-]{0,127}$")


def find_group(tenant: Tenant, account: ArmResource, name: str) -> ArmResource | None:
    return tenant.get_resource(f"{account.id}/hybridRunbookWorkerGroups/{name}")


def group_json(group: ArmResource) -> dict[str, Any]:
    properties: dict[str, Any] = {"groupType": "User"}
    if group.properties.get("credential"):
        properties["credential"] = group.properties["credential"]
    return {
        "id": group.id,
        "name": group.name,
        "type": JSON_TYPE,
        "properties": properties,
        "systemData": {
            "createdBy": group.created_by,
            "createdByType": "Application",
            "createdAt": aa_time(group.created_at),
            "lastModifiedBy": group.modified_by,
            "lastModifiedByType": "Application",
            "lastModifiedAt": aa_time(group.modified_at),
        },
    }


async def _credential(ctx: ArmContext) -> dict[str, Any] | None:
    properties = object_property(await ctx.json_object(), "properties")
    credential = object_property(properties, "credential")
    return {"name": credential["name"]} if isinstance(credential.get("name"), str) else None


def _require_group(ctx: ArmContext) -> tuple[ArmResource, ArmResource]:
    account = require_parent_account(ctx, "hybridRunbookWorkerGroups")
    name = ctx.params["groupName"]
    group = find_group(ctx.tenant, account, name)
    if group is None:
        raise child_not_found(ctx, account, "hybridRunbookWorkerGroups", name)
    return account, group


async def put_group(ctx: ArmContext) -> web.Response:
    account = require_parent_account(ctx, "hybridRunbookWorkerGroups")
    name = ctx.params["groupName"]
    check_name(name, NAME_RE, "hybrid runbook worker group", "Use letters, digits, spaces, '-' and '_'.")
    credential = await _credential(ctx)
    existing = find_group(ctx.tenant, account, name)
    if existing is not None:
        existing.properties["credential"] = credential
        existing.modified_by = ctx.caller.principal.app_id
        return arm_json(group_json(existing), 200)
    group = ArmResource(
        id=f"{account.id}/hybridRunbookWorkerGroups/{name}",
        type=GROUP_TYPE,
        name=name,
        properties={"credential": credential},
        created_by=ctx.caller.principal.app_id,
        modified_by=ctx.caller.principal.app_id,
    )
    ctx.tenant.put_resource(group)
    return arm_json(group_json(group), 201)


async def get_group(ctx: ArmContext) -> web.Response:
    return arm_json(group_json(_require_group(ctx)[1]))


async def patch_group(ctx: ArmContext) -> web.Response:
    _, group = _require_group(ctx)
    group.properties["credential"] = await _credential(ctx)
    group.modified_by = ctx.caller.principal.app_id
    return arm_json(group_json(group))


async def delete_group(ctx: ArmContext) -> web.Response:
    _, group = _require_group(ctx)
    ctx.tenant.delete_resource_tree(group.id)
    return web.Response(status=200)  # the spec lists only 200


async def list_groups(ctx: ArmContext) -> web.Response:
    account = require_parent_account(ctx, "hybridRunbookWorkerGroups")
    groups = ctx.tenant.children(f"{account.id}/hybridRunbookWorkerGroups")
    return paged(ctx, [group_json(group) for group in groups])


def register(router: ArmRouter) -> None:
    collection = f"{AA}/hybridRunbookWorkerGroups"
    item = collection + "/{groupName}"
    args = route_args("automationAccounts/hybridRunbookWorkerGroups")
    action = "Microsoft.Automation/automationAccounts/hybridRunbookWorkerGroups"
    router.add("PUT", item, put_group, action=f"{action}/write", **args)
    router.add("GET", item, get_group, action=f"{action}/read", **args)
    router.add("PATCH", item, patch_group, action=f"{action}/write", **args)
    router.add("DELETE", item, delete_group, action=f"{action}/delete", **args)
    router.add("GET", collection, list_groups, action=f"{action}/read", **args)
