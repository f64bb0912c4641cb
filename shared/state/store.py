"""The state repository facade: the tables together, and the operations that span them.

`submit` records an accepted request: idempotency key, target lock, request entity and its audit
record, in an order that makes every crash point safe to replay (see docs/STATE.md). `acquire_target`/`release_target`
implement "one active request per target"; `finish` ends a request and frees its target.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from types import TracebackType

from azure.core.credentials_async import AsyncTokenCredential

from shared import telemetry
from shared.constants import EXCHANGE_MANAGE_AS_APP_VALUE
from shared.errors import ConcurrencyError, Conflict, ExomiError, IdempotencyConflict, Transient
from shared.ids import ResourceId, validate_guid
from shared.models import Operation, ProvisionRequest, Requester, RequestStatus, RevokeRequest, TargetStatus
from shared.ownership import GrantKind, Ledger
from shared.policy import Decision
from shared.settings import Settings
from shared.state.audit import AuditLog
from shared.state.durations import DurationStore
from shared.state.events import EventLog
from shared.state.idempotency import IdempotencyEntry, IdempotencyStore, check_idempotency_key
from shared.state.ledger import LedgerStore, update_ledger
from shared.state.records import (
    Approval,
    AuditRecord,
    RequestRecord,
    Submission,
    TargetLock,
    new_request_id,
    utcnow,
)
from shared.state.refusals import RefusalLog
from shared.state.requests import RequestStore
from shared.state.steps import StepStore
from shared.state.tables import TableCalls, Tables, open_table_service
from shared.state.targets import TargetStore

# A lock whose request was never written (a crash between taking the lock and writing the request)
# is given up after this long; a lock whose request has ended is free at once.
DEFAULT_STALE_LOCK_AFTER = timedelta(minutes=10)
_LOCK_ATTEMPTS = 5
SUBMIT_STEP = "request"


@dataclass(frozen=True)
class Admission:
    """How the policy admitted a request: who asked, by which rule, and whether it waits for approval."""

    requester: Requester | None = None
    authorized_by: str | None = None
    approval: Approval | None = None
    callback: str | None = None  # the request's callback URL, encrypted: it is not stored in the clear


class StateStore:
    def __init__(self, tables: Tables, *, stale_lock_after: timedelta = DEFAULT_STALE_LOCK_AFTER) -> None:
        self.tables = tables
        self.stale_lock_after = stale_lock_after
        self.requests = RequestStore(tables.requests, tables.active)
        self.steps = StepStore(tables.steps)
        self.audit = AuditLog(tables.audit)
        self.targets = TargetStore(tables.targets, tables.principals)
        self.idempotency = IdempotencyStore(tables.idempotency)
        self.events = EventLog(tables.events)
        self.refusals = RefusalLog(tables.refusals)
        self.ledgers = LedgerStore(tables.ledger)
        self.durations = DurationStore(tables.durations)

    @classmethod
    async def open(
        cls,
        settings: Settings,
        credential: AsyncTokenCredential | None = None,
        *,
        stale_lock_after: timedelta = DEFAULT_STALE_LOCK_AFTER,
    ) -> StateStore:
        """Connect to the configured storage and create any missing table."""
        calls = TableCalls()
        service = open_table_service(
            settings.storage, credential, proxy=settings.https_proxy, no_proxy=settings.no_proxy, calls=calls
        )
        tables = Tables(service, settings.table_prefix, calls)
        await tables.ensure()
        return cls(tables, stale_lock_after=stale_lock_after)

    async def close(self) -> None:
        await self.tables.close()

    async def __aenter__(self) -> StateStore:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # --- requests ---------------------------------------------------------------------------------

    async def submit(
        self,
        request: ProvisionRequest | RevokeRequest,
        decision: Decision,
        *,
        idempotency_key: str | None = None,
        admission: Admission | None = None,
    ) -> Submission:
        """Record an accepted request (status queued, or awaiting_approval when ``admission`` says an
        approver must approve it first) holding its target.

        Raises Conflict if another request is active for the target (nothing is written), and
        IdempotencyConflict if the caller used `idempotency_key` before for a different body. The same
        key with the same body returns the original request (`created` False)."""
        decision.raise_if_refused()
        admission = admission or Admission()
        if idempotency_key is None:
            return await self._create(request, decision, new_request_id(), admission)
        key = check_idempotency_key(idempotency_key)
        # Keys belong to the authenticated caller; a name it asserts (X-Exomi-On-Behalf-Of) is not part of
        # the scope, but it is part of the body's fingerprint (requested_by), so a replay must repeat it.
        scope = admission.requester.idempotency_scope if admission.requester else request.requested_by
        body_hash = hashlib.sha256(request.fingerprint().encode()).hexdigest()
        entry = await self.idempotency.get(scope, key)
        if entry is None:
            # Record the key first, so that concurrent submissions with the same key agree on one id.
            request_id = new_request_id()
            etag = await self.idempotency.create(scope, key, request_id, body_hash)
            if etag is not None:
                try:
                    return await self._create(request, decision, request_id, admission)
                except Conflict:
                    # Refused: leave nothing behind (a crash here leaves a key whose replay behaves the same).
                    await self.idempotency.delete(scope, key, etag)
                    raise
            entry = await self.idempotency.get(scope, key)  # a concurrent submission won
            if entry is None:
                raise Transient("the idempotency key changed while the request was being recorded; retry")
        return await self._replay(entry, body_hash, request, decision, admission)

    async def _replay(
        self,
        entry: IdempotencyEntry,
        body_hash: str,
        request: ProvisionRequest | RevokeRequest,
        decision: Decision,
        admission: Admission,
    ) -> Submission:
        if entry.body_hash != body_hash:
            raise IdempotencyConflict(entry.request_id)
        existing = await self.requests.find(entry.request_id)
        if existing is None:  # a crash came between recording the key and writing the request
            return await self._create(request, decision, entry.request_id, admission)
        await self._audit_submission(existing)  # in case the crash came just before this
        return Submission(request=existing, created=False)

    async def _create(
        self,
        request: ProvisionRequest | RevokeRequest,
        decision: Decision,
        request_id: str,
        admission: Admission,
    ) -> Submission:
        target = request.target_id
        lock = await self.acquire_target(target, request_id)  # a no-op when this request holds it already
        if isinstance(request, ProvisionRequest) and request.callback_url is not None:
            request = request.model_copy(update={"callback_url": None})  # kept encrypted (admission.callback)
        record = RequestRecord(
            id=request_id,
            operation=Operation.REVOKE if isinstance(request, RevokeRequest) else Operation.PROVISION,
            target=target.canonical,
            target_key=target.key,
            channel=request.channel,
            requested_by=request.requested_by,
            external_reference=request.external_reference,
            request=request,
            decision=decision if isinstance(request, ProvisionRequest) else None,
            requester=admission.requester,
            authorized_by=admission.authorized_by,
            approval=admission.approval,
            callback=admission.callback,
            status=RequestStatus.AWAITING_APPROVAL if admission.approval else RequestStatus.QUEUED,
            message=f"awaiting approval: {'; '.join(admission.approval.reasons)}"
            if admission.approval
            else "accepted",
            lock_etag=lock.etag,
        )
        stored, created = await self.requests.create(record)
        await self._audit_submission(stored)
        return Submission(request=stored, created=created)

    async def _audit_submission(self, record: RequestRecord) -> None:
        await self.audit.append(
            AuditRecord(
                request_id=record.id,
                step=SUBMIT_STEP,
                sequence=0,
                action=f"{record.operation.value} request accepted",
                target=record.target,
                after={
                    "status": record.status.value,
                    # The callback URL may carry a signature (Logic Apps sig=...): not for the audit trail.
                    "request": record.request.model_dump(mode="json", exclude={"callback_url"}),
                    "decision": record.decision.model_dump(mode="json") if record.decision else None,
                    "requester": record.requester.model_dump(mode="json") if record.requester else None,
                    "authorized_by": record.authorized_by,
                    "approval": record.approval.model_dump(mode="json") if record.approval else None,
                },
                requested_by=record.requested_by,
                channel=record.channel,
                at=record.created_at,
            )
        )

    async def finish(
        self,
        record: RequestRecord,
        status: RequestStatus,
        *,
        message: str | None = None,
        error: ExomiError | None = None,
    ) -> RequestRecord:
        """Move a request (as read, with its etag) to a terminal status and free its target."""
        status = RequestStatus(status)
        if status.active:
            raise ValueError(f"finish needs a terminal status, not {status}")
        updated = await self.requests.update(
            record.model_copy(
                update={
                    "status": status,
                    "message": message if message is not None else record.message,
                    "error": error.to_dict() if error else None,
                    "check_again_at": None,
                    "lease_until": None,
                }
            )
        )
        await self.release_target(record.target_key, record.id, lock_etag=record.lock_etag)
        telemetry.count_request(updated)
        return updated

    # --- what exomi owns on each identity ------------------------------------------------------------

    async def ledger(self, principal_id: str) -> Ledger:
        """The identity's ownership ledger. An identity exomi provisioned before the ledger existed gets
        one from its targets' records (each one's granted assignments, needed by it)."""
        found = await self.ledgers.find(principal_id)
        if found is not None:
            return found
        ledger = Ledger(principal_id=validate_guid(principal_id, "principal_id"))
        for record in await self.targets.list_by_principal(principal_id):
            if record.status is TargetStatus.REVOKED:
                continue
            request_id = record.last_request_id or ""
            granted = record.granted
            for kind, assignment_id, name in (
                (GrantKind.APP_ROLE, granted.app_role_assignment_id, EXCHANGE_MANAGE_AS_APP_VALUE),
                (GrantKind.ENTRA_ROLE, granted.role_assignment_id, record.role.value if record.role else ""),
            ):
                if assignment_id:
                    ledger = ledger.record(
                        kind,
                        assignment_id,
                        name,
                        target_key=record.target_key,
                        target=record.target,
                        request_id=request_id,
                        made_by_exomi=True,
                    )
        return ledger

    async def update_ledger(self, principal_id: str, change: Callable[[Ledger], Ledger]) -> Ledger:
        return await update_ledger(lambda: self.ledger(principal_id), self.ledgers, change)

    # --- one active request per target -------------------------------------------------------------

    async def active_request(self, target: ResourceId) -> RequestRecord | None:
        """The request that holds the target now, if it is still active."""
        lock = await self.targets.get_lock(target.key)
        if lock is None or lock.request_id is None:
            return None
        holder = await self.requests.find(lock.request_id)
        return holder if holder is not None and holder.status.active else None

    async def acquire_target(self, target: ResourceId, request_id: str) -> TargetLock:
        """Make `request_id` the target's active request; Conflict names the request that holds it.
        A free target has no lock row (release deletes it), so the first try is a plain insert: one
        Table call for most requests; only a target with a row (held, or freed by an older exomi) is read."""
        lock: TargetLock | None = None
        for attempt in range(_LOCK_ATTEMPTS + 1):
            if attempt:
                lock = await self.targets.get_lock(target.key)
                if lock is not None and lock.request_id == request_id:
                    return lock
                if lock is not None and lock.request_id is not None:
                    await self._refuse_if_held(target, lock, lock.request_id)
            try:
                return await self.targets.write_lock(target.key, target.canonical, request_id, replacing=lock)
            except ConcurrencyError:
                continue  # someone else moved the lock meanwhile: look again
        raise Transient(f"the lock of {target.canonical} kept changing; retry")

    async def _refuse_if_held(self, target: ResourceId, lock: TargetLock, holder_id: str) -> None:
        holder = await self.requests.find(holder_id)
        if holder is not None and not holder.status.active:
            return  # it ended (and a crash kept it from releasing the lock)
        if (
            holder is None
            and lock.acquired_at is not None
            and utcnow() - lock.acquired_at >= self.stale_lock_after
        ):
            return  # its request was never written: a crash, long enough ago
        state = holder.status.value if holder is not None else "being recorded"
        raise Conflict(
            f"the {target.kind.label} {target.canonical} already has an active request {holder_id} "
            f"({state}); wait for it to finish or cancel it, then try again.",
            active_request_id=holder_id,
        )

    async def release_target(self, target_key: str, request_id: str, *, lock_etag: str | None = None) -> bool:
        """Free the target if `request_id` holds it; False if it does not (nothing to do). ``lock_etag``:
        the lock row as the request wrote it, deleted without reading it first; a row changed since
        (taken over as stale) or gone is read, as without it."""
        if lock_etag is not None:
            try:
                await self.targets.delete_lock(
                    TargetLock(target_key=target_key, target="", request_id=request_id, etag=lock_etag)
                )
                return True
            except ConcurrencyError:
                pass
        for _ in range(_LOCK_ATTEMPTS):
            lock = await self.targets.get_lock(target_key)
            if lock is None or lock.request_id != request_id:
                return False
            try:
                await self.targets.delete_lock(lock)
                return True
            except ConcurrencyError:
                continue
        raise Transient("the target lock kept changing while it was being released; retry")
