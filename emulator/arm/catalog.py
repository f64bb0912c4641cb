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
from emulator.tenant import ArmResource, Subscription

RG_TYPE = "Microsoft.Resources/resourceGroups"
TAG_NAMES = "Microsoft.Resources/subscriptions/tagNames"

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
    "virtualMachineScaleSets",
    "virtualMachineScaleSets/virtualMachines/runCommands",
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
# that az resource list sends (--name, --resource-type, --resource-group, --location, --tag name[=value]).
_CLAUSE = re.compile(
    r"^\s*(name|resourceType|resourceGroup|location|tagName|tagValue)\s+eq\s+'([^']*)'\s*$", re.IGNORECASE
)


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
                f"The $filter '{raw}' is not supported here. Supported: name, resourceType, resourceGroup, "
                "location, tagName and tagValue with 'eq', joined by 'and'.",
            )
        clauses[match.group(1).lower()] = match.group(2)
    if "tagvalue" in clauses and "tagname" not in clauses:
        raise ArmError(400, "InvalidFilterInQueryString", "A tagValue filter needs a tagName filter.")

    def keep(resource: ArmResource) -> bool:
        if "name" in clauses and resource.name.lower() != clauses["name"].lower():
            return False
        if "resourcetype" in clauses and resource.type.lower() != clauses["resourcetype"].lower():
            return False
        group = resource.id.split("/")[4]
        if "resourcegroup" in clauses and group.lower() != clauses["resourcegroup"].lower():
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

RESERVED_TAG_PREFIXES = ("microsoft", "azure", "windows")


def _tag_usage(ctx: ArmContext) -> tuple[Subscription, dict[str, str], Counter[str], dict[str, Counter[str]]]:
    """The subscription, and every tag name in use on it, its resource groups and resources (lower-cased
    name -> first casing seen), with how many carry it and each value's count."""
    subscription = ctx.tenant.subscriptions[ctx.subscription_id.lower()]
    prefix = f"/subscriptions/{subscription.id}/".lower()
    tagged = [subscription.tags] + [
        r.tags for k, r in sorted(ctx.tenant.resources.items()) if k.startswith(prefix)
    ]
    names: dict[str, str] = {}
    counts: Counter[str] = Counter()
    values: dict[str, Counter[str]] = {}
    for tags in tagged:
        for name, value in tags.items():
            key = name.lower()
            names.setdefault(key, name)
            counts[key] += 1
            values.setdefault(key, Counter())[value] += 1
    return subscription, names, counts, values


def _tag_name_json(subscription_id: str, name: str, count: int, values: dict[str, int]) -> dict[str, Any]:
    base = f"/subscriptions/{subscription_id}/tagNames/{name}"
    return {
        "id": base,
        "tagName": name,
        "count": {"type": "Total", "value": count},
        "values": [_tag_value_json(base, value, n) for value, n in sorted(values.items())],
    }


def _tag_value_json(tag_name_id: str, value: str, count: int) -> dict[str, Any]:
    return {
        "id": f"{tag_name_id}/tagValues/{value}",
        "tagValue": value,
        "count": {"type": "Total", "value": count},
    }


def _predefined(subscription: Subscription, name: str) -> str | None:
    """The predefined tag name ``name`` (case-insensitively) in its stored casing, or None."""
    return next((n for n in subscription.predefined_tags if n.lower() == name.lower()), None)


async def list_tag_names(ctx: ArmContext) -> web.Response:
    """Tags_List: "a union of predefined tags, resource tags, resource group tags and subscription tags",
    with usage counts."""
    subscription, names, counts, values = _tag_usage(ctx)
    for name, predefined in subscription.predefined_tags.items():
        names.setdefault(name.lower(), name)
        for value in predefined:
            values.setdefault(name.lower(), Counter()).setdefault(value, 0)
    items = [
        _tag_name_json(subscription.id, names[key], counts[key], dict(values.get(key, {})))
        for key in sorted(names)
    ]
    return paged(ctx, items)


async def put_tag_name(ctx: ArmContext) -> web.Response:
    """Tags_CreateOrUpdate: a predefined tag name (200 when it already is one, 201 when new)."""
    name = ctx.params["tagName"]
    if len(name) > 512 or name.lower().startswith(RESERVED_TAG_PREFIXES):
        raise ArmError(
            400,
            "InvalidTagName",
            f"The tag name '{name}' is invalid. A tag name can have a maximum of 512 characters and cannot have the "
            "prefixes 'microsoft', 'azure' or 'windows', which are reserved for Azure use.",
        )
    subscription, _, counts, _ = _tag_usage(ctx)
    existing = _predefined(subscription, name)
    if existing is None:
        subscription.predefined_tags[name] = []
    stored = existing or name
    return arm_json(
        _tag_name_json(subscription.id, stored, counts[stored.lower()], {}), 200 if existing else 201
    )


def _require_predefined(ctx: ArmContext, subscription: Subscription) -> str:
    name = _predefined(subscription, ctx.params["tagName"])
    if name is None:
        raise ArmError(
            404, "TagNameNotFound", f"The predefined tag name '{ctx.params['tagName']}' could not be found."
        )
    return name


async def put_tag_value(ctx: ArmContext) -> web.Response:
    """Tags_CreateOrUpdateValue: a value "for an existing predefined tag name" (at most 256 characters)."""
    subscription, _, _, values = _tag_usage(ctx)
    name = _require_predefined(ctx, subscription)
    value = ctx.params["tagValue"]
    if len(value) > 256:
        raise ArmError(
            400,
            "InvalidTagValueLength",
            f"The tag value for '{name}' must be a string of at most 256 characters.",
        )
    known = subscription.predefined_tags[name]
    created = value not in known
    if created:
        known.append(value)
    count = values.get(name.lower(), Counter())[value]
    return arm_json(
        _tag_value_json(f"/subscriptions/{subscription.id}/tagNames/{name}", value, count),
        201 if created else 200,
    )


async def delete_tag_name(ctx: ArmContext) -> web.Response:
    """Tags_Delete: the name "must not be in use as a tag name for any resource" and its predefined values
    "must have already been deleted"; 204 when it is no predefined name."""
    subscription, _, counts, _ = _tag_usage(ctx)
    name = _predefined(subscription, ctx.params["tagName"])
    if name is None:
        ctx.emit_event = False
        return web.Response(status=204)
    if counts[name.lower()] or subscription.predefined_tags[name]:
        raise ArmError(
            409,
            "TagNameInUse",
            f"The tag name '{name}' cannot be deleted: it is in use or still has predefined values.",
        )
    del subscription.predefined_tags[name]
    return web.Response(status=200)


async def delete_tag_value(ctx: ArmContext) -> web.Response:
    """Tags_DeleteValue: 200 when the predefined value was removed, 204 when there was none."""
    subscription = ctx.tenant.subscriptions[ctx.subscription_id.lower()]
    name = _predefined(subscription, ctx.params["tagName"])
    value = ctx.params["tagValue"]
    if name is None or value not in subscription.predefined_tags[name]:
        ctx.emit_event = False
        return web.Response(status=204)
    subscription.predefined_tags[name].remove(value)
    return web.Response(status=200)


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
    tag_names = {"resource_type": "tagNames", **resources}
    name, value = sub + "/tagNames/{tagName}", sub + "/tagNames/{tagName}/tagValues/{tagValue}"
    router.add("GET", sub + "/tagNames", list_tag_names, action=TAG_NAMES + "/read", **tag_names)
    router.add("PUT", name, put_tag_name, action=TAG_NAMES + "/write", **tag_names)
    router.add("DELETE", name, delete_tag_name, action=TAG_NAMES + "/delete", **tag_names)
    router.add("PUT", value, put_tag_value, action=TAG_NAMES + "/tagValues/write", **tag_names)
    router.add("DELETE", value, delete_tag_value, action=TAG_NAMES + "/tagValues/delete", **tag_names)
