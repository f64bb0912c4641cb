"""The refusals table: an append-only log of refused attempts (docs/STATE.md).

PartitionKey = the UTC month ``YYYYMM`` of the attempt, RowKey = the refusal's id (a time-ordered GUID),
so entities read back oldest first and a month's attempts stay together. Entities are only ever
created, never updated or deleted by exomi.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from azure.data.tables import TableEntity
from azure.data.tables.aio import TableClient

from shared.errors import InputError
from shared.ids import parse_resource_id
from shared.models import Channel
from shared.state.codec import put_text
from shared.state.query import Filter, fetch_page
from shared.state.records import Page, RefusalRecord
from shared.state.tables import insert


def _partition(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m")


class RefusalLog:
    def __init__(self, table: TableClient) -> None:
        self.table = table

    async def append(self, record: RefusalRecord) -> RefusalRecord:
        await insert(self.table, _to_entity(record))
        return record

    async def list(
        self,
        *,
        since: datetime | None = None,
        channel: Channel | str | None = None,
        target: str | None = None,
        page_size: int = 50,
        continuation_token: str | None = None,
    ) -> Page[RefusalRecord]:
        """Refusals matching every given filter, oldest first, one page at a time."""
        where = Filter()
        if since is not None:
            where.at_least("PartitionKey", _partition(since)).at_least("At", since)
        if channel is not None:
            try:
                where.equals("Channel", Channel(channel).value)
            except ValueError:
                raise InputError("channel", f"must be one of {', '.join(c.value for c in Channel)}") from None
        if target is not None:
            where.equals("Target", parse_resource_id(target, "target").canonical)
        entities, token = await fetch_page(self.table, where, page_size, continuation_token)
        return Page[RefusalRecord](items=[_from_entity(e) for e in entities], continuation_token=token)


_FIELDS = {
    "Channel": "channel",
    "Operation": "operation",
    "RequestedBy": "requested_by",
    "PrincipalId": "principal_id",
    "AzureRole": "azure_role",
    "Target": "target",
    "RequestId": "request_id",
    "Rule": "rule",
    "Field": "field",
    "EventId": "event_id",
    "ExternalReference": "external_reference",
}


def _to_entity(record: RefusalRecord) -> dict[str, Any]:
    entity: dict[str, Any] = {"PartitionKey": _partition(record.at), "RowKey": record.id, "At": record.at}
    for prop, name in _FIELDS.items():
        value = getattr(record, name)
        if value is not None:
            entity[prop] = value.value if isinstance(value, Channel) else value
    put_text(entity, "Reason", record.reason)
    return entity


def _from_entity(entity: TableEntity) -> RefusalRecord:
    # Table values are untyped: the model validates them.
    values: dict[str, Any] = {name: entity.get(prop) for prop, name in _FIELDS.items()}
    return RefusalRecord(id=entity["RowKey"], at=entity["At"], reason=entity.get("Reason", ""), **values)
