"""The events table on Azurite: an event is handled once whatever its id looks like, and days older
than Event Grid's retry period are forgotten while newer ones are kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone


async def test_a_handled_event_is_known_by_its_id_and_event_time(state):
    at = datetime(2026, 10, 1, 23, 59, 59, tzinfo=UTC)
    odd_id = "o'dd/id?\u00e9 with spaces"  # sender text never becomes a key
    assert not await state.events.handled(odd_id, at)
    await state.events.remember(odd_id, at, "provision request 1")
    await state.events.remember(odd_id, at, "provision request 1")  # a concurrent delivery: no error
    assert await state.events.handled(odd_id, at)
    # The same instant with another UTC offset (the next day there) is the same event time.
    assert await state.events.handled(odd_id, at.astimezone(timezone(timedelta(hours=2))))
    assert not await state.events.handled("another id", at)


async def test_days_before_the_cutoff_are_forgotten(state):
    now = datetime.now(UTC)
    await state.events.remember("old-1", now - timedelta(days=3), "no change")
    await state.events.remember("old-2", now - timedelta(days=5), "no change")
    await state.events.remember("recent", now - timedelta(hours=1), "no change")
    assert await state.events.forget_before(now - timedelta(days=2)) == 2
    assert not await state.events.handled("old-1", now - timedelta(days=3))
    assert await state.events.handled("recent", now - timedelta(hours=1))
