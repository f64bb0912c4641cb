"""PowerShell 5.1 modules of an Automation account (``{AA}/modules/{name}``).

PUT starts an import and answers at once with ``provisioningState: "Creating"``; GET shows the import
advancing (see automation_imports.py). The account also lists the 5.1 sandbox's global modules
(``isGlobal: true``, e.g. PackageManagement 1.0.0.1); importing a module of the same name overrides the
global one, deleting the import brings the global one back.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from emulator.arm.automation_common import (
    AA,
    aa_time,
    bad_request,
    check_name,
    child_not_found,
    require_parent_account,
    route_args,
)
from emulator.arm.automation_imports import patch_importable, put_importable_request
from emulator.arm.automation_runtimes import GLOBAL_MODULES_51, GLOBAL_STATE, MODULE_TYPE, NAME_RE
from emulator.arm.router import ArmContext, ArmRouter, arm_json, paged
from emulator.tenant import ArmResource

JSON_TYPE = "Microsoft.Automation/AutomationAccounts/Modules"


def module_json(account: ArmResource, name: str, resource: ArmResource | None) -> dict[str, Any]:
    """A module as Azure returns it; ``resource`` None means the global module ``name``."""
    if resource is None:
        imported: dict[str, Any] = {
            "version": GLOBAL_MODULES_51[name],
            "sizeInBytes": 0,
            "activityCount": 0,
            "provisioningState": GLOBAL_STATE,
            "error": {"code": None, "message": ""},
        }
        holder, tags, modified = account, {}, account.modified_at
    else:
        imported = resource.state["import"].properties()
        holder, tags = resource, resource.tags
        modified = resource.state["import"].last_change(resource.modified_at)
    return {
        "id": f"{account.id}/modules/{name}",
        "name": name,
        "type": JSON_TYPE,
        "location": account.location,
        "tags": tags,
        "etag": None,
        "properties": {
            "isGlobal": resource is None,
            **imported,
            "creationTime": aa_time(holder.created_at),
            "lastModifiedTime": aa_time(modified),
            "isComposite": False,
            "description": None,
            "contentLink": None,
        },
    }


def _global_name(name: str) -> str | None:
    return next((g for g in GLOBAL_MODULES_51 if g.lower() == name.lower()), None)


def _find(ctx: ArmContext) -> tuple[ArmResource, str, ArmResource | None]:
    """(account, canonical name, stored module or None for a global one); 404 when neither exists."""
    account = require_parent_account(ctx, "modules")
    name = ctx.params["moduleName"]
    resource = ctx.tenant.get_resource(f"{account.id}/modules/{name}")
    if resource is not None:
        return account, resource.name, resource
    global_name = _global_name(name)
    if global_name is None:
        raise child_not_found(ctx, account, "modules", name)
    return account, global_name, None


async def put_module(ctx: ArmContext) -> web.Response:
    account = require_parent_account(ctx, "modules")
    name = ctx.params["moduleName"]
    check_name(name, NAME_RE, "module", "Use letters, digits, '.', '-' and '_' (at most 128).")
    resource, created = await put_importable_request(
        ctx,
        resource_id=f"{account.id}/modules/{name}",
        resource_type=MODULE_TYPE,
        name=name,
        location=account.location,
    )
    return arm_json(module_json(account, resource.name, resource), 201 if created else 200)


async def get_module(ctx: ArmContext) -> web.Response:
    return arm_json(module_json(*_find(ctx)))


async def patch_module(ctx: ArmContext) -> web.Response:
    account, name, resource = _find(ctx)
    if resource is None:
        raise bad_request(f"Module '{name}' is a global module and cannot be updated; import it instead.")
    resource = patch_importable(ctx, resource, await ctx.json_object())
    return arm_json(module_json(account, resource.name, resource))


async def delete_module(ctx: ArmContext) -> web.Response:
    _, name, resource = _find(ctx)
    if resource is None:
        raise bad_request(f"Module '{name}' is a global module and cannot be deleted.")
    ctx.tenant.delete_resource_tree(resource.id)
    return web.Response(status=200)  # the SDK accepts only 200 here


async def list_modules(ctx: ArmContext) -> web.Response:
    account = require_parent_account(ctx, "modules")
    stored = {r.name.lower(): r for r in ctx.tenant.children(f"{account.id}/modules")}
    items = [module_json(account, g, None) for g in GLOBAL_MODULES_51 if g.lower() not in stored]
    items += [module_json(account, r.name, r) for r in stored.values()]
    return paged(ctx, sorted(items, key=lambda m: m["name"].lower()))


def register(router: ArmRouter) -> None:
    collection = f"{AA}/modules"
    item = collection + "/{moduleName}"
    args = route_args("automationAccounts/modules")
    action = "Microsoft.Automation/automationAccounts/modules"
    router.add("PUT", item, put_module, action=f"{action}/write", **args)
    router.add("GET", item, get_module, action=f"{action}/read", **args)
    router.add("PATCH", item, patch_module, action=f"{action}/write", **args)
    router.add("DELETE", item, delete_module, action=f"{action}/delete", **args)
    router.add("GET", collection, list_modules, action=f"{action}/read", **args)
