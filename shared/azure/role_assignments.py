"""Azure role assignments of exomi's own identity (azure-mgmt-authorization), for ``exomi bootstrap`` and
``exomi doctor``: which roles it holds at a scope, and granting a missing one."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from shared.azure.arm import scope_contains
from shared.azure.clients import AzureClients
from shared.azure.failures import from_arm
from shared.errors import InputError
from shared.ids import validate_guid


@dataclass(frozen=True)
class HeldRole:
    assignment_id: str
    role_definition_id: str  # the GUID at the end of the role definition's id, lower case
    scope: str


@dataclass(frozen=True)
class RoleDefinitionInfo:
    guid: str
    name: str
    actions: tuple[str, ...]
    assignable_scopes: tuple[str, ...]


def _subscription_of(scope: str) -> str:
    parts = [p for p in scope.split("/") if p]
    return parts[1] if len(parts) >= 2 and parts[0].lower() == "subscriptions" else ""


class RoleAssignmentsGateway:
    def __init__(self, clients: AzureClients) -> None:
        self.clients = clients

    async def held_at(self, principal_id: str, scope: str) -> list[HeldRole]:
        """The principal's role assignments that apply at ``scope`` (there or inherited from above)."""
        principal = validate_guid(principal_id, "principal_id")  # the only text that reaches the filter
        client = self.clients.authorization(_subscription_of(scope))
        held: list[HeldRole] = []
        try:
            pager = client.role_assignments.list_for_scope(scope, filter=f"assignedTo('{principal}')")
            async for assignment in pager:
                if (
                    assignment.scope
                    and assignment.role_definition_id
                    and scope_contains(assignment.scope, scope)
                ):
                    held.append(
                        HeldRole(
                            assignment.id or "",
                            assignment.role_definition_id.rsplit("/", 1)[-1].lower(),
                            assignment.scope,
                        )
                    )
        except Exception as exc:  # noqa: BLE001 - every SDK failure becomes an exomi error
            raise from_arm(exc, "list role assignments") from exc
        return held

    async def assign(self, principal_id: str, scope: str, role_definition_guid: str) -> None:
        from azure.mgmt.authorization.v2022_04_01.models import RoleAssignmentCreateParameters

        principal = validate_guid(principal_id, "principal_id")
        role = validate_guid(role_definition_guid, "role_definition_id")
        subscription = _subscription_of(scope)
        client = self.clients.authorization(subscription)
        body = RoleAssignmentCreateParameters(
            role_definition_id=f"/subscriptions/{subscription}/providers/Microsoft.Authorization/roleDefinitions/{role}",
            principal_id=principal,
            principal_type="ServicePrincipal",  # no replication wait for a new identity (ARM docs)
        )
        try:
            await client.role_assignments.create(scope, str(uuid.uuid4()), body)
        except Exception as exc:  # noqa: BLE001
            raise from_arm(exc, "create role assignment") from exc

    async def find_role_definition(self, scope: str, name: str) -> RoleDefinitionInfo | None:
        """The role definition named ``name`` visible at ``scope`` (custom role names are unique per tenant)."""
        if "'" in name:
            raise InputError("role_name", "must not contain a quote")  # it goes into the $filter
        client = self.clients.authorization(_subscription_of(scope))
        try:
            async for definition in client.role_definitions.list(scope, filter=f"roleName eq '{name}'"):
                permissions = definition.permissions or []
                return RoleDefinitionInfo(
                    str(definition.name or ""),
                    str(definition.role_name or ""),
                    tuple(a for p in permissions for a in (p.actions or [])),
                    tuple(definition.assignable_scopes or []),
                )
        except Exception as exc:  # noqa: BLE001
            raise from_arm(exc, "list role definitions") from exc
        return None

    async def put_role_definition(
        self,
        scope: str,
        guid: str,
        name: str,
        description: str,
        actions: tuple[str, ...],
        assignable: list[str],
    ) -> None:
        from azure.mgmt.authorization.v2022_04_01.models import Permission, RoleDefinition

        body = RoleDefinition(
            role_name=name,
            description=description,
            role_type="CustomRole",
            permissions=[Permission(actions=list(actions), not_actions=[])],
            assignable_scopes=assignable,
        )
        client = self.clients.authorization(_subscription_of(scope))
        try:
            await client.role_definitions.create_or_update(
                scope, validate_guid(guid, "role_definition_id"), body
            )
        except Exception as exc:  # noqa: BLE001
            raise from_arm(exc, "create custom role definition") from exc
