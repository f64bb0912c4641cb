"""The durations table on Azurite: what earlier waits took, averaged, and what the engine paces by."""

from __future__ import annotations

import pytest

from shared.settings import EngineTimings
from shared.state.durations import WEIGHT


async def test_observed_durations_are_averaged_and_read_back_by_timing(state):
    assert await state.durations.learned() == {}
    assert await state.durations.observe("expected_import", 100.0) == 100.0
    second = await state.durations.observe("expected_import", 200.0)
    assert second == pytest.approx((1 - WEIGHT) * 100.0 + WEIGHT * 200.0)
    await state.durations.observe("expected_job", 40.0)
    assert await state.durations.learned() == {
        "expected_import": pytest.approx(second),
        "expected_job": 40.0,
    }


async def test_a_second_process_learns_into_the_same_average(state, open_state):
    other = await open_state()
    await state.durations.observe("expected_job", 30.0)
    await other.durations.observe("expected_job", 60.0)
    assert (await state.durations.learned())["expected_job"] == pytest.approx(39.0)


async def test_only_the_waits_exomi_paces_by_are_learned(state):
    for timing, seconds in (("expected_run_command", 10.0), ("poll", 5.0), ("expected_job", 0.0)):
        with pytest.raises(ValueError):
            await state.durations.observe(timing, seconds)
    assert await state.durations.learned() == {}


def test_a_learned_duration_fills_only_a_timing_the_settings_leave_unknown():
    configured = EngineTimings(expected_job=50.0)
    paced = configured.with_learned({"expected_import": 180.0, "expected_job": 20.0, "poll": 1.0})
    assert paced.expected_import == 180.0  # not set: learned
    assert paced.expected_job == 50.0  # the operator's setting wins
    assert paced.poll == configured.poll  # not a learned timing
    assert configured.with_learned({}) is configured
