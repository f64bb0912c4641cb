"""Tag-driven automation: Microsoft.Resources events from Event Grid become provision and revoke requests.

An event only says that something happened to a resource. The handler reads the resource as it is
NOW and compares the desired state its tags express (shared/tags.py) with what exomi has provisioned
(the target's record) and with the request already working on it. Because every delivery looks at the
current state, duplicate, late and out-of-order deliveries, ARM's two write events per create and a
storm of writes all end in one request for the final state:

* no change -> nothing; the same desired state as the active request -> nothing;
* a change while a tag request waits to start (``tag_settle`` seconds) -> that request is cancelled as
  superseded and a new one made, so a burst of tag writes ends in one request that runs;
* a change while a request already runs -> an exception: the host answers 500 and Event Grid delivers
  the event again later (its retry policy bounds this), when the running request has ended;
* the opt-in tag removed from a tag-managed target, or the resource deleted -> a revoke request.

Events this code cannot use (other event types, other resource types, child resources, events caused
by exomi's own identity, malformed ones) are acknowledged and logged, never raised: Event Grid would
otherwise retry them for a day.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared import tags
from shared.engine.context import resource_ref
from shared.errors import ConcurrencyError, Conflict, ExomiError, PolicyRefusal
from shared.ids import ResourceId, parse_resource_id
from shared.models import MAX_REQUESTED_BY, Channel, Operation, RequestStatus, Role, Runtime, TargetStatus
from shared.policy import Decision
from shared.runtime import exomi_service
from shared.service import ExomiApp, ExomiService
from shared.state.records import AuditRecord, RequestRecord, TargetRecord

log = logging.getLogger("exomi.events")

WRITE_SUCCESS = "Microsoft.Resources.ResourceWriteSuccess"
DELETE_SUCCESS = "Microsoft.Resources.ResourceDeleteSuccess"
HANDLED_TYPES = {WRITE_SUCCESS.lower(), DELETE_SUCCESS.lower()}
TAGS_SUFFIX = "/providers/microsoft.resources/tags/default"
OID_CLAIM = "http://schemas.microsoft.com/identity/claims/objectidentifier"
UPN_CLAIM = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"
# Requests nobody waits for: a newer desired state may replace them while they have not started.
SUPERSEDABLE = {Channel.TAG, Channel.RECONCILE}
_ATTEMPTS = 3


class TargetBusy(ExomiError):
    """The desired state changed while a request already works on the target: handle the event later."""

    code = "TargetBusy"
    http_status = 503


# ---------------------------------------------------------------------------------------------- events


@dataclass(frozen=True)
class ResourceEvent:
    id: str
    type: str
    subject: str
    time: datetime | None
    data: Mapping[str, Any]


def read_event(event: Any) -> ResourceEvent | None:
    """The fields exomi uses, from a ``func.EventGridEvent`` or a ``func.CloudEvent``; None if malformed."""
    event_type = getattr(event, "event_type", None) or getattr(event, "type", None)
    time = getattr(event, "event_time", None) or getattr(event, "time", None)
    try:
        data = event.get_json()
    except (AttributeError, ValueError):
        data = None
    event_id = getattr(event, "id", None)
    subject = getattr(event, "subject", None)
    if isinstance(data, Mapping) and not subject:
        subject = data.get("resourceUri")
    if not all(isinstance(v, str) and v for v in (event_id, event_type, subject)) or not isinstance(
        data, Mapping
    ):
        return None
    return ResourceEvent(event_id, event_type, subject, time if isinstance(time, datetime) else None, data)


def target_of(subject: str) -> ResourceId | None:
    """The target an event is about: a tag change's subject ends in /providers/Microsoft.Resources/tags/default."""
    if subject.lower().endswith(TAGS_SUFFIX):
        subject = subject[: -len(TAGS_SUFFIX)]
    try:
        return parse_resource_id(subject, "subject")
    except ExomiError:
        return None  # another resource type, a child resource (runbooks, jobs...) or not a resource id


def _dashless(object_id: Any) -> str | None:
    return object_id.replace("-", "").lower() if isinstance(object_id, str) and object_id else None


@dataclass(frozen=True)
class Caller:
    object_id: str | None  # without dashes, lower case (ARM writes evidence.principalId so)
    name: str  # what requests record as requested_by


def caller_of(data: Mapping[str, Any]) -> Caller:
    """Who made the change: the object id to compare with exomi's own, and a name to record (UPN or name
    for people, app id or object id for applications). No other claim is kept."""
    claims = data.get("claims") if isinstance(data.get("claims"), Mapping) else {}
    authorization = data.get("authorization") if isinstance(data.get("authorization"), Mapping) else {}
    evidence = authorization.get("evidence") if isinstance(authorization.get("evidence"), Mapping) else {}
    object_id = claims.get(OID_CLAIM) or claims.get("oid") or evidence.get("principalId")
    candidates = (
        claims.get(UPN_CLAIM),
        claims.get("upn"),
        claims.get("name"),
        claims.get("appid"),
        object_id,
    )
    name = next(
        (
            c
            for c in candidates
            if isinstance(c, str) and c and len(c) <= MAX_REQUESTED_BY and c.isprintable()
        ),
        "unknown caller",
    )
    return Caller(_dashless(object_id), name)


_own_object_id: str | None = None


async def own_object_id(app: ExomiApp) -> str | None:
    """exomi's own object id (dashless), once per process: the setting, else the oid claim of its own ARM
    token (an unverified decode is fine: exomi just got the token from its own identity endpoint)."""
    global _own_object_id
    if _own_object_id is None:
        if app.settings.principal_id:
            _own_object_id = _dashless(app.settings.principal_id)
        else:
            token = await app.clients.credential.get_token(app.settings.arm_scope)
            try:
                payload = token.token.split(".")[1]
                claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
                _own_object_id = _dashless(claims.get("oid"))
            except (IndexError, ValueError, AttributeError):
                log.warning("exomi's ARM token has no readable oid claim; set EXOMI_PRINCIPAL_ID")
    return _own_object_id


async def on_resource_event(event: Any) -> None:
    """The Event Grid trigger: acknowledge what exomi cannot use, act on the rest (see the module doc)."""
    resource_event = read_event(event)
    if resource_event is None:
        log.warning("ignoring a malformed event (id, type, subject or data missing)")
        return
    if resource_event.type.lower() not in HANDLED_TYPES:
        log.debug("ignoring event %s: type %s is not handled", resource_event.id, resource_event.type)
        return
    target = target_of(resource_event.subject)
    if target is None:
        # Other resource types and child resources (exomi's own runbooks, modules and jobs among them).
        log.debug(
            "ignoring event %s: %s is not a target exomi manages", resource_event.id, resource_event.subject
        )
        return
    service = await exomi_service()
    caller = caller_of(resource_event.data)
    if caller.object_id is not None and caller.object_id == await own_object_id(service.app):
        log.debug("ignoring event %s: caused by exomi itself", resource_event.id)
        return
    events = service.app.state.events
    if await events.handled(resource_event.id, resource_event.time):
        log.info("ignoring event %s: handled before (a repeated delivery)", resource_event.id)
        return
    outcome = await sync_target(service, target, requested_by=caller.name, channel=Channel.TAG)
    await events.remember(resource_event.id, resource_event.time, outcome.text)
    log.info("event %s (%s on %s): %s", resource_event.id, resource_event.type, target.canonical, outcome)


# ---------------------------------------------------------------------------------------------- desired state


@dataclass(frozen=True)
class Desired:
    """What a provisioned target should look like; the parts tags can express."""

    organization: str | None
    role: Role | None
    identity: str  # "system" or a user-assigned identity id, lower case
    runtime: Runtime | None

    @classmethod
    def of(cls, organization: str | None, role: Any, identity: str | None, runtime: Any) -> Desired:
        return cls(
            organization,
            Role(role) if role else None,
            (identity or "system").lower(),
            Runtime(runtime) if runtime else None,
        )

    @classmethod
    def of_request(cls, record: RequestRecord) -> Desired | None:
        """A request's desired state (None for a revoke: the target should have nothing)."""
        if record.operation is Operation.REVOKE:
            return None
        decision = record.decision or Decision(allowed=True)
        return cls.of(record.request.organization, decision.role, record.request.identity, decision.runtime)

    @classmethod
    def of_target(cls, record: TargetRecord) -> Desired:
        return cls.of(record.organization, record.role, record.identity, record.runtime)


ABSENT = None  # the desired state "exomi grants nothing here"


@dataclass(frozen=True)
class Outcome:
    """What syncing a target did: a sentence for the log, and the request it made, if any."""

    text: str
    request: RequestRecord | None = None

    def __str__(self) -> str:
        return self.text


async def sync_target(
    service: ExomiService,
    target: ResourceId,
    *,
    requested_by: str,
    channel: Channel,
) -> Outcome:
    """Bring exomi's requests in line with the target's tags (or its deletion); returns what it did.

    Raises TargetBusy when the desired state differs from a request that already runs."""
    for _ in range(_ATTEMPTS):
        try:
            return await _sync_once(service, target, requested_by, channel)
        except (Conflict, ConcurrencyError):
            continue  # another delivery or the worker moved the target on meanwhile: look again
    raise TargetBusy(
        f"{target.canonical} kept changing while exomi looked at it; Event Grid will deliver again"
    )


async def _sync_once(
    service: ExomiService, target: ResourceId, requested_by: str, channel: Channel
) -> Outcome:
    app = service.app
    resource, record, active = await asyncio.gather(
        app.arm.get_target(target.kind, resource_ref(target)),
        app.state.targets.get(target.key),
        app.state.active_request(target),
    )
    tag_managed = (record is not None and record.managed_by_tags) or (
        active is not None and active.channel is Channel.TAG
    )
    request = None
    if resource is None:
        wanted = ABSENT  # deleted: nothing of exomi's should stay behind, whoever asked for it
    elif not tags.opted_in(resource.tags):
        if not tag_managed:
            return Outcome("no opt-in tag and not managed by tags: nothing to do")
        wanted = ABSENT
    else:
        try:
            request = tags.desired_request(target, resource.tags, requested_by=requested_by, channel=channel)
        except tags.TagError as error:
            log.error("the tags of %s are invalid, nothing was requested: %s", target.canonical, error)
            return Outcome(f"invalid tag {error.tag}")
        decision = app.policy.evaluate(request)
        if not decision.allowed:
            log.error(
                "policy refuses what the tags of %s ask for (rule %s): %s",
                target.canonical,
                decision.rule,
                decision.reason,
            )
            return Outcome(f"refused by policy rule {decision.rule}")
        wanted = Desired.of(request.organization, decision.role, request.identity, decision.runtime)

    if active is not None:
        if Desired.of_request(active) == wanted:
            return Outcome(f"request {active.id} already works towards this state")
        if active.status is not RequestStatus.QUEUED or active.channel not in SUPERSEDABLE:
            raise TargetBusy(
                f"{target.canonical} has an active request {active.id} ({active.status.value}) for another "
                "desired state; Event Grid will deliver this event again once it has ended"
            )
        await _supersede(app, active, requested_by, channel)

    if wanted is ABSENT:
        if record is None or record.status is TargetStatus.REVOKED:
            return Outcome("nothing of exomi's to revoke")
        body: dict[str, Any] = {"target": target.canonical}
        return await _submit(service, service.submit_revoke, body, requested_by, channel, "revoke")
    if (
        record is not None
        and record.status is TargetStatus.PROVISIONED
        and Desired.of_target(record) == wanted
    ):
        return Outcome("no change")
    body = request.model_dump(mode="json", exclude={"requested_by", "channel"}, exclude_none=True)
    return await _submit(service, service.submit_provision, body, requested_by, channel, "provision")


async def _submit(
    service: ExomiService, submit, body: dict[str, Any], requested_by: str, channel: Channel, what: str
) -> Outcome:
    try:
        submission = await submit(body, requested_by=requested_by, channel=channel)
    except PolicyRefusal as refusal:
        log.error("policy refuses to %s %s (rule %s): %s", what, body["target"], refusal.rule, refusal.reason)
        return Outcome(f"refused by policy rule {refusal.rule}")
    # Tag requests wait a moment before they start, so that further tag writes can still replace them.
    settle = service.app.settings.engine.tag_settle if channel is Channel.TAG else 0
    await service.enqueue(submission.request, delay=timedelta(seconds=settle))
    return Outcome(f"{what} request {submission.request.id}", submission.request)


async def _supersede(app: ExomiApp, active: RequestRecord, requested_by: str, channel: Channel) -> None:
    """Cancel a request that has not started because the desired state changed again (ConcurrencyError
    if the worker has just picked it up: the caller looks again and finds it running)."""
    message = "superseded before it started: the desired state of the target changed again"
    await app.state.finish(active, RequestStatus.CANCELLED, message=message)
    await app.state.audit.append(
        AuditRecord(
            request_id=active.id,
            step="request",
            sequence=1,
            action="request cancelled: superseded by a newer desired state",
            target=active.target,
            before={"status": active.status.value},
            after={"status": RequestStatus.CANCELLED.value},
            requested_by=requested_by,
            channel=channel,
        )
    )
    log.info("request %s was superseded before it started", active.id)
