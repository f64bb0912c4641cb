"""Reconciliation (the timer): keep what exomi provisioned as it should be, and lose no request.

One run
1. resumes requests whose work item is overdue: waiting ones more than ``resume_grace`` past their
   "check again at", queued ones ``queued_grace`` after they were recorded or approved when their work
   item may never have been sent (a crash between recording and enqueueing, or a queue that did not
   answer) and ``resume_grace`` after it was sent, running ones whose pass stopped renewing its lease
   (its worker died), backing off from a request it queued again that has not moved since; and ends
   requests that waited for an approver past the approval timeout. It reads the active-requests index
   (shared/state/active.py), never the whole requests table. ``resume_once`` does only this, from a
   timer of its own every 30 seconds;
2. checks every provisioned target (at most a few at a time; one broken target never stops the others):
   * its access past ``expires_at`` (a lost expiry work item) -> a revoke request (channel expiry);
   * deleted since -> a revoke request; tags that differ from the record, or an opt-in tag removed
     from a tag-managed target, are reported, never acted on: only an event names the writer whom
     the policy's rules must admit (shared/events.py), so a difference found here has no requester;
   * otherwise observes it read-only with the steps' ``observe`` (``ExomiService.plan``) against its
     desired state (its last provision request): what went missing (the Exchange.ManageAsApp grant,
     the Entra role, modules, the runbook) is healed with a provision request (channel ``reconcile``)
     when policy ``heal_drift`` allows; grants exomi did not make (other Exchange app roles such as
     the look-alikes, other Entra roles) are reported and never removed. Findings are logged as
     warnings and stored on the target record (``drift``);
3. forgets handled events older than Event Grid's retry period,

and logs what it did as counts.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from shared import tags, telemetry
from shared.engine.context import Verdict, resource_ref
from shared.engine.privileges import drift_of, observe_privileges
from shared.errors import ConcurrencyError, Conflict, ExomiError, PolicyRefusal
from shared.ids import parse_resource_id
from shared.models import Channel, Operation, Requester, RequestStatus, TargetStatus
from shared.runtime import exomi_service
from shared.service import ExomiService
from shared.settings import EngineTimings
from shared.state.active import ActiveEntry
from shared.state.events import KEEP_FOR
from shared.state.records import DriftFinding, DriftKind, RequestRecord, TargetRecord, utcnow

log = logging.getLogger("exomi.reconcile")

RECONCILER = "exomi-reconcile"  # requested_by of the requests reconciliation makes
EXOMI = Requester.exomi(RECONCILER)
PARALLEL_TARGETS = 4
PARALLEL_READS = 8  # requests the resume pass reads at once
# The longest the resume pass waits before queueing again a request it queued before that has not moved.
RESUME_BACKOFF_CAP = timedelta(minutes=10)
# Steps whose verdict is not about the tenant's state (verification follows from the others).
NOT_DRIFT = {"verify"}
_NOT_THE_REQUEST = {"requested_by", "channel", "external_reference", "callback_url"}


@dataclass
class ReconcileReport:
    resumed: int = 0  # overdue requests put back on the work queue
    checked: int = 0  # provisioned targets looked at
    busy: int = 0  # skipped: a request is working on them
    in_order: int = 0  # as desired
    tag_differences: int = 0  # tags that differ from the record (reported: only an event names a requester)
    revoked: int = 0  # revoke requests for deleted targets
    expired: int = 0  # revoke requests for access past its end (a lost expiry work item)
    approvals_expired: int = 0  # requests that waited for an approver past the approval timeout
    drifted: int = 0  # targets with something missing or extra
    healed: int = 0  # provision requests sent to heal missing setup
    extra_grants: int = 0  # grants exomi did not make (reported, kept)
    failed: int = 0  # targets whose check failed (logged; the others went on)
    events_forgotten: int = 0

    def summary(self) -> str:
        return "reconciliation: " + ", ".join(
            f"{f.name.replace('_', ' ')} {getattr(self, f.name)}" for f in fields(self)
        )


@telemetry.traced("exomi.reconcile")
async def run_once() -> ReconcileReport:
    """The timer trigger's entry point."""
    return await reconcile(await exomi_service())


@telemetry.traced("exomi.resume")
async def resume_once() -> ReconcileReport:
    """The frequent resume pass (its own timer, every 30 seconds): only step 1 of a reconciliation, so that
    a request whose work item was lost or whose worker died goes on within a minute."""
    report = ReconcileReport()
    await _resume(await exomi_service(), utcnow(), report)
    if report.resumed or report.approvals_expired:
        log.info("resume pass: resumed %d, approvals expired %d", report.resumed, report.approvals_expired)
    return report


async def reconcile(service: ExomiService, now: datetime | None = None) -> ReconcileReport:
    now = now or utcnow()
    report = ReconcileReport()
    await _resume(service, now, report)
    targets = [record async for record in service.app.state.targets.list_by_status(TargetStatus.PROVISIONED)]
    limit = asyncio.Semaphore(PARALLEL_TARGETS)

    async def check(record: TargetRecord) -> None:
        async with limit:
            try:
                await _check(service, record, now, report)
            except ExomiError as error:  # one broken target must not stop the others
                report.failed += 1
                log.error("reconciliation could not check %s: %s", record.target, error.message)
            except Exception:  # noqa: BLE001 - not even a bug in one target's check
                report.failed += 1
                log.exception("reconciliation could not check %s", record.target)

    await asyncio.gather(*(check(record) for record in targets))
    report.checked = len(targets)
    report.events_forgotten = await service.app.state.events.forget_before(now - KEEP_FOR)
    log.info(report.summary())
    return report


# ---------------------------------------------------------------------------------------------- resume


async def _resume(service: ExomiService, now: datetime, report: ReconcileReport) -> None:
    """Read the active-requests index (one partition, not a scan of every request ever made), then each
    request, a few at a time."""
    requests = service.app.state.requests
    limit = asyncio.Semaphore(PARALLEL_READS)

    grace = timedelta(seconds=service.app.settings.engine.resume_grace)
    backlog = await _visible_backlog(service)

    async def one(entry: ActiveEntry) -> None:
        if backlog and entry.sent_at is not None and now - entry.sent_at <= grace:
            # Queued less than resume_grace ago with its work item sent, while work items wait in the
            # queue: nothing about it can be overdue yet but a first pass whose worker died, which waits
            # until the backlog has gone or resume_grace has passed. Not reading these keeps a pass's cost
            # to the requests being worked on, not the whole backlog (a burst's resume reads would grow
            # with the square of its size).
            return
        async with limit:
            try:
                await _resume_one(service, entry, now, report, backlog=backlog)
            except Exception:  # noqa: BLE001 - one request (or a queue that does not answer) must not stop the others
                log.exception("the resume pass could not look at request %s", entry.request_id)

    await asyncio.gather(*[one(entry) async for entry in requests.active_entries()])


async def _visible_backlog(service: ExomiService) -> bool:
    """Whether work items wait at the front of the queue (a backlog): a request whose work item was sent
    is then most likely behind it, and one more work item would only go to its end."""
    try:
        return await service.app.queue.has_visible_messages()
    except Exception as error:  # noqa: BLE001 - a queue that does not answer: judge as if it were empty
        log.warning("the resume pass could not look at the work queue: %s", error)
        return False


async def _resume_one(
    service: ExomiService, entry: ActiveEntry, now: datetime, report: ReconcileReport, *, backlog: bool
) -> None:
    requests = service.app.state.requests
    record = await requests.find(entry.request_id)
    active = record is not None and record.status.active
    if await requests.active.heal(entry, found=record is not None, active=active, now=now):
        return  # a row left by a crash (its request ended, or was never written)
    if record is None or not active:
        return
    if record.status is RequestStatus.AWAITING_APPROVAL:
        ended = await service.expire_approval(record)
        report.approvals_expired += not ended.status.active
        return
    if not _overdue(record, entry, now, service.app.settings.engine, backlog=backlog):
        return
    await service.enqueue(record)
    await requests.active.resumed(entry, record.etag, now)
    report.resumed += 1
    log.warning("request %s (%s) had no work item in time; it was queued again", record.id, record.status)


def _overdue(
    record: RequestRecord, entry: ActiveEntry, now: datetime, timings: EngineTimings, *, backlog: bool
) -> bool:
    """Whether the request's work item looks lost. A request whose work item was sent (queued and marked
    sent, or waiting: its pass queued it) is not queued again while work items wait at the front of the
    queue (``backlog``): it is most likely behind them, and a message that was sent is not lost (one an
    instance fetched and died with comes back after the host's 10-minute lease). A request queued again
    before that has not moved since (its ETag) is queued again only after twice as long as the time
    before, at most ``RESUME_BACKOFF_CAP``. Both keep a backlog from growing by itself."""
    if record.status is RequestStatus.QUEUED:
        if entry.sent_at is not None and entry.sent_at >= record.updated_at:
            # Its work item is in the queue: behind a backlog, or fetched by an instance that died (the
            # host frees such a message after 10 minutes). As long as for a waiting request that is due.
            base = timings.resume_grace
            overdue = not backlog and now - entry.sent_at > timedelta(seconds=base)
        else:
            # Recorded or approved, and its work item perhaps never sent (a crash in between, or a queue
            # that did not answer): lost, unless the worker takes it within queued_grace.
            base = timings.queued_grace
            overdue = now - record.updated_at > timedelta(seconds=base)
    elif record.status is RequestStatus.RUNNING or record.lease_until is not None:
        # Running, or holding a short wait in its pass: overdue once that pass stopped renewing its lease
        # (its worker died).
        base = timings.lease
        overdue = record.lease_until is None or record.lease_until < now
    else:
        base = timings.resume_grace
        overdue = (
            not backlog
            and record.check_again_at is not None
            and now - record.check_again_at > timedelta(seconds=base)
        )
    if not overdue or entry.resumed_at is None or entry.resumed_etag != record.etag:
        return overdue
    backoff = min(timedelta(seconds=base) * 2**entry.resumes, RESUME_BACKOFF_CAP)
    return now - entry.resumed_at >= backoff


# ---------------------------------------------------------------------------------------------- targets


async def _check(service: ExomiService, record: TargetRecord, now: datetime, report: ReconcileReport) -> None:
    app = service.app
    target = parse_resource_id(record.target)
    if await app.state.active_request(target) is not None:
        report.busy += 1
        return
    if record.expires_at is not None and record.expires_at <= now:
        outcome = await service.expire(record.target, record.expires_at)  # a lost expiry work item
        report.expired += outcome.request is not None
        return
    resource = await app.arm.get_target(target.kind, resource_ref(target))
    if resource is None:
        # Deleted (an event was lost?): nothing of exomi's may stay behind.
        try:
            submission = await service.submit_revoke(
                {"target": record.target}, requester=EXOMI, channel=Channel.RECONCILE, resource_deleted=True
            )
        except Conflict:
            report.busy += 1
            return
        await service.enqueue(submission.request)
        report.revoked += 1
        log.warning(
            "%s no longer exists (an event was lost?): revoke request %s",
            record.target,
            submission.request.id,
        )
        return
    findings: list[DriftFinding] = []
    if tags.opted_in(resource.tags) or record.managed_by_tags:
        # Tags are only acted on for the writer an event names (shared/events.py): a difference seen
        # here has no requester, so it is reported, never turned into a request.
        difference = _tag_difference(service, record, resource.tags)
        if difference is not None:
            report.tag_differences += 1
            findings.append(_finding("error", "tags", difference, now))
    body = await _desired_body(service, record)
    plan = await service.plan(body, requester=EXOMI, channel=Channel.RECONCILE)
    if plan.refused is not None:
        findings.append(
            _finding(
                "error",
                "policy",
                f"policy now refuses this target's desired state: {plan.refused['message']}",
                now,
            )
        )
    missing = [
        step
        for step in plan.steps
        if step.name not in NOT_DRIFT and step.verdict in (Verdict.MISSING.value, Verdict.WRONG.value)
    ]
    findings += [_finding("missing", step.name, step.detail, now) for step in missing]
    findings += [
        _finding("error", step.name, step.detail, now) for step in plan.steps if step.verdict == "error"
    ]
    extra = await _extra_grants(service, record, now)
    findings += extra
    report.extra_grants += len(extra)
    if not findings:
        report.in_order += 1
    else:
        report.drifted += 1
        for finding in findings:
            log.warning("drift on %s: %s %s: %s", record.target, finding.kind, finding.what, finding.detail)
    # Extra grants are healed away only when the policy says so (the heal request removes them at its end).
    removing = bool(extra) and service.app.policy.remove_unmanaged_grants
    heal = await _heal(service, body, record) if (missing or removing) and plan.refused is None else None
    if heal is not None:
        report.healed += 1
        findings = [
            f.model_copy(update={"request_id": heal.id}) if f.kind == "missing" else f for f in findings
        ]
    # The findings are stored before the heal request goes to the worker, whose progress also writes
    # the target's record.
    await _store(service, record, findings, now)
    if heal is not None:
        await service.enqueue(heal)


async def _desired_body(service: ExomiService, record: TargetRecord) -> dict[str, Any]:
    """The target's desired state: its last provision request (as accepted), else what its record says."""
    last = await service.app.state.requests.find(record.last_request_id) if record.last_request_id else None
    if last is not None and last.operation is Operation.PROVISION:
        return last.request.model_dump(mode="json", exclude=_NOT_THE_REQUEST, exclude_none=True)
    body = {
        "target": record.target,
        "organization": record.organization,
        "role": record.role.value if record.role else None,
        "runtime": record.runtime.value if record.runtime else None,
        "identity": record.identity if record.identity.lower() != record.target.lower() else None,
    }
    return {key: value for key, value in body.items() if value is not None}


async def _extra_grants(service: ExomiService, record: TargetRecord, now: datetime) -> list[DriftFinding]:
    """What the identity holds beyond what the target needs, read from Graph now (shared/findings.py)."""
    if record.principal_id is None:
        return []
    findings = await observe_privileges(
        service.app.graph, service.app.state, record.principal_id, record.role
    )
    telemetry.count_findings(findings, "reconcile")
    return [drift_of(finding, now) for finding in findings]


async def _heal(service: ExomiService, body: dict[str, Any], record: TargetRecord) -> RequestRecord | None:
    if not service.app.policy.heal_drift:
        log.warning("%s has drifted; policy heal_drift is false, so it is only reported", record.target)
        return None
    try:
        submission = await service.submit_provision(body, requester=EXOMI, channel=Channel.RECONCILE)
    except PolicyRefusal as refusal:
        log.warning("policy refuses to heal %s (rule %s): %s", record.target, refusal.rule, refusal.reason)
        return None
    except Conflict:
        return None  # a request started meanwhile: it takes care of the target
    log.warning("healing %s with request %s", record.target, submission.request.id)
    return submission.request


def _tag_difference(service: ExomiService, record: TargetRecord, resource_tags: dict[str, str]) -> str | None:
    """How the target's tags differ from what exomi provisioned, in words; None when they agree."""
    if not tags.opted_in(resource_tags):
        return (
            "the opt-in tag is gone, but exomi saw no event for its removal; remove the tags again (or send a "
            "revoke request) to take the access away"
        )
    try:
        request = tags.desired_request(
            parse_resource_id(record.target), resource_tags, requested_by=RECONCILER, channel=Channel.TAG
        )
    except tags.TagError as error:
        return f"the tags are invalid: {error}"
    if request is None:
        return None
    decision = service.app.policy.evaluate(request)
    role = decision.role or request.role
    asked = (
        request.organization,
        role,
        (request.identity or "system").lower(),
        request.runtime,
        request.expires,
    )
    held = (record.organization, record.role, record.identity.lower(), record.runtime, record.expires)
    if asked == held:
        return None
    return (
        "the tags ask for something other than what exomi provisioned, and exomi saw no event for that tag "
        "write (a lost event, or one that was refused: see GET /api/refusals); write the tags again to ask"
    )


def _finding(kind: DriftKind, what: str, detail: str, now: datetime) -> DriftFinding:
    return DriftFinding(kind=kind, what=what, detail=detail, found_at=now)


async def _store(
    service: ExomiService, record: TargetRecord, findings: list[DriftFinding], now: datetime
) -> None:
    """Keep the findings on the record; one seen before keeps the time it was first seen."""
    first_seen = {(f.kind, f.what): f.found_at for f in record.drift}
    findings = [
        f.model_copy(update={"found_at": first_seen.get((f.kind, f.what), f.found_at)}) for f in findings
    ]
    for _ in range(3):  # the record changed while it was checked (a request's progress): read it again
        try:
            await service.app.state.targets.save(
                record.model_copy(update={"drift": findings, "drift_checked_at": now})
            )
            return
        except ConcurrencyError:
            current = await service.app.state.targets.get(record.target_key)
            if current is None:
                return  # revoked and forgotten meanwhile: nothing to report on
            record = current
    log.info(
        "the record of %s kept changing while it was checked; its drift is stored next time", record.target
    )
