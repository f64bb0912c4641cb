"""The idempotency table: which request a caller's idempotency key created, and with which body.

PartitionKey = sha256(caller + key) (so keys of different callers never meet, and no caller text
becomes a Table key), RowKey = "key". The body hash tells a replay (same body) from a reuse of the
key for a different request (Conflict).
"""

from __future__ import annotations

import contextlib
import hashlib
from datetime import datetime

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables.aio import TableClient
from pydantic import BaseModel

from shared.errors import InputError
from shared.state.query import etag_of
from shared.state.records import utcnow
from shared.state.tables import insert

ROW_KEY = "key"
MAX_KEY_LENGTH = 255


class IdempotencyEntry(BaseModel):
    request_id: str
    body_hash: str
    created_at: datetime


def check_idempotency_key(key: object) -> str:
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise InputError("idempotency_key", f"must be 1-{MAX_KEY_LENGTH} printable characters")
    return key


def _partition(caller: str, key: str) -> str:
    return hashlib.sha256(f"{caller}\n{key}".encode()).hexdigest()


class IdempotencyStore:
    def __init__(self, table: TableClient) -> None:
        self.table = table

    async def get(self, caller: str, key: str) -> IdempotencyEntry | None:
        try:
            entity = await self.table.get_entity(_partition(caller, check_idempotency_key(key)), ROW_KEY)
        except ResourceNotFoundError:
            return None
        return IdempotencyEntry(
            request_id=entity["RequestId"], body_hash=entity["BodyHash"], created_at=entity["CreatedAt"]
        )

    async def create(self, caller: str, key: str, request_id: str, body_hash: str) -> str | None:
        """Remember the key; returns the entry's etag, or None if a concurrent submission recorded it first."""
        entity = {
            "PartitionKey": _partition(caller, check_idempotency_key(key)),
            "RowKey": ROW_KEY,
            "RequestId": request_id,
            "BodyHash": body_hash,
            "CreatedAt": utcnow(),
        }
        try:
            metadata = await insert(self.table, entity)
        except ResourceExistsError:
            return None
        return etag_of(metadata)

    async def delete(self, caller: str, key: str, etag: str) -> None:
        """Forget the key again (its request was refused), unless the entry changed since it was written."""
        with contextlib.suppress(ResourceModifiedError, ResourceNotFoundError):
            await self.table.delete_entity(
                _partition(caller, check_idempotency_key(key)),
                ROW_KEY,
                etag=etag,
                match_condition=MatchConditions.IfNotModified,
            )
