"""App Service sites (``Microsoft.Web/sites``): only what exomi reads of a Function app.

A site has a ``kind`` (``functionapp``, ``functionapp,linux``, ``app``, ...), an ``identity`` block that
behaves as on every other emulated resource (``emulator/arm/identity.py``: a system-assigned identity is a
service principal Graph sees after the replication delay, deleted with the site) and
``properties.siteConfig`` with ``powerShellVersion`` and ``linuxFxVersion``. Shapes follow azure-mgmt-web
11.0.1 (api-version 2025-05-01, generated from the Microsoft.Web spec): PUT answers 200 on create and on
update (the SDK accepts 200 and 202 only, never 201), DELETE 200 (204 when the site is gone). No
hosting: plans, deployments, app settings and functions are not emulated.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from emulator.arm import api_versions, tracked
from emulator.arm.identity import apply_identity, identity_json
from emulator.arm.router import ArmContext, ArmRouter, arm_json, require_resource_group, validate_tags
from emulator.http import ArmError
from emulator.tenant import ArmResource, Tenant

SITE_TYPE = "Microsoft.Web/sites"
# learn.microsoft.com "Naming rules and restrictions for Azure resources", Microsoft.Web/sites: 2-60
# characters, alphanumerics and hyphens, not starting or ending with a hyphen.
NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,58}[A-Za-z0-9])$")
SITE_CONFIG_KEYS = ("powerShellVersion", "linuxFxVersion")


def site_json(tenant: Tenant, site: ArmResource) -> dict[str, Any]:
    props = site.properties
    return {
        "id": site.id,
        "name": site.name,
        "type": SITE_TYPE,
        "kind": props["kind"],
        "location": site.location,
        "tags": site.tags,
        "identity": identity_json(tenant, site),
        "properties": {
            "name": site.name,
            "state": "Running",
            "enabled": True,
            "defaultHostName": f"{site.name.lower()}.azurewebsites.net",
            "reserved": "linux" in props["kind"].split(","),
            "siteConfig": dict(props["siteConfig"]),
        },
    }


def _site_config(properties: Any) -> dict[str, Any]:
    if properties is None:
        return {}
    if not isinstance(properties, dict):
        raise ArmError(400, "BadRequest", "The 'properties' property must be an object.")
    config = properties.get("siteConfig") or {}
    if not isinstance(config, dict):
        raise ArmError(400, "BadRequest", "The 'properties.siteConfig' property must be an object.")
    return {key: config.get(key) for key in SITE_CONFIG_KEYS if config.get(key) is not None}


async def put_site(ctx: ArmContext) -> web.Response:
    rg_id = require_resource_group(ctx)
    name = ctx.params["name"]
    if not NAME_RE.match(name):
        # guess: the code and text of App Service's answer to an invalid name
        raise ArmError(400, "InvalidResourceName", f"The site name '{name}' is invalid.")
    body = await ctx.json_object()
    location = tracked.require_location(body)
    kind = str(body.get("kind") or "app").replace(" ", "").lower()
    config = _site_config(body.get("properties"))
    tags = validate_tags(body.get("tags"))
    site_id = tracked.resource_id(ctx, rg_id, SITE_TYPE, "name")
    existing = ctx.tenant.get_resource(site_id)
    if existing is not None:
        apply_identity(ctx, existing, body.get("identity"), patch=False)
        existing.properties = {"kind": kind, "siteConfig": {**existing.properties["siteConfig"], **config}}
        existing.tags = tags
        tracked.touch(existing, ctx)
        return arm_json(site_json(ctx.tenant, existing), 200)
    site = ArmResource(
        id=site_id,
        type=SITE_TYPE,
        name=name,
        location=location,
        tags=tags,
        properties={"kind": kind, "siteConfig": config},
        created_by=ctx.caller.principal.app_id,
        modified_by=ctx.caller.principal.app_id,
    )
    apply_identity(ctx, site, body.get("identity"), patch=False)
    ctx.tenant.put_resource(site)
    return arm_json(site_json(ctx.tenant, site), 200)


async def get_site(ctx: ArmContext) -> web.Response:
    return arm_json(site_json(ctx.tenant, tracked.require(ctx, SITE_TYPE, "name")))


async def patch_site(ctx: ArmContext) -> web.Response:
    site = tracked.require(ctx, SITE_TYPE, "name")
    body = await ctx.json_object()
    apply_identity(ctx, site, body.get("identity"), patch=True)
    site.properties["siteConfig"] = {**site.properties["siteConfig"], **_site_config(body.get("properties"))}
    if "tags" in body:
        site.tags = validate_tags(body["tags"])
    tracked.touch(site, ctx)
    return arm_json(site_json(ctx.tenant, site))


def register(router: ArmRouter) -> None:
    tracked.add_routes(
        router,
        SITE_TYPE,
        "name",
        put=put_site,
        get=get_site,
        patch=patch_site,
        render=lambda ctx, site: site_json(ctx.tenant, site),
        api_versions=api_versions.WEB,
        provider="Microsoft.Web",
        resource_type="sites",
    )
