"""The targets table: per target (PartitionKey = ResourceId.key) two entities.

RowKey "state": the provisioned state of the target (identity ids, role, what exomi granted).
RowKey "lock":  which request currently holds the target ("one active request per target").
RowKey "tags":  the time of the newest event handled for the target (older deliveries are stale), and
                the last desired state its tags asked for that policy refused (so that somebody else's
                unrelated write of the resource is not taken as asking again).
They are separate rows so that state updates and lock changes never race each other's ETags.

The principals table indexes the states by identity (PartitionKey = principal object id, RowKey = the
target key), so that "which targets use this identity" is one partition query, not a scan of every
target. An entry is written before the state that names the principal, and readers keep only the
targets whose state still names it: a crash between the two, or an identity that changed, leaves an
entry that is skipped. Targets saved before the index existed are indexed once per deployment (the
first process that needs it scans the targets once and writes the marker row ``index``/``built``; with
no target yet there is nothing to index and nothing is written).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableEntity, UpdateMode
from azure.data.tables.aio import TableClient

from shared.errors import ConcurrencyError
from shared.ids import validate_guid
from shared.models import TargetStatus
from shared.state.codec import get_json, put_json
from shared.state.query import Filter, etag_of, fetch_all, iter_all
from shared.state.records import DriftFinding, Grants, TagState, TargetLock, TargetRecord, utcnow
from shared.state.tables import insert

STATE = "state"
LOCK = "lock"
TAGS = "tags"
INDEX_MARKER = ("index", "built")  # in the principals table: every target saved before it is indexed


class TargetStore:
    def __init__(self, table: TableClient, principals: TableClient) -> None:
        self.table = table
        self.principals = principals
        self._indexed: set[tuple[str, str]] = set()  # (principal, target key) written by this process
        self._index_built = False
        self._building: asyncio.Lock | None = None  # one build at a time: concurrent passes wait for it

    async def get(self, target_key: str) -> TargetRecord | None:
        entity = await self._read(target_key, STATE)
        return None if entity is None else _state_from_entity(entity)

    async def save(self, record: TargetRecord) -> TargetRecord:
        """Create the state (no etag) or replace it if unchanged since read (etag); else ConcurrencyError."""
        if record.principal_id:
            await self._index(record.principal_id, record.target_key, record.target)
        record = record.model_copy(update={"updated_at": utcnow()})
        entity = _state_to_entity(record)
        metadata = await self._write(entity, record.etag, f"state of target {record.target}")
        return record.model_copy(update={"etag": etag_of(metadata)})

    async def list_by_principal(self, principal_id: str) -> list[TargetRecord]:
        """Every target whose identity is this principal (object id): who else uses a shared identity.
        One query of the principal's index partition, then each target's state by its keys."""
        principal_id = validate_guid(principal_id, "principal_id")
        await self._build_index()
        where = Filter().equals("PartitionKey", principal_id)
        keys = [str(entity["RowKey"]) for entity in await fetch_all(self.principals, where)]
        records = []
        for key in keys:
            record = await self.get(key)
            if record is not None and (record.principal_id or "").lower() == principal_id:
                records.append(record)
        return records

    async def _index(self, principal_id: str, target_key: str, target: str) -> None:
        principal_id = validate_guid(principal_id, "principal_id")
        if (principal_id, target_key) in self._indexed:
            return
        entity = {"PartitionKey": principal_id, "RowKey": target_key, "Target": target}
        await self.principals.upsert_entity(entity, mode=UpdateMode.REPLACE)
        self._indexed.add((principal_id, target_key))

    async def _build_index(self) -> None:
        """Index the targets saved before the index existed: one scan per deployment, then a marker."""
        if self._index_built:
            return
        self._building = self._building or asyncio.Lock()
        async with self._building:
            if not self._index_built:
                await self._build_index_once()

    async def _build_index_once(self) -> None:
        try:
            await self.principals.get_entity(*INDEX_MARKER)
        except ResourceNotFoundError:
            found = False
            async for record in self.list_all():
                found = True
                if record.principal_id:
                    await self._index(record.principal_id, record.target_key, record.target)
            if not found:
                return  # nothing to index (and a read-only command writes nothing): look again next time
            await self.principals.upsert_entity(
                {"PartitionKey": INDEX_MARKER[0], "RowKey": INDEX_MARKER[1], "BuiltAt": utcnow()}
            )
        self._index_built = True

    async def list_all(self) -> AsyncIterator[TargetRecord]:
        """Every target's state, page by page (the inventory reads them once, not per principal)."""
        where = Filter().equals("RowKey", STATE)
        async for entity in iter_all(self.table, where):
            yield _state_from_entity(entity)

    async def list_by_status(self, status: TargetStatus) -> AsyncIterator[TargetRecord]:
        """Every target in this status, read page by page (reconciliation walks all provisioned targets)."""
        where = Filter().equals("RowKey", STATE).equals("Status", TargetStatus(status).value)
        async for entity in iter_all(self.table, where):
            yield _state_from_entity(entity)

    async def get_lock(self, target_key: str) -> TargetLock | None:
        entity = await self._read(target_key, LOCK)
        return None if entity is None else _lock_from_entity(entity)

    async def write_lock(
        self, target_key: str, target: str, request_id: str | None, *, replacing: TargetLock | None
    ) -> TargetLock:
        """Set the lock holder (None frees it). `replacing` is the lock as read (None: there was none);
        if it changed since, or appeared meanwhile, raise ConcurrencyError."""
        lock = TargetLock(
            target_key=target_key,
            target=target,
            request_id=request_id,
            acquired_at=utcnow() if request_id else None,
        )
        entity = {
            "PartitionKey": target_key,
            "RowKey": LOCK,
            "Target": target,
            "RequestId": request_id or "",
            "AcquiredAt": lock.acquired_at,
        }
        metadata = await self._write(
            entity, replacing.etag if replacing else None, f"lock of target {target}"
        )
        return lock.model_copy(update={"etag": etag_of(metadata)})

    async def delete_lock(self, lock: TargetLock) -> None:
        """Free the target: delete its lock row if it is still as read, else raise ConcurrencyError."""
        try:
            await self.table.delete_entity(
                lock.target_key, LOCK, etag=lock.etag, match_condition=MatchConditions.IfNotModified
            )
        except (ResourceModifiedError, ResourceNotFoundError):
            raise ConcurrencyError(f"lock of target {lock.target}") from None

    async def tag_state(self, target_key: str) -> TagState:
        entity = await self._read(target_key, TAGS)
        if entity is None:
            return TagState()
        return TagState(
            refused_desired=entity.get("RefusedDesired") or None,
            refused_by=entity.get("RefusedBy") or None,
            newest_event_at=entity.get("NewestEventAt"),
            etag=entity.metadata["etag"],
        )

    async def save_tag_state(self, target_key: str, target: str, state: TagState) -> TagState:
        """Write the state over the one it was read from (its ETag; none: there was none). Two deliveries
        for the target handled at once both read it before they decide: the second one's write is a
        ConcurrencyError, and it decides again from what the first one wrote (shared/tagging.py)."""
        entity: dict[str, Any] = {
            "PartitionKey": target_key,
            "RowKey": TAGS,
            "Target": target,
            "UpdatedAt": utcnow(),
        }
        if state.refused_desired is not None:
            entity["RefusedDesired"] = state.refused_desired
        if state.refused_by is not None:
            entity["RefusedBy"] = state.refused_by
        if state.newest_event_at is not None:
            entity["NewestEventAt"] = state.newest_event_at
        metadata = await self._write(entity, state.etag, f"the tag state of {target}")
        return state.model_copy(update={"etag": etag_of(metadata)})

    async def _read(self, target_key: str, row_key: str) -> TableEntity | None:
        try:
            return await self.table.get_entity(target_key, row_key)
        except ResourceNotFoundError:
            return None

    async def _write(self, entity: dict[str, Any], etag: str | None, what: str) -> Any:
        """Insert (no etag) or replace-if-unchanged (etag); losing either race is a ConcurrencyError."""
        try:
            if etag is None:
                return await insert(self.table, entity)
            return await self.table.update_entity(
                entity, mode=UpdateMode.REPLACE, etag=etag, match_condition=MatchConditions.IfNotModified
            )
        except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
            raise ConcurrencyError(what) from None


def _state_to_entity(record: TargetRecord) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": record.target_key,
        "RowKey": STATE,
        "Target": record.target,
        "Kind": record.kind.value,
        "Identity": record.identity,
        "PrincipalId": record.principal_id,
        "ClientId": record.client_id,
        "Organization": record.organization,
        "Role": record.role.value if record.role else None,
        "Runtime": record.runtime.value if record.runtime else None,
        "Status": record.status.value,
        "LastRequestId": record.last_request_id,
        "LastVerifiedAt": record.last_verified_at,
        "ManagedByTags": record.managed_by_tags,
        "ExpiresAt": record.expires_at,
        "Expires": record.expires,
        "Expired": record.expired,
        "DriftCheckedAt": record.drift_checked_at,
        "UpdatedAt": record.updated_at,
    }
    put_json(entity, "Granted", record.granted.model_dump(mode="json"))
    if record.drift:
        put_json(entity, "Drift", [finding.model_dump(mode="json") for finding in record.drift])
    return entity


def _state_from_entity(entity: TableEntity) -> TargetRecord:
    return TargetRecord(
        target=entity["Target"],
        target_key=entity["PartitionKey"],
        kind=entity["Kind"],
        identity=entity["Identity"],
        principal_id=entity.get("PrincipalId"),
        client_id=entity.get("ClientId"),
        organization=entity.get("Organization"),
        role=entity.get("Role"),
        runtime=entity.get("Runtime"),
        granted=Grants.model_validate(get_json(entity, "Granted") or {}),
        status=entity["Status"],
        last_request_id=entity.get("LastRequestId"),
        last_verified_at=entity.get("LastVerifiedAt"),
        managed_by_tags=bool(entity.get("ManagedByTags", False)),
        expires_at=entity.get("ExpiresAt"),
        expires=entity.get("Expires"),
        expired=bool(entity.get("Expired", False)),
        drift=[DriftFinding.model_validate(item) for item in get_json(entity, "Drift") or []],
        drift_checked_at=entity.get("DriftCheckedAt"),
        updated_at=entity["UpdatedAt"],
        etag=etag_of(entity.metadata),
    )


def _lock_from_entity(entity: TableEntity) -> TargetLock:
    acquired_at: datetime | None = entity.get("AcquiredAt")
    return TargetLock(
        target_key=entity["PartitionKey"],
        target=entity["Target"],
        request_id=entity.get("RequestId") or None,
        acquired_at=acquired_at,
        etag=etag_of(entity.metadata),
    )
