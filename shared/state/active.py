"""The active-requests index (`<prefix>active`): one entity per active request, so that the resume pass
(every 30 seconds) reads one partition instead of scanning the requests table, which keeps every request
ever made (a query without a PartitionKey reads the whole table).

PartitionKey ``active``, RowKey the request id (UUIDv7: oldest first). A row is written before its request
(so an active request is never missing from the index) and deleted after the request has ended. A crash
between the two writes leaves a row without a request, or a row of an ended request: the resume pass,
which reads each row's request anyway, deletes such a row (one without a request only once it is older
than ``ORPHAN_AFTER``: the request may still be being written). Requests recorded before the index
existed are indexed once per deployment: the first resume pass that finds no marker entity (PartitionKey
``index``, RowKey ``built``) scans the requests table once for active ones, writes their rows, then the
marker.

A row also says when the request's work item was last handed to the queue (``SentAt``), and when the
resume pass last queued it again (``ResumedAt``, ``Resumes``, and the request's ETag then,
``ResumedEtag``): what lets the resume pass tell a work item still in the queue from a lost one, and back
off from a request it queued again that has not moved since.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.data.tables import TableEntity, UpdateMode
from azure.data.tables.aio import TableClient

from shared.state.query import Filter, iter_all
from shared.state.records import utcnow

log = logging.getLogger("exomi.state")

PARTITION = "active"
MARKER = ("index", "built")
# A row whose request cannot be found is deleted only when it is older than this: the request may still
# be being written (the row comes first). Writing a request takes seconds at most.
ORPHAN_AFTER = timedelta(minutes=10)


@dataclass(frozen=True)
class ActiveEntry:
    request_id: str
    added_at: datetime
    sent_at: datetime | None = None  # its work item was last handed to the queue then
    resumed_at: datetime | None = None  # the resume pass last queued it again then ...
    resumes: int = 0  # ... for the n-th time since it last changed ...
    resumed_etag: str | None = None  # ... when its ETag was this


class ActiveIndex:
    def __init__(self, table: TableClient) -> None:
        self.table = table
        self._built = False

    async def add(self, request_id: str) -> None:
        """Before the request is written (a replay of an existing one keeps what its row says)."""
        entity = {"PartitionKey": PARTITION, "RowKey": request_id, "AddedAt": utcnow()}
        await self.table.upsert_entity(entity, mode=UpdateMode.MERGE)

    async def remove(self, request_id: str) -> None:
        """After the request has ended (a row that is gone already is fine)."""
        with contextlib.suppress(ResourceNotFoundError):
            await self.table.delete_entity(PARTITION, request_id)

    async def sent(self, request_id: str, at: datetime) -> None:
        """The request's work item was handed to the queue at ``at``. Best effort: without the mark the
        resume pass may only queue the request again sooner (a duplicate work item is harmless)."""
        try:
            await self._merge(request_id, {"SentAt": at})
        except AzureError as error:
            log.info("request %s: could not note that its work item was queued (%s)", request_id, error)

    async def resumed(self, entry: ActiveEntry, etag: str | None, at: datetime) -> None:
        """The resume pass queued the request again at ``at``, as it was then (its ETag): the n-th time
        in a row if it has not changed since the last time."""
        resumes = entry.resumes + 1 if etag is not None and etag == entry.resumed_etag else 1
        try:
            await self._merge(
                entry.request_id, {"ResumedAt": at, "Resumes": resumes, "ResumedEtag": etag or ""}
            )
        except AzureError as error:
            log.info("request %s: could not note that it was queued again (%s)", entry.request_id, error)

    async def _merge(self, request_id: str, changes: dict[str, object]) -> None:
        # A merge that needs the row: a request that ended meanwhile (its row deleted) gets none back.
        entity = {"PartitionKey": PARTITION, "RowKey": request_id, **changes}
        with contextlib.suppress(ResourceNotFoundError):
            await self.table.update_entity(entity, mode=UpdateMode.MERGE)

    async def entries(self, scan_active: Callable[[], AsyncIterator[str]]) -> AsyncIterator[ActiveEntry]:
        """Every row, oldest request first (after indexing, once, the requests recorded before the index
        existed: ``scan_active`` lists the ids of the active ones)."""
        await self._build(scan_active)
        where = Filter().equals("PartitionKey", PARTITION)
        async for entity in iter_all(self.table, where):
            yield _entry(entity)

    async def heal(self, entry: ActiveEntry, *, found: bool, active: bool, now: datetime) -> bool:
        """Delete a row whose request has ended, or that has no request (left by a crash); True if it did."""
        if active or (not found and now - entry.added_at < ORPHAN_AFTER):
            return False
        await self.remove(entry.request_id)
        return True

    async def _build(self, scan_active: Callable[[], AsyncIterator[str]]) -> None:
        if self._built:
            return
        try:
            await self.table.get_entity(*MARKER)
        except ResourceNotFoundError:
            count = 0
            async for request_id in scan_active():
                await self.add(request_id)
                count += 1
            await self.table.upsert_entity(
                {"PartitionKey": MARKER[0], "RowKey": MARKER[1], "BuiltAt": utcnow()}
            )
            log.info("indexed %d active requests recorded before the active-requests index existed", count)
        self._built = True


def _entry(entity: TableEntity) -> ActiveEntry:
    added = entity.get("AddedAt")
    return ActiveEntry(
        request_id=str(entity["RowKey"]),
        # Every row is written with AddedAt; one without counts as new (it is never taken for an orphan).
        added_at=added if isinstance(added, datetime) else utcnow(),
        sent_at=entity.get("SentAt"),
        resumed_at=entity.get("ResumedAt"),
        resumes=int(entity.get("Resumes") or 0),
        resumed_etag=entity.get("ResumedEtag") or None,
    )
