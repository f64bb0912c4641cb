"""The requests table: one entity per request (PartitionKey = request id, RowKey = "request"), and the
index of the active ones (shared/state/active.py), which this store keeps: a row before a request is
written, and none once it has ended."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Collection
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableEntity, UpdateMode
from azure.data.tables.aio import TableClient

from shared.errors import ConcurrencyError, InputError, NotFound
from shared.ids import parse_resource_id, validate_guid
from shared.models import MAX_EXTERNAL_REFERENCE, Channel, Operation, RequestStatus
from shared.policy import Decision
from shared.state.active import ActiveEntry, ActiveIndex
from shared.state.codec import get_json, put_json, put_text
from shared.state.query import Filter, etag_of, fetch_page, iter_all
from shared.state.records import Page, RequestRecord, utcnow
from shared.state.tables import insert

ROW_KEY = "request"
ACTIVE_STATUSES = tuple(status.value for status in RequestStatus if status.active)

log = logging.getLogger("exomi.state")


class RequestStore:
    def __init__(self, table: TableClient, active: TableClient) -> None:
        self.table = table
        self.active = ActiveIndex(active)

    async def create(self, record: RequestRecord) -> tuple[RequestRecord, bool]:
        """Insert a new request. If one with this id exists already (a replay), return that one instead.
        The flag says whether this call created it."""
        await self.active.add(record.id)  # first: an active request is never missing from the index
        try:
            metadata = await insert(self.table, _to_entity(record))
        except ResourceExistsError:
            return await self.get(record.id), False
        return record.model_copy(update={"etag": etag_of(metadata)}), True

    async def find(self, request_id: str) -> RequestRecord | None:
        request_id = validate_guid(request_id, "request_id")
        try:
            entity = await self.table.get_entity(request_id, ROW_KEY)
        except ResourceNotFoundError:
            return None
        return _from_entity(entity)

    async def get(self, request_id: str) -> RequestRecord:
        record = await self.find(request_id)
        if record is None:
            raise NotFound("request", request_id)
        return record

    async def update(self, record: RequestRecord) -> RequestRecord:
        """Replace the request if nobody changed it since it was read (its etag); else ConcurrencyError."""
        if record.etag is None:
            raise ValueError("update needs a record read from the store (it has no etag)")
        record = record.model_copy(update={"updated_at": utcnow()})
        try:
            metadata = await self.table.update_entity(
                _to_entity(record),
                mode=UpdateMode.REPLACE,
                etag=record.etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except ResourceModifiedError:
            raise ConcurrencyError(f"request {record.id}") from None
        except ResourceNotFoundError:
            raise NotFound("request", record.id) from None
        if not record.status.active:
            await self._unindex(record.id)
        return record.model_copy(update={"etag": etag_of(metadata)})

    async def _unindex(self, request_id: str) -> None:
        # The request has ended already: a failure here must not look like a failed update. The resume
        # pass deletes a row left behind.
        try:
            await self.active.remove(request_id)
        except AzureError as error:
            log.info(
                "request %s ended; its row in the active-requests index stays for now (%s)", request_id, error
            )

    async def work_item_sent(self, record: RequestRecord) -> None:
        """The queued request's work item is in the queue now (the resume pass gives it longer)."""
        await self.active.sent(record.id, utcnow())

    async def active_entries(self) -> AsyncIterator[ActiveEntry]:
        """The rows of the active-requests index (see shared/state/active.py), oldest request first."""
        async for entry in self.active.entries(self._scan_active):
            yield entry

    async def _scan_active(self) -> AsyncIterator[str]:
        # A scan of the whole table: only to index requests recorded before the index existed, once.
        where = Filter().any_of("Status", list(ACTIVE_STATUSES))
        async for entity in iter_all(self.table, where):
            yield str(entity["PartitionKey"])

    async def list(
        self,
        *,
        status: RequestStatus | str | Collection[RequestStatus | str] | None = None,
        channel: Channel | str | None = None,
        operation: Operation | str | None = None,
        target: str | None = None,
        external_reference: str | None = None,
        page_size: int = 50,
        continuation_token: str | None = None,
    ) -> Page[RequestRecord]:
        """Requests matching every given filter, oldest first, one page at a time."""
        where = Filter()
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
            where.any_of("Status", [_member(RequestStatus, value, "status").value for value in statuses])
        if channel is not None:
            where.equals("Channel", _member(Channel, channel, "channel").value)
        if operation is not None:
            where.equals("Operation", _member(Operation, operation, "operation").value)
        if target is not None:
            where.equals("TargetKey", parse_resource_id(target, "target").key)
        if external_reference is not None:
            where.equals("ExternalReference", _reference(external_reference))
        entities, token = await fetch_page(self.table, where, page_size, continuation_token)
        return Page[RequestRecord](items=[_from_entity(e) for e in entities], continuation_token=token)


def _member(enum: Any, value: Any, field: str) -> Any:
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(member.value for member in enum)
        raise InputError(field, f"must be one of {allowed}") from None


def _reference(value: Any) -> str:
    if (
        not isinstance(value, str)
        or not value
        or len(value) > MAX_EXTERNAL_REFERENCE
        or not value.isprintable()
    ):
        raise InputError("external_reference", f"must be 1-{MAX_EXTERNAL_REFERENCE} printable characters")
    return value


def _to_entity(record: RequestRecord) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": record.id,
        "RowKey": ROW_KEY,
        "Operation": record.operation.value,
        "Status": record.status.value,
        "Target": record.target,
        "TargetKey": record.target_key,
        "Channel": record.channel.value,
        "RequestedBy": record.requested_by,
        "ExternalReference": record.external_reference,
        "CheckAgainAt": record.check_again_at,
        "LeaseUntil": record.lease_until,
        "LockEtag": record.lock_etag,
        "CreatedAt": record.created_at,
        "UpdatedAt": record.updated_at,
    }
    put_json(entity, "Request", record.request.model_dump(mode="json"))
    put_json(entity, "Decision", record.decision.model_dump(mode="json") if record.decision else None)
    put_json(entity, "Requester", record.requester.model_dump(mode="json") if record.requester else None)
    put_json(entity, "Approval", record.approval.model_dump(mode="json") if record.approval else None)
    put_text(entity, "AuthorizedBy", record.authorized_by)
    put_text(entity, "Callback", record.callback)
    put_json(entity, "Error", record.error)
    put_text(entity, "Message", record.message)
    return entity


def _from_entity(entity: TableEntity) -> RequestRecord:
    decision = get_json(entity, "Decision")
    return RequestRecord(
        id=entity["PartitionKey"],
        operation=entity["Operation"],
        status=entity["Status"],
        target=entity["Target"],
        target_key=entity["TargetKey"],
        channel=entity["Channel"],
        requested_by=entity["RequestedBy"],
        external_reference=entity.get("ExternalReference"),
        request=get_json(entity, "Request"),
        decision=Decision.model_validate(decision) if decision else None,
        requester=get_json(entity, "Requester"),
        authorized_by=entity.get("AuthorizedBy"),
        callback=entity.get("Callback"),
        approval=get_json(entity, "Approval"),
        message=entity.get("Message"),
        error=get_json(entity, "Error"),
        check_again_at=entity.get("CheckAgainAt"),
        lease_until=entity.get("LeaseUntil"),
        lock_etag=entity.get("LockEtag"),
        created_at=entity["CreatedAt"],
        updated_at=entity["UpdatedAt"],
        etag=etag_of(entity.metadata),
    )
