"""The Event Grid channel of tag-driven automation: Microsoft.Resources events become tag writes that
the service brings in line with the target's tags (shared/tagging.py, ``ExomiService.sync_tags``).

An event only says that something happened to a resource; the service reads the resource as it is
now. Who asks is the writer the event names (``caller_of``: its object id, name and the Azure role ARM
allowed the write with).

Events this code cannot use (other event types, other resource types, child resources, events caused
by exomi's own identity, malformed ones) are acknowledged and logged, never raised: Event Grid would
otherwise retry them for a day.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared import telemetry
from shared.errors import ExomiError
from shared.ids import ResourceId, object_id_of, parse_resource_id
from shared.models import (
    MAX_REQUESTED_BY,
    Requester,
    RequesterKind,
)
from shared.runtime import exomi_service
from shared.tagging import TagWrite

log = logging.getLogger("exomi.events")

WRITE_SUCCESS = "Microsoft.Resources.ResourceWriteSuccess"
DELETE_SUCCESS = "Microsoft.Resources.ResourceDeleteSuccess"
HANDLED_TYPES = {WRITE_SUCCESS.lower(), DELETE_SUCCESS.lower()}
TAGS_SUFFIX = "/providers/microsoft.resources/tags/default"
OID_CLAIM = "http://schemas.microsoft.com/identity/claims/objectidentifier"
UPN_CLAIM = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"


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
    event_id, event_type, subject = _text(event_id), _text(event_type), _text(subject)
    if event_id is None or event_type is None or subject is None or not isinstance(data, Mapping):
        return None
    return ResourceEvent(event_id, event_type, subject, time if isinstance(time, datetime) else None, data)


def _text(value: Any) -> str | None:
    """A non-empty string; None for anything else (event fields come from outside)."""
    return value if isinstance(value, str) and value else None


def target_of(subject: str) -> ResourceId | None:
    """The target an event is about: a tag change's subject ends in /providers/Microsoft.Resources/tags/default."""
    if subject.lower().endswith(TAGS_SUFFIX):
        subject = subject[: -len(TAGS_SUFFIX)]
    try:
        return parse_resource_id(subject, "subject")
    except ExomiError:
        return None  # another resource type, a child resource (runbooks, jobs...) or not a resource id


def caller_of(data: Mapping[str, Any]) -> Requester:
    """Who made the change, as ARM says in the event: the object id (claims, else the evidence), a name
    to record (UPN or name for people, app id or object id for applications) and the Azure role whose
    assignment allowed the write (``authorization.evidence``). No other claim is kept."""
    claims = _mapping(data.get("claims"))
    authorization = _mapping(data.get("authorization"))
    evidence = _mapping(authorization.get("evidence"))
    object_id = object_id_of(claims.get(OID_CLAIM) or claims.get("oid") or evidence.get("principalId"))
    candidates = (
        claims.get(UPN_CLAIM),
        claims.get("upn"),
        claims.get("name"),
        claims.get("appid"),
        object_id,
    )
    name = next((c for c in candidates if _printable(c)), None)
    role = evidence.get("role") if _printable(evidence.get("role")) else None
    scope = evidence.get("roleAssignmentScope") if _printable(evidence.get("roleAssignmentScope")) else None
    operation = data.get("operationName") if _printable(data.get("operationName")) else None
    return Requester(
        kind=RequesterKind.ARM,
        name=name or "unknown caller",
        principal_id=object_id,
        principal_name=name,
        azure_role=role,
        azure_role_scope=scope,
        write_operation=operation,
    )


def _mapping(value: Any) -> Mapping[str, Any]:
    """An object of the event's data; empty when it is missing or not an object."""
    return value if isinstance(value, Mapping) else {}


def _printable(value: Any) -> bool:
    return isinstance(value, str) and bool(value) and len(value) <= MAX_REQUESTED_BY and value.isprintable()


@telemetry.traced("exomi.event")
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
    if caller.principal_id is not None and caller.principal_id == await service.own_object_id():
        log.debug("ignoring event %s: caused by exomi itself", resource_event.id)
        return
    if await service.event_handled(resource_event.id, resource_event.time):
        log.info("ignoring event %s: handled before (a repeated delivery)", resource_event.id)
        return
    outcome = await service.sync_tags(target, TagWrite(caller, resource_event.id, resource_event.time))
    await service.remember_event(resource_event.id, resource_event.time, outcome.text)
    log.info("event %s (%s on %s): %s", resource_event.id, resource_event.type, target.canonical, outcome)
