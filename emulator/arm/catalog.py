"""Microsoft.Resources reads that describe a subscription rather than one resource: locations
(Subscriptions_ListLocations), resource providers (Providers_List / Providers_Get), every resource
(Resources_List, Resources_ListByResourceGroup) and tag names (Tags_List). Shapes: the specs'
examples (emulator/README.md, "Subscription catalog")."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from typing import Any

from aiohttp import web

from emulator.arm import api_versions
from emulator.arm.router import ArmContext, ArmRouter, Handler, arm_json, paged, require_resource_group
from emulator.http import ArmError
from emulator.tenant import ArmResource

RG_TYPE = "Microsoft.Resources/resourceGroups"

# (name, displayName, geography group, physical location, paired region): regions every emulated
# resource may be placed in (the emulator accepts any location string; these are what it lists).
REGIONS: tuple[tuple[str, str, str, str, str], ...] = (
    ("eastus", "East US", "US", "Virginia", "westus"),
    ("eastus2", "East US 2", "US", "Virginia", "centralus"),
    ("centralus", "Central US", "US", "Iowa", "eastus2"),
    ("westus", "West US", "US", "California", "eastus"),
    ("westus2", "West US 2", "US", "Washington", "westcentralus"),
    ("westcentralus", "West Central US", "US", "Wyoming", "westus2"),
    ("northeurope", "North Europe", "Europe", "Ireland", "westeurope"),
    ("westeurope", "West Europe", "Europe", "Netherlands", "northeurope"),
    ("uksouth", "UK South", "UK", "London", "ukwest"),
    ("ukwest", "UK West", "UK", "Cardiff", "uksouth"),
)
DISPLAY_NAMES = {name: display for name, display, *_ in REGIONS}


def _location_json(subscription_id: str, region: tuple[str, str, str, str, str]) -> dict[str, Any]:
    name, display, geography, physical, paired = region
    return {
        "id": f"/subscriptions/{subscription_id}/locations/{name}",
        "name": name,
        "type": "Region",
        "displayName": display,
        "regionalDisplayName": f"({geography}) {display}",
        "metadata": {
            "regionType": "Physical",
            "regionCategory": "Recommended",
            "geographyGroup": geography,
            "physicalLocation": physical,
            "pairedRegion": [{"name": paired, "id": f"/subscriptions/{subscription_id}/locations/{paired}"}],
        },
    }


async def list_locations(ctx: ArmContext) -> web.Response:
    subscription = ctx.tenant.subscriptions[ctx.subscription_id.lower()].id
    # LocationListResult has no nextLink.
    return arm_json({"value": [_location_json(subscription, r) for r in REGIONS]})


# ------------------------------------------------------------------------------------- providers


def _provider_types(router: ArmRouter) -> dict[str, dict[str, set[str]]]:
    """namespace -> resource type -> api-versions, from the routes the emulator serves."""
    found: dict[str, dict[str, set[str]]] = {}
    for route in router.routes:
        if route.provider == "Microsoft.Resources" or route.anonymous:
            continue
        found.setdefault(route.provider, {}).setdefault(route.resource_type, set()).update(route.api_versions)
    return found


# Types placed in a region; the others (role assignments, operations, extension types) are global.
_REGIONAL = {
    "automationAccounts",
    "automationAccounts/runbooks",
    "automationAccounts/runtimeEnvironments",
    "virtualMachines",
    "userAssignedIdentities",
}


def _provider_json(subscription_id: str, namespace: str, types: dict[str, set[str]]) -> dict[str, Any]:
    locations = [display for _, display, *_ in REGIONS]
    return {
        "id": f"/subscriptions/{subscription_id}/providers/{namespace}",
        "namespace": namespace,
        "registrationState": "Registered",
        "registrationPolicy": "RegistrationRequired",
        "resourceTypes": [
            {
                "resourceType": rtype,
                "locations": locations if rtype in _REGIONAL else [],
                # Newest first, as ARM lists them (clients pick the newest stable one).
                "apiVersions": sorted(versions, reverse=True),
                "capabilities": "SupportsTags, SupportsLocation" if rtype in _REGIONAL else "None",
            }
            for rtype, versions in sorted(types.items())
        ],
    }


def provider_handlers(router: ArmRouter) -> tuple[Handler, Handler]:
    """Providers_List and Providers_Get over the routes ``router`` serves (read when called, so every
    provider module is registered by then)."""

    async def list_providers(ctx: ArmContext) -> web.Response:
        subscription = ctx.tenant.subscriptions[ctx.subscription_id.lower()].id
        providers = _provider_types(router)
        return paged(ctx, [_provider_json(subscription, ns, providers[ns]) for ns in sorted(providers)])

    async def get_provider(ctx: ArmContext) -> web.Response:
        subscription = ctx.tenant.subscriptions[ctx.subscription_id.lower()].id
        requested = ctx.params["resourceProviderNamespace"]
        providers = _provider_types(router)
        namespace = next((ns for ns in providers if ns.lower() == requested.lower()), None)
        if namespace is None:
            raise ArmError(
                404, "InvalidResourceNamespace", f"The resource namespace '{requested}' is invalid."
            )
        return arm_json(_provider_json(subscription, namespace, providers[namespace]))

    return list_providers, get_provider


# ------------------------------------------------------------------------------------- resources


def _top_level(resource: ArmResource) -> bool:
    """A resource directly in a resource group (``.../resourceGroups/{rg}/providers/{ns}/{type}/{name}``)."""
    parts = resource.id.split("/")
    return resource.type != RG_TYPE and len(parts) == 9 and parts[5].lower() == "providers"


def _generic_json(resource: ArmResource) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": resource.id,
        "name": resource.name,
        "type": resource.type,
        "location": resource.location,
    }
    if resource.tags:
        body["tags"] = resource.tags
    if resource.identity is not None:
        body["identity"] = {"type": resource.identity.type_string}
    return body


# ``{property} eq '{value}'`` joined by ``and``: the comparisons the Resources_List spec documents
# that az resource list sends (--name, --resource-type, --location, --tag name[=value]).
_CLAUSE = re.compile(r"^\s*(name|resourceType|location|tagName|tagValue)\s+eq\s+'([^']*)'\s*$", re.IGNORECASE)


def _resource_filter(raw: str | None) -> Callable[[ArmResource], bool]:
    if not raw:
        return lambda resource: True
    clauses: dict[str, str] = {}
    for part in re.split(r"\s+and\s+", raw.strip(), flags=re.IGNORECASE):
        match = _CLAUSE.match(part)
        if match is None:
            raise ArmError(
                400,
                "InvalidFilterInQueryString",
                f"The $filter '{raw}' is not supported here. Supported: name, resourceType, location, tagName "
                "and tagValue with 'eq', joined by 'and'.",
            )
        clauses[match.group(1).lower()] = match.group(2)
    if "tagvalue" in clauses and "tagname" not in clauses:
        raise ArmError(400, "InvalidFilterInQueryString", "A tagValue filter needs a tagName filter.")

    def keep(resource: ArmResource) -> bool:
        if "name" in clauses and resource.name.lower() != clauses["name"].lower():
            return False
        if "resourcetype" in clauses and resource.type.lower() != clauses["resourcetype"].lower():
            return False
        location = clauses.get("location", "").replace(" ", "").lower()
        if location and (resource.location or "").lower() != location:
            return False
        if "tagname" in clauses:
            tags = {k.lower(): v for k, v in resource.tags.items()}
            value = tags.get(clauses["tagname"].lower())
            if value is None or ("tagvalue" in clauses and value != clauses["tagvalue"]):
                return False
        return True

    return keep


def _resources_under(ctx: ArmContext, prefix: str) -> list[ArmResource]:
    keep = _resource_filter(ctx.request.query.get("$filter"))
    prefix = prefix.lower() + "/"
    return [
        r
        for key, r in sorted(ctx.tenant.resources.items())
        if key.startswith(prefix) and _top_level(r) and keep(r)
    ]


async def list_resources(ctx: ArmContext) -> web.Response:
    resources = _resources_under(ctx, f"/subscriptions/{ctx.subscription_id}")
    return paged(ctx, [_generic_json(r) for r in resources])


async def list_resources_by_group(ctx: ArmContext) -> web.Response:
    resources = _resources_under(ctx, require_resource_group(ctx))
    return paged(ctx, [_generic_json(r) for r in resources])


# ------------------------------------------------------------------------------------- tag names


async def list_tag_names(ctx: ArmContext) -> web.Response:
    """Every tag name on the subscription's resource groups and resources, with its values and counts."""
    subscription = ctx.tenant.subscriptions[ctx.subscription_id.lower()].id
    prefix = f"/subscriptions/{subscription}/".lower()
    names: Counter[str] = Counter()
    values: dict[str, Counter[str]] = {}
    for key, resource in sorted(ctx.tenant.resources.items()):
        if not key.startswith(prefix):
            continue
        for name, value in resource.tags.items():
            names[name] += 1
            values.setdefault(name, Counter())[value] += 1
    base = f"/subscriptions/{subscription}/tagNames"
    items = [
        {
            "id": f"{base}/{name}",
            "tagName": name,
            "count": {"type": "Total", "value": names[name]},
            "values": [
                {
                    "id": f"{base}/{name}/tagValues/{value}",
                    "tagValue": value,
                    "count": {"type": "Total", "value": count},
                }
                for value, count in sorted(values[name].items())
            ],
        }
        for name in sorted(names)
    ]
    return paged(ctx, items)


def register(router: ArmRouter) -> None:
    sub = "/subscriptions/{subscriptionId}"
    common: dict[str, Any] = {"provider": "Microsoft.Resources"}
    router.add(
        "GET",
        sub + "/locations",
        list_locations,
        action="Microsoft.Resources/subscriptions/locations/read",
        api_versions=api_versions.SUBSCRIPTIONS,
        resource_type="locations",
        **common,
    )
    resources = {"api_versions": api_versions.RESOURCES, **common}
    list_providers, get_provider = provider_handlers(router)
    router.add(
        "GET",
        sub + "/providers",
        list_providers,
        action="Microsoft.Resources/subscriptions/providers/read",
        resource_type="providers",
        **resources,
    )
    router.add(
        "GET",
        sub + "/providers/{resourceProviderNamespace}",
        get_provider,
        action="Microsoft.Resources/subscriptions/providers/read",
        resource_type="providers",
        **resources,
    )
    router.add(
        "GET",
        sub + "/resources",
        list_resources,
        action="Microsoft.Resources/subscriptions/resources/read",
        resource_type="resources",
        **resources,
    )
    router.add(
        "GET",
        sub + "/resourceGroups/{resourceGroupName}/resources",
        list_resources_by_group,
        action="Microsoft.Resources/subscriptions/resourceGroups/resources/read",
        resource_type="resources",
        **resources,
    )
    router.add(
        "GET",
        sub + "/tagNames",
        list_tag_names,
        action="Microsoft.Resources/subscriptions/tagNames/read",
        resource_type="tagNames",
        **resources,
    )
