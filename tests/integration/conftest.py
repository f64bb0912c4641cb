"""Fixtures for the integration tests: a state repository on Azurite with tables of its own per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import pytest

from shared.settings import Settings
from shared.state import StateStore


@pytest.fixture
def state_settings(azurite, tmp_path) -> Settings:
    """Settings pointing at the session's Azurite, with a table prefix no other test uses."""
    prefix = "t" + uuid.uuid4().hex[:16]
    return Settings.load(
        {"AzureWebJobsStorage": azurite, "EXOMI_TABLE_PREFIX": prefix},
        local_settings=tmp_path / "no-local-settings.json",
    )


@pytest.fixture
async def open_state(state_settings) -> AsyncIterator[Callable[..., object]]:
    """Open (more) StateStores on the same tables, e.g. to act as a second process; all closed at the end."""
    opened: list[StateStore] = []

    async def open_store(*, stale_lock_after: timedelta | None = None) -> StateStore:
        kwargs = {} if stale_lock_after is None else {"stale_lock_after": stale_lock_after}
        store = await StateStore.open(state_settings, **kwargs)
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        await store.close()


@pytest.fixture
async def state(open_state) -> StateStore:
    return await open_state()
