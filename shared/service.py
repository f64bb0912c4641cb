"""The service layer: what every channel (CLI, HTTP API, Event Grid, reconciliation) asks exomi to do.

``ExomiApp`` is the composition root of one process: settings, policy, one credential and one client
per Azure service, the state store and the engine. ``ExomiService`` validates and records requests
(nothing is written for a refused one), plans and diagnoses without writing, and reports status.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from shared.azure.arm import ArmGateway
from shared.azure.clients import AzureClients, AzureEndpoints
from shared.azure.graph import GraphGateway
from shared.engine.context import Observation, StepContext, Verdict
from shared.engine.plan import dependencies, steps_for
from shared.engine.runner import Engine
from shared.errors import ExomiError, NotFound
from shared.ids import parse_resource_id
from shared.models import Channel, Operation, ProvisionRequest, RevokeRequest
from shared.policy import Decision, Policy, load_policy
from shared.settings import Settings
from shared.state.records import AuditRecord, Page, RequestRecord, StepRecord, Submission, utcnow
from shared.state.store import StateStore
from shared.work_queue import WorkQueue


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

    @classmethod
    async def open(cls, settings: Settings | None = None) -> ExomiApp:
        settings = settings or Settings.load()
        policy = load_policy(settings.policy_json, settings.policy_file)
        clients = AzureClients(
            AzureEndpoints(
                arm_endpoint=settings.arm_endpoint,
                arm_scope=settings.arm_scope,
                graph_endpoint=settings.graph_endpoint,
                graph_scope=settings.graph_scope,
                ca_bundle=str(settings.ca_bundle) if settings.ca_bundle else None,
                managed_identity_client_id=settings.client_id,
            )
        )
        state = await StateStore.open(settings, clients.credential)
        arm, graph = ArmGateway(clients), GraphGateway(clients)
        queue = WorkQueue.open(settings, clients.credential)
        return cls(
            settings, policy, clients, state, arm, graph, Engine(state, arm, graph, settings.engine), queue
        )

    async def close(self) -> None:
        await self.state.close()
        await self.queue.close()
        await self.clients.close()

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

    @property
    def changes(self) -> list[StepReport]:
        return [s for s in self.steps if s.verdict in (Verdict.MISSING, Verdict.WRONG)]


@dataclass
class StatusReport:
    request: RequestRecord
    steps: list[StepRecord]
    audit: list[AuditRecord]


Progress = Callable[[RequestRecord, list[StepRecord]], Awaitable[None] | None]


class ExomiService:
    def __init__(self, app: ExomiApp) -> None:
        self.app = app

    # ------------------------------------------------------------------ requests

    def _parse(self, model, body: Mapping[str, Any], requested_by: str, channel: Channel):
        # Who asked and through which channel come from the caller's authentication, never the body.
        return model.parse({**body, "requested_by": requested_by, "channel": channel.value})

    def evaluate(
        self, body: Mapping[str, Any], *, requested_by: str, channel: Channel
    ) -> tuple[ProvisionRequest, Decision]:
        request = self._parse(ProvisionRequest, body, requested_by, channel)
        return request, self.app.policy.evaluate(request).raise_if_refused()

    async def submit_provision(
        self,
        body: Mapping[str, Any],
        *,
        requested_by: str,
        channel: Channel,
        idempotency_key: str | None = None,
    ) -> Submission:
        """Validate, check policy, record. Raises InputError / PolicyRefusal / Conflict before any write."""
        request, decision = self.evaluate(body, requested_by=requested_by, channel=channel)
        return await self.app.state.submit(request, decision, idempotency_key=idempotency_key)

    async def submit_revoke(
        self,
        body: Mapping[str, Any],
        *,
        requested_by: str,
        channel: Channel,
        idempotency_key: str | None = None,
    ) -> Submission:
        request = self._parse(RevokeRequest, body, requested_by, channel)
        decision = self.app.policy.evaluate(request).raise_if_refused()
        return await self.app.state.submit(request, decision, idempotency_key=idempotency_key)

    async def enqueue(self, record: RequestRecord, *, delay: timedelta | None = None) -> None:
        """Hand the request to the queue worker (the Function app's way of running it), after ``delay``
        (default: when the request is due to be looked at again, else now)."""
        if delay is None:
            delay = record.check_again_at - utcnow() if record.check_again_at else timedelta(0)
        await self.app.queue.enqueue(record.id, delay)

    async def status(self, request_id: str) -> StatusReport:
        record = await self.app.state.requests.find(request_id)
        if record is None:
            raise NotFound("request", request_id)
        steps = sorted(await self.app.state.steps.list(request_id), key=lambda s: s.index)
        audit = await self.app.state.audit.list_for_request(request_id)
        return StatusReport(record, steps, audit)

    async def list_requests(self, **filters: Any) -> Page[RequestRecord]:
        return await self.app.state.requests.list(**filters)

    async def advance(self, request_id: str) -> RequestRecord:
        return await self.app.engine.advance(request_id)

    async def run_to_end(
        self, request_id: str, *, on_progress: Progress | None = None, give_up_after: float | None = None
    ) -> RequestRecord:
        """Advance until the request ends (the CLI's foreground mode), sleeping while it waits."""
        deadline = None if give_up_after is None else asyncio.get_running_loop().time() + give_up_after
        while True:
            record = await self.advance(request_id)
            if on_progress is not None:
                steps = sorted(await self.app.state.steps.list(request_id), key=lambda s: s.index)
                result = on_progress(record, steps)
                if asyncio.iscoroutine(result):
                    await result
            if not record.status.active:
                return record
            delay = (
                max((record.check_again_at - utcnow()).total_seconds(), 0.05)
                if record.check_again_at
                else 0.05
            )
            if deadline is not None and asyncio.get_running_loop().time() + delay > deadline:
                return record
            await asyncio.sleep(delay)

    # ------------------------------------------------------------------ plan and diagnose (read-only)

    async def plan(self, body: Mapping[str, Any], *, requested_by: str, channel: Channel) -> PlanReport:
        """What provisioning would change, without changing anything (policy refusals are reported)."""
        request = self._parse(ProvisionRequest, body, requested_by, channel)
        decision = self.app.policy.evaluate(request)
        report = PlanReport(target=request.target, decision=decision)
        if not decision.allowed:
            report.refused = decision.refusal().to_dict()
            return report
        report.steps = await self._observe_all(request, decision, Operation.PROVISION)
        return report

    async def diagnose(self, body: Mapping[str, Any], *, requested_by: str, channel: Channel) -> PlanReport:
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
        request = self._parse(ProvisionRequest, merged, requested_by, channel)
        decision = self.app.policy.evaluate(request)
        report = PlanReport(target=request.target, decision=decision)
        if not decision.allowed:
            # Diagnose still looks: the refusal is one more finding.
            report.refused = decision.refusal().to_dict()
            decision = decision.model_copy(
                update={
                    "allowed": True,
                    "role": request.role,
                    "role_template_id": request.role.template_id if request.role else None,
                }
            )
            if decision.role is None:
                return report
        report.steps = await self._observe_all(request, decision, Operation.PROVISION, record)
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
        self, request: ProvisionRequest, decision: Decision, operation: Operation, target_record=None
    ) -> list[StepReport]:
        target = parse_resource_id(request.target)
        if target_record is None:
            target_record = await self.app.state.targets.get(target.key)
        facts: dict[str, Any] = {"changed": False}  # becomes True once a step would change something
        fake = RequestRecord(
            id="00000000-0000-0000-0000-000000000000",
            operation=operation,
            target=target.canonical,
            target_key=target.key,
            channel=request.channel,
            requested_by=request.requested_by,
            request=request,
            decision=decision,
        )
        reports: list[StepReport] = []
        unsettled: set[str] = set()  # steps whose facts later steps cannot rely on
        steps = steps_for(operation, target.kind)
        needs = dependencies(steps)
        for step in steps:
            waiting_on = sorted(needs[step.name] & unsettled)
            if waiting_on:
                reports.append(
                    StepReport(
                        step.name,
                        step.title,
                        "unknown",
                        f"depends on {', '.join(waiting_on)}, which must change first",
                    )
                )
                unsettled.add(step.name)
                continue
            ctx = StepContext(
                fake,
                decision,
                target,
                self.app.arm,
                self.app.graph,
                self.app.state,
                self.app.settings.engine,
                dict(facts),
                target_record,
            )
            try:
                observation: Observation = await step.observe(ctx)
            except ExomiError as error:
                reports.append(
                    StepReport(step.name, step.title, "error", error.message, fix=error.details().get("fix"))
                )
                unsettled.add(step.name)
                continue
            facts.update(observation.facts)
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
            if observation.verdict in (Verdict.MISSING, Verdict.WRONG, Verdict.PENDING):
                unsettled.add(step.name)
                facts["changed"] = True
        return reports
