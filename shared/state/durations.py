"""The durations table: how long Azure's waits took in this tenant (a module import, a verification
job), so that exomi looks at the next one near its expected end even when no
``EXOMI_EXPECTED_*_SECONDS`` setting says how long they take (shared/engine/waits.py).

PartitionKey = "duration", RowKey = the engine timing it informs (``expected_import``, ...). ``Seconds``
is a moving average (each new observation weighs ``WEIGHT``), ``Count`` how many were seen. Two passes
that learn at once: one write wins, the other observation is dropped (it is an estimate).
"""

from __future__ import annotations

import contextlib

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables.aio import TableClient

from shared.state.tables import insert

PARTITION = "duration"
# Not the Run Command time: it is also how early the VM's connect test starts (steps_verify.py), which
# only an operator should decide (EXOMI_EXPECTED_RUN_COMMAND_SECONDS).
LEARNED = ("expected_import", "expected_job")
WEIGHT = 0.3  # a new observation's share of the average: recent waits count most


class DurationStore:
    def __init__(self, table: TableClient) -> None:
        self.table = table

    async def learned(self) -> dict[str, float]:
        """Every learned duration, by the engine timing it informs."""
        entities = self.table.query_entities("PartitionKey eq @p", parameters={"p": PARTITION})
        return {
            entity["RowKey"]: float(entity["Seconds"])
            async for entity in entities
            if entity["RowKey"] in LEARNED and float(entity.get("Seconds", 0)) > 0
        }

    async def observe(self, timing: str, seconds: float) -> float:
        """Adds an observation of ``timing``; returns the average now stored."""
        if timing not in LEARNED or seconds <= 0:
            raise ValueError(f"not a learned duration: {timing}={seconds}")
        try:
            entity = await self.table.get_entity(PARTITION, timing)
        except ResourceNotFoundError:
            with contextlib.suppress(ResourceExistsError):  # another pass learnt it first: keep that
                await insert(
                    self.table, {"PartitionKey": PARTITION, "RowKey": timing, "Seconds": seconds, "Count": 1}
                )
            return seconds
        average = (1 - WEIGHT) * float(entity["Seconds"]) + WEIGHT * seconds
        updated = {**entity, "Seconds": average, "Count": int(entity.get("Count", 0)) + 1}
        with contextlib.suppress(HttpResponseError):  # 412: another pass wrote meanwhile
            await self.table.update_entity(
                updated, etag=entity.metadata["etag"], match_condition=MatchConditions.IfNotModified
            )
        return average
