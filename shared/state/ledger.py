"""The ledger table: what exomi owns on each identity (shared/ownership.py), one entity per identity
(PartitionKey = the principal's object id, RowKey = "grants"), replaced with optimistic concurrency:
two requests for two targets that share an identity may change it at the same time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableClient

from shared.errors import ConcurrencyError, Transient
from shared.ids import validate_guid
from shared.ownership import Ledger, OwnedGrant
from shared.state.codec import get_json, put_json
from shared.state.query import etag_of
from shared.state.records import utcnow
from shared.state.tables import insert

ROW_KEY = "grants"
_ATTEMPTS = 8


class LedgerStore:
    def __init__(self, table: TableClient) -> None:
        self.table = table

    async def find(self, principal_id: str) -> Ledger | None:
        principal_id = validate_guid(principal_id, "principal_id")
        try:
            entity = await self.table.get_entity(principal_id, ROW_KEY)
        except ResourceNotFoundError:
            return None
        grants = [OwnedGrant.model_validate(item) for item in get_json(entity, "Grants") or []]
        return Ledger(principal_id=principal_id, grants=tuple(grants), etag=etag_of(entity.metadata))

    async def owners(self) -> set[str]:
        """The identities (object ids, lower case) on which exomi owns at least one grant, page by page."""
        owners = set()
        async for entity in self.table.query_entities(
            "RowKey eq @row", parameters={"row": ROW_KEY}, select=["PartitionKey", "Grants"]
        ):
            if get_json(entity, "Grants"):
                owners.add(str(entity["PartitionKey"]).lower())
        return owners

    async def save(self, ledger: Ledger) -> Ledger:
        """Create (no etag) or replace if unchanged since read; else ConcurrencyError."""
        entity: dict[str, Any] = {
            "PartitionKey": ledger.principal_id,
            "RowKey": ROW_KEY,
            "UpdatedAt": utcnow(),
        }
        put_json(entity, "Grants", [grant.model_dump(mode="json") for grant in ledger.grants])
        try:
            if ledger.etag is None:
                metadata = await insert(self.table, entity)
            else:
                metadata = await self.table.update_entity(
                    entity,
                    mode=UpdateMode.REPLACE,
                    etag=ledger.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
        except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
            raise ConcurrencyError(f"the ledger of {ledger.principal_id}") from None
        return ledger.model_copy(update={"etag": etag_of(metadata)})


async def update_ledger(
    read: Callable[[], Any], store: LedgerStore, change: Callable[[Ledger], Ledger]
) -> Ledger:
    """Read the ledger (``read``), apply ``change`` and save it, again while somebody else changed it
    meanwhile. An unchanged ledger is not written."""
    for _ in range(_ATTEMPTS):
        ledger = await read()
        changed = change(ledger)
        if changed.grants == ledger.grants and ledger.etag is not None:
            return ledger
        try:
            return await store.save(changed)
        except ConcurrencyError:
            continue
    raise Transient("the ownership ledger kept changing while it was being updated; retry")
