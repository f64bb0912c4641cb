"""The service layer: what every channel (CLI, HTTP API, Event Grid, reconciliation) asks exomi to do.

``ExomiApp`` is the composition root of one process: settings, policy, one credential and one client
per Azure service, the state store and the engine. ``ExomiService`` validates and records requests
(nothing is written for a refused one), plans and diagnoses without writing, and reports status.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import ResourceNotFoundError

from shared import callbacks, constants, telemetry
from shared.authorization import (
    Ask,
    Authorization,
    HeldRoles,
    authorize,
    check_approver,
    is_approver,
    lookups_needed,
)
from shared.azure.arm import ArmGateway
from shared.azure.clients import AzureClients, AzureEndpoints
from shared.azure.graph import GraphGateway
from shared.engine.context import Verdict, resource_ref
from shared.engine.privileges import observe_privileges
from shared.engine.runner import Engine, StepListener, held_by_a_pass
from shared.errors import (
    ApprovalDenied,
    ApprovalExpired,
    Cancelled,
    ConcurrencyError,
    Conflict,
    ExomiError,
    GaveUp,
    NotFound,
    PolicyRefusal,
    PrerequisiteMissing,
    Transient,
)
from shared.findings import Finding
from shared.function_apps import FunctionAppSetup, function_app_setup
from shared.ids import ResourceId, TargetKind, object_id_of, oid_claim, parse_resource_id, validate_guid
from shared.inventory import Holder, HolderStatus, classify, resource_of
from shared.models import (
    SYSTEM_IDENTITY,
    Channel,
    ModuleName,
    Operation,
    ProvisionRequest,
    Requester,
    RequesterKind,
    RequestStatus,
    RevokeRequest,
    TargetStatus,
)
from shared.ownership import GrantKind, Ledger
from shared.policy import Decision, Policy, load_policy
from shared.rules import parse_duration
from shared.runbooks import connect_line
from shared.settings import Settings
from shared.state.records import (
    Approval,
    ApprovalDecision,
    AuditRecord,
    Grants,
    Page,
    RefusalRecord,
    RequestRecord,
    StepRecord,
    Submission,
    TargetRecord,
    utcnow,
)
from shared.state.store import Admission, StateStore
from shared.work_queue import WorkItem, WorkQueue

if TYPE_CHECKING:
    from shared.self_check import GraphPermissionCheck
    from shared.tagging import TagWrite

log = logging.getLogger("exomi.service")


@dataclass
class ExomiApp:
    settings: Settings
    policy: Policy
    clients: AzureClients
    state: StateStore
    arm: ArmGateway
    graph: GraphGateway
    engine: Engine
    queue: WorkQueue
    own_object_id: str | None = None  # learnt once (ExomiService.own_object_id)

    @classmethod
    async def open(cls, settings: Settings | None = None) -> ExomiApp:
        settings = settings or Settings.load()
        telemetry.configure(settings.app_insights)  # once per process; nothing without a connection string
        policy = load_policy(settings.policy_json, settings.policy_file)
        clients = AzureClients(
            AzureEndpoints(
                arm_endpoint=settings.arm_endpoint,
                arm_scope=settings.arm_scope,
                graph_endpoint=settings.graph_endpoint,
                graph_scope=settings.graph_scope,
                ca_bundle=str(settings.ca_bundle) if settings.ca_bundle else None,
                managed_identity_client_id=settings.client_id,
                proxy=settings.https_proxy,
                no_proxy=settings.no_proxy,
            )
        )
        state = await StateStore.open(settings, clients.credential)
        arm, graph = ArmGateway(clients), GraphGateway(clients, facts_ttl=settings.tenant_facts_ttl)
        queue = WorkQueue.open(settings, clients.credential)
        return cls(
            settings,
            policy,
            clients,
            state,
            arm,
            graph,
            Engine(
                state,
                arm,
                graph,
                settings.engine,
                roll_back_on_failure=policy.on_failure == "rollback",
                remove_unmanaged_grants=policy.remove_unmanaged_grants,
                exchange_environment=settings.exchange_environment,
            ),
            queue,
        )

    async def close(self) -> None:
        await self.state.close()
        await self.queue.close()
        await self.clients.close()
        telemetry.flush()

    async def __aenter__(self) -> ExomiApp:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


@dataclass
class StepReport:
    name: str
    title: str
    verdict: str
    detail: str
    action: str | None = None
    fix: str | None = None


@dataclass
class PlanReport:
    """What a request would change (plan) or how a target compares with its desired state (diagnose)."""

    target: str
    decision: Decision | None
    steps: list[StepReport] = field(default_factory=list)
    refused: dict[str, Any] | None = None
    approval: list[str] = field(default_factory=list)  # why an approver would have to approve it first
    findings: list[Finding] = field(default_factory=list)  # diagnose: privileges beyond what it needs (live)

    @property
    def changes(self) -> list[StepReport]:
        return [s for s in self.steps if s.verdict in (Verdict.MISSING, Verdict.WRONG)]


@dataclass
class StatusReport:
    request: RequestRecord
    steps: list[StepRecord]
    audit: list[AuditRecord]
    target: TargetRecord | None = None  # the target's record, as exomi holds it now
    connect_command: str | None = None  # the line the target's scripts connect with, once it has one
    # A Function app's lines (requirements.psd1, connect, Flex Consumption): granted, not verified.
    function_app: FunctionAppSetup | None = None


@dataclass(frozen=True)
class Attempt:
    """What a refused attempt asked for, for the refusal log."""

    requester: Requester
    channel: Channel
    operation: str  # provision, revoke, approve, deny, cancel, use the API
    target: str | None
    event_id: str | None = None
    external_reference: str | None = None


@dataclass(frozen=True)
class Cancellation:
    request: RequestRecord
    kept: list[
        str
    ]  # what the request had changed and left in place (needed by another target, or on_failure keep)
    rolled_back: list[str]  # what it had granted and exomi took back (on_failure rollback)


@dataclass(frozen=True)
class Outcome:
    """What handling an event, an expiry or a drift did: a sentence for the log, and the request it made."""

    text: str
    request: RequestRecord | None = None

    def __str__(self) -> str:
        return self.text


EXPIRY_REQUESTER = "exomi-expiry"
INVENTORY_PARALLELISM = 8  # principals looked at at once (Graph throttles per app: kiota backs off on 429)
# A work item for a waiting request that comes more than this before the request is due is a duplicate.
EARLY = timedelta(seconds=2)
# A work item that found another pass holding its request comes back this long after the lease ends.
LEASE_MARGIN = timedelta(seconds=2)


def after_lease(record: RequestRecord) -> timedelta:
    """How long until a request's lease has run out (plus a margin for clocks), at least LEASE_MARGIN."""
    left = record.lease_until - utcnow() if record.lease_until is not None else timedelta(0)
    return max(left, timedelta(0)) + LEASE_MARGIN


def approver_channel(requester: Requester) -> Channel:
    """The channel an approval or a cancellation came through, from how its caller was identified."""
    return Channel.CLI if requester.kind is RequesterKind.OPERATOR else Channel.HTTP


def _refusal(decision: Decision) -> PolicyRefusal:
    refusal = decision.refusal()
    assert refusal is not None  # only called for a decision that refuses
    return refusal


Progress = Callable[[RequestRecord, list[StepRecord]], Awaitable[None] | None]


class ExomiService:
    def __init__(self, app: ExomiApp) -> None:
        self.app = app

    @property
    def policy(self) -> Policy:
        return self.app.policy

    @property
    def settings(self) -> Settings:
        return self.app.settings

    async def check_storage(self) -> None:
        """One read from the state tables and one from the work queue (a queue not created yet is
        fine); raises when either does not answer (the health check)."""
        await self.app.state.requests.list(page_size=1)
        with contextlib.suppress(ResourceNotFoundError):
            await self.app.queue.check()

    # ------------------------------------------------------------------ tag-driven automation

    async def own_graph_permissions(self) -> GraphPermissionCheck:
        """Whether exomi's own identity holds the Graph permissions every provision needs (cached for
        a while: the health probe asks often)."""
        from shared import self_check

        return await self_check.graph_permissions(self)

    async def own_object_id(self) -> str | None:
        """exomi's own object id, once per process: the setting, else the oid claim of its own ARM
        token (events that exomi's own writes cause are ignored by it)."""
        if self.app.own_object_id is None:
            settings = self.app.settings
            if settings.principal_id:
                self.app.own_object_id = object_id_of(settings.principal_id)
            else:
                token = await self.app.clients.credential.get_token(settings.arm_scope)
                self.app.own_object_id = oid_claim(token.token)
                if self.app.own_object_id is None:
                    log.warning("exomi's ARM token has no readable oid claim; set EXOMI_PRINCIPAL_ID")
        return self.app.own_object_id

    async def event_handled(self, event_id: str, at: datetime | None) -> bool:
        return await self.app.state.events.handled(event_id, at)

    async def remember_event(self, event_id: str, at: datetime | None, outcome: str) -> None:
        await self.app.state.events.remember(event_id, at, outcome)

    async def sync_tags(self, target: ResourceId, write: TagWrite) -> Outcome:
        """Bring exomi's requests for ``target`` in line with its tags (or its deletion), as asked for by
        the writer of ``write`` (shared/tagging.py)."""
        from shared import tagging

        return await tagging.sync_target(self, target, write)

    # ------------------------------------------------------------------ requests

    def _parse(self, model: Any, body: Mapping[str, Any], requester: Requester, channel: Channel) -> Any:
        # Who asked and through which channel come from the caller's authentication, never the body.
        return model.parse({**body, "requested_by": requester.name, "channel": channel.value})

    def evaluate(
        self, body: Mapping[str, Any], *, requester: Requester, channel: Channel
    ) -> tuple[ProvisionRequest, Decision]:
        request = self._parse(ProvisionRequest, body, requester, channel)
        return request, self.policy.evaluate(request)

    async def authorize(self, ask: Ask, requester: Requester) -> Authorization:
        """The caller rules for ``ask``, with the requester's Azure roles read from ARM where a rule needs them."""
        held: dict[ResourceId, set[str]] = {}
        for resource in lookups_needed(self.policy, ask, requester):
            assert requester.principal_id is not None  # lookups_needed names resources only then
            held[resource] = await self.app.arm.roles_held(
                requester.principal_id, resource.canonical, resource.subscription_id
            )
        return authorize(self.policy, ask, requester, HeldRoles.of(held))

    @telemetry.traced("exomi.submit", lambda _: {telemetry.OPERATION: Operation.PROVISION})
    async def submit_provision(
        self,
        body: Mapping[str, Any],
        *,
        requester: Requester,
        channel: Channel,
        idempotency_key: str | None = None,
        event_id: str | None = None,
    ) -> Submission:
        """Validate, check policy and the caller rules, record. Raises InputError, PolicyRefusal (recorded
        in the refusal log) or Conflict before any other write. A request that needs approval is recorded
        as awaiting_approval."""
        request, decision = self.evaluate(body, requester=requester, channel=channel)
        attempt = Attempt(
            requester, channel, Operation.PROVISION, request.target, event_id, request.external_reference
        )
        if not decision.allowed:
            raise await self.refused(_refusal(decision), attempt)
        authorization = await self.authorize(
            Ask.of(request, role=decision.role, runtime=decision.runtime), requester
        )
        if authorization.refusal is not None:
            raise await self.refused(authorization.refusal, attempt)
        approval = None
        if authorization.needs_approval:
            approval = Approval(
                reasons=list(authorization.approval_reasons),
                approvers=list(self.policy.approval.approvers),
                deadline=utcnow() + parse_duration(self.policy.approval.timeout),
            )
        callback = callbacks.seal(request.callback_url, self.app.settings) if request.callback_url else None
        admission = Admission(requester, authorization.rule, approval, callback)
        return await self.app.state.submit(
            request, decision, idempotency_key=idempotency_key, admission=admission
        )

    @telemetry.traced("exomi.submit", lambda _: {telemetry.OPERATION: Operation.REVOKE})
    async def submit_revoke(
        self,
        body: Mapping[str, Any],
        *,
        requester: Requester,
        channel: Channel,
        idempotency_key: str | None = None,
        event_id: str | None = None,
        resource_deleted: bool = False,
    ) -> Submission:
        """Like submit_provision, for taking access away. A caller revokes only what it could have asked
        for; ``resource_deleted`` (the target is gone: nothing of exomi's may stay behind) skips the rules."""
        request = self._parse(RevokeRequest, body, requester, channel)
        attempt = Attempt(
            requester, channel, Operation.REVOKE, request.target, event_id, request.external_reference
        )
        decision = self.policy.evaluate(request)
        if not decision.allowed:
            raise await self.refused(_refusal(decision), attempt)
        rule = "resource deleted"
        if not resource_deleted:
            record = await self.app.state.targets.get(request.target_id.key)
            ask = Ask.of(request, role=record.role if record is not None else None)
            if ask.identity is None and record is not None and record.identity.startswith("/"):
                identity = parse_resource_id(record.identity)
                if identity.canonical.lower() != ask.target.canonical.lower():
                    ask = replace(ask, identity=identity)
            authorization = await self.authorize(ask, requester)
            if authorization.refusal is not None:
                raise await self.refused(authorization.refusal, attempt)
            rule = authorization.rule or rule
        return await self.app.state.submit(
            request, decision, idempotency_key=idempotency_key, admission=Admission(requester, rule)
        )

    async def refused(
        self, refusal: PolicyRefusal, attempt: Attempt, *, request_id: str | None = None
    ) -> PolicyRefusal:
        """Record a refused attempt in the append-only refusal log (and the log, at WARNING); returns the
        refusal for the caller to raise. Nothing else is written for it."""
        requester = attempt.requester
        telemetry.count_refusal(refusal.rule, attempt.channel, attempt.operation)
        record = RefusalRecord(
            channel=attempt.channel,
            operation=attempt.operation,
            requested_by=requester.name,
            principal_id=requester.principal_id,
            azure_role=requester.azure_role,
            target=attempt.target,
            request_id=request_id,
            rule=refusal.rule,
            reason=refusal.reason,
            field=refusal.field,
            event_id=attempt.event_id,
            external_reference=attempt.external_reference,
        )
        await self.app.state.refusals.append(record)
        log.warning(
            "refused %s of %s through %s for %s (rule %s): %s",
            attempt.operation,
            attempt.target or "-",
            attempt.channel,
            requester.name,
            refusal.rule,
            refusal.reason,
        )
        return refusal

    async def findings(self) -> list[TargetRecord]:
        """The targets exomi holds something for, with their latest findings (a provision's end or the
        reconciliation timer, both from live Graph reads)."""
        found: list[TargetRecord] = []
        for status in (TargetStatus.PROVISIONED, TargetStatus.FAILED, TargetStatus.PROVISIONING):
            found += [
                record async for record in self.app.state.targets.list_by_status(status) if record.drift
            ]
        return sorted(found, key=lambda record: record.target.lower())

    async def inventory(self) -> list[Holder]:
        """Every principal of the tenant that holds an app role on Office 365 Exchange Online or a supported
        Entra role, classified (shared/inventory.py) from live Graph and ARM state. Read-only."""
        graph = self.app.graph
        exchange = await graph.exchange_principal()
        app_grants = await graph.app_role_holders(exchange.id) if exchange is not None else []
        names = {role.id.lower(): role.value or role.id for role in exchange.app_roles} if exchange else {}
        role_grants = await graph.role_holders(list(constants.SUPPORTED_ROLES.values()))
        held: dict[str, tuple[list[str], list[str]]] = {}
        for grant in app_grants:
            held.setdefault(grant.principal_id.lower(), ([], []))[0].append(grant.app_role_id)
        for role in role_grants:
            held.setdefault(role.principal_id.lower(), ([], []))[1].append(role.role_definition_id)
        # exomi's own records are read once (a few pages), not per principal: tenants have thousands.
        targets_of: dict[str, list[TargetRecord]] = {}
        async for target_record in self.app.state.targets.list_all():
            if target_record.principal_id and target_record.status is not TargetStatus.REVOKED:
                targets_of.setdefault(target_record.principal_id.lower(), []).append(target_record)
        owners = await self.app.state.ledgers.owners()
        limit = asyncio.Semaphore(INVENTORY_PARALLELISM)

        async def holder(principal_id: str, app_roles: list[str], roles: list[str]) -> Holder:
            async with limit:
                principal = await graph.get_principal(principal_id)
                resource_id = resource_of(principal.alternative_names) if principal else None
                exists = None
                if principal is not None and principal.principal_type == "ManagedIdentity" and resource_id:
                    exists = await self._resource_exists(resource_id)
                records = targets_of.get(principal_id, [])
                return classify(
                    principal_id=principal_id,
                    display_name=principal.display_name if principal else None,
                    principal_type=principal.principal_type if principal else None,
                    resource_id=resource_id,
                    resource_exists=exists,
                    exchange_app_role_ids=app_roles,
                    exchange_app_role_names=names,
                    role_definition_ids=roles,
                    targets=[(r.target, r.role) for r in records],
                    owned=principal_id in owners,
                )

        holders = await asyncio.gather(*(holder(pid, a, r) for pid, (a, r) in held.items()))
        order = {HolderStatus.ORPHANED: 0, HolderStatus.UNMANAGED: 1, HolderStatus.MANAGED: 2}
        return sorted(holders, key=lambda h: (not h.over_privileged, order[h.status], h.display_name or ""))

    # ------------------------------------------------------------------ adoption and orphans

    async def adopt(self, body: Mapping[str, Any], *, requester: Requester) -> RequestRecord:
        """Bring an identity that already holds Exchange.ManageAsApp and the role under exomi's management:
        record ownership receipts (ledger, target record, an audited request) without changing any grant.
        From then on revoke removes them like grants exomi made."""
        request, decision = self.evaluate(body, requester=requester, channel=Channel.CLI)
        attempt = Attempt(requester, Channel.CLI, "adopt", request.target)
        if not decision.allowed:
            raise await self.refused(_refusal(decision), attempt)
        target = request.target_id
        resource = await self.app.arm.get_target(target.kind, resource_ref(target))
        if resource is None:
            raise NotFound("target", target.canonical)
        identity_id = request.identity_id or (
            target if target.kind is TargetKind.USER_ASSIGNED_IDENTITY else None
        )
        identity = (
            resource.user_assigned.get(identity_id.canonical.lower())
            if identity_id
            else resource.system_identity
        )
        if identity is None:
            raise PrerequisiteMissing(
                "identity",
                f"{target.canonical} has no such managed identity.",
                "name the identity it uses (--identity)",
            )
        graph = self.app.graph
        exchange = await graph.exchange_principal()
        app_role = next(
            (
                g
                for g in await graph.app_role_grants(identity.principal_id)
                if exchange is not None
                and g.resource_id.lower() == exchange.id.lower()
                and g.app_role_id.lower() == constants.EXCHANGE_MANAGE_AS_APP_ROLE_ID
            ),
            None,
        )
        wanted = (decision.role_template_id or "").lower()
        role = next(
            (
                g
                for g in await graph.role_grants(identity.principal_id)
                if g.role_definition_id.lower() == wanted
            ),
            None,
        )
        if app_role is None and role is None:
            raise PrerequisiteMissing(
                "grants",
                f"nothing to adopt: identity {identity.principal_id} holds neither Exchange.ManageAsApp nor {decision.role}.",
                "provision the target instead (exomi provision)",
            )
        record = (
            await self.app.state.submit(request, decision, admission=Admission(requester, "operator"))
        ).request
        adopted = []
        for kind, grant_id, name in (
            (GrantKind.APP_ROLE, app_role.id if app_role else None, constants.EXCHANGE_MANAGE_AS_APP_VALUE),
            (GrantKind.ENTRA_ROLE, role.id if role else None, str(decision.role)),
        ):
            if grant_id is None:
                continue
            adopted.append(f"{name} ({grant_id})")
            await self.app.state.update_ledger(
                identity.principal_id,
                partial(
                    Ledger.record,
                    kind=kind,
                    assignment_id=grant_id,
                    name=name,
                    target_key=target.key,
                    target=target.canonical,
                    request_id=record.id,
                    made_by_exomi=True,
                ),
            )
        existing = await self.app.state.targets.get(target.key)
        values: dict[str, Any] = {
            "identity": request.identity or SYSTEM_IDENTITY,
            "principal_id": identity.principal_id,
            "client_id": identity.client_id or None,
            "organization": request.organization,
            "role": decision.role,
            "runtime": decision.runtime,
            "granted": Grants(
                app_role_assignment_id=app_role.id if app_role else None,
                role_assignment_id=role.id if role else None,
            ),
            "status": TargetStatus.PROVISIONED,
            "last_request_id": record.id,
            "expired": False,
        }
        target_record = (
            existing.model_copy(update=values)
            if existing is not None
            else TargetRecord(target=target.canonical, target_key=target.key, kind=target.kind, **values)
        )
        await self.app.state.targets.save(target_record)
        message = f"adopted {', '.join(adopted)}: ownership recorded, nothing changed in the tenant"
        await self._audit_request(
            record, "adopt", message, before=None, after={"adopted": adopted}, by=requester
        )
        log.info("request %s: %s", record.id, message)
        return await self.app.state.finish(record, RequestStatus.SUCCEEDED, message=message)

    async def revoke_principal(self, principal_id: str, *, requester: Requester) -> RequestRecord:
        """Clean up an orphan (a managed identity whose resource is gone): remove its app roles on Office 365
        Exchange Online and its supported Entra roles, audited. Refused for an identity whose resource
        exists: revoke that target instead."""
        principal_id = validate_guid(principal_id, "principal")
        graph = self.app.graph
        principal = await graph.get_principal(principal_id)
        if principal is None:
            raise NotFound("principal", principal_id)
        resource_id = resource_of(principal.alternative_names)
        if resource_id is None or await self._resource_exists(resource_id) is not False:
            raise Conflict(
                f"principal {principal_id} is not an orphan: its resource ({resource_id or 'none'}) exists or is not an "
                "Azure resource exomi can read; revoke its target instead (exomi revoke --target)."
            )
        request = self._parse(RevokeRequest, {"target": resource_id}, requester, Channel.CLI)
        record = (
            await self.app.state.submit(
                request, Decision(allowed=True), admission=Admission(requester, "operator")
            )
        ).request
        exchange = await graph.exchange_principal()
        removed: list[str] = []
        supported = {template.lower() for template in constants.SUPPORTED_ROLES.values()}
        for grant in await graph.app_role_grants(principal_id):
            if exchange is not None and grant.resource_id.lower() == exchange.id.lower():
                await graph.revoke_app_role(principal_id, grant.id)
                removed.append(f"app role {grant.app_role_id} ({grant.id})")
        for role in await graph.role_grants(principal_id):
            if role.role_definition_id.lower() in supported:
                await graph.remove_role(role.id)
                removed.append(f"Entra role {role.role_definition_id} ({role.id})")
        for sequence, change in enumerate(removed):
            await self._audit_request(
                record,
                "revoke-principal",
                f"remove {change} from the orphan",
                before=None,
                after={"removed": True},
                by=requester,
                sequence=sequence,
            )
        await self.app.state.update_ledger(
            principal_id, lambda lg: Ledger(principal_id=lg.principal_id, etag=lg.etag)
        )
        target_record = await self.app.state.targets.get(record.target_key)
        if target_record is not None:
            await self.app.state.targets.save(
                target_record.model_copy(update={"status": TargetStatus.REVOKED, "granted": Grants()})
            )
        message = f"removed from orphan {principal_id}: " + (
            ", ".join(removed) or "nothing (it held nothing)"
        )
        return await self.app.state.finish(record, RequestStatus.REVOKED, message=message)

    async def _resource_exists(self, resource_id: str) -> bool | None:
        """Whether a managed identity's resource still exists (None: a kind exomi does not read, or ARM
        would not say)."""
        try:
            resource = parse_resource_id(resource_id, "resource_id")
        except ExomiError:
            return None
        try:
            return await self.app.arm.get_target(resource.kind, resource_ref(resource)) is not None
        except ExomiError:
            return None

    async def list_refusals(self, **filters: Any) -> Page[RefusalRecord]:
        return await self.app.state.refusals.list(**filters)

    async def enqueue(self, record: RequestRecord, *, delay: timedelta | None = None) -> None:
        """Hand the request to the queue worker (the Function app's way of running it), after ``delay``
        (default: when the request is due to be looked at again, else now; a request awaiting approval
        is looked at when its approval times out)."""
        if delay is None:
            due = record.check_again_at
            if record.status is RequestStatus.AWAITING_APPROVAL and record.approval is not None:
                due = record.approval.deadline
            delay = due - utcnow() if due else timedelta(0)
        await self.app.queue.enqueue(record.id, delay)
        if record.status is RequestStatus.QUEUED:  # the resume pass leaves a work item in the queue alone
            await self.app.state.requests.work_item_sent(record)

    def prepare_to_enqueue(self) -> None:
        """Get the queue ready before a request is recorded that will be queued (its SDK loads in 0.3 s)."""
        self.app.queue.prepare()

    async def try_enqueue(self, record: RequestRecord, *, delay: timedelta | None = None) -> bool:
        """``enqueue``, for a request that is recorded already: when the queue does not answer, say so
        (False) instead of failing; the resume pass queues a request that has no work item."""
        try:
            await self.enqueue(record, delay=delay)
        except Exception as error:  # noqa: BLE001 - whatever the queue's failure, the request is safe
            log.warning(
                "request %s is recorded, but the work queue did not take it (%s); the resume pass will",
                record.id,
                error,
            )
            return False
        return True

    async def find(self, request_id: str) -> RequestRecord | None:
        return await self.app.state.requests.find(request_id)

    def _connect_command(self, target: TargetRecord | None) -> str | None:
        if target is None or not target.organization:
            return None
        client_id = target.client_id if target.identity != SYSTEM_IDENTITY else None
        return connect_line(target.organization, client_id, self.app.settings.exchange_environment)

    def _function_app(self, record: RequestRecord, target: TargetRecord | None) -> FunctionAppSetup | None:
        """The lines a Function app uses, from the versions the policy decided (checked against the
        compatibility matrix before anything was written)."""
        if target is None or target.kind is not TargetKind.FUNCTION_APP or not target.organization:
            return None
        decision = record.decision if record.operation is Operation.PROVISION else None
        version = decision.module_versions.get(ModuleName.EXCHANGE_ONLINE_MANAGEMENT) if decision else None
        if version is None:
            return None
        client_id = target.client_id if target.identity != SYSTEM_IDENTITY else None
        return function_app_setup(
            target.organization, client_id, self.app.settings.exchange_environment, version
        )

    async def status(self, request_id: str) -> StatusReport:
        record = await self.app.state.requests.find(request_id)
        if record is None:
            raise NotFound("request", request_id)
        steps = sorted(await self.app.state.steps.list(request_id), key=lambda s: s.index)
        audit = await self.app.state.audit.list_for_request(request_id)
        target = await self.app.state.targets.get(record.target_key)
        return StatusReport(
            record, steps, audit, target, self._connect_command(target), self._function_app(record, target)
        )

    async def list_requests(self, **filters: Any) -> Page[RequestRecord]:
        return await self.app.state.requests.list(**filters)

    async def advance(
        self,
        request_id: str,
        *,
        take_over: bool = False,
        on_step: StepListener | None = None,
        record: RequestRecord | None = None,
    ) -> RequestRecord:
        """One engine pass; ``record``: the request as just read (Engine.advance does not read it again).
        A tag request whose tags a refused writer wrote since it was made does not start (tagging.py)."""
        if record is not None and record.channel is Channel.TAG and record.status is RequestStatus.QUEUED:
            from shared import tagging

            cancelled = await tagging.cancel_if_refused_since(self.app, record)
            if cancelled is not None:
                return cancelled
        return await self.app.engine.advance(request_id, take_over=take_over, on_step=on_step, record=record)

    @telemetry.traced("exomi.run", lambda arguments: {telemetry.REQUEST_ID: arguments["request_id"]})
    async def run_to_end(
        self,
        request_id: str,
        *,
        on_progress: Progress | None = None,
        give_up_after: float | None = None,
        take_over: bool = False,
    ) -> RequestRecord:
        """Advance until the request ends (the CLI's foreground mode), sleeping while it waits. A request
        awaiting approval is returned as it is: only an approver can move it on."""
        deadline = None if give_up_after is None else asyncio.get_running_loop().time() + give_up_after
        seen: dict[str, StepRecord] = {}  # each step as last saved: what progress shows

        async def show(record: RequestRecord) -> None:
            if on_progress is not None:
                result = on_progress(record, sorted(seen.values(), key=lambda s: s.index))
                if asyncio.iscoroutine(result):
                    await result

        async def step_saved(step: StepRecord) -> None:
            seen[step.name] = step
            await show(current)

        current = await self._get(request_id)
        if on_progress is not None:
            seen.update({s.name: s for s in await self.app.state.steps.list(request_id)})
        while True:
            # Each pass starts from the request as the last one left it (its ETag guards the claim).
            record = current = await self.advance(
                request_id, take_over=take_over, on_step=step_saved, record=current
            )
            take_over = False  # only the first pass takes it over: from then on this process holds it
            await show(record)
            if record.status is RequestStatus.AWAITING_APPROVAL:
                return record
            if not record.status.active:
                await self.schedule_expiry(record)
                return record
            delay = (
                max((record.check_again_at - utcnow()).total_seconds(), 0.05)
                if record.check_again_at
                else 0.05
            )
            if deadline is not None and asyncio.get_running_loop().time() + delay > deadline:
                return record
            await asyncio.sleep(delay)

    # ------------------------------------------------------------------ the queue worker

    @telemetry.traced(
        "exomi.work",
        lambda arguments: {
            telemetry.REQUEST_ID: arguments["item"].request_id,
            telemetry.TARGET: arguments["item"].expire_target,
        },
    )
    async def work(self, item: WorkItem) -> None:
        """One work item of the queue: advance a request by one engine pass (then re-queue it while it
        waits, or deliver its callback and schedule its expiry once it has ended), or expire a target."""
        if item.expire_target is not None and item.expires_at is not None:
            outcome = await self.expire(item.expire_target, item.expires_at)
            log.info("expiry of %s at %s: %s", item.expire_target, item.expires_at.isoformat(), outcome)
            return
        assert item.request_id is not None
        record = await self.find(item.request_id)
        if record is None:
            log.error("dropping a work item for unknown request %s", item.request_id)
            return
        if not record.status.active:
            # Ended elsewhere (cancelled, denied, or a duplicate work item): only its callback is left.
            await callbacks.deliver(record, self.app.state, self.app.settings)
            return
        if record.status is RequestStatus.AWAITING_APPROVAL:
            record = await self.expire_approval(record)
            if record.status.active:
                await self.enqueue(record)  # looked at again when its approval times out
                return
        elif (
            record.status is RequestStatus.WAITING
            and record.check_again_at is not None
            and record.check_again_at - utcnow() > EARLY
        ):
            return  # a duplicate work item: the one the last pass queued comes when the request is due
        else:
            # An exception makes the host retry, then poison.
            record = await self.advance(item.request_id, record=record)
            if record.status is RequestStatus.RUNNING or held_by_a_pass(record):
                # Another pass holds it (a duplicate work item, maybe on another instance): that pass
                # queues it again when it ends; this one looks again once the lease would have run
                # out, so that a holder whose instance died is taken over without waiting for the
                # resume pass or the queue's 10-minute lease.
                delay = after_lease(record)
                log.info("request %s is held by another pass; looked at again in %s", record.id, delay)
                await self.enqueue(record, delay=delay)
                return
            if record.status.active:
                await self.enqueue(record)
                return
        await callbacks.deliver(record, self.app.state, self.app.settings)
        await self.schedule_expiry(record)

    @telemetry.traced("exomi.poison", lambda arguments: {telemetry.REQUEST_ID: arguments["request_id"]})
    async def fail_poisoned(self, request_id: str) -> None:
        """A work item failed every retry: the request ends failed, with the reason, visible in the API."""
        record = await self.find(request_id)
        if record is None or not record.status.active:
            return
        error = GaveUp(
            "exomi gave up on this request: processing it failed on every retry of the work queue (see the "
            "Function app's logs for the exception). Send the request again once the cause is fixed."
        )
        record = await self.app.state.finish(record, RequestStatus.FAILED, message=error.message, error=error)
        log.error("request %s ended failed: its work item was poisoned", request_id)
        await callbacks.deliver(record, self.app.state, self.app.settings)

    # ------------------------------------------------------------------ approvals

    async def decide(
        self, request_id: str, approver: Requester, *, approve: bool, comment: str | None = None
    ) -> RequestRecord:
        """An approver approves (the request is queued to run) or denies (it ends denied) a request that
        awaits approval. The approver must be named in approval.approvers and must not be the requester;
        a refusal is recorded. Conflict when the request is not awaiting approval."""
        for _ in range(3):
            record = await self._get(request_id)
            attempt = Attempt(
                approver, approver_channel(approver), "approve" if approve else "deny", record.target
            )
            refusal = check_approver(self.policy, approver, record.requester)
            if refusal is not None:
                raise await self.refused(refusal, attempt, request_id=record.id)
            record = await self.expire_approval(record)
            if record.status is not RequestStatus.AWAITING_APPROVAL or record.approval is None:
                raise Conflict(
                    f"request {record.id} is not awaiting approval (it is {record.status.value}); nothing was changed.",
                )
            decision = ApprovalDecision.APPROVED if approve else ApprovalDecision.DENIED
            approval = record.approval.model_copy(
                update={
                    "decision": decision,
                    "decided_by": approver.name,
                    "decided_by_id": approver.principal_id,
                    "decided_at": utcnow(),
                    "comment": comment,
                }
            )
            try:
                if approve:
                    updated = await self._approved(record, approval, approver)
                else:
                    error = ApprovalDenied(
                        f"denied by {approver.name}" + (f": {comment}" if comment else ""), by=approver.name
                    )
                    updated = await self.app.state.finish(
                        record.model_copy(update={"approval": approval}),
                        RequestStatus.DENIED,
                        message=error.message,
                        error=error,
                    )
            except ConcurrencyError:
                continue  # the request changed meanwhile (another approver, a cancel): look again
            await self._audit_request(
                updated,
                "approval",
                f"request {'approved' if approve else 'denied'} by {approver.name}",
                before={"status": RequestStatus.AWAITING_APPROVAL.value},
                after={"status": updated.status.value, "approval": approval.model_dump(mode="json")},
                by=approver,
            )
            log.info("request %s %s by %s", updated.id, decision.value, approver.name)
            await self.enqueue(updated)  # runs it, or (denied) delivers its callback
            return updated
        raise Transient(f"request {request_id} kept changing while the decision was recorded; try again")

    async def _approved(
        self, record: RequestRecord, approval: Approval, approver: Requester
    ) -> RequestRecord:
        """Approved: queued to run (an access duration starts once the access is in place)."""
        return await self.app.state.requests.update(
            record.model_copy(
                update={
                    "status": RequestStatus.QUEUED,
                    "approval": approval,
                    "message": f"approved by {approver.name}",
                }
            )
        )

    async def expire_approval(self, record: RequestRecord) -> RequestRecord:
        """End a request whose approval timed out (cancelled, ApprovalExpired); others come back as they are."""
        approval = record.approval
        if (
            record.status is not RequestStatus.AWAITING_APPROVAL
            or approval is None
            or utcnow() < approval.deadline
        ):
            return record
        error = ApprovalExpired(
            f"nobody approved or denied the request before {approval.deadline.isoformat(timespec='seconds')} "
            f"(policy approval.timeout {self.policy.approval.timeout}); send it again if it is still needed."
        )
        expired = approval.model_copy(update={"decision": ApprovalDecision.EXPIRED, "decided_at": utcnow()})
        try:
            updated = await self.app.state.finish(
                record.model_copy(update={"approval": expired}),
                RequestStatus.CANCELLED,
                message=error.message,
                error=error,
            )
        except ConcurrencyError:
            return await self._get(record.id)
        await self._audit_request(
            updated,
            "approval",
            "request cancelled: its approval timed out",
            before={"status": RequestStatus.AWAITING_APPROVAL.value},
            after={"status": RequestStatus.CANCELLED.value},
            by=Requester.exomi("exomi"),
        )
        log.warning("request %s was cancelled: nobody approved it in time", record.id)
        return updated

    # ------------------------------------------------------------------ cancel

    async def cancel(self, request_id: str, caller: Requester, channel: Channel) -> Cancellation:
        """End a request that is queued, waiting or awaiting approval. Allowed for its requester, an
        approver, or anyone a rule admits to ask for the same thing (and for operators); a refusal is
        recorded. What the request already granted stays in place, and the answer lists it."""
        for _ in range(3):
            record = await self._get(request_id)
            attempt = Attempt(caller, channel, "cancel", record.target)
            refusal = await self._may_cancel(record, caller, channel)
            if refusal is not None:
                raise await self.refused(refusal, attempt, request_id=record.id)
            if not record.status.active:
                raise Conflict(
                    f"request {record.id} has already ended ({record.status.value}); nothing was changed."
                )
            if not record.status.cancellable:
                raise Conflict(
                    f"request {record.id} is in the middle of a step right now; try again in a few seconds.",
                    active_request_id=record.id,
                )
            error = Cancelled(f"cancelled by {caller.name}", by=caller.name)
            try:
                updated = await self.app.state.finish(
                    record, RequestStatus.CANCELLED, message=error.message, error=error
                )
            except ConcurrencyError:
                continue
            kept, rolled_back = await self._after_cancel(record)
            if rolled_back:
                updated = await self.app.state.requests.update(
                    updated.model_copy(
                        update={"message": f"{error.message} (rolled back: {'; '.join(rolled_back)})"}
                    )
                )
            await self._audit_request(
                updated,
                "request",
                f"request cancelled by {caller.name}",
                before={"status": record.status.value},
                after={"status": RequestStatus.CANCELLED.value, "kept": kept, "rolled_back": rolled_back},
                by=caller,
                sequence=2,
            )
            log.info("request %s was cancelled by %s", record.id, caller.name)
            await self.enqueue(updated)  # the worker delivers its callback, if any
            return Cancellation(updated, kept, rolled_back)
        raise Transient(f"request {request_id} kept changing while it was being cancelled; try again")

    async def _after_cancel(self, record: RequestRecord) -> tuple[list[str], list[str]]:
        """What a cancelled request leaves in place and what it rolled back (policy on_failure)."""
        if record.operation is Operation.PROVISION and self.policy.on_failure == "rollback":
            target_record = await self.app.state.targets.get(record.target_key)
            rollback, _ = await self.app.engine.roll_back(record, target_record)
            return rollback.kept + rollback.failed, rollback.removed
        audit = await self.app.state.audit.list_for_request(record.id)
        changes = [
            entry.action
            for entry in audit
            if entry.step not in ("request", "approval", "callback")
            and not entry.action.endswith("(started)")
        ]
        return changes, []

    async def _may_cancel(
        self, record: RequestRecord, caller: Requester, channel: Channel
    ) -> PolicyRefusal | None:
        if caller.kind in (RequesterKind.OPERATOR, RequesterKind.EXOMI):
            return None
        if record.requester is not None and caller.same_principal(record.requester):
            return None
        if is_approver(self.policy, caller):
            return None
        decision = record.decision
        ask = Ask.of(
            record.request,
            role=decision.role if decision else None,
            runtime=decision.runtime if decision else None,
        )
        authorization = await self.authorize(replace(ask, channel=channel), caller)
        return authorization.refusal

    # ------------------------------------------------------------------ expiry

    async def schedule_expiry(self, record: RequestRecord) -> None:
        """After a provision request succeeded with an end date: a work item at that time takes it away."""
        if record.status is not RequestStatus.SUCCEEDED or record.decision is None:
            return
        expires_at = record.decision.expires_at
        if expires_at is not None:
            await self.app.queue.enqueue_expiry(record.target, expires_at, expires_at - utcnow())

    async def expire(self, target_id: str, expires_at: datetime) -> Outcome:
        """Take a target's access away at its end date, exactly as a revoke request does (channel
        expiry). A target renewed since (another end date, or none) is left alone."""
        target = parse_resource_id(target_id)
        record = await self.app.state.targets.get(target.key)
        if record is None or record.expires_at is None or record.status is TargetStatus.REVOKED:
            return Outcome("nothing to expire")
        if abs((record.expires_at - expires_at).total_seconds()) > 1:
            return Outcome("renewed since: its own expiry is scheduled")
        now = utcnow()
        if record.expires_at > now:  # queue messages wait 7 days at most
            await self.app.queue.enqueue_expiry(record.target, record.expires_at, record.expires_at - now)
            return Outcome("not due yet")
        try:
            submission = await self.submit_revoke(
                {"target": record.target}, requester=Requester.exomi(EXPIRY_REQUESTER), channel=Channel.EXPIRY
            )
        except Conflict:
            # Another request works on the target: look again in a while.
            await self.app.queue.enqueue_expiry(
                record.target, record.expires_at, timedelta(seconds=self.app.settings.engine.poll)
            )
            return Outcome("busy: looked at again later")
        await self.enqueue(submission.request)
        log.warning(
            "the access of %s expired at %s; revoking it (request %s)",
            record.target,
            expires_at.isoformat(),
            submission.request.id,
        )
        return Outcome(f"revoke request {submission.request.id}", submission.request)

    # ------------------------------------------------------------------ helpers

    async def _get(self, request_id: str) -> RequestRecord:
        record = await self.find(request_id)
        if record is None:
            raise NotFound("request", request_id)
        return record

    async def _audit_request(
        self,
        record: RequestRecord,
        step: str,
        action: str,
        *,
        before: Any,
        after: Any,
        by: Requester,
        sequence: int = 0,
    ) -> None:
        await self.app.state.audit.append(
            AuditRecord(
                request_id=record.id,
                step=step,
                sequence=sequence,
                action=action,
                target=record.target,
                before=before,
                after=after,
                requested_by=by.name,
                channel=record.channel,
            )
        )

    # ------------------------------------------------------------------ plan and diagnose (read-only)

    async def plan(self, body: Mapping[str, Any], *, requester: Requester, channel: Channel) -> PlanReport:
        """What provisioning would change, without changing anything. A refusal by policy or by the
        caller rules is reported (as a finding, not recorded as a refused attempt)."""
        request = self._parse(ProvisionRequest, body, requester, channel)
        decision = self.app.policy.evaluate(request)
        report = PlanReport(target=request.target, decision=decision)
        if not decision.allowed:
            report.refused = _refusal(decision).to_dict()
            return report
        authorization = await self.authorize(
            Ask.of(request, role=decision.role, runtime=decision.runtime), requester
        )
        if authorization.refusal is not None:
            report.refused = authorization.refusal.to_dict()
            return report
        report.approval = list(authorization.approval_reasons)
        report.steps, _ = await self._observe_all(request, decision, Operation.PROVISION)
        return report

    async def diagnose(
        self, body: Mapping[str, Any], *, requester: Requester, channel: Channel
    ) -> PlanReport:
        """Each prerequisite of a target as OK / missing / wrong, with the fix. Desired values not given
        are taken from exomi's record of the target, else from the policy's defaults."""
        target = parse_resource_id(body.get("target"), "target")
        record = await self.app.state.targets.get(target.key)
        merged: dict[str, Any] = {}
        if record is not None:
            merged.update(
                organization=record.organization,
                role=record.role.value if record.role else None,
                runtime=record.runtime.value if record.runtime else None,
                identity=record.identity if record.identity != target.canonical else None,
            )
        merged.update({k: v for k, v in body.items() if v is not None})
        merged = {k: v for k, v in merged.items() if v is not None}
        request = self._parse(ProvisionRequest, merged, requester, channel)
        decision = self.app.policy.evaluate(request)
        report = PlanReport(target=request.target, decision=decision)
        if not decision.allowed:
            # Diagnose still looks, at what the request asks for: the refusal is one more finding.
            report.refused = _refusal(decision).to_dict()
            decision = self.app.policy.desired_values(request)
        report.steps, facts = await self._observe_all(request, decision, Operation.PROVISION, record)
        principal_id = facts.get("principal_id") or (record.principal_id if record is not None else None)
        if principal_id:
            # Live state, never exomi's records alone: what the identity holds beyond what it needs.
            try:
                report.findings = await observe_privileges(
                    self.app.graph, self.app.state, principal_id, decision.role
                )
            except ExomiError as error:  # e.g. not visible in the directory yet
                report.steps.append(
                    StepReport(
                        "privileges", "What the identity holds beyond its needs", "error", error.message
                    )
                )
        if record is not None and record.last_verified_at is not None:
            report.steps.append(
                StepReport(
                    "last-verification",
                    "Last verification",
                    "ok",
                    f"verified at {record.last_verified_at.isoformat(timespec='seconds')}",
                )
            )
        return report

    async def _observe_all(
        self,
        request: ProvisionRequest,
        decision: Decision,
        operation: Operation,
        target_record: TargetRecord | None = None,
    ) -> tuple[list[StepReport], dict[str, Any]]:
        target = parse_resource_id(request.target)
        if target_record is None:
            target_record = await self.app.state.targets.get(target.key)
        unsaved = RequestRecord(
            id="00000000-0000-0000-0000-000000000000",
            operation=operation,
            target=target.canonical,
            target_key=target.key,
            channel=request.channel,
            requested_by=request.requested_by,
            request=request,
            decision=decision,
        )
        observed, facts = await self.app.engine.observe(unsaved, target_record)
        reports: list[StepReport] = []
        for item in observed:
            step, observation, error = item.step, item.observation, item.error
            if item.waiting_on:
                detail = f"depends on {', '.join(item.waiting_on)}, which must change first"
                reports.append(StepReport(step.name, step.title, "unknown", detail))
            elif error is not None:
                fix = error.details().get("fix")
                reports.append(StepReport(step.name, step.title, "error", error.message, fix=fix))
            elif observation is not None:
                reports.append(
                    StepReport(
                        step.name,
                        step.title,
                        observation.verdict.value,
                        observation.detail,
                        observation.action,
                        observation.fix,
                    )
                )
        return reports, facts
