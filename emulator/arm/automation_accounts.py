"""Automation accounts (``Microsoft.Automation/automationAccounts``).

An account may carry a system-assigned identity (a service principal created with the account, visible
to Graph after the replication delay, deleted with the account) and linked user-assigned identities
(the caller needs ``assign/action`` on each). Each account has a stable GUID, which Azure shows in its
hybrid service URL and in the messages of its jobs' identity endpoint.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from aiohttp import web

from emulator.arm import tracked
from emulator.arm.automation_common import (
    ACCOUNT_TYPE,
    aa_time,
    account_path,
    bad_request,
    check_name,
    object_property,
    optional_bool,
    require_account,
    route_args,
)
from emulator.arm.identity import apply_identity, identity_json
from emulator.arm.router import (
    ArmContext,
    ArmRouter,
    arm_json,
    require_resource_group,
    system_data,
    validate_tags,
)
from emulator.tenant import ArmResource, Tenant

JSON_TYPE = "Microsoft.Automation/AutomationAccounts"
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9-]{4,48}[A-Za-z0-9]$")
SKUS = {"free": "Free", "basic": "Basic"}
KEY_SOURCES = {"microsoft.automation": "Microsoft.Automation", "microsoft.keyvault": "Microsoft.Keyvault"}


def account_guid(account: ArmResource) -> str:
    return account.state["guid"]


def account_json(tenant: Tenant, account: ArmResource) -> dict[str, Any]:
    props = account.properties
    guid = account_guid(account)
    return {
        "id": account.id,
        "name": account.name,
        "type": JSON_TYPE,
        "location": account.location,
        "tags": account.tags,
        "etag": None,
        "identity": identity_json(tenant, account),
        "systemData": system_data(account),
        "properties": {
            "sku": {"name": props["sku"], "family": None, "capacity": None},
            "state": "Ok",
            "creationTime": aa_time(account.created_at),
            "lastModifiedTime": aa_time(account.modified_at),
            "lastModifiedBy": account.modified_by,
            "description": props.get("description"),
            "encryption": props["encryption"],
            "privateEndpointConnections": [],
            "publicNetworkAccess": props["publicNetworkAccess"],
            "disableLocalAuth": props["disableLocalAuth"],
            "automationHybridServiceUrl": (
                f"https://{guid}.jrds.{account.location}.azure-automation.net/automationAccounts/{guid}"
            ),
        },
    }


def _updated_properties(current: dict[str, Any], properties: dict[str, Any]) -> dict[str, Any]:
    """``current`` with the writable properties present in ``properties`` applied (validated)."""
    props = dict(current)
    if "sku" in properties:
        sku = object_property(properties, "sku", required=True)
        name = SKUS.get(str(sku.get("name")).lower())
        if name is None:
            raise bad_request(
                f"Invalid SKU name '{sku.get('name')}'. The supported SKUs are 'Free' and 'Basic'."
            )
        props["sku"] = name
    if "encryption" in properties:
        encryption = object_property(properties, "encryption")
        source = KEY_SOURCES.get(str(encryption.get("keySource", "Microsoft.Automation")).lower())
        if source is None:
            raise bad_request(
                f"Invalid encryption key source '{encryption.get('keySource')}'. Use 'Microsoft.Automation' or "
                "'Microsoft.Keyvault'."
            )
        props["encryption"] = {**encryption, "keySource": source}
    for name in ("publicNetworkAccess", "disableLocalAuth"):
        if name in properties:
            props[name] = optional_bool(properties, name, props.get(name))
    if "description" in properties:
        props["description"] = properties["description"]
    return props


async def put_account(ctx: ArmContext) -> web.Response:
    rg_id = require_resource_group(ctx)
    name = ctx.params["automationAccountName"]
    check_name(
        name,
        NAME_RE,
        "Automation account",
        "The name must be 6-50 characters long, start with a letter, end with a letter or digit, and contain "
        "only letters, digits and hyphens.",
    )
    body = await ctx.json_object()
    location = tracked.require_location(body)
    properties = object_property(body, "properties")
    tags = validate_tags(body.get("tags"))
    existing = ctx.tenant.get_resource(account_path(ctx, rg_id))
    if existing is not None:
        if existing.location != location:
            raise bad_request(
                f"The resource '{existing.name}' already exists in location '{existing.location}' in resource group "
                f"'{ctx.params['resourceGroupName']}'. A resource with the same name cannot be created in location "
                f"'{location}'. Please select a new resource name.",
                code="InvalidResourceLocation",
            )
        updated = _updated_properties(existing.properties, properties)
        apply_identity(ctx, existing, body.get("identity"), patch=False)
        existing.properties = updated
        existing.tags = tags
        tracked.touch(existing, ctx)
        return arm_json(account_json(ctx.tenant, existing), 200)
    account = ArmResource(
        id=account_path(ctx, rg_id),
        type=ACCOUNT_TYPE,
        name=name,
        location=location,
        tags=tags,
        properties=_updated_properties(
            {
                "sku": "Basic",
                "encryption": {"keySource": "Microsoft.Automation", "identity": {}},
                "publicNetworkAccess": True,
                "disableLocalAuth": False,
            },
            properties,
        ),
        created_by=ctx.caller.principal.app_id,
        modified_by=ctx.caller.principal.app_id,
        state={"guid": str(uuid.uuid4())},
    )
    apply_identity(ctx, account, body.get("identity"), patch=False)
    ctx.tenant.put_resource(account)
    return arm_json(account_json(ctx.tenant, account), 201)


async def get_account(ctx: ArmContext) -> web.Response:
    return arm_json(account_json(ctx.tenant, require_account(ctx)))


async def patch_account(ctx: ArmContext) -> web.Response:
    account = require_account(ctx)
    body = await ctx.json_object()
    updated = _updated_properties(account.properties, object_property(body, "properties"))
    tags = validate_tags(body["tags"]) if "tags" in body else account.tags
    apply_identity(ctx, account, body.get("identity"), patch=True)
    account.properties, account.tags = updated, tags
    tracked.touch(account, ctx)
    return arm_json(account_json(ctx.tenant, account))


def register(router: ArmRouter) -> None:
    tracked.add_routes(
        router,
        ACCOUNT_TYPE,
        "automationAccountName",
        put=put_account,
        get=get_account,
        patch=patch_account,
        # DELETE takes modules, runbooks, jobs, ... and the system-assigned identity's principal with it.
        render=lambda ctx, account: account_json(ctx.tenant, account),
        **route_args("automationAccounts"),
    )
