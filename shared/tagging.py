"""Tags as desired state, the service side of tag-driven automation (the Event Grid channel,
shared/events.py, hands each write over to ``ExomiService.sync_tags``).

The handler reads the resource as it is NOW and compares the desired state its tags express
(shared/tags.py) with what exomi has provisioned (the target's record) and with the request already
working on it. Because every delivery looks at the current state, duplicate, late and out-of-order
deliveries, ARM's two write events per create and a storm of writes all end in one request for the
final state:

* no change -> nothing; the same desired state as the active request -> nothing;
* a change while a tag request waits to start (``tag_settle`` seconds) -> that request is cancelled as
  superseded and a new one made, so a burst of tag writes ends in one request that runs;
* a change while a request already runs -> TargetBusy: the host answers 500 and Event Grid delivers
  the event again later (its retry policy bounds this), when the running request has ended;
* the opt-in tag removed from a tag-managed target, or the resource deleted -> a revoke request.

What the tags ask for is requested on the writer's behalf, so the policy's caller rules
(shared/authorization.py) must admit them; a refusal is recorded and changes nothing. Because an event
does not say what its write changed, and Event Grid delivers it a little later (out of order, or two at
once), four safeguards keep a tag from being taken as asked for by the wrong writer:

* an event older than the newest one handled for the target is stale;
* a desired state policy refused stays refused for writes that did not go through the Tags API;
* a tag request that has not started, made for another writer from an earlier write, is cancelled when
  a write of the same tags is refused: the earlier event read the tags as they were when it was
  handled, which may be the refused writer's (even when the earlier write went through the Tags API);
* and, for deliveries handled at the same time, the target's tag state is written over the one each
  handler read (ETag): the second handler decides again from the first one's; a tag request whose
  desired state was refused after it was made is cancelled when it would start
  (``cancel_if_refused_since``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared import tags
from shared.authorization import Ask
from shared.engine.context import resource_ref
from shared.errors import ConcurrencyError, Conflict, PolicyRefusal, TargetBusy
from shared.ids import ResourceId
from shared.models import (
    Channel,
    Operation,
    ProvisionRequest,
    Requester,
    RequestStatus,
    Role,
    Runtime,
    TargetStatus,
)
from shared.policy import Decision
from shared.service import Attempt, ExomiApp, ExomiService, Outcome
from shared.state.records import AuditRecord, RequestRecord, TagState, TargetRecord

log = logging.getLogger("exomi.tagging")
# Requests nobody waits for: a newer desired state may replace them while they have not started.
SUPERSEDABLE = {Channel.TAG, Channel.RECONCILE}
_ATTEMPTS = 3
REFUSED_WRITER = "its tags were last written by a writer the policy refuses"


@dataclass(frozen=True)
class TagWrite:
    """The write an event reports: who made it (the requester of what the tags now ask for), and the
    event's id (for the refusal log) and time (older events than the newest handled one are stale)."""

    writer: Requester
    event_id: str | None = None
    time: datetime | None = None


@dataclass(frozen=True)
class Desired:
    """What a provisioned target should look like; the parts tags can express."""

    organization: str | None
    role: Role | None
    identity: str  # "system" or a user-assigned identity id, lower case
    runtime: Runtime | None
    expires: str | None = None  # the duration or date asked for (not the moment it ends)

    @classmethod
    def of(
        cls,
        organization: str | None,
        role: Any,
        identity: str | None,
        runtime: Any,
        expires: str | None = None,
    ) -> Desired:
        return cls(
            organization,
            Role(role) if role else None,
            (identity or "system").lower(),
            Runtime(runtime) if runtime else None,
            expires,
        )

    @classmethod
    def of_request(cls, record: RequestRecord) -> Desired | None:
        """A request's desired state (None for a revoke: the target should have nothing)."""
        request = record.request
        if record.operation is Operation.REVOKE or not isinstance(request, ProvisionRequest):
            return None
        decision = record.decision or Decision(allowed=True)
        return cls.of(
            request.organization, decision.role, request.identity, decision.runtime, request.expires
        )

    @classmethod
    def of_target(cls, record: TargetRecord) -> Desired:
        return cls.of(record.organization, record.role, record.identity, record.runtime, record.expires)

    def fingerprint(self) -> str:
        text = "|".join(
            str(part) for part in (self.organization, self.role, self.identity, self.runtime, self.expires)
        )
        return hashlib.sha256(text.encode()).hexdigest()


ABSENT = None  # the desired state "exomi grants nothing here"


async def sync_target(service: ExomiService, target: ResourceId, write: TagWrite) -> Outcome:
    """Bring exomi's requests in line with the target's tags (or its deletion), as asked for by
    ``write.writer``; returns what it did. Raises TargetBusy when the desired state differs from a
    request that already runs."""
    for _ in range(_ATTEMPTS):
        try:
            return await _sync_once(service, target, write)
        except (Conflict, ConcurrencyError):
            continue  # another delivery or the worker moved the target on meanwhile: look again
    raise TargetBusy(
        f"{target.canonical} kept changing while exomi looked at it; Event Grid will deliver again"
    )


async def _sync_once(service: ExomiService, target: ResourceId, write: TagWrite) -> Outcome:
    app = service.app
    writer = write.writer
    resource, record, active, tag_state = await asyncio.gather(
        app.arm.get_target(target.kind, resource_ref(target)),
        app.state.targets.get(target.key),
        app.state.active_request(target),
        app.state.targets.tag_state(target.key),
    )
    if resource is not None and _is_stale(write, tag_state):
        # A newer write's event was handled already, for the state this one would read: whoever wrote
        # the tags, it was not necessarily this event's writer.
        return Outcome(
            "an event of a newer write to the target was handled already; this one changes nothing"
        )
    newest = write.time if write.time is not None else tag_state.newest_event_at
    tag_state = tag_state.model_copy(update={"newest_event_at": newest})
    tag_managed = (record is not None and record.managed_by_tags) or (
        active is not None and active.channel is Channel.TAG
    )
    request = None
    if resource is None:
        wanted = ABSENT  # deleted: nothing of exomi's should stay behind, whoever asked for it
    elif not tags.opted_in(resource.tags):
        if not tag_managed:
            await app.state.targets.save_tag_state(target.key, target.canonical, tag_state)
            return Outcome("no opt-in tag and not managed by tags: nothing to do")
        wanted = ABSENT
    else:
        try:
            request = tags.desired_request(
                target, resource.tags, requested_by=writer.name, channel=Channel.TAG
            )
        except tags.TagError as error:
            log.error("the tags of %s are invalid, nothing was requested: %s", target.canonical, error)
            return Outcome(f"invalid tag {error.tag}")
        assert request is not None  # opted in (checked above): the tags name an organization
        decision = app.policy.evaluate(request)
        role = decision.role or request.role  # refused before the role was known: the one asked for
        wanted = Desired.of(request.organization, role, request.identity, request.runtime, request.expires)
        if record is not None and record.expired and Desired.of_target(record) == wanted:
            return Outcome("the access these tags asked for has expired; write exo-expires again to renew it")
        if not writer.wrote_tags and tag_state.refused_desired == wanted.fingerprint():
            # The tags still say what policy refused. This write did not go through the Tags API, so it
            # may not have touched them: it is not taken as its writer asking for them again.
            await app.state.targets.save_tag_state(target.key, target.canonical, tag_state)
            return Outcome(
                "the tags ask for what was refused before; this write is not taken as asking again"
            )
        refusal = await _refusal_of(service, request, decision, writer)
        if refusal is not None:
            cancel = active is not None and _settling_on_behalf_of_another(active, writer, wanted)
            suspect = active if cancel else await _acting_on_these_tags(app, active, record, write, wanted)
            await service.refused(
                refusal,
                Attempt(writer, Channel.TAG, "provision", target.canonical, write.event_id),
                request_id=suspect.id if suspect is not None else None,
            )
            if cancel and active is not None:
                # The tags it acts on were written by a writer the policy refuses: it must not run.
                await _supersede(app, active, writer.name, REFUSED_WRITER)
            elif suspect is not None:
                log.warning(
                    "request %s (for %s, %s) acts on the tags %s wrote, refused: its event was handled "
                    "after this write. exomi did not undo it; check the target %s (docs/POLICY.md)",
                    suspect.id,
                    suspect.requested_by,
                    suspect.status.value,
                    writer.name,
                    target.canonical,
                )
            # Written last: a handler that loses the race for the tag state decides again (the refusal
            # may then be recorded twice, with the same event id; never not at all).
            refused_state = tag_state.model_copy(
                update={"refused_desired": wanted.fingerprint(), "refused_by": writer.name}
            )
            await app.state.targets.save_tag_state(target.key, target.canonical, refused_state)
            return Outcome(f"provision refused by policy rule {refusal.rule}")
    await app.state.targets.save_tag_state(
        target.key,
        target.canonical,
        tag_state.model_copy(update={"refused_desired": None, "refused_by": None}),
    )

    if active is not None:
        if Desired.of_request(active) == wanted:
            if active.status is RequestStatus.QUEUED:
                # Perhaps a redelivery after the queue did not take the work item: queue it (again; a
                # duplicate is harmless, the pass that finds another one holding the request does nothing).
                await service.try_enqueue(active, delay=timedelta(seconds=app.settings.engine.tag_settle))
            return Outcome(f"request {active.id} already works towards this state")
        if (
            active.status not in (RequestStatus.QUEUED, RequestStatus.AWAITING_APPROVAL)
            or active.channel not in SUPERSEDABLE
        ):
            raise TargetBusy(
                f"{target.canonical} has an active request {active.id} ({active.status.value}) for another "
                "desired state; Event Grid will deliver this event again once it has ended"
            )
        await _supersede(app, active, writer.name, "the desired state of the target changed again")

    if wanted is ABSENT:
        if record is None or record.status is TargetStatus.REVOKED:
            return Outcome("nothing of exomi's to revoke")
        body: dict[str, Any] = {"target": target.canonical}
        return await _submit(service, body, write, revoke=True, deleted=resource is None)
    if (
        record is not None
        and record.status is TargetStatus.PROVISIONED
        and Desired.of_target(record) == wanted
    ):
        return Outcome("no change")
    assert request is not None
    body = request.model_dump(mode="json", exclude={"requested_by", "channel"}, exclude_none=True)
    return await _submit(service, body, write, revoke=False, deleted=False)


def _is_stale(write: TagWrite, state: TagState) -> bool:
    return write.time is not None and state.newest_event_at is not None and write.time < state.newest_event_at


async def _refusal_of(
    service: ExomiService, request: ProvisionRequest, decision: Decision, writer: Requester
) -> PolicyRefusal | None:
    """Why policy or the caller rules refuse what the tags ask for on behalf of ``writer`` (None: allowed)."""
    if not decision.allowed:
        return decision.refusal()
    authorization = await service.authorize(
        Ask.of(request, role=decision.role, runtime=decision.runtime), writer
    )
    return authorization.refusal


def _settling_on_behalf_of_another(active: RequestRecord, writer: Requester, wanted: Desired | None) -> bool:
    """An active tag request for the same state that has not started, made for another writer. Its event
    is not newer than this one (a newer one handled first makes this one stale), and it read the tags
    when it was handled: they may be this writer's, whether or not that writer's own write went through
    the Tags API."""
    requester = active.requester
    return (
        active.channel is Channel.TAG
        and active.status in (RequestStatus.QUEUED, RequestStatus.AWAITING_APPROVAL)
        and Desired.of_request(active) == wanted
        and requester is not None
        and not requester.same_principal(writer)
    )


async def _acting_on_these_tags(
    app: ExomiApp,
    active: RequestRecord | None,
    record: TargetRecord | None,
    write: TagWrite,
    wanted: Desired | None,
) -> RequestRecord | None:
    """A tag request for another writer that has started (or ended) with the desired state this refused
    write asks for, made after the write (its event was handled later, so it read this write's tags):
    a delivery of this event later than the settle time, e.g. a retried one. None when there is none or
    the event has no time."""
    if write.time is None:
        return None
    candidate = active
    ended = record is not None and record.managed_by_tags and Desired.of_target(record) == wanted
    if candidate is None and ended and record is not None and record.last_request_id:
        candidate = await app.state.requests.find(record.last_request_id)  # what provisioned it
    if (
        candidate is None
        or candidate.channel is not Channel.TAG
        or Desired.of_request(candidate) != wanted
        or candidate.requester is None
        or candidate.requester.same_principal(write.writer)
    ):
        return None
    return candidate if candidate.created_at > write.time else None


async def cancel_if_refused_since(app: ExomiApp, record: RequestRecord) -> RequestRecord | None:
    """A tag provision request about to start (queued) whose desired state a writer the policy refuses
    has written since it was made: cancelled, not run (returns it as stored; None: it may start).

    The allowed write's handler clears the target's refusal before it makes the request, so a refusal of
    the same state recorded now came later: from a delivery handled at the same time, whose refusal could
    not yet see the request to cancel it."""
    if record.channel is not Channel.TAG or record.status is not RequestStatus.QUEUED:
        return None
    wanted = Desired.of_request(record)
    if wanted is None:
        return None  # a revocation: taking access away is never what a refused writer gains from
    state = await app.state.targets.tag_state(record.target_key)
    if state.refused_desired != wanted.fingerprint():
        return None
    try:
        await _supersede(app, record, state.refused_by or "a refused writer", REFUSED_WRITER)
    except ConcurrencyError:
        return None  # picked up or changed meanwhile: the pass's claim decides
    return await app.state.requests.get(record.id)


async def _submit(
    service: ExomiService, body: dict[str, Any], write: TagWrite, *, revoke: bool, deleted: bool
) -> Outcome:
    what = "revoke" if revoke else "provision"
    try:
        if revoke:
            submission = await service.submit_revoke(
                body,
                requester=write.writer,
                channel=Channel.TAG,
                event_id=write.event_id,
                resource_deleted=deleted,
            )
        else:
            submission = await service.submit_provision(
                body, requester=write.writer, channel=Channel.TAG, event_id=write.event_id
            )
    except PolicyRefusal as refusal:
        # Recorded in the refusal log by the service (and logged at WARNING).
        return Outcome(f"{what} refused by policy rule {refusal.rule}")
    if submission.request.status is RequestStatus.AWAITING_APPROVAL:
        await service.enqueue(submission.request)  # looked at again when its approval times out
        return Outcome(f"{what} request {submission.request.id} awaits approval", submission.request)
    # Tag requests wait a moment before they start, so that further tag writes can still replace them.
    # A queue that does not answer fails the delivery: Event Grid delivers it again, and the redelivery
    # finds the request queued and queues it (the resume pass would within a minute too).
    settle = service.app.settings.engine.tag_settle
    await service.enqueue(submission.request, delay=timedelta(seconds=settle))
    return Outcome(f"{what} request {submission.request.id}", submission.request)


async def _supersede(app: ExomiApp, active: RequestRecord, by: str, why: str) -> None:
    """Cancel a request that has not started (ConcurrencyError if the worker has just picked it up: the
    caller looks again and finds it running)."""
    message = f"superseded before it started: {why}"
    await app.state.finish(active, RequestStatus.CANCELLED, message=message)
    await app.state.audit.append(
        AuditRecord(
            request_id=active.id,
            step="request",
            sequence=1,
            action=f"request cancelled: superseded ({why})",
            target=active.target,
            before={"status": active.status.value},
            after={"status": RequestStatus.CANCELLED.value},
            requested_by=by,  # the writer whose write superseded it
            channel=Channel.TAG,
        )
    )
    log.info("request %s was superseded before it started", active.id)
