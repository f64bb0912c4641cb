"""Tenant-wide facts (the Exchange Online service principal and its app roles, the verified domains),
read once per process and kept for a short while (``EXOMI_TENANT_FACTS_TTL_SECONDS``, 300 s).

Every request needs them and they almost never change: reading them once per request was one Graph
call per target. Requests that miss at the same time share one read. A fact is read again when it
expires, or at once when a caller saw it was wrong (``forget``: e.g. Graph answered 404 for the
principal it names). An absent fact (None) is not kept: exomi creates the Exchange principal then.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class TenantFacts:
    ttl: float = 300.0
    clock: Callable[[], float] = time.monotonic
    _values: dict[str, tuple[float, Any]] = field(default_factory=dict)
    _reading: dict[str, asyncio.Future[Any]] = field(default_factory=dict)
    reads: int = 0  # how often a fact was read from the service (for tests and benchmarks)

    async def get(self, name: str, read: Callable[[], Awaitable[Any]]) -> Any:
        kept = self._values.get(name)
        if kept is not None and self.clock() < kept[0]:
            return kept[1]
        pending = self._reading.get(name)
        if pending is not None:
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                if not pending.cancelled():
                    raise  # this caller was cancelled
                return await self.get(name, read)  # the reader was: read again
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._reading[name] = future
        try:
            self.reads += 1
            value = await read()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as error:
            future.set_exception(error)
            future.exception()  # retrieved: nobody else may be waiting
            raise
        else:
            future.set_result(value)
            if value is not None and self.ttl > 0:
                self._values[name] = (self.clock() + self.ttl, value)
            return value
        finally:
            self._reading.pop(name, None)

    def forget(self, name: str) -> None:
        self._values.pop(name, None)
