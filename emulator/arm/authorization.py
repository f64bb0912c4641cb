"""Microsoft.Authorization (api-version 2022-04-01): role assignments and the built-in role definitions,
at the root scope ``/``, subscriptions, resource groups and resources (nested provider paths included).

Role assignments live in ``tenant.rbac``, the store ARM's own authorization check reads
(``Tenant.authorize``) and ``/_control/rbac`` writes, so an assignment created here changes what its
principal may do at once, and seeded ones are listed here. Role definitions are the built-in roles of
``emulator/rbac.py`` and the tenant's custom roles (PUT creates or updates one: 201; DELETE: 200, 204 when
absent, 409 while it is assigned).

Behaviour and sources are in emulator/README.md ("Microsoft.Authorization"). In short:
- ``$filter`` (parsed with regular expressions, never evaluated): ``atScope()`` (assignments at the
  scope and above), ``assignedTo('{id}')`` and ``principalId eq '{id}'`` (the principal's assignments
  at, above and below the scope), ``atScope() and assignedTo('{id}')``; no filter: every assignment at,
  above and below the scope. Anything else: 400 ``UnsupportedQuery``.
- PUT: 201 for a new name, 200 for the same assignment again; 409 ``RoleAssignmentExists`` for the same
  principal, role and scope under another name; 400 ``RoleAssignmentUpdateNotPermitted`` for a name that
  already names something else; 400 ``RoleDefinitionDoesNotExist``, ``PrincipalNotFound``,
  ``UnmatchedPrincipalType``. DELETE: 200 with the assignment, 204 when there is none.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web

from emulator.arm import api_versions
from emulator.arm.router import ArmContext, ArmRouter, arm_json, not_found
from emulator.http import ArmError
from emulator.rbac import BUILT_IN_ROLES, RoleDefinition, role_by_id, scope_contains
from emulator.tenant import CustomRole, RbacAssignment, iso

PROVIDER = "Microsoft.Authorization"
ASSIGNMENT_TYPE = "Microsoft.Authorization/roleAssignments"
DEFINITION_TYPE = "Microsoft.Authorization/roleDefinitions"
PRINCIPAL_TYPES = ("User", "Group", "ServicePrincipal", "ForeignGroup")  # the spec's PrincipalType enum
# Every principal of the emulator is a service principal (no users, no groups).
DIRECTORY_PRINCIPAL_TYPE = "ServicePrincipal"
PAGE_SIZE = 100
# Built-in roles' createdOn/updatedOn (Reader's real createdOn; the rest is a guess).
BUILT_IN_CREATED_ON = "2015-02-02T21:55:09.8806423Z"
BUILT_IN_UPDATED_ON = "2021-11-11T20:13:47.8628684Z"

_ROLE_DEFINITION_ID = re.compile(
    r"^(?:/subscriptions/(?P<sub>[^/]+))?/providers/Microsoft\.Authorization/roleDefinitions/(?P<guid>[^/]+)$",
    re.IGNORECASE,
)
_QUOTED = r"'((?:[^']|'')*)'"
_AT_SCOPE = re.compile(r"atScope\(\s*\)", re.IGNORECASE)
_ASSIGNED_TO = re.compile(r"assignedTo\(\s*" + _QUOTED + r"\s*\)", re.IGNORECASE)
_PRINCIPAL_EQ = re.compile(r"principalId\s+eq\s+" + _QUOTED, re.IGNORECASE)
_ROLE_NAME_EQ = re.compile(r"roleName\s+eq\s+" + _QUOTED, re.IGNORECASE)
_TYPE_EQ = re.compile(r"type\s+eq\s+" + _QUOTED, re.IGNORECASE)
_AT_SCOPE_AND_BELOW = re.compile(r"atScopeAndBelow\(\s*\)", re.IGNORECASE)
_AND = re.compile(r"\s+and\s+", re.IGNORECASE)


# --------------------------------------------------------------------------------------------------
# Scopes


def _dashless(guid: str) -> str:
    return guid.replace("-", "")


def _request_scope(ctx: ArmContext) -> str:
    """The scope the request names (``/`` for the root-scope routes)."""
    return ctx.params.get("scope") or "/"


def _same_scope(a: str, b: str) -> bool:
    return a.rstrip("/").lower() == b.rstrip("/").lower()


def _invalid_scope(scope: str) -> ArmError:
    # Guess: the code and text for a scope that is neither the root, a subscription, a resource group
    # nor an emulated resource (management groups are not emulated).
    return ArmError(
        400, "InvalidScope", f"The scope '{scope}' is not valid for role assignments or role definitions."
    )


def canonical_scope(ctx: ArmContext, scope: str) -> str:
    """The scope in its canonical casing; 404 when its resource group or resource does not exist (the
    router has already answered 404 SubscriptionNotFound for unknown subscriptions)."""
    parts = [p for p in scope.split("/") if p]
    if not parts:
        return "/"
    lowered = [p.lower() for p in parts]
    tenant = ctx.tenant
    if lowered[0] != "subscriptions" or len(parts) < 2:
        raise _invalid_scope(scope)
    subscription = tenant.subscriptions[lowered[1]]
    if len(parts) == 2:
        return f"/subscriptions/{subscription.id}"
    resource = tenant.get_resource(scope)
    if lowered[2] == "resourcegroups" and len(parts) >= 4:
        resource_group = tenant.get_resource("/" + "/".join(parts[:4]))
        if resource_group is None:
            raise ArmError(404, "ResourceGroupNotFound", f"Resource group '{parts[3]}' could not be found.")
        if len(parts) == 4:
            return resource_group.id
        if resource is not None:
            return resource.id
        provider_path = parts[5:]
        if lowered[4] == "providers" and len(provider_path) >= 3 and len(provider_path) % 2 == 1:
            resource_type = "/".join([provider_path[0], *provider_path[1::2]])
            raise not_found(resource_type, "/".join(provider_path[2::2]), parts[3])
        raise _invalid_scope(scope)
    if resource is not None:
        return resource.id
    raise _invalid_scope(scope)


def _subscription_of(ctx: ArmContext, scope: str) -> str | None:
    parts = [p for p in scope.split("/") if p]
    if len(parts) >= 2 and parts[0].lower() == "subscriptions":
        subscription = ctx.tenant.subscriptions.get(parts[1].lower())
        return subscription.id if subscription else parts[1]
    return None


def role_definition_id(ctx: ArmContext, role: RoleDefinition, *scopes: str) -> str:
    """``/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{guid}`` with the
    subscription of the first scope that has one, else the tenant-level form."""
    subscription = next((s for s in (_subscription_of(ctx, scope) for scope in scopes) if s), None)
    prefix = f"/subscriptions/{subscription}" if subscription else ""
    return f"{prefix}/providers/{DEFINITION_TYPE}/{role.id}"


# --------------------------------------------------------------------------------------------------
# JSON


def assignment_json(ctx: ArmContext, assignment: RbacAssignment, request_scope: str) -> dict[str, Any]:
    scope = assignment.scope if assignment.scope.strip("/") else "/"
    prefix = "" if scope == "/" else scope.rstrip("/")
    updated_at = assignment.updated_at or assignment.created_at
    return {
        "properties": {
            "roleDefinitionId": role_definition_id(ctx, assignment.role, request_scope, scope),
            "principalId": assignment.principal_id,
            "principalType": assignment.principal_type,
            "scope": scope,
            "condition": assignment.condition,
            "conditionVersion": assignment.condition_version,
            "createdOn": iso(assignment.created_at),
            "updatedOn": iso(updated_at),
            "createdBy": assignment.created_by,
            "updatedBy": assignment.updated_by,
            "delegatedManagedIdentityResourceId": assignment.delegated_managed_identity_resource_id,
            "description": assignment.description,
        },
        "id": f"{prefix}/providers/{ASSIGNMENT_TYPE}/{assignment.id}",
        "type": ASSIGNMENT_TYPE,
        "name": assignment.id,
    }


def _role(ctx: ArmContext, guid: str) -> RoleDefinition | None:
    """A built-in role or one of the tenant's custom roles, by GUID."""
    role = role_by_id(guid)
    if role is None:
        try:
            custom = ctx.tenant.custom_roles.get(str(uuid.UUID(guid)))
        except ValueError:
            return None
        role = custom.role if custom else None
    return role


def definition_json(ctx: ArmContext, role: RoleDefinition, request_scope: str) -> dict[str, Any]:
    custom = ctx.tenant.custom_roles.get(role.id)
    if custom is not None:
        return {
            "properties": {
                "roleName": role.name,
                "type": "CustomRole",
                "description": role.description,
                "assignableScopes": list(custom.assignable_scopes),
                "permissions": [
                    {
                        "actions": list(role.actions),
                        "notActions": list(role.not_actions),
                        "dataActions": [],
                        "notDataActions": [],
                    }
                ],
                "createdOn": iso(custom.created_at),
                "updatedOn": iso(custom.updated_at),
                "createdBy": custom.created_by,
                "updatedBy": custom.updated_by,
            },
            "id": role_definition_id(ctx, role, request_scope),
            "type": DEFINITION_TYPE,
            "name": role.id,
        }
    return {
        "properties": {
            "roleName": role.name,
            "type": "BuiltInRole",
            "description": role.description,
            "assignableScopes": ["/"],
            "permissions": [
                {
                    "actions": list(role.actions),
                    "notActions": list(role.not_actions),
                    "dataActions": [],
                    "notDataActions": [],
                }
            ],
            "createdOn": BUILT_IN_CREATED_ON,
            "updatedOn": BUILT_IN_UPDATED_ON,
            "createdBy": None,
            "updatedBy": None,
        },
        "id": role_definition_id(ctx, role, request_scope),
        "type": DEFINITION_TYPE,
        "name": role.id,
    }


def _paged(ctx: ArmContext, items: list[dict]) -> web.Response:
    """An ARM list page whose absolute ``nextLink`` keeps the request's ``$filter``."""
    query = ctx.request.query
    raw = query.get("$skiptoken", query.get("$skipToken", "0"))
    try:
        start = int(raw)
        if start < 0:
            raise ValueError(raw)
    except ValueError as exc:
        raise ArmError(400, "InvalidSkipToken", "The skip token is invalid.") from exc
    next_link = None
    if start + PAGE_SIZE < len(items):
        params = {"api-version": ctx.api_version}
        if query.get("$filter"):
            params["$filter"] = query["$filter"]
        params["$skiptoken"] = str(start + PAGE_SIZE)
        next_link = ctx.absolute(f"{ctx.request.path}?{urlencode(params, quote_via=quote)}")
    return arm_json({"value": items[start : start + PAGE_SIZE], "nextLink": next_link})


# --------------------------------------------------------------------------------------------------
# $filter


def _unquote(value: str) -> str:
    return value.replace("''", "'")


def _clauses(text: str) -> list[str]:
    """``text`` split at top-level ``and`` (not inside a quoted value)."""
    clauses: list[str] = []
    start = index = 0
    in_quote = False
    while index < len(text):
        char = text[index]
        if char == "'":
            in_quote = not in_quote  # an escaped '' toggles twice
        elif not in_quote and char.isspace():
            match = _AND.match(text, index)
            if match:
                clauses.append(text[start:index])
                start = index = match.end()
                continue
        index += 1
    clauses.append(text[start:])
    return [c.strip() for c in clauses]


@dataclass(frozen=True)
class AssignmentFilter:
    at_scope: bool = False
    principal_id: str | None = None

    def matches(self, assignment: RbacAssignment, scope: str) -> bool:
        if self.principal_id is not None and assignment.principal_id.lower() != self.principal_id.lower():
            return False
        at_or_above = scope_contains(assignment.scope, scope)
        if self.at_scope:
            return at_or_above
        return at_or_above or scope_contains(scope, assignment.scope)


def parse_assignment_filter(raw: str | None) -> AssignmentFilter:
    """The role assignment filters ARM supports: ``atScope()``, ``assignedTo('{id}')``,
    ``principalId eq '{id}'`` and ``atScope() and assignedTo('{id}')``; 400 for anything else."""
    if raw is None or not raw.strip():
        return AssignmentFilter()
    at_scope = 0
    assigned_to: list[str] = []
    principal_eq: list[str] = []
    for clause in _clauses(raw.strip()):
        if _AT_SCOPE.fullmatch(clause):
            at_scope += 1
        elif match := _ASSIGNED_TO.fullmatch(clause):
            assigned_to.append(_unquote(match.group(1)))
        elif match := _PRINCIPAL_EQ.fullmatch(clause):
            principal_eq.append(_unquote(match.group(1)))
        else:
            raise _unsupported_assignment_filter(raw)
    shape = (at_scope, len(assigned_to), len(principal_eq))
    if shape == (1, 0, 0):
        return AssignmentFilter(at_scope=True)
    if shape == (0, 1, 0):
        return AssignmentFilter(principal_id=assigned_to[0])
    if shape == (0, 0, 1):
        return AssignmentFilter(principal_id=principal_eq[0])
    if shape == (1, 1, 0):
        return AssignmentFilter(at_scope=True, principal_id=assigned_to[0])
    # atScope() with principalId eq is an API limitation (azure-cli role/custom.py).
    raise _unsupported_assignment_filter(raw)


def _unsupported_assignment_filter(raw: str) -> ArmError:
    return ArmError(
        400,
        "UnsupportedQuery",
        f"The filter '{raw}' is not supported. Supported filters are either 'atScope()' or 'principalId eq '{{value}}' "
        "or assignedTo('{value}')'.",
    )


def _definition_filter(raw: str | None, custom_ids: frozenset[str] = frozenset()):
    """``roleName eq '{name}'``, ``type eq '{type}'`` or ``atScopeAndBelow()``: a predicate on roles."""
    if raw is None or not raw.strip():
        return lambda role: True
    text = raw.strip()
    if match := _ROLE_NAME_EQ.fullmatch(text):
        wanted = _unquote(match.group(1)).lower()
        return lambda role: role.name.lower() == wanted
    if match := _TYPE_EQ.fullmatch(text):
        wanted = _unquote(match.group(1)).lower()
        return lambda role: wanted == ("customrole" if role.id in custom_ids else "builtinrole")
    if _AT_SCOPE_AND_BELOW.fullmatch(text):
        return lambda role: True  # the list holds the roles assignable at or below the scope
    # Guess: code and text (the real service's answer for an unsupported role definition filter is unknown).
    raise ArmError(
        400,
        "UnsupportedQuery",
        f"The filter '{raw}' is not supported. Supported filters are 'roleName eq '{{value}}'', "
        "'type eq '{value}'' and 'atScopeAndBelow()'.",
    )


# --------------------------------------------------------------------------------------------------
# Role assignments


def _find_assignment(ctx: ArmContext, scope: str) -> RbacAssignment | None:
    name = ctx.params["roleAssignmentName"].lower()
    assignment = ctx.tenant.rbac.get(name)
    if assignment is None:
        try:
            assignment = ctx.tenant.rbac.get(str(uuid.UUID(name)))
        except ValueError:
            return None
    if assignment is None or not _same_scope(assignment.scope, scope):
        return None
    return assignment


async def list_assignments(ctx: ArmContext) -> web.Response:
    scope = canonical_scope(ctx, _request_scope(ctx))
    flt = parse_assignment_filter(ctx.request.query.get("$filter"))
    items = [assignment_json(ctx, a, scope) for a in ctx.tenant.rbac.values() if flt.matches(a, scope)]
    return _paged(ctx, items)


async def get_assignment(ctx: ArmContext) -> web.Response:
    scope = canonical_scope(ctx, _request_scope(ctx))
    assignment = _find_assignment(ctx, scope)
    if assignment is None:
        # The message is a guess; the code is the service's.
        raise ArmError(
            404,
            "RoleAssignmentNotFound",
            f"The role assignment '{ctx.params['roleAssignmentName']}' is not found.",
        )
    return arm_json(assignment_json(ctx, assignment, scope))


async def delete_assignment(ctx: ArmContext) -> web.Response:
    scope = canonical_scope(ctx, _request_scope(ctx))
    assignment = _find_assignment(ctx, scope)
    if assignment is None:
        ctx.emit_event = False
        return web.Response(status=204)
    body = assignment_json(ctx, assignment, scope)
    ctx.tenant.rbac.pop(assignment.id, None)
    return arm_json(body)


def _request_content_error(message: str) -> ArmError:
    return ArmError(
        400,
        "InvalidRequestContent",
        f"The request content was invalid and could not be deserialized: '{message}'.",
    )


def _requested_role(ctx: ArmContext, value: Any) -> RoleDefinition:
    if not isinstance(value, str) or not (match := _ROLE_DEFINITION_ID.match(value.strip())):
        # Guess: code and text for a roleDefinitionId that is not a role definition id.
        raise ArmError(400, "InvalidRoleDefinitionId", f"The role definition ID '{value}' is not valid.")
    subscription = match.group("sub")
    role = _role(ctx, match.group("guid"))
    if role is None or (subscription is not None and subscription.lower() not in ctx.tenant.subscriptions):
        raise ArmError(
            400,
            "RoleDefinitionDoesNotExist",
            f"The specified role definition with ID '{_dashless(match.group('guid'))}' does not exist.",
        )
    return role


def _requested_principal(ctx: ArmContext, value: Any, principal_type: str | None) -> tuple[str, str]:
    """The principal's object id (canonical) and its type, checked against the directory."""
    try:
        principal_id = str(uuid.UUID(str(value)))
    except ValueError:
        # Guess: code and text for a principalId that is not a GUID.
        raise ArmError(
            400,
            "InvalidPrincipalId",
            f"The principal ID '{value}' is not valid. The principal ID must be a GUID.",
        ) from None
    principal = ctx.tenant.visible_principal(principal_id)
    if principal is None:
        if principal_type == DIRECTORY_PRINCIPAL_TYPE:
            # ARM does not fail an assignment to a service principal that the directory does not know
            # (yet): the documented way round the replication delay of a new managed identity.
            return principal_id, principal_type
        raise ArmError(
            400,
            "PrincipalNotFound",
            f"Principal {_dashless(principal_id)} does not exist in the directory {ctx.tenant.tenant_id}. Check that you "
            "have the correct principal ID. If you are creating this principal and then immediately assigning a "
            "role, this error might be related to a replication delay. In this case, set the role assignment "
            "principalType property to a value, such as ServicePrincipal, User, or Group.  See "
            "https://aka.ms/docs-principaltype",
        )
    if principal_type is not None and principal_type != DIRECTORY_PRINCIPAL_TYPE:
        # The service's text, typo and space included.
        raise ArmError(
            400,
            "UnmatchedPrincipalType",
            f"The PrincipalId '{_dashless(principal_id)}' has type '{DIRECTORY_PRINCIPAL_TYPE}' , which is different "
            f"from specified PrinciaplType '{principal_type}'.",
        )
    return principal_id, DIRECTORY_PRINCIPAL_TYPE


def _optional_string(properties: dict[str, Any], key: str) -> str | None:
    value = properties.get(key)
    if value is not None and not isinstance(value, str):
        raise _request_content_error(f"'{key}' must be a string")
    return value


async def put_assignment(ctx: ArmContext) -> web.Response:
    raw_name = ctx.params["roleAssignmentName"]
    try:
        name = str(uuid.UUID(raw_name))
    except ValueError:
        # The code is the service's; the text is a guess.
        raise ArmError(
            400,
            "InvalidRoleAssignmentId",
            f"The role assignment ID '{raw_name}' is not valid. The role assignment ID must be a GUID.",
        ) from None
    scope = canonical_scope(ctx, _request_scope(ctx))
    body = await ctx.json_object()
    properties = body.get("properties")
    if not isinstance(properties, dict):
        raise _request_content_error("Required property 'properties' not found in JSON")
    for required in ("roleDefinitionId", "principalId"):
        if properties.get(required) in (None, ""):
            raise _request_content_error(
                f"Required property '{required}' not found in JSON. Path 'properties'"
            )
    requested_type = _optional_string(properties, "principalType")
    if requested_type is not None:
        requested_type = next((t for t in PRINCIPAL_TYPES if t.lower() == requested_type.lower()), None)
        if requested_type is None:
            raise _request_content_error(
                f"Error converting value \"{properties['principalType']}\" to type 'PrincipalType'. "
                "Path 'properties.principalType'"
            )
    role = _requested_role(ctx, properties["roleDefinitionId"])
    principal_id, principal_type = _requested_principal(ctx, properties["principalId"], requested_type)
    description = _optional_string(properties, "description")
    condition = _optional_string(properties, "condition")
    condition_version = _optional_string(properties, "conditionVersion")
    if condition and not condition_version:
        condition_version = "2.0"  # the only version the spec accepts
    delegated = _optional_string(properties, "delegatedManagedIdentityResourceId")

    tenant = ctx.tenant
    existing = tenant.rbac.get(name)
    if existing is not None:
        if (
            not _same_scope(existing.scope, scope)
            or existing.principal_id.lower() != principal_id
            or existing.role is not role
        ):
            raise ArmError(
                400,
                "RoleAssignmentUpdateNotPermitted",
                "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.",
            )
        existing.description = description
        existing.condition = condition
        existing.condition_version = condition_version
        existing.delegated_managed_identity_resource_id = delegated
        if requested_type is not None:
            existing.principal_type = principal_type
        existing.updated_at = time.time()
        existing.updated_by = ctx.caller.id
        return arm_json(assignment_json(ctx, existing, scope), 200)
    duplicate = next(
        (
            a
            for a in tenant.rbac.values()
            if a.principal_id.lower() == principal_id and a.role is role and _same_scope(a.scope, scope)
        ),
        None,
    )
    if duplicate is not None:
        raise ArmError(
            409,
            "RoleAssignmentExists",
            f"The role assignment already exists. The ID of the existing role assignment is {_dashless(duplicate.id)}.",
        )
    assignment = RbacAssignment(
        id=name,
        principal_id=principal_id,
        role=role,
        scope=scope,
        principal_type=principal_type,
        created_by=ctx.caller.id,
        updated_by=ctx.caller.id,
        description=description,
        condition=condition,
        condition_version=condition_version,
        delegated_managed_identity_resource_id=delegated,
    )
    tenant.rbac[name] = assignment
    return arm_json(assignment_json(ctx, assignment, scope), 201)


# --------------------------------------------------------------------------------------------------
# Role definitions


async def list_definitions(ctx: ArmContext) -> web.Response:
    scope = canonical_scope(ctx, _request_scope(ctx))
    customs = ctx.tenant.custom_roles
    wanted = _definition_filter(ctx.request.query.get("$filter"), frozenset(customs))
    # Custom roles assignable at the scope, above it or below it (the portal's list at a scope).
    visible = [
        c.role
        for c in customs.values()
        if any(scope_contains(a, scope) or scope_contains(scope, a) for a in c.assignable_scopes)
    ]
    items = [
        definition_json(ctx, role, scope) for role in [*BUILT_IN_ROLES.values(), *visible] if wanted(role)
    ]
    return _paged(ctx, items)


def _string_list(value: Any, name: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _request_content_error(f"Error converting value to type 'List[string]'. Path '{name}'")
    return list(value)


async def put_definition(ctx: ArmContext) -> web.Response:
    """A custom role (RoleDefinitions_CreateOrUpdate: 201, create and update alike)."""
    scope = canonical_scope(ctx, _request_scope(ctx))
    raw = ctx.params["roleDefinitionId"]
    try:
        guid = str(uuid.UUID(raw))
    except ValueError:
        # Guess: code and text for a role definition name that is not a GUID.
        raise ArmError(
            400, "InvalidRoleDefinitionId", f"The role definition ID '{raw}' is not valid."
        ) from None
    if role_by_id(guid) is not None:
        # Guess: the text; built-in roles cannot be changed.
        raise ArmError(
            403, "AuthorizationFailed", f"The built-in role definition '{guid}' cannot be modified."
        )
    body = await ctx.json_object()
    properties = body.get("properties")
    if not isinstance(properties, dict):
        raise _request_content_error("Required property 'properties' not found in JSON")
    name = properties.get("roleName")
    if not isinstance(name, str) or not name.strip():
        raise _request_content_error("Required property 'roleName' not found in JSON. Path 'properties'")
    permissions = properties.get("permissions") or []
    if not isinstance(permissions, list) or not all(isinstance(p, dict) for p in permissions):
        raise _request_content_error(
            "Error converting value to type 'List[Permission]'. Path 'properties.permissions'"
        )
    actions = [
        a for p in permissions for a in _string_list(p.get("actions"), "properties.permissions.actions")
    ]
    not_actions = [
        a for p in permissions for a in _string_list(p.get("notActions"), "properties.permissions.notActions")
    ]
    assignable = _string_list(properties.get("assignableScopes"), "properties.assignableScopes")
    if not assignable:
        # The service's code (learn: custom roles need at least one assignable scope); text guess.
        raise ArmError(
            400, "InvalidAssignableScopes", "The role definition must have at least one assignable scope."
        )
    canonical = [canonical_scope(ctx, a) for a in assignable]
    if not any(scope_contains(a, scope) for a in canonical):
        # Guess: code and text for a request scope outside the role's assignable scopes.
        raise ArmError(
            400,
            "RoleDefinitionScopeNotAssignable",
            f"The scope '{scope}' is not one of the role's assignable scopes.",
        )
    tenant = ctx.tenant
    if any(
        c.role.name.lower() == name.lower() and c.role.id != guid for c in tenant.custom_roles.values()
    ) or any(r.name.lower() == name.lower() for r in BUILT_IN_ROLES.values()):
        # The service's code; the text as the portal shows it (from memory: guess).
        raise ArmError(
            409,
            "RoleDefinitionWithSameNameExists",
            "A custom role with the same name already exists in this directory. Use a different name.",
        )
    role = RoleDefinition(
        guid, name, tuple(actions), tuple(not_actions), str(properties.get("description") or "")
    )
    existing = tenant.custom_roles.get(guid)
    if existing is None:
        tenant.custom_roles[guid] = CustomRole(
            role, canonical, created_by=ctx.caller.id, updated_by=ctx.caller.id
        )
    else:
        for assignment in tenant.rbac.values():
            if assignment.role is existing.role:
                assignment.role = role  # an assignment grants what its role allows now
        existing.role, existing.assignable_scopes = role, canonical
        existing.updated_at, existing.updated_by = time.time(), ctx.caller.id
    return arm_json(definition_json(ctx, role, scope), 201)


async def delete_definition(ctx: ArmContext) -> web.Response:
    scope = canonical_scope(ctx, _request_scope(ctx))
    try:
        guid = str(uuid.UUID(ctx.params["roleDefinitionId"]))
    except ValueError:
        guid = ""
    custom = ctx.tenant.custom_roles.get(guid)
    if custom is None:
        ctx.emit_event = False
        return web.Response(status=204)
    if any(a.role is custom.role for a in ctx.tenant.rbac.values()):
        # The service's code for a role that is still assigned (text guess).
        raise ArmError(
            409,
            "RoleDefinitionHasAssignments",
            "The role definition has role assignments; remove them first.",
        )
    answer = definition_json(ctx, custom.role, scope)
    del ctx.tenant.custom_roles[guid]
    return arm_json(answer)


async def get_definition(ctx: ArmContext) -> web.Response:
    scope = canonical_scope(ctx, _request_scope(ctx))
    requested = ctx.params["roleDefinitionId"]
    role = _role(ctx, requested)
    if role is None:
        raise ArmError(
            404,
            "RoleDefinitionDoesNotExist",
            f"The specified role definition with ID '{requested}' does not exist.",
        )
    return arm_json(definition_json(ctx, role, scope))


def register(router: ArmRouter) -> None:
    assignments = "providers/Microsoft.Authorization/roleAssignments"
    definitions = "providers/Microsoft.Authorization/roleDefinitions"
    assignment_args = {
        "api_versions": api_versions.AUTHORIZATION,
        "provider": PROVIDER,
        "resource_type": "roleAssignments",
    }
    definition_args = {
        **assignment_args,
        "resource_type": "roleDefinitions",
        "api_versions": api_versions.AUTHORIZATION_ROLE_DEFINITIONS,
    }
    action = "Microsoft.Authorization/roleAssignments"
    # "{scope*}" needs at least one segment: the root scope "/" has routes of its own.
    for prefix in ("{scope*}/", "/"):
        collection = prefix + assignments
        item = collection + "/{roleAssignmentName}"
        router.add("GET", collection, list_assignments, action=f"{action}/read", **assignment_args)
        router.add("GET", item, get_assignment, action=f"{action}/read", **assignment_args)
        router.add("PUT", item, put_assignment, action=f"{action}/write", **assignment_args)
        router.add("DELETE", item, delete_assignment, action=f"{action}/delete", **assignment_args)
        read = "Microsoft.Authorization/roleDefinitions/read"
        router.add("GET", prefix + definitions, list_definitions, action=read, **definition_args)
        router.add(
            "GET",
            prefix + definitions + "/{roleDefinitionId}",
            get_definition,
            action=read,
            **definition_args,
        )
        write = "Microsoft.Authorization/roleDefinitions"
        item_path = prefix + definitions + "/{roleDefinitionId}"
        router.add("PUT", item_path, put_definition, action=f"{write}/write", **definition_args)
        router.add("DELETE", item_path, delete_definition, action=f"{write}/delete", **definition_args)
