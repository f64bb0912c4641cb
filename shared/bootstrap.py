"""``exomi bootstrap``: give exomi's own identity what it needs, and nothing more (shared/permissions.py),
with the operator's own Azure rights:

* Microsoft Graph application permissions on exomi's service principal. Application.Read.All when the
  "Office 365 Exchange Online" service principal exists; when it does not, bootstrap creates it with
  the operator's rights so that exomi never needs Application.ReadWrite.All. Only if the operator may
  not create it, exomi gets ReadWrite for the time being (its exchange-sp step creates the principal on
  the first provision) and the next run, once the principal exists, takes it back. The plan lists that
  temporary grant and its removal (verdict "fallback"); if the operator may not grant it either, or a
  later write of the same run fails, bootstrap leaves no ReadWrite behind and says what is missing.
* The built-in Azure roles at each of the policy's ``allowed_scopes``.
* Per subscription in scope: the ``Microsoft.Resources.Subscriptions`` system topic (the existing one is
  reused: Azure allows one per source) and exomi's event subscription with docs/OPERATIONS.md's filters.

``inspect`` reads what is there and returns one ``Item`` per thing exomi needs, with the write that would
make it right; ``apply`` runs those writes. A second run finds everything OK and writes nothing.
``exomi doctor`` (shared/doctor.py) shows the same items with their fixes.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from shared import permissions
from shared.azure.clients import AzureClients
from shared.azure.eventgrid import EventGridGateway, EventSubscriptionInfo
from shared.azure.graph import GraphGateway, PrincipalInfo
from shared.azure.role_assignments import RoleAssignmentsGateway
from shared.constants import EXO_APP_ID
from shared.errors import ExomiError, InputError, PermissionMissing
from shared.ids import TargetKind, validate_guid
from shared.policy import Policy

EVENT_SUBSCRIPTION_NAME = "exomi-tags"
# docs/OPERATIONS.md "What to subscribe to".
INCLUDED_EVENT_TYPES = [
    "Microsoft.Resources.ResourceWriteSuccess",
    "Microsoft.Resources.ResourceDeleteSuccess",
]
# Every target kind's writes and deletions, and tag changes (derived from TargetKind, so a new kind is
# subscribed to without anyone remembering to; docs/OPERATIONS.md lists the same).
OPERATION_NAMES = [
    f"{kind}/{verb}"
    for kind in (*(k.value for k in TargetKind), "Microsoft.Resources/tags")
    for verb in ("write", "delete")
]
SUBJECT_PARTS = [f"/providers/{kind.value}/" for kind in TargetKind]
MAX_DELIVERY_ATTEMPTS, EVENT_TTL_MINUTES = 30, 1440

Write = Callable[[], Awaitable[None]]

# What the operator running bootstrap needs for each kind of write (learn.microsoft.com/graph/api/
# serviceprincipal-post-serviceprincipals and serviceprincipal-post-approleassignments; Azure RBAC's
# roleAssignments/write; docs/PERMISSIONS.md "exomi bootstrap and exomi doctor").
CREATE_EXCHANGE_SP_RIGHT = (
    "Application.ReadWrite.All: Entra role Application Administrator or Cloud Application Administrator"
)
OPERATOR_RIGHTS = {
    "graph": "Entra role Privileged Role Administrator or Global Administrator (app-only: the Microsoft Graph "
    "permissions AppRoleAssignment.ReadWrite.All and Application.Read.All)",
    "arm": "Owner, User Access Administrator or Role Based Access Control Administrator at the scope",
    "eventgrid": "EventGrid Contributor or Contributor in the subscription",
}
CREATE_EXCHANGE_SP_COMMAND = f"az ad sp create --id {EXO_APP_ID}"


class OperatorPermissionMissing(PermissionMissing):
    """The identity running bootstrap (the operator's, not exomi's) may not make a change bootstrap needs."""

    def __init__(self, permission: str, service: str, message: str, fix: str) -> None:
        ExomiError.__init__(self, f"{message} To fix: {fix}")
        self.permission = permission
        self.service = service
        self.fix = fix


@dataclass
class Item:
    area: str  # "graph", "arm" or "eventgrid"
    name: str  # what it is: a permission, "Reader at <scope>", "event subscription in <sub>"
    verdict: str  # "ok", "missing", "wrong", "extra" (held, not needed), "skipped"
    detail: str
    action: str | None = None  # what apply does about it
    fix: str | None = None  # the command an operator runs instead (doctor)
    write: Write | None = field(default=None, repr=False)
    done: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "area": self.area,
            "name": self.name,
            "verdict": self.verdict,
            "detail": self.detail,
            "action": self.action,
            "fix": self.fix,
            "done": self.done,
        }


@dataclass(frozen=True)
class Options:
    principal_id: str
    event_endpoint: str | None = None
    topic_resource_group: str | None = None
    event_subscription_name: str = EVENT_SUBSCRIPTION_NAME
    dead_letter_container: str | None = None  # ARM id of a blob container
    roles: str = "builtin"  # or "custom": one custom role with only the actions exomi uses

    def __post_init__(self) -> None:
        validate_guid(self.principal_id, "principal_id")
        if self.roles not in ("builtin", "custom"):
            raise InputError("roles", "must be builtin or custom")
        if self.event_endpoint is not None and not self.event_endpoint.startswith(("https://", "http://")):
            raise InputError("event_endpoint", "must be the https URL of exomi's Event Grid trigger")
        if self.dead_letter_container is not None and "/blobservices/default/containers/" not in (
            self.dead_letter_container.lower()
        ):
            raise InputError(
                "dead_letter_container",
                "must be a blob container's resource id (.../storageAccounts/<a>/blobServices/default/containers/<c>)",
            )


def desired_event_subscription(options: Options, endpoint: str) -> dict[str, Any]:
    """The event subscription docs/OPERATIONS.md describes, as the ARM request body."""
    properties: dict[str, Any] = {
        "destination": {
            "endpointType": "WebHook",
            "properties": {"endpointUrl": endpoint, "maxEventsPerBatch": 1},
        },
        "filter": {
            "includedEventTypes": INCLUDED_EVENT_TYPES,
            "advancedFilters": [
                {"operatorType": "StringIn", "key": "data.operationName", "values": OPERATION_NAMES},
                {"operatorType": "StringContains", "key": "subject", "values": SUBJECT_PARTS},
                # exomi's own writes (modules, runbooks, jobs): dropped before delivery.
                {
                    "operatorType": "StringNotIn",
                    "key": "data.authorization.evidence.principalId",
                    "values": [options.principal_id.replace("-", "").lower()],
                },
            ],
        },
        "eventDeliverySchema": "EventGridSchema",
        "retryPolicy": {
            "maxDeliveryAttempts": MAX_DELIVERY_ATTEMPTS,
            "eventTimeToLiveInMinutes": EVENT_TTL_MINUTES,
        },
    }
    if options.dead_letter_container:
        account, _, container = options.dead_letter_container.rstrip("/").partition(
            "/blobServices/default/containers/"
        )
        properties["deadLetterDestination"] = {
            "endpointType": "StorageBlob",
            "properties": {"resourceId": account, "blobContainerName": container},
        }
    return {"properties": properties}


def _filter_key(spec: dict[str, Any]) -> tuple[str, str, tuple[str, ...]]:
    values = spec.get("values") or ([spec["value"]] if "value" in spec else [])
    return (
        str(spec.get("operatorType")),
        str(spec.get("key")).lower(),
        tuple(sorted(str(v).lower() for v in values)),
    )


def event_subscription_differences(found: EventSubscriptionInfo, desired: dict[str, Any]) -> list[str]:
    """What differs between the event subscription and what exomi needs (empty: it is right)."""
    wanted = desired["properties"]
    problems = []
    if (found.provisioning_state or "").lower() != "succeeded":
        problems.append(f"provisioningState is {found.provisioning_state}")
    endpoint = wanted["destination"]["properties"]["endpointUrl"]
    if not found.full_url_readable:
        # Without getFullUrl/action only the base URL can be compared (its query carries the key).
        same = found.endpoint_base_url == endpoint.split("?", 1)[0]
    else:
        same = found.endpoint_url == endpoint
    # docs/OPERATIONS.md allows the AzureFunction destination (the function's resource id) instead.
    to_function = (found.function_resource_id or "").lower().endswith("/functions/on_resource_event")
    if not to_function and (found.endpoint_type != "WebHook" or not same):
        shown = found.endpoint_base_url or found.endpoint_type
        problems.append(f"endpoint is {shown}, not {endpoint.split('?', 1)[0]} (with its query)")
    if sorted(t.lower() for t in found.included_event_types) != sorted(
        t.lower() for t in wanted["filter"]["includedEventTypes"]
    ):
        problems.append(f"includedEventTypes are {found.included_event_types or 'all'}")
    if sorted(map(_filter_key, found.advanced_filters)) != sorted(
        map(_filter_key, wanted["filter"]["advancedFilters"])
    ):
        problems.append("advanced filters differ from docs/OPERATIONS.md")
    if found.max_delivery_attempts != MAX_DELIVERY_ATTEMPTS or found.event_ttl_minutes != EVENT_TTL_MINUTES:
        problems.append(
            f"retry policy is {found.max_delivery_attempts} attempts / {found.event_ttl_minutes} min, not 30 / 1440"
        )
    if "deadLetterDestination" in wanted and not found.dead_letter:
        problems.append("no dead-letter destination")
    return problems


class Bootstrap:
    def __init__(self, clients: AzureClients, policy: Policy, options: Options, graph_endpoint: str) -> None:
        self.clients = clients
        self.policy = policy
        self.options = options
        self.graph_endpoint = graph_endpoint.rstrip("/")
        self.graph = GraphGateway(clients)
        self.rbac = RoleAssignmentsGateway(clients)
        self.eventgrid = EventGridGateway(clients)
        # The Application.ReadWrite.All grant bootstrap made in this run as the fallback (its assignment
        # id): revoked again if a later write of the run fails.
        self._temporary_grant: tuple[str, Item, Item] | None = None  # (assignment id, fallback, create)

    # ------------------------------------------------------------------ what is there

    async def inspect(self) -> list[Item]:
        items = await self._graph_items()
        items += await self._arm_items()
        items += await self._eventgrid_items()
        return items

    async def apply(self, items: list[Item]) -> list[Item]:
        """Runs the writes of the items that need one, in order (Graph, roles, Event Grid). The first write
        the operator may not make stops the run: bootstrap revokes the temporary Application.ReadWrite.All
        it granted in this run and raises OperatorPermissionMissing with what is missing and the fix; the
        items done before stay done (a re-run does only what is left)."""
        for item in items:
            if item.write is None or item.verdict in ("ok", "skipped"):
                continue
            try:
                await item.write()
            except PermissionMissing as error:
                undone = await self._take_back_temporary_grant()
                if isinstance(error, OperatorPermissionMissing):
                    raise
                raise self._operator_cannot(item, error, sum(i.done for i in items), undone) from error
            except ExomiError:
                await self._take_back_temporary_grant()
                raise
            item.done = True
        return items

    async def _take_back_temporary_grant(self) -> bool:
        if self._temporary_grant is None:
            return False
        assignment_id, fallback, create = self._temporary_grant
        await self.graph.revoke_app_role(self.options.principal_id, assignment_id)
        fallback.done = create.done = False  # the principal is still missing; a re-run starts over
        self._temporary_grant = None
        return True

    def _operator_cannot(
        self, item: Item, error: PermissionMissing, done: int, undone: bool
    ) -> OperatorPermissionMissing:
        what = item.action or item.name
        message = (
            f"bootstrap could not {what}: the identity running it lacks the {error.service} permission "
            f"'{error.permission}' ({OPERATOR_RIGHTS.get(item.area, 'see docs/PERMISSIONS.md')})."
        )
        message += f" {done} change(s) before it were made and stay;" if done else " Nothing was changed;"
        message += (
            " the temporary Application.ReadWrite.All grant was revoked again."
            if undone
            else " nothing after it."
        )
        fix = (
            f"get that right, or have someone who holds it run: {item.fix or 'exomi bootstrap --apply'}; then run "
            "exomi bootstrap --apply again (a re-run does only what is still missing)."
        )
        return OperatorPermissionMissing(error.permission, error.service, message, fix)

    def _grant_fix(self, sp_graph: PrincipalInfo, permission: permissions.GraphPermission) -> str:
        principal = self.options.principal_id
        body = f'{{"principalId":"{principal}","resourceId":"{sp_graph.id}","appRoleId":"{permission.app_role_id}"}}'
        return (
            f"exomi bootstrap --apply, or: az rest --method POST --url "
            f"{self.graph_endpoint}/servicePrincipals/{principal}/appRoleAssignments --body '{body}'"
        )

    async def _graph_items(self) -> list[Item]:
        principal = self.options.principal_id
        graph_sp = await self.graph.find_principal_by_app_id(permissions.GRAPH_APP_ID)
        if graph_sp is None:
            raise PermissionMissing(
                permissions.APPLICATION_READ.name,
                "Microsoft Graph",
                "the Microsoft Graph service principal cannot be read: run bootstrap as an administrator",
            )
        role_ids = {r.value: r.id for r in graph_sp.app_roles if r.value}
        grants = {
            g.app_role_id.lower(): g
            for g in await self.graph.app_role_grants(principal)
            if g.resource_id.lower() == graph_sp.id.lower()
        }
        items: list[Item] = []
        exchange = await self.graph.find_principal_by_app_id(EXO_APP_ID)
        exchange_exists = exchange is not None
        create_item: Item | None = None
        if not exchange_exists:
            create_item = Item(
                "graph",
                "Office 365 Exchange Online service principal",
                "missing",
                "the tenant has no Exchange Online service principal yet",
                action="create it with your rights (Application Administrator or Cloud Application Administrator), "
                "so that exomi needs Application.Read.All only",
                fix=f"exomi bootstrap --apply, or: {CREATE_EXCHANGE_SP_COMMAND}",
            )
            items.append(create_item)
        wanted = permissions.required_graph_permissions(exchange_sp_exists=True)
        for permission in wanted:
            app_role_id = role_ids.get(permission.name, permission.app_role_id).lower()
            held = app_role_id in grants
            items.append(
                Item(
                    "graph",
                    permission.name,
                    "ok" if held else "missing",
                    permission.why,
                    action=None if held else f"grant {permission.name} to exomi's identity",
                    fix=None if held else self._grant_fix(graph_sp, permission),
                    write=None if held else self._grant(graph_sp.id, app_role_id),
                )
            )
        read_write = permissions.APPLICATION_READ_WRITE
        read_write_id = role_ids.get(read_write.name, read_write.app_role_id).lower()
        fallback: Item | None = None
        if read_write_id in grants:
            grant = grants[read_write_id]
            items.append(
                Item(
                    "graph",
                    read_write.name,
                    "wrong" if exchange_exists else "ok",
                    "more than exomi needs once the Exchange Online service principal exists"
                    if exchange_exists
                    else f"temporary: {read_write.why}; the next bootstrap run, once it exists, revokes it",
                    action="revoke it (Application.Read.All is enough now)" if exchange_exists else None,
                    fix="exomi bootstrap --apply" if exchange_exists else None,
                    write=self._revoke(grant.id) if exchange_exists else None,
                )
            )
        elif create_item is not None:
            fallback = Item(
                "graph",
                read_write.name,
                "fallback",
                "only if you may not create the Exchange Online service principal: exomi's exchange-sp step "
                "then creates it on its first provision",
                action="grant Application.ReadWrite.All to exomi's identity (temporary), then revoke it: the "
                "next exomi bootstrap --apply, once the principal exists, takes it back",
                fix=f"to keep exomi at Application.Read.All, have an Application Administrator run "
                f"{CREATE_EXCHANGE_SP_COMMAND}",
            )
            items.append(fallback)
        if create_item is not None:
            # Bootstrap creates it with the operator's rights; if the operator may not, exomi gets
            # ReadWrite to create it itself (and the next run takes it back).
            create_item.write = self._create_exchange_sp(
                graph_sp.id, read_write_id, read_write_id in grants, create_item, fallback
            )
        org = permissions.ORGANIZATION_READ
        if org.app_role_id in grants or role_ids.get(org.name, "").lower() in grants:
            items.append(
                Item(
                    "graph", org.name, "extra", f"{org.why}; bootstrap leaves it as it is (revoke it by hand)"
                )
            )
        return items

    def _grant(self, graph_sp_id: str, app_role_id: str) -> Write:
        async def write() -> None:
            await self.graph.grant_app_role(self.options.principal_id, graph_sp_id, app_role_id)

        return write

    def _revoke(self, assignment_id: str) -> Write:
        async def write() -> None:
            await self.graph.revoke_app_role(self.options.principal_id, assignment_id)

        return write

    def _create_exchange_sp(
        self, graph_sp_id: str, read_write_id: str, read_write_held: bool, item: Item, fallback: Item | None
    ) -> Write:
        async def write() -> None:
            try:
                await self.graph.create_principal(EXO_APP_ID)
                return
            except PermissionMissing as cannot_create:
                if read_write_held or fallback is None:
                    item.detail = (
                        "you may not create it; exomi holds Application.ReadWrite.All and creates it"
                    )
                    return
                try:
                    grant, _ = await self.graph.grant_app_role(
                        self.options.principal_id, graph_sp_id, read_write_id
                    )
                except PermissionMissing as cannot_grant:
                    raise OperatorPermissionMissing(
                        cannot_create.permission,
                        "Microsoft Graph",
                        "bootstrap could not create the Office 365 Exchange Online service principal: the "
                        f"identity running it may neither create it ({CREATE_EXCHANGE_SP_RIGHT}) nor grant exomi "
                        f"Application.ReadWrite.All to create it itself ({cannot_grant.permission}: "
                        f"{OPERATOR_RIGHTS['graph']}). Nothing was changed.",
                        f"have an administrator who may run {CREATE_EXCHANGE_SP_COMMAND} (or exomi bootstrap "
                        "--apply), then run exomi bootstrap --apply again.",
                    ) from cannot_grant
            self._temporary_grant = (grant.id, fallback, item)
            fallback.done = True
            item.detail = (
                "you may not create it: exomi got Application.ReadWrite.All to create it on its first provision; "
                "the next exomi bootstrap --apply revokes it"
            )

        return write

    async def _custom_role_item(self, scopes: list[str]) -> tuple[Item, permissions.ArmRole]:
        """The custom role exomi's identity gets instead of the built-in ones: created once per tenant,
        assignable at every scope of the policy, with only the actions exomi performs."""
        name = permissions.CUSTOM_ROLE_NAME
        found = await self.rbac.find_role_definition(scopes[0], name)
        guid = found.guid if found else str(uuid.uuid4())
        role = permissions.ArmRole(
            name, guid.lower(), "only the actions exomi performs (shared/permissions.py)"
        )
        wanted_actions = sorted(a.lower() for a in permissions.CUSTOM_ROLE_ACTIONS)
        problems = []
        if found is None:
            problems.append("missing")
        else:
            if sorted(a.lower() for a in found.actions) != wanted_actions:
                problems.append("its actions differ from what exomi uses")
            have = {s.lower() for s in found.assignable_scopes}
            if any(s.lower() not in have for s in scopes):
                problems.append("not assignable at every scope of the policy")
        assignable = sorted({*(found.assignable_scopes if found else ()), *scopes})
        item = Item(
            "arm",
            f"custom role {name}",
            "ok" if not problems else "missing" if found is None else "wrong",
            role.why if not problems else "; ".join(problems),
            action=None if not problems else f"{'create' if found is None else 'update'} the role definition",
            fix=None if not problems else "exomi bootstrap --apply --roles custom",
            write=None if not problems else self._put_role(scopes[0], guid, assignable),
        )
        return item, role

    def _put_role(self, scope: str, guid: str, assignable: list[str]) -> Write:
        async def write() -> None:
            await self.rbac.put_role_definition(
                scope,
                guid,
                permissions.CUSTOM_ROLE_NAME,
                "exomi: grants managed identities Exchange Online access (only the actions it uses)",
                permissions.CUSTOM_ROLE_ACTIONS,
                assignable,
            )

        return write

    async def _arm_items(self) -> list[Item]:
        items: list[Item] = []
        principal = self.options.principal_id
        roles: tuple[permissions.ArmRole, ...] = permissions.BUILT_IN_ROLES
        if self.options.roles == "custom":
            scopes = [str(s) for s in self.policy.allowed_scopes if not s.prefix]
            if scopes:
                item, custom = await self._custom_role_item(scopes)
                items.append(item)
                roles = (custom,)
        for scope in self.policy.allowed_scopes:
            where = str(scope)
            if scope.prefix:
                items.append(
                    Item(
                        "arm",
                        f"roles at {where}",
                        "skipped",
                        "a resource group prefix is not a scope Azure can assign roles at",
                        fix=f"assign {', '.join(r.name for r in permissions.BUILT_IN_ROLES)} at each resource group "
                        "it matches, or at the subscription",
                    )
                )
                continue
            held = {h.role_definition_id for h in await self.rbac.held_at(principal, where)}
            for role in roles:
                ok = role.role_definition_id in held
                items.append(
                    Item(
                        "arm",
                        f"{role.name} at {where}",
                        "ok" if ok else "missing",
                        role.why,
                        action=None if ok else f"assign {role.name} at {where}",
                        fix=None
                        if ok
                        else (
                            f"exomi bootstrap --apply, or: az role assignment create --assignee-object-id {principal} "
                            f'--assignee-principal-type ServicePrincipal --role "{role.name}" --scope {where}'
                        ),
                        write=None if ok else self._assign(where, role.role_definition_id),
                    )
                )
        return items

    def _assign(self, scope: str, role_definition_id: str) -> Write:
        async def write() -> None:
            await self.rbac.assign(self.options.principal_id, scope, role_definition_id)

        return write

    def subscriptions_in_scope(self) -> list[str]:
        seen: dict[str, str] = {}
        for scope in self.policy.allowed_scopes:
            seen.setdefault(scope.subscription_id.lower(), scope.subscription_id)
        return list(seen.values())

    async def _eventgrid_items(self) -> list[Item]:
        items: list[Item] = []
        name = self.options.event_subscription_name
        for subscription in self.subscriptions_in_scope():
            topic = await self.eventgrid.subscription_topic(subscription)
            label = f"event subscription {name} in /subscriptions/{subscription}"
            endpoint = self.options.event_endpoint
            if topic is None:
                group = self.options.topic_resource_group
                items.append(
                    Item(
                        "eventgrid",
                        f"system topic of /subscriptions/{subscription}",
                        "missing",
                        "no Microsoft.Resources.Subscriptions system topic: ARM's events reach nobody",
                        action=f"create system topic exomi-arm-{subscription} in resource group {group}"
                        if group
                        else "needs --topic-resource-group (where the new system topic goes)",
                        fix="exomi bootstrap --apply --topic-resource-group <group> --event-endpoint <url> "
                        "(docs/OPERATIONS.md has the az commands)",
                        write=self._create_topic(subscription, group) if group and endpoint else None,
                    )
                )
            found = await self.eventgrid.get_event_subscription(topic, name) if topic is not None else None
            if endpoint is None:
                if found is None:
                    verdict, detail = "missing", "missing; bootstrap needs --event-endpoint to create it"
                else:
                    # Everything but the endpoint, which nobody named: compared with itself.
                    own = found.endpoint_url or found.endpoint_base_url or ""
                    problems = event_subscription_differences(
                        found, desired_event_subscription(self.options, own)
                    )
                    verdict = "wrong" if problems else "ok"
                    detail = "; ".join(problems) or (
                        f"endpoint {found.endpoint_base_url} (not compared: no --event-endpoint), filters and "
                        "retry policy as docs/OPERATIONS.md says"
                    )
                items.append(
                    Item(
                        "eventgrid",
                        label,
                        verdict,
                        detail,
                        fix=None
                        if verdict == "ok"
                        else "exomi bootstrap --apply --event-endpoint <exomi's Event Grid trigger URL>",
                    )
                )
                continue
            desired = desired_event_subscription(self.options, endpoint)
            problems = ["missing"] if found is None else event_subscription_differences(found, desired)
            verdict = "ok" if not problems else "missing" if found is None else "wrong"
            items.append(
                Item(
                    "eventgrid",
                    label,
                    verdict,
                    "endpoint, filters and retry policy as docs/OPERATIONS.md says"
                    if verdict == "ok"
                    else "; ".join(problems),
                    action=None if verdict == "ok" else f"{'create' if found is None else 'replace'} {name}",
                    fix=None if verdict == "ok" else f"exomi bootstrap --apply --event-endpoint '{endpoint}'",
                    write=None if verdict == "ok" else self._put_subscription(subscription, desired),
                )
            )
        return items

    def _create_topic(self, subscription: str, group: str) -> Write:
        async def write() -> None:
            await self.eventgrid.create_subscription_topic(subscription, group, f"exomi-arm-{subscription}")

        return write

    def _put_subscription(self, subscription: str, body: dict[str, Any]) -> Write:
        async def write() -> None:
            topic = await self.eventgrid.subscription_topic(subscription)  # the one just created, if so
            if topic is None:
                raise InputError(
                    "topic_resource_group",
                    f"/subscriptions/{subscription} has no system topic: name the resource group to create it in",
                )
            await self.eventgrid.put_event_subscription(topic, self.options.event_subscription_name, body)

        return write
