"""The events table: which Event Grid events exomi has already handled (Event Grid delivers at least
once, and the same event can come back long after the first delivery).

PartitionKey = the event's UTC date ``YYYYMMDD`` (from its event time, which every delivery of the
event repeats), RowKey = sha256 of the event id (no sender text becomes a key). An event is only
remembered once it has been handled, so a delivery that failed is handled again on the next one.
Reconciliation deletes the days older than Event Grid's retry period, which keeps the table small.
"""

from __future__ import annotations

import contextlib
import hashlib
from datetime import UTC, datetime, timedelta

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables.aio import TableClient

from shared.state.codec import put_text
from shared.state.records import utcnow
from shared.state.tables import insert

# Event Grid retries for at most 24 hours (eventTimeToLiveInMinutes, 1440 at most): two days is ample.
KEEP_FOR = timedelta(days=2)


def _partition(event_time: datetime | None) -> str:
    moment = event_time or utcnow()
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.strftime("%Y%m%d")


def _row(event_id: str) -> str:
    return hashlib.sha256(event_id.encode()).hexdigest()


class EventLog:
    def __init__(self, table: TableClient) -> None:
        self.table = table

    async def handled(self, event_id: str, event_time: datetime | None) -> bool:
        try:
            await self.table.get_entity(_partition(event_time), _row(event_id))
        except ResourceNotFoundError:
            return False
        return True

    async def remember(self, event_id: str, event_time: datetime | None, outcome: str) -> None:
        """Record that the event was handled, and how (for people reading the table)."""
        entity = {"PartitionKey": _partition(event_time), "RowKey": _row(event_id), "HandledAt": utcnow()}
        put_text(entity, "Outcome", outcome)
        # A concurrent delivery of the same event may have got there first: that is the same outcome.
        with contextlib.suppress(ResourceExistsError):
            await insert(self.table, entity)

    async def forget_before(self, cutoff: datetime) -> int:
        """Delete the events of the days before ``cutoff``'s day; returns how many were deleted."""
        deleted = 0
        old = self.table.query_entities(
            "PartitionKey lt @day", parameters={"day": _partition(cutoff)}, select=["PartitionKey", "RowKey"]
        )
        async for entity in old:
            with contextlib.suppress(ResourceNotFoundError):
                await self.table.delete_entity(entity["PartitionKey"], entity["RowKey"])
                deleted += 1
        return deleted
