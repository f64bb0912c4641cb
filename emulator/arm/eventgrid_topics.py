"""Event Grid as ARM resources (``Microsoft.EventGrid``): system topics of type
``Microsoft.Resources.Subscriptions`` and their event subscriptions, which the delivery engine of
``emulator/eventgrid.py`` then serves (the same filters, retries and dead-lettering as the control API's).

Shapes and codes follow specification/eventgrid/resource-manager/Microsoft.EventGrid/stable/2025-02-15/
EventGrid.json (what azure-mgmt-eventgrid 10.4.0 sends by default); sources and guesses are listed in
emulator/README.md, "Event Grid (ARM)". In short:

* ``PUT systemTopics/{name}``: 201 with ``Azure-AsyncOperation`` on create (provisioningState Creating),
  200 on update; one system topic per source: a second one is 400 ``InvalidRequest``; the source must
  be the topic's own subscription and cannot change.
* ``PUT .../eventSubscriptions/{name}``: 201 with ``Azure-AsyncOperation`` (the SDK accepts only 201);
  the validation handshake runs before the answer, and a refused one leaves the subscription
  ``Failed`` (no delivery) with the async operation Failed ``Url validation``. GET never shows the
  webhook's full URL (``endpointBaseUrl`` only); ``POST .../getFullUrl`` does.
* DELETE: 202 with ``Azure-AsyncOperation`` and ``Location``, 204 when already gone.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from aiohttp import web

from emulator.arm import api_versions, tracked
from emulator.arm.router import ArmContext, ArmRouter, arm_json, paged, require_resource_group, validate_tags
from emulator.control import ControlError
from emulator.eventgrid import (
    CLOUD_EVENT_SCHEMA,
    EVENT_GRID_SCHEMA,
    FUNCTION_ID_RE,
    SUBSCRIPTION_NAME_RE,
    EventGrid,
    EventSubscription,
    _is_loopback,
    _validated_filters,
)
from emulator.http import ArmError
from emulator.tenant import ArmResource, iso

TOPIC_TYPE = "Microsoft.EventGrid/systemTopics"
SUBSCRIPTION_TYPE = "Microsoft.EventGrid/systemTopics/eventSubscriptions"
SUBSCRIPTIONS_TOPIC_TYPE = "Microsoft.Resources.Subscriptions"
# Every EventGrid.json version that defines system topics (api_versions.EVENTGRID; what older ones lack is
# api_versions.SHAPES'); the shapes are azure-mgmt-eventgrid 10.4.0's default, stable/2025-02-15.
API_VERSIONS = api_versions.EVENTGRID
# learn.microsoft.com "Naming rules and restrictions": system topics 3-128 alphanumerics and hyphens.
TOPIC_NAME_RE = re.compile(r"^[A-Za-z0-9-]{3,128}$")
DESTINATION_TYPES = ("WebHook", "AzureFunction")
OPERATION_KIND = "eventgrid"


def _grid(ctx: ArmContext) -> EventGrid:
    return ctx.request.app["eventgrid"]


def _bad(message: str) -> ArmError:
    # The code Event Grid answers for invalid request content (e.g. the one-topic-per-source refusal).
    return ArmError(400, "InvalidRequest", message)


# --------------------------------------------------------------------------------------------------
# Async operations (always finished by the first poll: the work is done before the answer)


def _operation(ctx: ArmContext, location: str, error: dict[str, str] | None = None) -> dict[str, str]:
    operation_id = str(uuid.uuid4())
    ctx.tenant.operations[operation_id] = {
        "kind": OPERATION_KIND,
        "id": operation_id,
        "started": time.time(),
        "error": error,
    }
    path = (
        f"/subscriptions/{ctx.subscription_id}/providers/Microsoft.EventGrid/locations/{location}"
        f"/operationsStatus/{operation_id}?api-version={ctx.api_version}"
    )
    return {"Azure-AsyncOperation": ctx.absolute(path)}


async def get_operation_status(ctx: ArmContext) -> web.Response:
    operation = ctx.tenant.operations.get(ctx.params["operationId"])
    if not isinstance(operation, dict) or operation.get("kind") != OPERATION_KIND:
        raise ArmError(404, "NotFound", "The entity was not found in this Azure location.")
    body: dict[str, Any] = {
        "id": ctx.path,
        "name": operation["id"],
        "startTime": iso(operation["started"]),
        "endTime": iso(operation["started"]),
        "status": "Failed" if operation["error"] else "Succeeded",
    }
    if operation["error"]:
        body["error"] = operation["error"]
    return arm_json(body)


async def get_operation_result(ctx: ArmContext) -> web.Response:
    """The Location URL of a DELETE: the operation has finished, nothing to return."""
    operation = ctx.tenant.operations.get(ctx.params["operationId"])
    if not isinstance(operation, dict) or operation.get("kind") != OPERATION_KIND:
        raise ArmError(404, "NotFound", "The entity was not found in this Azure location.")
    return web.Response(status=200)


# --------------------------------------------------------------------------------------------------
# System topics


def topic_json(topic: ArmResource) -> dict[str, Any]:
    return {
        "id": topic.id,
        "name": topic.name,
        "type": TOPIC_TYPE,
        "location": topic.location,
        "tags": topic.tags,
        "identity": {"type": "None"},
        "properties": {
            "provisioningState": topic.state.get("provisioning", "Succeeded"),
            "source": topic.properties["source"],
            "topicType": topic.properties["topicType"],
            "metricResourceId": topic.properties["metricResourceId"],
        },
        "systemData": {
            "createdBy": topic.created_by,
            "createdByType": "Application",
            "createdAt": iso(topic.created_at),
            "lastModifiedBy": topic.modified_by,
            "lastModifiedByType": "Application",
            "lastModifiedAt": iso(topic.modified_at),
        },
    }


def _settled(resource: ArmResource) -> ArmResource:
    """Creating/Deleting last until the resource is next read (the operation finished at once)."""
    if resource.state.get("provisioning") == "Creating":
        resource.state["provisioning"] = "Succeeded"
    return resource


def _topics_in_subscription(ctx: ArmContext) -> list[ArmResource]:
    return tracked.in_subscription(ctx, TOPIC_TYPE)


async def put_topic(ctx: ArmContext) -> web.Response:
    rg_id = require_resource_group(ctx)
    name = ctx.params["systemTopicName"]
    if not TOPIC_NAME_RE.match(name):
        raise _bad(
            f"Topic name '{name}' is invalid: use 3-128 characters of letters, digits and '-'."
        )  # guess
    body = await ctx.json_object()
    location = tracked.require_location(body)
    props = body.get("properties")
    if not isinstance(props, dict):
        raise _bad("The properties of the system topic are required.")  # guess
    source = str(props.get("source") or "")
    topic_type = str(props.get("topicType") or "")
    if not source or not topic_type:
        raise _bad("Both source and topicType are required for a system topic.")  # guess
    if topic_type.lower() != SUBSCRIPTIONS_TOPIC_TYPE.lower():
        raise _bad(f"The topic type '{topic_type}' is not supported by the emulator.")
    own_source = f"/subscriptions/{ctx.subscription_id}"
    if source.rstrip("/").lower() != own_source.lower():
        # Learn (event-grid/system-topics): the topic lives in the subscription of its source.
        raise _bad(
            f"The source '{source}' must be in the same Azure subscription as the system topic ({own_source})."
        )  # text guess
    tags = validate_tags(body.get("tags"))
    topic_id = tracked.resource_id(ctx, rg_id, TOPIC_TYPE, "systemTopicName")
    existing = ctx.tenant.get_resource(topic_id)
    if existing is not None:
        if existing.properties["source"].lower() != source.rstrip("/").lower():
            raise _bad("System topic source cannot be modified.")  # azure-quickstart-templates#13688
        existing.tags = tags
        tracked.touch(existing, ctx)
        return arm_json(topic_json(_settled(existing)), 200)
    for other in _topics_in_subscription(ctx):
        if other.properties["source"].lower() == own_source.lower():
            # MicrosoftDocs/azure-docs PR 97986: the real answer, code and text.
            raise _bad(
                f"There is an existing tracked system topic for the given source {own_source}. "
                "Only one system topic is allowed per source."
            )
    topic = ArmResource(
        id=topic_id,
        type=TOPIC_TYPE,
        name=name,
        location=location,
        tags=tags,
        properties={
            "source": own_source,
            "topicType": SUBSCRIPTIONS_TOPIC_TYPE,
            "metricResourceId": str(uuid.uuid4()),
        },
        created_by=ctx.caller.principal.app_id,
        modified_by=ctx.caller.principal.app_id,
        state={"provisioning": "Creating"},
    )
    ctx.tenant.put_resource(topic)
    return arm_json(topic_json(topic), 201, _operation(ctx, location))


async def get_topic(ctx: ArmContext) -> web.Response:
    return arm_json(topic_json(_settled(tracked.require(ctx, TOPIC_TYPE, "systemTopicName"))))


async def patch_topic(ctx: ArmContext) -> web.Response:
    topic = tracked.require(ctx, TOPIC_TYPE, "systemTopicName")
    body = await ctx.json_object()
    if "tags" in body:
        topic.tags = validate_tags(body["tags"])
    tracked.touch(topic, ctx)
    return arm_json(topic_json(_settled(topic)), 200, _operation(ctx, topic.location or "global"))


async def delete_topic(ctx: ArmContext) -> web.Response:
    topic = tracked.find(ctx, TOPIC_TYPE, "systemTopicName")
    if topic is None:
        return tracked.already_deleted(ctx)
    for removed in ctx.tenant.delete_resource_tree(topic.id):
        _grid(ctx).subscriptions.pop(removed.key, None)
    return _accepted(ctx, topic.location or "global")


def _accepted(ctx: ArmContext, location: str) -> web.Response:
    headers = _operation(ctx, location)
    headers["Location"] = headers["Azure-AsyncOperation"].replace("/operationsStatus/", "/operationResults/")
    return web.Response(status=202, headers=headers)


async def list_topics_by_resource_group(ctx: ArmContext) -> web.Response:
    return paged(ctx, [topic_json(_settled(t)) for t in tracked.in_resource_group(ctx, TOPIC_TYPE)])


async def list_topics_by_subscription(ctx: ArmContext) -> web.Response:
    return paged(ctx, [topic_json(_settled(t)) for t in _topics_in_subscription(ctx)])


# --------------------------------------------------------------------------------------------------
# Event subscriptions


def _parent_topic(ctx: ArmContext) -> ArmResource:
    topic = tracked.find(ctx, TOPIC_TYPE, "systemTopicName")
    if topic is None:
        # pulumi/docs#5774: the real answer to a nested resource under a missing topic.
        raise ArmError(
            404,
            "ParentResourceNotFound",
            "Can not perform requested operation on nested resource. Parent resource "
            f"'{ctx.params['systemTopicName']}' not found.",
        )
    return topic


def _subscription_resource(ctx: ArmContext, topic: ArmResource) -> ArmResource:
    resource = ctx.tenant.get_resource(f"{topic.id}/eventSubscriptions/{ctx.params['eventSubscriptionName']}")
    if resource is None:
        # pulumi/pulumi-azure-native#1681: the real text.
        raise ArmError(404, "ResourceNotFound", "Event subscription doesn't exist.")
    return resource


def _base_url(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def subscription_json(resource: ArmResource) -> dict[str, Any]:
    props = dict(resource.properties)
    destination = dict(props["destination"])
    dest_props = dict(destination["properties"])
    if destination["endpointType"] == "WebHook":
        # The full URL may carry a key: ARM shows only its base (getFullUrl shows the rest).
        dest_props["endpointBaseUrl"] = _base_url(dest_props.pop("endpointUrl"))
        dest_props["endpointUrl"] = None
    destination["properties"] = dest_props
    props["destination"] = destination
    props["provisioningState"] = resource.state.get("provisioning", "Succeeded")
    props["topic"] = resource.state["topic_id"]
    return {
        "id": resource.id,
        "name": resource.name,
        "type": SUBSCRIPTION_TYPE,
        "properties": props,
        "systemData": {
            "createdBy": resource.created_by,
            "createdByType": "Application",
            "createdAt": iso(resource.created_at),
            "lastModifiedBy": resource.modified_by,
            "lastModifiedByType": "Application",
            "lastModifiedAt": iso(resource.modified_at),
        },
    }


def _object(value: Any, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _bad(f"The property '{name}' must be an object.")  # guess
    return value


def _destination(raw: Any) -> dict[str, Any]:
    destination = _object(raw, "destination")
    kind = destination.get("endpointType")
    if kind not in DESTINATION_TYPES:
        raise _bad(
            f"The destination endpointType '{kind}' is not supported; the emulator serves "
            f"{' and '.join(DESTINATION_TYPES)}."
        )
    props = _object(destination.get("properties"), "destination.properties")
    batch = int(props.get("maxEventsPerBatch") or 1)
    if not 1 <= batch <= 5000:
        raise _bad("maxEventsPerBatch must be between 1 and 5000.")  # the spec's range
    kept: dict[str, Any] = {"maxEventsPerBatch": batch, "preferredBatchSizeInKilobytes": 64}
    if kind == "WebHook":
        url = str(props.get("endpointUrl") or "")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _bad(
                f"The attempt to validate the provided endpoint {url} failed: it is not an absolute URL."
            )
        if parts.scheme == "http" and not _is_loopback(parts.hostname):
            # Event Grid requires https (plain http only for loopback hosts, here).
            raise _bad("The endpoint URL must use the https scheme.")  # text guess
        kept["endpointUrl"] = url
    else:
        resource_id = str(props.get("resourceId") or "")
        if not FUNCTION_ID_RE.match(resource_id):
            raise _bad("The AzureFunction destination needs the resourceId of a function.")  # guess
        kept["resourceId"] = resource_id
    return {"endpointType": kind, "properties": kept}


def _filter(raw: Any) -> dict[str, Any]:
    spec = _object(raw, "filter")
    types = spec.get("includedEventTypes")
    if types is not None and (not isinstance(types, list) or not all(isinstance(t, str) for t in types)):
        raise _bad("includedEventTypes must be a list of event type names.")  # guess
    try:
        advanced = _validated_filters(spec.get("advancedFilters"))
    except ControlError as error:
        raise _bad(str(error)) from None
    return {
        "includedEventTypes": types,
        "subjectBeginsWith": str(spec.get("subjectBeginsWith") or ""),
        "subjectEndsWith": str(spec.get("subjectEndsWith") or ""),
        "isSubjectCaseSensitive": bool(spec.get("isSubjectCaseSensitive", False)),
        "enableAdvancedFilteringOnArrays": bool(spec.get("enableAdvancedFilteringOnArrays", False)),
        "advancedFilters": advanced,
    }


def _retry(raw: Any) -> dict[str, int]:
    spec = _object(raw, "retryPolicy")
    attempts = int(spec.get("maxDeliveryAttempts") or 30)
    ttl = int(spec.get("eventTimeToLiveInMinutes") or 1440)
    if not 1 <= attempts <= 30:
        raise _bad("maxDeliveryAttempts must be between 1 and 30.")  # the spec's documented range
    if not 1 <= ttl <= 1440:
        raise _bad("eventTimeToLiveInMinutes must be between 1 and 1440.")
    return {"maxDeliveryAttempts": attempts, "eventTimeToLiveInMinutes": ttl}


def _properties(body: dict[str, Any]) -> dict[str, Any]:
    props = _object(body.get("properties"), "properties")
    schema = props.get("eventDeliverySchema") or EVENT_GRID_SCHEMA
    if schema not in (EVENT_GRID_SCHEMA, CLOUD_EVENT_SCHEMA):
        raise _bad(f"eventDeliverySchema must be {EVENT_GRID_SCHEMA} or {CLOUD_EVENT_SCHEMA}.")
    result: dict[str, Any] = {
        "destination": _destination(props.get("destination")),
        "filter": _filter(props.get("filter")),
        "labels": list(props.get("labels") or []),
        "eventDeliverySchema": schema,
        "retryPolicy": _retry(props.get("retryPolicy")),
    }
    for key in ("deadLetterDestination", "deadLetterWithResourceIdentity", "deliveryWithResourceIdentity"):
        if props.get(key) is not None:
            result[key] = _object(props[key], key)
    return result


def _engine_subscription(resource: ArmResource, source: str) -> EventSubscription:
    """What the delivery engine runs for an ARM event subscription."""
    props = resource.properties
    destination = props["destination"]["properties"]
    spec = props["filter"]
    return EventSubscription(
        name=resource.name,
        # An AzureFunction destination has no URL: delivery looks its Function app's host up.
        endpoint=destination.get("endpointUrl", ""),
        function=destination.get("resourceId")
        if props["destination"]["endpointType"] == "AzureFunction"
        else None,
        schema=props["eventDeliverySchema"],
        topic=source,
        included_event_types=spec["includedEventTypes"],
        subject_begins_with=spec["subjectBeginsWith"],
        subject_ends_with=spec["subjectEndsWith"],
        advanced_filters=spec["advancedFilters"],
        max_delivery_attempts=props["retryPolicy"]["maxDeliveryAttempts"],
        max_events_per_batch=destination["maxEventsPerBatch"],
        created_at=iso(resource.created_at),
        arm_id=resource.id,
    )


async def put_subscription(ctx: ArmContext) -> web.Response:
    topic = _parent_topic(ctx)
    name = ctx.params["eventSubscriptionName"]
    if not SUBSCRIPTION_NAME_RE.match(name):
        raise _bad(
            f"Event subscription name '{name}' is invalid: use 3-64 characters of letters, digits and '-'."
        )  # guess
    properties = _properties(await ctx.json_object())
    sub_id = f"{topic.id}/eventSubscriptions/{name}"
    resource = ctx.tenant.get_resource(sub_id)
    if resource is None:
        resource = ArmResource(
            id=sub_id,
            type=SUBSCRIPTION_TYPE,
            name=name,
            created_by=ctx.caller.principal.app_id,
            modified_by=ctx.caller.principal.app_id,
        )
    else:
        tracked.touch(resource, ctx)
    resource.properties = properties
    resource.state = {"topic_id": topic.id, "provisioning": "Creating"}
    ctx.tenant.put_resource(resource)
    grid = _grid(ctx)
    grid.subscriptions.pop(resource.key, None)
    engine = _engine_subscription(resource, topic.properties["source"])
    error = None
    if engine.endpoint:
        try:
            await grid.handshake(engine)
        except ControlError as refused:
            # az shows this as "(Url validation) Webhook validation handshake failed ..." (code: guess
            # from az's output; the subscription stays, Failed, until it is fixed or deleted).
            error = {"code": "Url validation", "message": str(refused)}
    answer = subscription_json(resource)
    if error is None:
        resource.state["provisioning"] = "Succeeded"
        grid.subscriptions[engine.key] = engine
    else:
        resource.state["provisioning"] = "Failed"
    return arm_json(answer, 201, _operation(ctx, topic.location or "global", error))


async def patch_subscription(ctx: ArmContext) -> web.Response:
    topic = _parent_topic(ctx)
    resource = _subscription_resource(ctx, topic)
    body = await ctx.json_object()
    merged = {
        **resource.properties,
        **{k: v for k, v in body.items() if k in ("destination", "filter", "labels", "retryPolicy")},
    }
    if "destination" not in body:
        merged["destination"] = resource.properties["destination"]
    replacement = _properties({"properties": merged})
    resource.properties = replacement
    tracked.touch(resource, ctx)
    grid = _grid(ctx)
    engine = _engine_subscription(resource, topic.properties["source"])
    grid.subscriptions.pop(resource.key, None)
    if resource.state.get("provisioning") == "Succeeded":
        grid.subscriptions[engine.key] = engine
    return arm_json(subscription_json(resource), 201, _operation(ctx, topic.location or "global"))


async def get_subscription(ctx: ArmContext) -> web.Response:
    return arm_json(subscription_json(_subscription_resource(ctx, _parent_topic(ctx))))


async def delete_subscription(ctx: ArmContext) -> web.Response:
    topic = _parent_topic(ctx)
    resource = ctx.tenant.get_resource(f"{topic.id}/eventSubscriptions/{ctx.params['eventSubscriptionName']}")
    if resource is None:
        return tracked.already_deleted(ctx)
    ctx.tenant.delete_resource_tree(resource.id)
    _grid(ctx).subscriptions.pop(resource.key, None)
    return _accepted(ctx, topic.location or "global")


async def list_subscriptions(ctx: ArmContext) -> web.Response:
    topic = _parent_topic(ctx)
    return paged(ctx, [subscription_json(r) for r in ctx.tenant.children(f"{topic.id}/eventSubscriptions")])


async def get_full_url(ctx: ArmContext) -> web.Response:
    resource = _subscription_resource(ctx, _parent_topic(ctx))
    ctx.emit_event = False  # reading a URL changes nothing (guess: ARM's events for this action)
    destination = resource.properties["destination"]
    if destination["endpointType"] != "WebHook":
        raise _bad("Full URL is only available for WebHook destinations.")  # guess
    return arm_json({"endpointUrl": destination["properties"]["endpointUrl"]})


async def get_delivery_attributes(ctx: ArmContext) -> web.Response:
    _subscription_resource(ctx, _parent_topic(ctx))
    ctx.emit_event = False
    return arm_json({"value": []})  # no dynamic delivery attributes are emulated


def register(router: ArmRouter) -> None:
    common: dict[str, Any] = {"api_versions": API_VERSIONS, "provider": "Microsoft.EventGrid"}
    item = tracked.add_routes(
        router,
        TOPIC_TYPE,
        "systemTopicName",
        put=put_topic,
        get=get_topic,
        patch=patch_topic,
        delete=delete_topic,
        list_by_resource_group=list_topics_by_resource_group,
        list_by_subscription=list_topics_by_subscription,
        resource_type="systemTopics",
        **common,
    )
    sub_common = {**common, "resource_type": "systemTopics/eventSubscriptions"}
    sub_item = f"{item}/eventSubscriptions/{{eventSubscriptionName}}"
    action = SUBSCRIPTION_TYPE
    router.add("PUT", sub_item, put_subscription, action=f"{action}/write", **sub_common)
    router.add("PATCH", sub_item, patch_subscription, action=f"{action}/write", **sub_common)
    router.add("GET", sub_item, get_subscription, action=f"{action}/read", **sub_common)
    router.add("DELETE", sub_item, delete_subscription, action=f"{action}/delete", **sub_common)
    router.add("GET", f"{item}/eventSubscriptions", list_subscriptions, action=f"{action}/read", **sub_common)
    router.add(
        "POST", f"{sub_item}/getFullUrl", get_full_url, action=f"{action}/getFullUrl/action", **sub_common
    )
    router.add(
        "POST",
        f"{sub_item}/getDeliveryAttributes",
        get_delivery_attributes,
        action=f"{action}/getDeliveryAttributes/action",
        **sub_common,
    )
    operations = "/subscriptions/{subscriptionId}/providers/Microsoft.EventGrid/locations/{location}"
    router.add(
        "GET",
        f"{operations}/operationsStatus/{{operationId}}",
        get_operation_status,
        action="Microsoft.EventGrid/locations/operationsStatus/read",
        **{**common, "resource_type": "locations/operationsStatus"},
    )
    router.add(
        "GET",
        f"{operations}/operationResults/{{operationId}}",
        get_operation_result,
        action="Microsoft.EventGrid/locations/operationResults/read",
        **{**common, "resource_type": "locations/operationResults"},
    )
