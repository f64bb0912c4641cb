"""The emulated tenant's state: directory (Graph) objects, ARM resources, RBAC, and the hooks that tie
them together (an identity on a resource becomes a service principal; ARM writes become events).

Everything runs on one asyncio loop and handlers mutate state synchronously, so no locks are needed.
Time-dependent behaviour (replication, imports, jobs) is evaluated lazily from timestamps.
"""

from __future__ import annotations

import base64
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from emulator import directory_data as dd
from emulator.clouds import COMMERCIAL, Cloud
from emulator.rbac import BUILT_IN_ROLES, RoleDefinition, role_by_name, scope_contains
from emulator.timings import Timings

DEFAULT_APP_ARM_ROLES = ("Reader", "Automation Contributor", "Virtual Machine Contributor")
DEFAULT_APP_GRAPH_PERMISSIONS = (
    "Application.ReadWrite.All",
    "AppRoleAssignment.ReadWrite.All",
    "RoleManagement.ReadWrite.Directory",
    "Organization.Read.All",
)


def new_guid() -> str:
    return str(uuid.uuid4())


def iso(ts: float) -> str:
    """ARM/Graph style UTC timestamp with 7 fractional digits."""
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts))
    return f"{whole}.{int((ts % 1) * 10_000_000):07d}Z"


# --------------------------------------------------------------------------------------------------
# Directory objects


@dataclass
class ServicePrincipal:
    id: str
    app_id: str
    display_name: str
    sp_type: str  # "Application" | "ManagedIdentity"
    created_at: float
    visible_at: float  # Graph answers 404 for it until then (replication delay)
    app_roles: list[dict] = field(default_factory=list)
    alternative_names: list[str] = field(default_factory=list)
    service_principal_names: list[str] = field(default_factory=list)
    app_owner_organization_id: str | None = None
    # ARM resource id that owns this identity (MI only), for xms_mirid and deletion.
    mi_resource_id: str | None = None

    def is_visible(self, now: float | None = None) -> bool:
        return (now or time.time()) >= self.visible_at


@dataclass
class AppRoleAssignment:
    id: str
    app_role_id: str
    principal_id: str
    resource_id: str
    created_at: float
    principal_display_name: str
    resource_display_name: str
    principal_type: str = "ServicePrincipal"


@dataclass
class DirectoryRoleAssignment:
    id: str
    principal_id: str
    role_definition_id: str
    directory_scope_id: str
    created_at: float


# --------------------------------------------------------------------------------------------------
# ARM objects


@dataclass
class ResourceIdentity:
    system_principal_id: str | None = None
    system_client_id: str | None = None
    user_assigned: list[str] = field(default_factory=list)  # UAI resource ids (canonical casing)

    @property
    def type_string(self) -> str:
        parts = []
        if self.system_principal_id:
            parts.append("SystemAssigned")
        if self.user_assigned:
            parts.append("UserAssigned")
        return ", ".join(parts) or "None"


@dataclass
class ArmResource:
    id: str  # canonical casing, as first created
    type: str  # provider/type path, e.g. "Microsoft.Automation/automationAccounts"
    name: str
    location: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)
    identity: ResourceIdentity | None = None
    created_by: str | None = None
    created_at: float = field(default_factory=time.time)
    modified_by: str | None = None
    modified_at: float = field(default_factory=time.time)
    etag: str | None = None
    # Behaviour state that is not part of the resource's JSON (import start, job timeline, ...).
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return self.id.lower()


@dataclass
class CustomRole:
    role: RoleDefinition
    assignable_scopes: list[str]
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    created_by: str | None = None
    updated_by: str | None = None


@dataclass
class RbacAssignment:
    id: str
    principal_id: str
    role: RoleDefinition
    scope: str
    # What Microsoft.Authorization/roleAssignments shows (emulator/arm/authorization.py). Every
    # principal of the emulator is a service principal; seeded assignments have no creator.
    principal_type: str = "ServicePrincipal"
    created_at: float = field(default_factory=time.time)
    updated_at: float | None = None  # None: never updated (updatedOn is createdOn)
    created_by: str | None = None  # object id of the caller that created it
    updated_by: str | None = None
    description: str | None = None
    condition: str | None = None  # stored and shown, never evaluated
    condition_version: str | None = None
    delegated_managed_identity_resource_id: str | None = None


@dataclass
class Subscription:
    id: str
    display_name: str
    tags: dict[str, str] = field(default_factory=dict)  # set through the Tags API
    # Predefined tag names (Tags_CreateOrUpdate, in the casing first given) and their values.
    predefined_tags: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class ArmOperation:
    """What an ARM write, delete or action did; Event Grid turns it into a Microsoft.Resources event."""

    event_type: str  # e.g. "Microsoft.Resources.ResourceWriteSuccess"
    operation_name: str  # e.g. "Microsoft.Automation/automationAccounts/write"
    resource_id: str
    subscription_id: str
    resource_group: str | None
    caller: ServicePrincipal
    caller_claims: dict[str, Any]
    method: str
    url: str
    status: int
    correlation_id: str
    client_request_id: str | None
    evidence_role: str | None
    evidence_scope: str | None
    timestamp: float = field(default_factory=time.time)


@dataclass(frozen=True)
class ExchangeToken:
    """What an identity's Exchange Online token says: its roles (app roles) and wids (Entra roles) claims
    as they were when it was issued."""

    issued_at: float
    has_exchange_app_role: bool
    role_template_ids: frozenset[str]


# --------------------------------------------------------------------------------------------------


class Tenant:
    def __init__(
        self,
        timings: Timings,
        *,
        domain: str = "contoso.onmicrosoft.com",
        extra_domains: tuple[str, ...] = ("contoso.com",),
        subscription_count: int = 2,
        with_exchange_sp: bool = True,
        cloud: Cloud = COMMERCIAL,
        app_permissions: bool = True,
    ) -> None:
        self.timings = timings
        self.cloud = cloud
        self.tenant_id = new_guid()
        self.domain = domain
        self.extra_domains = list(extra_domains)
        self.subscriptions: dict[str, Subscription] = {}
        for index in range(subscription_count):
            sub_id = new_guid()
            self.subscriptions[sub_id.lower()] = Subscription(sub_id, f"Emulated subscription {index + 1}")
        self.service_principals: dict[str, ServicePrincipal] = {}
        self.app_role_assignments: dict[str, AppRoleAssignment] = {}
        self.directory_role_assignments: dict[str, DirectoryRoleAssignment] = {}
        self.role_definitions: list[dict] = dd.built_in_role_definitions()
        self.resources: dict[str, ArmResource] = {}
        self.rbac: dict[str, RbacAssignment] = {}
        # Custom Azure role definitions (Microsoft.Authorization/roleDefinitions PUT), by GUID.
        self.custom_roles: dict[str, CustomRole] = {}
        self.arm_listeners: list[Callable[[ArmOperation], None]] = []
        # Long-running operations that outlive their resource (e.g. a VM deletion), by operation id.
        self.operations: dict[str, Any] = {}
        # Automation module imports that tests make fail: module name (lower) -> error message.
        self.module_import_failures: dict[str, str] = {}
        # While held, a new managed identity stays invisible to Graph until ``replicate`` reveals it, so
        # that tests can observe the replication window without racing a timer.
        self.replication_held = False
        # While propagation is held (since that time), grants made since then do not reach the
        # identity's Exchange connection until the hold ends: tests see a verification that comes too
        # early without racing ``timings.propagation_delay``.
        self.propagation_held_since: float | None = None
        self.released_grants: set[str] = set()
        # The Exchange Online token each identity's host has cached, by principal id.
        self.exchange_tokens: dict[str, ExchangeToken] = {}

        # First-party service principals.
        self.graph_sp = self._add_first_party(dd.GRAPH_APP_ID, "Microsoft Graph", dd.GRAPH_APP_ROLES)
        self.exchange_sp: ServicePrincipal | None = None
        if with_exchange_sp:
            self.add_exchange_sp()

        # The admin who follows the manual procedure, and exomi's own (Function app) identity.
        self.admin = self._add_principal("exomi-emulator-admin", sp_type="ManagedIdentity", visible=True)
        self.app = self._add_principal("exomi-function-app", sp_type="ManagedIdentity", visible=True)
        for sub in self.subscriptions.values():
            self.assign_arm_role(self.admin.id, "Owner", f"/subscriptions/{sub.id}")
            for role in DEFAULT_APP_ARM_ROLES if app_permissions else ():
                self.assign_arm_role(self.app.id, role, f"/subscriptions/{sub.id}")
        self.assign_directory_role(
            self.admin.id, dd.EXCHANGE_SUPPORTED_ROLES["Global Administrator"], backdate=True
        )
        for permission in DEFAULT_APP_GRAPH_PERMISSIONS if app_permissions else ():
            self.grant_graph_permission(self.app.id, permission)

    # ---------------------------------------------------------------- well-known facts

    @property
    def default_subscription_id(self) -> str:
        return next(iter(self.subscriptions.values())).id

    @property
    def accepted_domains(self) -> list[str]:
        return [self.domain, *self.extra_domains]

    # ---------------------------------------------------------------- principals

    def _add_first_party(self, app_id: str, name: str, app_roles: list[dict]) -> ServicePrincipal:
        sp = self._add_principal(name, sp_type="Application", visible=True, app_id=app_id)
        sp.app_roles = [dict(role) for role in app_roles]
        sp.app_owner_organization_id = dd.MICROSOFT_TENANT_ID
        sp.service_principal_names = [app_id]
        return sp

    def add_exchange_sp(self) -> ServicePrincipal:
        """Creates "Office 365 Exchange Online" as a tenant gets it when Exchange is first used."""
        if self.exchange_sp is None or self.exchange_sp.id not in self.service_principals:
            self.exchange_sp = self._add_first_party(
                dd.EXCHANGE_APP_ID, "Office 365 Exchange Online", dd.EXCHANGE_APP_ROLES
            )
            self.exchange_sp.service_principal_names.append("https://outlook.office365.com/")
        return self.exchange_sp

    def _add_principal(
        self,
        display_name: str,
        *,
        sp_type: str,
        visible: bool,
        app_id: str | None = None,
        mi_resource_id: str | None = None,
    ) -> ServicePrincipal:
        now = time.time()
        sp = ServicePrincipal(
            id=new_guid(),
            app_id=app_id or new_guid(),
            display_name=display_name,
            sp_type=sp_type,
            created_at=now,
            visible_at=now if visible else self._replicated_at(now),
            mi_resource_id=mi_resource_id,
        )
        if sp_type == "ManagedIdentity":
            sp.service_principal_names = [
                sp.app_id,
                f"https://identity.azure.net/{base64.b64encode(sp.id.encode()).decode()}",
            ]
            if mi_resource_id:
                explicit = "True" if "/userassignedidentities/" in mi_resource_id.lower() else "False"
                sp.alternative_names = [f"isExplicit={explicit}", mi_resource_id]
        self.service_principals[sp.id] = sp
        return sp

    def _replicated_at(self, now: float) -> float:
        return math.inf if self.replication_held else now + self.timings.replication_delay

    def has_propagated(self, grant: AppRoleAssignment | DirectoryRoleAssignment, now: float) -> bool:
        """Whether a grant has reached the identity's Exchange connection (the propagation delay)."""
        if grant.id in self.released_grants:
            return True
        if self.propagation_held_since is not None and grant.created_at >= self.propagation_held_since:
            return False
        return grant.created_at <= now - self.timings.propagation_delay

    def exchange_token(self, principal_id: str, now: float) -> ExchangeToken:
        """The Exchange Online token a connection of this identity uses at ``now``: the one its host
        cached, while ``timings.token_cache`` lasts (managed identity tokens cannot be refreshed early),
        else a new one carrying the grants that had propagated by then."""
        cached = self.exchange_tokens.get(principal_id)
        if cached is not None and cached.issued_at <= now < cached.issued_at + self.timings.token_cache:
            return cached
        exchange = self.exchange_sp
        token = ExchangeToken(
            issued_at=now,
            has_exchange_app_role=exchange is not None
            and any(
                a.principal_id == principal_id
                and a.resource_id == exchange.id
                and a.app_role_id == dd.EXCHANGE_MANAGE_AS_APP_ROLE_ID
                and self.has_propagated(a, now)
                for a in self.app_role_assignments.values()
            ),
            role_template_ids=frozenset(
                a.role_definition_id.lower()
                for a in self.directory_roles_of(principal_id)
                if self.has_propagated(a, now)
            ),
        )
        if cached is None or now >= cached.issued_at:  # a job evaluated late must not undo a newer token
            self.exchange_tokens[principal_id] = token
        return token

    def expire_tokens(self) -> int:
        """Ends every cached Exchange token now (what waiting ``timings.token_cache`` would do)."""
        count = len(self.exchange_tokens)
        self.exchange_tokens.clear()
        return count

    def hold_propagation(self, held: bool) -> None:
        """``True``: grants made from now on do not propagate; ``False``: those made during the hold
        propagate at once, and later ones after the timed delay again."""
        if held:
            if self.propagation_held_since is None:
                self.propagation_held_since = time.time()
            return
        if self.propagation_held_since is not None:
            since = self.propagation_held_since
            grants = [*self.app_role_assignments.values(), *self.directory_role_assignments.values()]
            self.released_grants.update(g.id for g in grants if g.created_at >= since)
        self.propagation_held_since = None

    def replicate(self, object_id: str) -> ServicePrincipal | None:
        """Make a principal visible to Graph now (ends its replication delay, held or timed)."""
        sp = self.principal(object_id)
        if sp is not None:
            sp.visible_at = min(sp.visible_at, time.time())
        return sp

    def create_managed_identity(self, display_name: str, resource_id: str) -> ServicePrincipal:
        """The service principal behind a system- or user-assigned identity; Graph sees it after the
        replication delay."""
        return self._add_principal(
            display_name, sp_type="ManagedIdentity", visible=False, mi_resource_id=resource_id
        )

    def add_principal(
        self, display_name: str, *, sp_type: str, visible: bool, mi_resource_id: str | None = None
    ) -> ServicePrincipal:
        """A service principal seeded directly (control API), e.g. a managed identity whose ARM
        resource is not emulated; ``visible=False`` applies the replication delay."""
        return self._add_principal(
            display_name, sp_type=sp_type, visible=visible, mi_resource_id=mi_resource_id
        )

    def principal(self, object_id: str) -> ServicePrincipal | None:
        return self.service_principals.get(object_id.lower()) or self.service_principals.get(object_id)

    def visible_principal(self, object_id: str) -> ServicePrincipal | None:
        """The principal as Graph sees it: None until its replication delay has passed."""
        sp = self.principal(object_id)
        return sp if sp is not None and sp.is_visible() else None

    def principal_by_app_id(self, app_id: str) -> ServicePrincipal | None:
        app_id = app_id.lower()
        return next((sp for sp in self.service_principals.values() if sp.app_id.lower() == app_id), None)

    def delete_principal(self, object_id: str) -> None:
        """Deleting a service principal also deletes every assignment that names it."""
        sp = self.service_principals.pop(object_id, None)
        if sp is None:
            return
        self.app_role_assignments = {
            k: a
            for k, a in self.app_role_assignments.items()
            if object_id not in (a.principal_id, a.resource_id)
        }
        self.directory_role_assignments = {
            k: a for k, a in self.directory_role_assignments.items() if a.principal_id != object_id
        }
        self.rbac = {k: a for k, a in self.rbac.items() if a.principal_id != object_id}
        if self.exchange_sp is sp:
            self.exchange_sp = None

    # ---------------------------------------------------------------- Graph permissions & grants

    def add_app_role_assignment(
        self, principal_id: str, resource_id: str, app_role_id: str
    ) -> AppRoleAssignment:
        principal = self.service_principals[principal_id]
        resource = self.service_principals[resource_id]
        # Real ids are opaque base64url strings derived from the principal id.
        assignment_id = (
            base64.urlsafe_b64encode(uuid.UUID(principal_id).bytes + uuid.uuid4().bytes).decode().rstrip("=")
        )
        assignment = AppRoleAssignment(
            id=assignment_id,
            app_role_id=app_role_id,
            principal_id=principal_id,
            resource_id=resource_id,
            created_at=time.time(),
            principal_display_name=principal.display_name,
            resource_display_name=resource.display_name,
        )
        self.app_role_assignments[assignment_id] = assignment
        return assignment

    def remove_app_role_assignment(self, assignment_id: str) -> bool:
        return self.app_role_assignments.pop(assignment_id, None) is not None

    def grant_graph_permission(self, principal_id: str, permission: str) -> AppRoleAssignment:
        role_id = dd.GRAPH_PERMISSIONS[permission]
        existing = next(
            (
                a
                for a in self.app_role_assignments.values()
                if a.principal_id == principal_id
                and a.resource_id == self.graph_sp.id
                and a.app_role_id == role_id
            ),
            None,
        )
        return existing or self.add_app_role_assignment(principal_id, self.graph_sp.id, role_id)

    def revoke_graph_permission(self, principal_id: str, permission: str) -> bool:
        role_id = dd.GRAPH_PERMISSIONS[permission]
        keys = [
            k
            for k, a in self.app_role_assignments.items()
            if a.principal_id == principal_id
            and a.resource_id == self.graph_sp.id
            and a.app_role_id == role_id
        ]
        for key in keys:
            del self.app_role_assignments[key]
        return bool(keys)

    def graph_permissions(self, principal_id: str) -> set[str]:
        """Application permissions a caller holds on Microsoft Graph (app roles on the Graph SP)."""
        by_id = {v: k for k, v in dd.GRAPH_PERMISSIONS.items()}
        return {
            by_id[a.app_role_id]
            for a in self.app_role_assignments.values()
            if a.principal_id == principal_id and a.resource_id == self.graph_sp.id and a.app_role_id in by_id
        }

    def directory_roles_of(self, principal_id: str) -> list[DirectoryRoleAssignment]:
        return [a for a in self.directory_role_assignments.values() if a.principal_id == principal_id]

    def is_global_admin(self, principal_id: str) -> bool:
        ga = dd.EXCHANGE_SUPPORTED_ROLES["Global Administrator"]
        return any(a.role_definition_id == ga for a in self.directory_roles_of(principal_id))

    def assign_directory_role(
        self, principal_id: str, role_definition_id: str, scope: str = "/", *, backdate: bool = False
    ) -> DirectoryRoleAssignment:
        # Real ids look like "<base64url of role template>-<base64url of principal>-1".
        assignment_id = (
            base64.urlsafe_b64encode(uuid.UUID(role_definition_id).bytes).decode().rstrip("=")
            + base64.urlsafe_b64encode(uuid.UUID(principal_id).bytes).decode().rstrip("=")
            + "-1"
        )
        created = time.time() - (10 * 365 * 86400 if backdate else 0)
        assignment = DirectoryRoleAssignment(assignment_id, principal_id, role_definition_id, scope, created)
        self.directory_role_assignments[assignment_id] = assignment
        return assignment

    def remove_directory_role_assignment(self, assignment_id: str) -> bool:
        return self.directory_role_assignments.pop(assignment_id, None) is not None

    def role_definition(self, role_definition_id: str) -> dict | None:
        wanted = role_definition_id.lower()
        return next((d for d in self.role_definitions if d["id"].lower() == wanted), None)

    # ---------------------------------------------------------------- ARM resources

    def get_resource(self, resource_id: str) -> ArmResource | None:
        return self.resources.get(resource_id.rstrip("/").lower())

    def put_resource(self, resource: ArmResource) -> None:
        self.resources[resource.key] = resource

    def children(self, collection_id: str) -> list[ArmResource]:
        """Resources directly inside a collection path, e.g. ``{account id}/modules``, sorted by id."""
        prefix = collection_id.rstrip("/").lower() + "/"
        return sorted(
            (r for k, r in self.resources.items() if k.startswith(prefix) and "/" not in k[len(prefix) :]),
            key=lambda r: r.key,
        )

    def delete_resource_tree(self, resource_id: str) -> list[ArmResource]:
        """Removes a resource and everything under it; identities it owns go with it."""
        prefix = resource_id.rstrip("/").lower()
        removed = [r for k, r in self.resources.items() if k == prefix or k.startswith(prefix + "/")]
        for resource in removed:
            del self.resources[resource.key]
            self.release_identity(resource)
        self.rbac = {k: a for k, a in self.rbac.items() if not scope_contains(prefix, a.scope)}
        return removed

    def release_identity(self, resource: ArmResource) -> None:
        """A deleted resource takes its system-assigned identity along; a deleted user-assigned identity
        resource takes its own principal."""
        if resource.identity and resource.identity.system_principal_id:
            self.delete_principal(resource.identity.system_principal_id)
        principal_id = (
            resource.properties.get("principalId")
            if resource.type.lower().endswith("/userassignedidentities")
            else None
        )
        if principal_id:
            self.delete_principal(principal_id)

    # ---------------------------------------------------------------- RBAC

    def arm_role_named(self, name: str) -> RoleDefinition:
        """A built-in role, else a custom one, by name (ValueError when there is none)."""
        custom = next(
            (c.role for c in self.custom_roles.values() if c.role.name.lower() == name.lower()), None
        )
        return custom or role_by_name(name)

    def assign_arm_role(self, principal_id: str, role_name: str, scope: str) -> RbacAssignment:
        role = self.arm_role_named(role_name)
        for existing in self.rbac.values():
            if (
                existing.principal_id == principal_id
                and existing.role is role
                and existing.scope.lower() == scope.lower()
            ):
                return existing
        assignment = RbacAssignment(new_guid(), principal_id, role, scope)
        self.rbac[assignment.id] = assignment
        return assignment

    def remove_arm_role(
        self, principal_id: str, role_name: str | None = None, scope: str | None = None
    ) -> int:
        keys = [
            k
            for k, a in self.rbac.items()
            if a.principal_id == principal_id
            and (role_name is None or a.role.name.lower() == role_name.lower())
            and (scope is None or a.scope.lower() == scope.lower())
        ]
        for key in keys:
            del self.rbac[key]
        return len(keys)

    def authorize(self, principal_id: str, action: str, scope: str) -> RbacAssignment | None:
        """The assignment that lets ``principal_id`` perform ``action`` on ``scope``, or None."""
        for assignment in self.rbac.values():
            if (
                assignment.principal_id == principal_id
                and scope_contains(assignment.scope, scope)
                and assignment.role.allows(action)
            ):
                return assignment
        return None

    @staticmethod
    def known_roles() -> list[str]:
        return [role.name for role in BUILT_IN_ROLES.values()]

    # ---------------------------------------------------------------- events

    def publish(self, operation: ArmOperation) -> None:
        for listener in list(self.arm_listeners):
            listener(operation)
