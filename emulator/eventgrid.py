"""Event Grid for the emulated tenant: the subscription system topic's ``Microsoft.Resources.*`` events,
delivered to webhooks the way Event Grid does it.

* Every ARM operation the tenant publishes becomes an event shaped like Azure's (azure-wire F.1):
  subject = resource id with ``resourcegroups`` lower-cased, ``data.authorization.evidence`` with the
  role assignment that allowed the call (ids without dashes, as ARM writes them), ``data.claims`` =
  the caller's token claims, ``httpRequest`` only for updates, deletes and actions.
* Subscriptions are created through the control API. Creating one runs the validation handshake
  first (EventGridSchema: a ``SubscriptionValidationEvent`` whose code must be echoed; CloudEvents:
  the ``OPTIONS`` abuse-protection handshake).
* Delivery is at-least-once from a background task: POST an array (``max_events_per_batch`` events)
  with the ``aeg-*`` headers; 200-204 is success; 400/401/403/413 are dead-lettered at once; anything
  else (or no answer) is retried with a capped exponential backoff (``timings.event_retry``) until
  ``max_delivery_attempts``. Every attempt is recorded for ``GET /_control/eventgrid/deliveries``.
* ``PATCH /_control/eventgrid/behaviour`` asks for Event Grid's real-world untidiness: duplicate
  deliveries of the same event, out-of-order delivery, and ARM's second ResourceWriteSuccess for
  a create (a different event id, the same correlationId), a pause (nothing is delivered until it
  is lifted: a delivery lag as long as a test needs), and concurrent delivery (every due batch at once).
* An ``AzureFunction`` destination (an ARM event subscription whose destination is a function of a
  ``Microsoft.Web/sites``) is delivered without a validation handshake, as a Notification POST to the
  Functions host's Event Grid extension webhook with its ``eventgrid_extension`` system key. Where that
  host listens and its key are what the emulator cannot know: ``PUT /_control/eventgrid/function-hosts``
  names them per site (until then, and while the site does not exist, delivery fails and is retried).
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import json
import random
import re
import time
import uuid
from contextlib import suppress
from dataclasses import asdict, dataclass, field, fields
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
from aiohttp import web

from emulator.control import ControlError, body_of, require
from emulator.http import json_response
from emulator.runtime import EmulatorRuntime
from emulator.tenant import ArmOperation, Tenant, iso

EVENT_GRID_SCHEMA = "EventGridSchema"
CLOUD_EVENT_SCHEMA = "CloudEventSchemaV1_0"
RESOURCE_EVENT_TYPES = [
    f"Microsoft.Resources.Resource{kind}{outcome}"
    for kind in ("Write", "Delete", "Action")
    for outcome in ("Success", "Failure", "Cancel")
]
SUCCESS_STATUSES = {200, 201, 202, 203, 204}
# Webhook answers Event Grid does not retry (Learn: event-grid/delivery-and-retry).
NO_RETRY_STATUSES = {400, 401, 403, 413}
DELIVERY_TIMEOUT_SECONDS = 30
SUBSCRIPTION_NAME_RE = re.compile(r"^[A-Za-z0-9-]{3,64}$")
VALIDATION_ORIGIN = "eventgrid.azure.net"
# An AzureFunction destination's resourceId: the function of a Function app (Microsoft.Web/sites).
FUNCTION_ID_RE = re.compile(
    r"^(?P<site>/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Web/sites/[^/]+)"
    r"/functions/(?P<function>[^/]+)$",
    re.IGNORECASE,
)

STRING_OPERATORS = {
    "StringIn": lambda value, wanted: value in wanted,
    "StringNotIn": lambda value, wanted: value not in wanted,
    "StringBeginsWith": lambda value, wanted: any(value.startswith(w) for w in wanted),
    "StringNotBeginsWith": lambda value, wanted: not any(value.startswith(w) for w in wanted),
    "StringEndsWith": lambda value, wanted: any(value.endswith(w) for w in wanted),
    "StringNotEndsWith": lambda value, wanted: not any(value.endswith(w) for w in wanted),
    "StringContains": lambda value, wanted: any(w in value for w in wanted),
    "StringNotContains": lambda value, wanted: not any(w in value for w in wanted),
}
NUMBER_OPERATORS = {
    "NumberIn": lambda value, f: value in f["values"],
    "NumberNotIn": lambda value, f: value not in f["values"],
    "NumberLessThan": lambda value, f: value < f["value"],
    "NumberGreaterThan": lambda value, f: value > f["value"],
    "NumberLessThanOrEquals": lambda value, f: value <= f["value"],
    "NumberGreaterThanOrEquals": lambda value, f: value >= f["value"],
}
PRESENCE_OPERATORS = {"IsNullOrUndefined", "IsNotNull", "BoolEquals"}


# --------------------------------------------------------------------------------------------------
# Events


def arm_subject(resource_id: str) -> str:
    """Resource ids as Event Grid carries them: ARM lower-cases ``resourcegroups``."""
    return re.sub(r"^(/subscriptions/[^/]+/)resourcegroups/", r"\1resourcegroups/", resource_id, flags=re.I)


def _dashless(guid: str) -> str:
    return guid.replace("-", "")


def _evidence(operation: ArmOperation, tenant: Tenant) -> dict[str, str]:
    """The role assignment that allowed the call, with ids in ARM's dash-less form."""
    if not operation.evidence_role or not operation.evidence_scope:
        return {}
    role = tenant.arm_role_named(operation.evidence_role)
    assignment = next(
        (
            a
            for a in tenant.rbac.values()
            if a.principal_id == operation.caller.id
            and a.role is role
            and a.scope.lower() == operation.evidence_scope.lower()
        ),
        None,
    )
    return {
        "role": role.name,
        "roleAssignmentScope": operation.evidence_scope,
        "roleAssignmentId": _dashless(assignment.id) if assignment else "",
        "roleDefinitionId": _dashless(role.id),
        "principalId": _dashless(operation.caller.id),
        "principalType": "ServicePrincipal",
    }


def build_event(operation: ArmOperation, tenant: Tenant) -> dict[str, Any]:
    """A Microsoft.Resources event in the Event Grid schema."""
    subject = arm_subject(operation.resource_id)
    data: dict[str, Any] = {
        "authorization": {
            "scope": subject,
            "action": operation.operation_name,
            "evidence": _evidence(operation, tenant),
        },
        "claims": dict(operation.caller_claims),
        "correlationId": operation.correlation_id,
    }
    # Azure includes the request only when an existing resource was changed, deleted or acted on.
    if operation.status != 201:
        data["httpRequest"] = {
            "clientRequestId": operation.client_request_id or "",
            "clientIpAddress": "127.0.0.1",
            "method": operation.method,
            "url": operation.url,
        }
    data.update(
        resourceProvider=operation.operation_name.split("/", 1)[0],
        resourceUri=subject,
        operationName=operation.operation_name,
        status="Succeeded",
        subscriptionId=operation.subscription_id,
        tenantId=tenant.tenant_id,
    )
    return {
        "topic": f"/subscriptions/{operation.subscription_id}",
        "subject": subject,
        "eventType": operation.event_type,
        "eventTime": iso(operation.timestamp),
        "id": str(uuid.uuid4()),
        "data": data,
        "dataVersion": "2",
        "metadataVersion": "1",
    }


def cloud_event(event: dict[str, Any]) -> dict[str, Any]:
    """The same event in the CloudEvents 1.0 schema."""
    return {
        "specversion": "1.0",
        "id": event["id"],
        "source": event["topic"],
        "subject": event["subject"],
        "type": event["eventType"],
        "time": event["eventTime"],
        "datacontenttype": "application/json",
        "data": event["data"],
    }


# --------------------------------------------------------------------------------------------------
# Subscriptions and filters


def _value_at(event: dict[str, Any], key: str) -> Any:
    """``data.operationName``-style keys; exact names first, then case-insensitively."""
    current: Any = event
    for part in key.split("."):
        if not isinstance(current, dict):
            return None
        if part in current:
            current = current[part]
        else:
            current = next((v for k, v in current.items() if k.lower() == part.lower()), None)
    return current


def _advanced_filter_matches(spec: dict[str, Any], event: dict[str, Any]) -> bool:
    operator = spec["operatorType"]
    value = _value_at(event, spec["key"])
    if operator == "IsNullOrUndefined":
        return value is None
    if operator == "IsNotNull":
        return value is not None
    if operator == "BoolEquals":
        return isinstance(value, bool) and value == spec["value"]
    if operator in NUMBER_OPERATORS:
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        return numeric and NUMBER_OPERATORS[operator](value, spec)
    negated = "Not" in operator
    if value is None or isinstance(value, dict | list):
        return negated  # a missing key satisfies only the negated operators
    # Event Grid's string comparisons are case-insensitive.
    return STRING_OPERATORS[operator](str(value).lower(), [str(v).lower() for v in spec["values"]])


def _validated_filters(raw: Any) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ControlError(400, "advanced_filters must be a list")
    known = {*STRING_OPERATORS, *NUMBER_OPERATORS, *PRESENCE_OPERATORS}
    result = []
    for spec in raw:
        if not isinstance(spec, dict) or not isinstance(spec.get("key"), str) or not spec["key"]:
            raise ControlError(400, f"advanced filter {spec!r} needs an operatorType and a key")
        operator = spec.get("operatorType")
        if operator not in known:
            raise ControlError(400, f"unknown operatorType {operator!r}; known: {', '.join(sorted(known))}")
        needs_values = operator in STRING_OPERATORS or operator in ("NumberIn", "NumberNotIn")
        needs_value = operator == "BoolEquals" or (operator in NUMBER_OPERATORS and not needs_values)
        if needs_values and not isinstance(spec.get("values"), list):
            raise ControlError(400, f"advanced filter {operator} on {spec['key']} needs a 'values' list")
        if needs_value and "value" not in spec:
            raise ControlError(400, f"advanced filter {operator} on {spec['key']} needs a 'value'")
        result.append(dict(spec))
    return result


@dataclass
class _Pending:
    """Events waiting for an attempt: one fresh event, or a batch that failed before."""

    events: list[dict[str, Any]]
    attempts: int  # attempts already made
    due: float  # time.monotonic() value
    seq: int


@dataclass
class EventSubscription:
    name: str
    endpoint: str
    schema: str = EVENT_GRID_SCHEMA
    topic: str | None = None  # "/subscriptions/{id}"; None: the system topics of every subscription
    included_event_types: list[str] | None = None
    subject_begins_with: str = ""
    subject_ends_with: str = ""
    advanced_filters: list[dict[str, Any]] = field(default_factory=list)
    max_delivery_attempts: int = 30
    max_events_per_batch: int = 1
    created_at: str = ""
    # Set for a subscription made through ARM (emulator/arm/eventgrid_topics.py): its resource id.
    arm_id: str | None = None
    # An AzureFunction destination's function resource id (``endpoint`` is then empty: the URL is the
    # Function app's host, looked up at each delivery).
    function: str | None = None
    pending: list[_Pending] = field(default_factory=list)
    busy: bool = False
    in_flight: int = 0  # events taken off ``pending`` whose delivery attempt has not been recorded yet

    @classmethod
    def from_body(cls, body: dict[str, Any], tenant: Tenant) -> EventSubscription:
        internal = {"pending", "busy", "in_flight", "created_at", "arm_id", "function"}
        allowed = {f.name for f in fields(cls)} - internal
        unknown = set(body) - allowed
        if unknown:
            raise ControlError(400, f"unknown field(s): {', '.join(sorted(unknown))}")
        name, endpoint = require(body, "name", "endpoint")
        if not isinstance(name, str) or not SUBSCRIPTION_NAME_RE.match(name):
            raise ControlError(
                400, "EventSubscription name must be 3-64 characters of letters, digits and hyphens"
            )
        url = urlsplit(str(endpoint))
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ControlError(400, f"endpoint must be an absolute http(s) URL, got {endpoint!r}")
        if url.scheme == "http" and not _is_loopback(url.hostname):
            raise ControlError(400, "the endpoint URL must use https (plain http only for loopback hosts)")
        schema = body.get("schema", EVENT_GRID_SCHEMA)
        if schema not in (EVENT_GRID_SCHEMA, CLOUD_EVENT_SCHEMA):
            raise ControlError(400, f"schema must be {EVENT_GRID_SCHEMA} or {CLOUD_EVENT_SCHEMA}")
        topic = body.get("topic")
        if topic is not None:
            parts = [p for p in str(topic).split("/") if p]
            if (
                len(parts) != 2
                or parts[0].lower() != "subscriptions"
                or parts[1].lower() not in tenant.subscriptions
            ):
                raise ControlError(400, f"topic must be /subscriptions/<id> of this tenant, got {topic!r}")
        types = body.get("included_event_types")
        if types is not None and (not isinstance(types, list) or not all(isinstance(t, str) for t in types)):
            raise ControlError(400, "included_event_types must be a list of event type names")
        attempts = int(body.get("max_delivery_attempts", 30))
        batch = int(body.get("max_events_per_batch", 1))
        if not 1 <= attempts <= 30:
            raise ControlError(400, "max_delivery_attempts must be between 1 and 30")
        if not 1 <= batch <= 5000:
            raise ControlError(400, "max_events_per_batch must be between 1 and 5000")
        return cls(
            name=name,
            endpoint=str(endpoint),
            schema=schema,
            topic=topic,
            included_event_types=types,
            subject_begins_with=str(body.get("subject_begins_with") or ""),
            subject_ends_with=str(body.get("subject_ends_with") or ""),
            advanced_filters=_validated_filters(body.get("advanced_filters")),
            max_delivery_attempts=attempts,
            max_events_per_batch=batch,
            created_at=iso(time.time()),
        )

    @property
    def key(self) -> str:
        """Where ``EventGrid.subscriptions`` keeps it: ARM names are unique per topic, control-API ones
        per tenant."""
        return (self.arm_id or self.name).lower()

    def matches(self, event: dict[str, Any]) -> bool:
        if self.topic and event["topic"].lower() != self.topic.lower():
            return False
        if self.included_event_types and event["eventType"].lower() not in {
            t.lower() for t in self.included_event_types
        }:
            return False
        subject = event["subject"].lower()  # subject filters are case-insensitive by default
        if not subject.startswith(self.subject_begins_with.lower()):
            return False
        if not subject.endswith(self.subject_ends_with.lower()):
            return False
        return all(_advanced_filter_matches(spec, event) for spec in self.advanced_filters)

    def as_dict(self) -> dict[str, Any]:
        result = asdict(self)
        del result["busy"]
        result["pending"] = sum(len(p.events) for p in self.pending)
        return result


@dataclass(frozen=True)
class FunctionHost:
    """Where the Functions host of a ``Microsoft.Web/sites`` listens, and its ``eventgrid_extension`` system
    key: in Azure, ``https://{defaultHostName}`` and the key Event Grid reads from the site itself."""

    site: str  # the site's resource id
    url: str  # scheme://host[:port], no path
    eventgrid_extension_key: str | None = None

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> FunctionHost:
        unknown = set(body) - {"site", "url", "eventgrid_extension_key"}
        if unknown:
            raise ControlError(400, f"unknown field(s): {', '.join(sorted(unknown))}")
        site, url = require(body, "site", "url")
        if not re.match(
            r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Web/sites/[^/]+$",
            str(site),
            re.I,
        ):
            raise ControlError(400, f"site must be a Microsoft.Web/sites resource id, got {site!r}")
        parts = urlsplit(str(url))
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
            raise ControlError(400, f"url must be the host's scheme://host[:port], got {url!r}")
        if parts.scheme == "http" and not _is_loopback(parts.hostname):
            raise ControlError(400, "the host URL must use https (plain http only for loopback hosts)")
        key = body.get("eventgrid_extension_key")
        if key is not None and (not isinstance(key, str) or not key):
            raise ControlError(400, "eventgrid_extension_key must be a non-empty string (or absent: no key)")
        return cls(str(site).rstrip("/"), str(url).rstrip("/"), key)

    def webhook(self, function: str) -> str:
        """The Event Grid extension's webhook (Learn "Azure Event Grid trigger for Azure Functions")."""
        query = urlencode(
            {
                "functionName": function,
                **({"code": self.eventgrid_extension_key} if self.eventgrid_extension_key else {}),
            }
        )
        return f"{self.url}/runtime/webhooks/eventgrid?{query}"

    def as_dict(self) -> dict[str, Any]:
        # The key is a secret: shown only as whether there is one.
        return {"site": self.site, "url": self.url, "has_key": self.eventgrid_extension_key is not None}


@dataclass
class Behaviour:
    """Real-world untidiness tests can ask for."""

    duplicate_probability: float = 0.0  # chance that an event is delivered more than once
    duplicate_count: int = 1  # extra deliveries of a duplicated event (same event id)
    shuffle: bool = False  # deliver out of order
    shuffle_window: float = 0.3  # seconds events are held so that there is something to reorder
    double_write_on_create: bool = False  # ARM's second ResourceWriteSuccess for a create
    # Deliver nothing until set false again (then everything due, in order): a delivery lag as long as a
    # test needs, so that later writes happen before an earlier write's event is handled.
    paused: bool = False
    # Send each due batch at once, without waiting for the endpoint's answer to the last one: Learn says
    # Event Grid delivers "immediately" and does not guarantee order, not how many requests it has in
    # flight to one endpoint (emulator/README.md). Off: one at a time, in order.
    concurrent: bool = False

    def update(self, values: dict[str, Any]) -> None:
        kinds = {f.name: f.type for f in fields(self)}
        unknown = set(values) - set(kinds)
        if unknown:
            raise ControlError(
                400, f"unknown behaviour(s): {', '.join(sorted(unknown))}; known: {', '.join(kinds)}"
            )
        for name, value in values.items():
            current = getattr(self, name)
            if isinstance(current, bool):
                if not isinstance(value, bool):
                    raise ControlError(400, f"{name} must be true or false")
            elif not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                raise ControlError(400, f"{name} must be a number >= 0")
            if name == "duplicate_probability" and value > 1:
                raise ControlError(400, "duplicate_probability must be between 0 and 1")
            setattr(self, name, int(value) if name == "duplicate_count" else value)


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# --------------------------------------------------------------------------------------------------
# Delivery


class EventGrid:
    def __init__(self, runtime: EmulatorRuntime) -> None:
        self.runtime = runtime
        self.subscriptions: dict[str, EventSubscription] = {}  # by lower-cased name
        self.function_hosts: dict[str, FunctionHost] = {}  # by lower-cased site id
        self.deliveries: list[dict[str, Any]] = []
        self.behaviour = Behaviour()
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self._scheduler: asyncio.Task | None = None
        self._in_flight: set[asyncio.Task] = set()

    # ------------------------------------------------------------------ lifecycle

    def attach_tenant(self, tenant: Tenant) -> None:
        """A fresh tenant starts with no event subscriptions."""
        for task in self._in_flight:
            task.cancel()
        self.subscriptions.clear()
        self.function_hosts.clear()
        self.deliveries.clear()
        self.behaviour = Behaviour()
        tenant.arm_listeners.append(self.on_operation)

    def wake(self) -> None:
        """Look at what is due now (after a change of behaviour)."""
        self._wake.set()

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()
        self._scheduler = asyncio.create_task(self._schedule())

    async def stop(self) -> None:
        for task in [self._scheduler, *self._in_flight]:
            if task is not None:
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
        if self._session is not None:
            await self._session.close()

    # ------------------------------------------------------------------ publishing

    def on_operation(self, operation: ArmOperation) -> None:
        tenant = self.runtime.tenant
        events = [build_event(operation, tenant)]
        if (
            self.behaviour.double_write_on_create
            and operation.status == 201
            and operation.event_type.endswith("ResourceWriteSuccess")
        ):
            events.append({**events[0], "id": str(uuid.uuid4())})
        for key, subscription in list(self.subscriptions.items()):
            if subscription.arm_id and tenant.get_resource(subscription.arm_id) is None:
                del self.subscriptions[key]  # its system topic or resource group was deleted
        for event in events:
            for subscription in self.subscriptions.values():
                if subscription.matches(event):
                    self._enqueue(subscription, event)

    def _enqueue(self, subscription: EventSubscription, event: dict[str, Any]) -> None:
        now = time.monotonic()
        due = now + self.runtime.timings.event_delivery
        if self.behaviour.shuffle:
            # Hold everything that arrives within the window, then deliver it in a shuffled order.
            held = [p.due for p in subscription.pending if p.attempts == 0]
            due = min(held) if held else now + self.behaviour.shuffle_window
        copies = 1
        if random.random() < self.behaviour.duplicate_probability:
            copies += self.behaviour.duplicate_count
        for _ in range(copies):
            subscription.pending.append(_Pending([event], 0, due, next(self._seq)))
        self._wake.set()

    # ------------------------------------------------------------------ the background task

    async def _schedule(self) -> None:
        while True:
            self._wake.clear()
            now = time.monotonic()
            next_due: float | None = None
            for subscription in list(self.subscriptions.values()):
                if subscription.busy or not subscription.pending or self.behaviour.paused:
                    continue
                earliest = min(p.due for p in subscription.pending)
                if earliest > now:
                    next_due = earliest if next_due is None else min(next_due, earliest)
                elif self.behaviour.concurrent:
                    for batch in self._due_batches(subscription):
                        subscription.in_flight += len(batch.events)
                        self._spawn(self._deliver_one(subscription, batch))
                else:
                    subscription.busy = True
                    self._spawn(self._deliver_due(subscription))
            timeout = None if next_due is None else max(0.0, next_due - time.monotonic())
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    def _due_batches(self, subscription: EventSubscription) -> list[_Pending]:
        """Takes what is due off the subscription's queue, as the batches to send, in sending order."""
        now = time.monotonic()
        retries = [p for p in subscription.pending if p.attempts > 0 and p.due <= now]
        fresh: list[_Pending] = []
        if any(p.attempts == 0 and p.due <= now for p in subscription.pending):
            # Batching takes every fresh event available, not only the one that fell due.
            fresh = sorted((p for p in subscription.pending if p.attempts == 0), key=lambda p: p.seq)
        taken = {id(p) for p in [*retries, *fresh]}
        subscription.pending = [p for p in subscription.pending if id(p) not in taken]
        if self.behaviour.shuffle and len(fresh) > 1:
            original = list(fresh)
            random.shuffle(fresh)
            if fresh == original:  # out of order means out of order
                fresh.reverse()
        size = subscription.max_events_per_batch
        chunks = [fresh[i : i + size] for i in range(0, len(fresh), size)]
        batches = [
            _Pending([e for p in chunk for e in p.events], 0, chunk[0].due, chunk[0].seq) for chunk in chunks
        ]
        return sorted(retries, key=lambda p: (p.due, p.seq)) + batches

    def _spawn(self, delivery: Any) -> None:
        task = asyncio.create_task(delivery)
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _deliver_one(self, subscription: EventSubscription, batch: _Pending) -> None:
        """One batch, sent while others may be in flight to the same endpoint (``concurrent``)."""
        try:
            status, error = await self._post(subscription, batch.events, batch.attempts)
            if self.subscriptions.get(subscription.key) is subscription:
                self._record(subscription, batch, status, error)
        finally:
            subscription.in_flight -= len(batch.events)
            self._wake.set()

    async def _deliver_due(self, subscription: EventSubscription) -> None:
        try:
            batches = self._due_batches(subscription)
            subscription.in_flight = sum(len(batch.events) for batch in batches)
            for batch in batches:
                status, error = await self._post(subscription, batch.events, batch.attempts)
                if self.subscriptions.get(subscription.key) is not subscription:
                    return  # deleted (or the tenant was reset) meanwhile
                self._record(subscription, batch, status, error)
                subscription.in_flight -= len(batch.events)
        finally:
            subscription.busy = False
            subscription.in_flight = 0
            self._wake.set()

    def _record(
        self, subscription: EventSubscription, batch: _Pending, status: int | None, error: str | None
    ) -> None:
        attempt = batch.attempts + 1
        if status in SUCCESS_STATUSES:
            outcome = "delivered"
        elif status in NO_RETRY_STATUSES or attempt >= subscription.max_delivery_attempts:
            outcome = "dead_lettered"
        else:
            outcome = "retrying"
            backoff = self.runtime.timings.event_retry * min(2 ** (attempt - 1), 16)
            subscription.pending.append(
                _Pending(batch.events, attempt, time.monotonic() + backoff, next(self._seq))
            )
        self.deliveries.append(
            {
                "subscription": subscription.name,
                "event_id": batch.events[0]["id"],
                "event_ids": [e["id"] for e in batch.events],
                "event_types": [e["eventType"] for e in batch.events],
                "subjects": [e["subject"] for e in batch.events],
                "attempt": attempt,
                "delivery_count": batch.attempts,
                "status": status,
                "error": error,
                "outcome": outcome,
                "time": iso(time.time()),
            }
        )

    async def _post(
        self, subscription: EventSubscription, events: list[dict[str, Any]], attempts: int
    ) -> tuple[int | None, str | None]:
        headers = {
            "aeg-event-type": "Notification",
            "aeg-subscription-name": subscription.name.upper(),
            "aeg-delivery-count": str(attempts),
        }
        if subscription.schema == CLOUD_EVENT_SCHEMA:
            body: list[dict[str, Any]] = [cloud_event(e) for e in events]
            headers["Content-Type"] = "application/cloudevents-batch+json; charset=utf-8"
        else:
            body = events
            headers["Content-Type"] = "application/json; charset=utf-8"
            headers["aeg-data-version"] = events[0]["dataVersion"]
            headers["aeg-metadata-version"] = events[0]["metadataVersion"]
        endpoint, unreachable = self._endpoint(subscription)
        if endpoint is None:
            return None, unreachable
        try:
            response = await self._request("POST", endpoint, headers, json.dumps(body).encode())
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return None, f"{type(exc).__name__}: {exc}".rstrip(": ")
        return response[0], None

    def _endpoint(self, subscription: EventSubscription) -> tuple[str | None, str | None]:
        """(the URL to POST to, or None with why there is none now). A webhook's is its own; an AzureFunction
        destination's is its Function app's Event Grid extension webhook, while the site exists and its
        host is known (a failure like a host that does not answer: retried)."""
        if subscription.function is None:
            return subscription.endpoint, None
        match = FUNCTION_ID_RE.match(subscription.function)
        assert match is not None, subscription.function  # validated when the subscription was made
        site = match.group("site")
        if self.runtime.tenant.get_resource(site) is None:
            return None, f"the Function app {site} does not exist"
        host = self.function_hosts.get(site.lower())
        if host is None:
            return None, f"no Functions host is known for {site} (PUT /_control/eventgrid/function-hosts)"
        return host.webhook(match.group("function")), None

    async def _request(
        self, method: str, url: str, headers: dict[str, str], data: bytes | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        assert self._session is not None, "Event Grid is not started"
        host = urlsplit(url).hostname or ""
        # Local endpoints (Functions host, test webhooks) have self-signed certificates.
        ssl = False if _is_loopback(host) else None
        async with self._session.request(
            method,
            url,
            data=data,
            headers=headers,
            ssl=ssl,
            timeout=aiohttp.ClientTimeout(total=DELIVERY_TIMEOUT_SECONDS),
        ) as response:
            return response.status, dict(response.headers), await response.read()

    # ------------------------------------------------------------------ subscription handshake

    async def handshake(self, subscription: EventSubscription) -> None:
        """The endpoint must prove it wants the events; otherwise the subscription is not created
        (ControlError 400 with Event Grid's text)."""
        refused = (
            f"Webhook validation handshake failed for {subscription.endpoint}. The attempt to validate the provided "
            "endpoint failed. For more details, visit https://aka.ms/esvalidation."
        )
        try:
            if subscription.schema == CLOUD_EVENT_SCHEMA:
                status, headers, _ = await self._request(
                    "OPTIONS",
                    subscription.endpoint,
                    {"WebHook-Request-Origin": VALIDATION_ORIGIN, "WebHook-Request-Rate": "120"},
                )
                allowed = {v.strip().lower() for v in _header(headers, "WebHook-Allowed-Origin").split(",")}
                if status != 200 or not allowed & {VALIDATION_ORIGIN, "*"}:
                    raise ControlError(
                        400, f"{refused} OPTIONS answered {status} without WebHook-Allowed-Origin."
                    )
                return
            code = str(uuid.uuid4())
            topic = subscription.topic or f"/subscriptions/{self.runtime.tenant.default_subscription_id}"
            event = {
                "id": str(uuid.uuid4()),
                "topic": topic,
                "subject": "",
                "data": {
                    "validationCode": code,
                    "validationUrl": f"{self.runtime.base_url}/_control/eventgrid/subscriptions/"
                    f"{subscription.name}/validate?code={code}",
                },
                "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
                "eventTime": iso(time.time()),
                "metadataVersion": "1",
                "dataVersion": "1",
            }
            headers = {
                "aeg-event-type": "SubscriptionValidation",
                "aeg-subscription-name": subscription.name.upper(),
                "aeg-delivery-count": "0",
                "aeg-data-version": "1",
                "aeg-metadata-version": "1",
                "Content-Type": "application/json; charset=utf-8",
            }
            status, _, body = await self._request(
                "POST", subscription.endpoint, headers, json.dumps([event]).encode()
            )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise ControlError(400, f"{refused} {type(exc).__name__}: {exc}") from exc
        try:
            answer = json.loads(body) if body else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            answer = None
        echoed = answer.get("validationResponse") if isinstance(answer, dict) else None
        if status != 200 or echoed != code:
            raise ControlError(
                400, f"{refused} The endpoint answered {status} without validationResponse {code}."
            )


def _header(headers: dict[str, str], name: str) -> str:
    return next((v for k, v in headers.items() if k.lower() == name.lower()), "")


# --------------------------------------------------------------------------------------------------
# Control API and start-up


def register_control(app: web.Application, runtime: EmulatorRuntime) -> None:
    grid = EventGrid(runtime)
    app["eventgrid"] = grid
    routes = web.RouteTableDef()

    @routes.post("/_control/eventgrid/subscriptions")
    async def create_subscription(request: web.Request) -> web.Response:
        subscription = EventSubscription.from_body(await body_of(request), runtime.tenant)
        if subscription.name.lower() in grid.subscriptions:
            raise ControlError(409, f"event subscription {subscription.name!r} already exists")
        await grid.handshake(subscription)
        grid.subscriptions[subscription.name.lower()] = subscription
        return json_response(subscription.as_dict(), 201)

    @routes.get("/_control/eventgrid/subscriptions")
    async def list_subscriptions(request: web.Request) -> web.Response:
        return json_response({"subscriptions": [s.as_dict() for s in grid.subscriptions.values()]})

    @routes.delete("/_control/eventgrid/subscriptions/{name}")
    async def delete_subscription(request: web.Request) -> web.Response:
        if grid.subscriptions.pop(request.match_info["name"].lower(), None) is None:
            raise ControlError(404, "no such event subscription")
        return json_response({"deleted": True})

    @routes.get("/_control/eventgrid/subscriptions/{name}/validate")
    async def manual_validation(request: web.Request) -> web.Response:
        raise ControlError(
            400,
            "manual validation is not emulated: answer the SubscriptionValidation event with validationResponse",
        )

    @routes.get("/_control/eventgrid/deliveries")
    async def list_deliveries(request: web.Request) -> web.Response:
        wanted_subscription = request.query.get("subscription", "").lower()
        wanted_event = request.query.get("event_id")
        deliveries = [
            d
            for d in grid.deliveries
            if (not wanted_subscription or d["subscription"].lower() == wanted_subscription)
            and (not wanted_event or wanted_event in d["event_ids"])
        ]
        return json_response({"deliveries": deliveries})

    @routes.put("/_control/eventgrid/function-hosts")
    async def put_function_host(request: web.Request) -> web.Response:
        host = FunctionHost.from_body(await body_of(request))
        grid.function_hosts[host.site.lower()] = host
        grid._wake.set()  # events waiting for this host are retried on their schedule
        return json_response(host.as_dict())

    @routes.get("/_control/eventgrid/function-hosts")
    async def list_function_hosts(request: web.Request) -> web.Response:
        return json_response({"function_hosts": [h.as_dict() for h in grid.function_hosts.values()]})

    @routes.delete("/_control/eventgrid/function-hosts")
    async def delete_function_host(request: web.Request) -> web.Response:
        site = request.query.get("site", "")
        if grid.function_hosts.pop(site.rstrip("/").lower(), None) is None:
            raise ControlError(404, f"no Functions host is known for {site!r}")
        return json_response({"deleted": True})

    @routes.get("/_control/eventgrid/behaviour")
    async def get_behaviour(request: web.Request) -> web.Response:
        return json_response(asdict(grid.behaviour))

    @routes.patch("/_control/eventgrid/behaviour")
    async def patch_behaviour(request: web.Request) -> web.Response:
        grid.behaviour.update(await body_of(request))
        grid.wake()  # unpaused: deliver what is due now
        return json_response(asdict(grid.behaviour))

    app.add_routes(routes)


def attach(runtime: EmulatorRuntime, app: web.Application) -> None:
    grid: EventGrid = app["eventgrid"]
    # Every tenant (the first and each one after a reset) publishes its ARM operations to the grid.
    runtime.on_reset(grid.attach_tenant)

    async def lifecycle(app: web.Application):
        await grid.start()
        yield
        await grid.stop()

    app.cleanup_ctx.append(lifecycle)
