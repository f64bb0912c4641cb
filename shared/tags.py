"""Tags as the desired state of a target (docs/TAGS.md).

An admin opts a resource in with ``exo-organization`` and may refine the request with ``exo-role``,
``exo-identity`` and ``exo-runtime``. Tag names are case-insensitive (as in ARM); the values go
through ``ProvisionRequest.parse`` like any other channel's input, and a problem is reported as a
``TagError`` naming the tag.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.errors import InputError, TagError
from shared.ids import ResourceId, TargetKind
from shared.models import SYSTEM_IDENTITY, Channel, ProvisionRequest

ORGANIZATION = (
    "exo-organization"  # the opt-in: the Exchange Online organization, e.g. contoso.onmicrosoft.com
)
ROLE = "exo-role"  # an Entra role display name; default: the policy's default_role
IDENTITY = "exo-identity"  # "system" (default), a user-assigned identity's resource id, or its name
RUNTIME = "exo-runtime"  # 5.1 (default), 7.2 or 7.4
EXPIRES = "exo-expires"  # an ISO 8601 duration (P30D) or a UTC date (2027-01-31); default: until revoked
HYBRID_WORKER_GROUP = "exo-hybrid-worker-group"  # Automation accounts: the runbooks run on this group
TAG_OF_FIELD = {
    "organization": ORGANIZATION,
    "role": ROLE,
    "identity": IDENTITY,
    "runtime": RUNTIME,
    "expires": EXPIRES,
    "hybrid_worker_group": HYBRID_WORKER_GROUP,
}


def tag_value(tags: Mapping[str, str], name: str) -> str | None:
    """The value of a tag whatever the casing of its name (ARM treats tag names case-insensitively)."""
    return next((value for key, value in tags.items() if key.lower() == name), None)


def opted_in(tags: Mapping[str, str]) -> bool:
    return tag_value(tags, ORGANIZATION) is not None


def _identity(target: ResourceId, value: str) -> str:
    """``system``, a resource id, or the name of a user-assigned identity in the target's resource group."""
    if value.strip().lower() == SYSTEM_IDENTITY or value.strip().startswith("/"):
        return value.strip()
    return f"{target.resource_group_id}/providers/{TargetKind.USER_ASSIGNED_IDENTITY.value}/{value.strip()}"


def desired_request(
    target: ResourceId, tags: Mapping[str, str], *, requested_by: str, channel: Channel = Channel.TAG
) -> ProvisionRequest | None:
    """The provision request the tags ask for; None when the resource is not opted in. Raises TagError."""
    organization = tag_value(tags, ORGANIZATION)
    if organization is None:
        return None
    body: dict[str, Any] = {
        "target": target.canonical,
        "organization": organization,
        "requested_by": requested_by,
        "channel": channel.value,
    }
    for field, tag in TAG_OF_FIELD.items():
        if field in ("organization", "identity"):
            continue
        value = tag_value(tags, tag)
        if value is not None:
            body[field] = value
    identity = tag_value(tags, IDENTITY)
    if identity is not None:
        body["identity"] = _identity(target, identity)
    try:
        return ProvisionRequest.parse(body)
    except InputError as error:
        field = error.field.split(".", 1)[0]
        raise TagError(TAG_OF_FIELD.get(field, field), error.reason) from None
