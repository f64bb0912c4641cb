"""Tenant facts (shared/azure/tenant_facts.py): read once for many callers, again after the expiry or
when a caller forgets a wrong one; an absent fact is never kept. A fake clock, no sleeps."""

from __future__ import annotations

import asyncio

import pytest

from shared.azure.tenant_facts import TenantFacts


class Reader:
    def __init__(self, value: object = "sp-1") -> None:
        self.value = value
        self.calls = 0
        self.gate = asyncio.Event()

    async def __call__(self) -> object:
        self.calls += 1
        await self.gate.wait()
        return self.value


async def test_many_requests_at_once_share_one_read():
    now = [0.0]
    facts = TenantFacts(ttl=300, clock=lambda: now[0])
    reader = Reader()
    waiting = [asyncio.ensure_future(facts.get("exchange", reader)) for _ in range(50)]
    await asyncio.sleep(0)
    reader.gate.set()
    assert await asyncio.gather(*waiting) == ["sp-1"] * 50
    assert reader.calls == 1
    assert await facts.get("exchange", reader) == "sp-1"
    assert reader.calls == 1


async def test_a_fact_is_read_again_after_its_expiry_or_once_forgotten():
    now = [0.0]
    facts = TenantFacts(ttl=300, clock=lambda: now[0])
    reader = Reader()
    reader.gate.set()
    await facts.get("exchange", reader)
    now[0] = 299.0
    await facts.get("exchange", reader)
    assert reader.calls == 1
    now[0] = 301.0
    await facts.get("exchange", reader)
    assert reader.calls == 2
    facts.forget("exchange")
    await facts.get("exchange", reader)
    assert reader.calls == 3


async def test_an_absent_fact_is_not_kept_and_a_failed_read_is_not_either():
    facts = TenantFacts(ttl=300, clock=lambda: 0.0)
    missing = Reader(value=None)
    missing.gate.set()
    assert await facts.get("exchange", missing) is None
    assert await facts.get("exchange", missing) is None
    assert missing.calls == 2  # exomi creates the principal, then reads it again

    async def failing() -> object:
        raise RuntimeError("Graph did not answer")

    with pytest.raises(RuntimeError):
        await facts.get("domains", failing)
    found = Reader(value=["contoso.com"])
    found.gate.set()
    assert await facts.get("domains", found) == ["contoso.com"]
