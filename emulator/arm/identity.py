"""The ``identity`` block of ARM resources (Automation accounts, VMs): system-assigned identities
become service principals, user-assigned ones are linked by resource id.

Enabling a system-assigned identity creates its service principal (visible to Graph after the
replication delay); removing it deletes the principal and its grants. Linking a user-assigned identity
needs ``Microsoft.ManagedIdentity/userAssignedIdentities/*/assign/action`` on it, as in ARM.
"""

from __future__ import annotations

from typing import Any

from emulator.arm.router import ArmContext
from emulator.http import ArmError
from emulator.tenant import ArmResource, ResourceIdentity

VALID_TYPES = {
    "none": (False, False),
    "systemassigned": (True, False),
    "userassigned": (False, True),
    "systemassigned,userassigned": (True, True),
}
UAI_TYPE = "Microsoft.ManagedIdentity/userAssignedIdentities"
ASSIGN_ACTION = "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action"


def apply_identity(ctx: ArmContext, resource: ArmResource, body: Any, *, patch: bool) -> None:
    """Applies a request's ``identity`` block to ``resource`` (PUT: the block is the whole truth;
    PATCH: ``userAssignedIdentities`` entries set to null are unlinked, others are added)."""
    if body is None:
        return
    if not isinstance(body, dict) or not isinstance(body.get("type", ""), str):
        raise ArmError(
            400, "InvalidIdentity", "The 'identity' property must be an object with a string 'type'."
        )
    raw_type = body.get("type") or "None"
    normalized = raw_type.replace(" ", "").lower()
    if normalized not in VALID_TYPES:
        raise ArmError(
            400,
            "InvalidIdentityType",
            f"Invalid identity type '{raw_type}'. The supported types are 'SystemAssigned', 'UserAssigned', "
            "'SystemAssigned, UserAssigned' and 'None'.",
        )
    want_system, want_user = VALID_TYPES[normalized]
    identity = resource.identity or ResourceIdentity()
    requested = body.get("userAssignedIdentities")
    if requested is not None and not isinstance(requested, dict):
        raise ArmError(
            400,
            "InvalidIdentity",
            "'identity.userAssignedIdentities' must be an object keyed by resource id.",
        )
    if want_user and not requested and not (patch and identity.user_assigned):
        raise ArmError(
            400,
            "BadRequest",
            "The identity type 'UserAssigned' requires at least one user assigned identity in 'userAssignedIdentities'.",
        )
    if requested and not want_user:
        raise ArmError(
            400,
            "BadRequest",
            f"'userAssignedIdentities' may only be given with identity type 'UserAssigned' (got '{raw_type}').",
        )

    linked = list(identity.user_assigned) if patch else []
    for uai_id, value in (requested or {}).items():
        if value is None:
            linked = [i for i in linked if i.lower() != uai_id.lower()]
            continue
        uai = ctx.tenant.get_resource(uai_id)
        if uai is None or uai.type.lower() != UAI_TYPE.lower():
            raise ArmError(
                400,
                "FailedIdentityOperation",
                f"Identity operation for resource '{resource.id}' failed with error 'Failed to perform resource identity "
                f"operation. Status: 'NotFound'. Response: 'Resource '{uai_id}' was not found.''.",
            )
        if ctx.tenant.authorize(ctx.caller.id, ASSIGN_ACTION, uai.id) is None:
            raise ArmError(
                403,
                "LinkedAuthorizationFailed",
                f"The client '{ctx.caller.id}' with object id '{ctx.caller.id}' has permission to perform action "
                f"on scope '{resource.id}'; however, it does not have permission to perform action(s) "
                f"'{ASSIGN_ACTION}' on the linked scope(s) '{uai.id}' (respectively) or the linked scope(s) are invalid.",
            )
        if not any(i.lower() == uai.key for i in linked):
            linked.append(uai.id)
    if not want_user:
        linked = []

    if want_system and not identity.system_principal_id:
        principal = ctx.tenant.create_managed_identity(resource.name, resource.id)
        identity.system_principal_id = principal.id
        identity.system_client_id = principal.app_id
    elif not want_system and identity.system_principal_id:
        ctx.tenant.delete_principal(identity.system_principal_id)
        identity.system_principal_id = identity.system_client_id = None
    identity.user_assigned = linked
    resource.identity = identity if (identity.system_principal_id or identity.user_assigned) else None


def identity_json(ctx_or_tenant, resource: ArmResource) -> dict[str, Any] | None:
    """The identity block as ARM returns it (ARM lower-cases ``resourcegroups`` in the UAI keys)."""
    tenant = getattr(ctx_or_tenant, "tenant", ctx_or_tenant)
    identity = resource.identity
    if identity is None:
        return {"type": "None"}
    body: dict[str, Any] = {"type": identity.type_string}
    if identity.system_principal_id:
        body["principalId"] = identity.system_principal_id
        body["tenantId"] = tenant.tenant_id
    if identity.user_assigned:
        entries = {}
        for uai_id in identity.user_assigned:
            uai = tenant.get_resource(uai_id)
            key = uai_id.replace("/resourceGroups/", "/resourcegroups/")
            entries[key] = (
                {"principalId": uai.properties["principalId"], "clientId": uai.properties["clientId"]}
                if uai
                else {}
            )
        body["userAssignedIdentities"] = entries
    return body


def linked_identities(tenant, resource: ArmResource) -> dict[str, str]:
    """client id -> principal id of the user-assigned identities linked to ``resource`` that still exist."""
    result: dict[str, str] = {}
    for uai_id in resource.identity.user_assigned if resource.identity else []:
        uai = tenant.get_resource(uai_id)
        if uai is not None:
            result[uai.properties["clientId"].lower()] = uai.properties["principalId"]
    return result
