"""The audit table: append-only, one entity per change.

PartitionKey = request id, RowKey = "<step>:<sequence, 6 digits>". The key is deterministic: a step
that is replayed after a crash appends with the same (step, sequence) again, which finds the first
record instead of adding a second one; a record is never overwritten or deleted.
"""

from __future__ import annotations

import asyncio
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.data.tables import TableEntity, TableTransactionError
from azure.data.tables.aio import TableClient

from shared.ids import parse_resource_id, validate_guid
from shared.state.codec import get_json, put_json
from shared.state.query import Filter, etag_of, fetch_all, fetch_page
from shared.state.records import AuditRecord, Page
from shared.state.steps import check_step_name
from shared.state.tables import NO_CONTENT, insert
from shared.state.transactions import MIN_OPERATIONS, submit


def audit_row_key(step: str, sequence: int) -> str:
    return f"{check_step_name(step)}:{sequence:06d}"


class AuditLog:
    def __init__(self, table: TableClient) -> None:
        self.table = table

    async def append(self, record: AuditRecord) -> tuple[AuditRecord, bool]:
        """Record a change once. Returns (the stored record, True if this call added it)."""
        entity = _to_entity(record)
        try:
            metadata = await insert(self.table, entity)
        except ResourceExistsError:
            stored = await self.table.get_entity(entity["PartitionKey"], entity["RowKey"])
            return _from_entity(stored), False
        return record.model_copy(update={"etag": etag_of(metadata)}), True

    async def append_all(self, records: list[AuditRecord]) -> None:
        """Record several changes of one request at once (one transaction; one or two records are
        appended on their own, at the same time). If one of them is there
        already (a replay), the transaction writes nothing and each is appended on its own, which keeps
        the first record of each."""
        if len(records) < MIN_OPERATIONS:
            await asyncio.gather(*(self.append(record) for record in records))
            return
        if len({record.request_id for record in records}) != 1:
            raise ValueError("append_all takes the records of one request")
        try:
            await submit(self.table, [("create", _to_entity(record), NO_CONTENT) for record in records])
        except TableTransactionError as error:
            if error.status_code != 409:
                raise
            for record in records:
                await self.append(record)

    async def list_for_request(self, request_id: str) -> list[AuditRecord]:
        where = Filter().equals("PartitionKey", validate_guid(request_id, "request_id"))
        records = [_from_entity(entity) for entity in await fetch_all(self.table, where)]
        return sorted(records, key=lambda record: (record.at, record.step, record.sequence))

    async def list_for_target(
        self, target: str, *, page_size: int = 50, continuation_token: str | None = None
    ) -> Page[AuditRecord]:
        where = Filter().equals("TargetKey", parse_resource_id(target, "target").key)
        entities, token = await fetch_page(self.table, where, page_size, continuation_token)
        return Page[AuditRecord](items=[_from_entity(e) for e in entities], continuation_token=token)


def _to_entity(record: AuditRecord) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": validate_guid(record.request_id, "request_id"),
        "RowKey": audit_row_key(record.step, record.sequence),
        "Step": record.step,
        "Sequence": record.sequence,
        "Action": record.action,
        "Target": record.target,
        "TargetKey": parse_resource_id(record.target).key,
        "ServiceRequestId": record.service_request_id,
        "CorrelationId": record.correlation_id,
        "RequestedBy": record.requested_by,
        "Channel": record.channel.value,
        "At": record.at,
    }
    put_json(entity, "Before", record.before)
    put_json(entity, "After", record.after)
    return entity


def _from_entity(entity: TableEntity) -> AuditRecord:
    return AuditRecord(
        request_id=entity["PartitionKey"],
        step=entity["Step"],
        sequence=entity["Sequence"],
        action=entity["Action"],
        target=entity["Target"],
        before=get_json(entity, "Before"),
        after=get_json(entity, "After"),
        service_request_id=entity.get("ServiceRequestId"),
        correlation_id=entity.get("CorrelationId"),
        requested_by=entity["RequestedBy"],
        channel=entity["Channel"],
        at=entity["At"],
        etag=etag_of(entity.metadata),
    )
