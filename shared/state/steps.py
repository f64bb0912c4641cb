"""The steps table: one entity per (request, step) (PartitionKey = request id, RowKey = step name)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableEntity, TableTransactionError, UpdateMode
from azure.data.tables.aio import TableClient

from shared.errors import ConcurrencyError
from shared.ids import validate_guid
from shared.state.codec import get_json, put_json, put_text
from shared.state.query import Filter, etag_of, fetch_all
from shared.state.records import StepRecord, utcnow
from shared.state.transactions import MIN_OPERATIONS, Operation, submit

# Step names are chosen by code, never by callers; they are RowKeys, so keep them plain.
STEP_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")


def check_step_name(name: str) -> str:
    if not STEP_NAME_RE.fullmatch(name):
        raise ValueError(f"step name {name!r} must be 1-63 lowercase letters, digits, '_' or '-'")
    return name


class StepStore:
    def __init__(self, table: TableClient) -> None:
        self.table = table

    async def save(self, step: StepRecord) -> StepRecord:
        """Write the step. With an etag (read from the store) only if unchanged since; else upsert."""
        step = step.model_copy(update={"updated_at": utcnow()})
        entity = _to_entity(step)
        if step.etag is None:
            metadata = await self.table.upsert_entity(entity, mode=UpdateMode.REPLACE)
        else:
            try:
                metadata = await self.table.update_entity(
                    entity,
                    mode=UpdateMode.REPLACE,
                    etag=step.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
            except (ResourceModifiedError, ResourceNotFoundError):
                raise ConcurrencyError(f"step {step.name} of request {step.request_id}") from None
        return step.model_copy(update={"etag": etag_of(metadata)})

    async def save_all(self, steps: list[StepRecord]) -> list[StepRecord]:
        """Write several steps of one request as ``save`` does, in one transaction (one round trip, or a
        few for more than fit in one; one or two steps are written on their own, at once): if one changed
        since it was read, that transaction is not written (ConcurrencyError)."""
        if len(steps) < MIN_OPERATIONS:
            return list(await asyncio.gather(*(self.save(step) for step in steps)))
        if len({step.request_id for step in steps}) != 1 or len({step.name for step in steps}) != len(steps):
            raise ValueError("save_all takes distinct steps of one request")
        now = utcnow()
        steps = [step.model_copy(update={"updated_at": now}) for step in steps]
        operations: list[Operation] = []
        for step in steps:
            if step.etag is None:
                operations.append(("upsert", _to_entity(step), {"mode": UpdateMode.REPLACE}))
            else:
                options = {
                    "mode": UpdateMode.REPLACE,
                    "etag": step.etag,
                    "match_condition": MatchConditions.IfNotModified,
                }
                operations.append(("update", _to_entity(step), options))
        try:
            results = await submit(self.table, operations)
        except TableTransactionError as error:
            if error.status_code in (404, 412):  # one of them changed or vanished since it was read
                raise ConcurrencyError(f"the steps of request {steps[0].request_id}") from None
            raise
        return [
            step.model_copy(update={"etag": etag_of(result)})
            for step, result in zip(steps, results, strict=True)
        ]

    async def get(self, request_id: str, name: str) -> StepRecord | None:
        try:
            entity = await self.table.get_entity(
                validate_guid(request_id, "request_id"), check_step_name(name)
            )
        except ResourceNotFoundError:
            return None
        return _from_entity(entity)

    async def list(self, request_id: str) -> list[StepRecord]:
        """All steps of a request, in plan order."""
        where = Filter().equals("PartitionKey", validate_guid(request_id, "request_id"))
        steps = [_from_entity(entity) for entity in await fetch_all(self.table, where)]
        return sorted(steps, key=lambda step: (step.index, step.name))


def _to_entity(step: StepRecord) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": validate_guid(step.request_id, "request_id"),
        "RowKey": check_step_name(step.name),
        "Index": step.index,
        "Status": step.status.value,
        "Action": step.action,
        "CheckAgainAt": step.check_again_at,
        "Attempts": step.attempts,
        "UpdatedAt": step.updated_at,
    }
    put_json(entity, "Observed", step.observed)
    put_json(entity, "Error", step.error)
    put_text(entity, "Message", step.message)
    return entity


def _from_entity(entity: TableEntity) -> StepRecord:
    return StepRecord(
        request_id=entity["PartitionKey"],
        name=entity["RowKey"],
        index=entity.get("Index", 0),
        status=entity["Status"],
        action=entity.get("Action"),
        observed=get_json(entity, "Observed"),
        check_again_at=entity.get("CheckAgainAt"),
        attempts=entity.get("Attempts", 0),
        message=entity.get("Message"),
        error=get_json(entity, "Error"),
        updated_at=entity["UpdatedAt"],
        etag=etag_of(entity.metadata),
    )
