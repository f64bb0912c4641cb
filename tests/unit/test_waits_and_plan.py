"""The engine's plan (which step waits for which) and its wait schedules: pure rules, no I/O."""

from __future__ import annotations

from shared.engine.plan import plan_for
from shared.engine.waits import next_look
from shared.ids import TargetKind
from shared.models import Operation
from shared.settings import EngineTimings


def _seen_late(timings: EngineTimings, duration: float, expected: float = 0.0) -> tuple[float, int]:
    """(how long after its end a wait of ``duration`` is seen finished, how many looks it took)."""
    elapsed, looks = 0.0, 0
    while elapsed < duration:
        elapsed += next_look(timings, elapsed, expected)
        looks += 1
    return elapsed - duration, looks


def test_with_the_default_pacing_a_three_minute_import_is_seen_within_ten_seconds_of_its_end():
    late, looks = _seen_late(EngineTimings(), 180.0)
    assert late <= 10.0
    assert looks <= 60  # a few percent of the time waited, not a poll every second


def test_a_known_duration_is_looked_at_rarely_before_it_ends_and_soon_after():
    timings = EngineTimings()
    late, looks = _seen_late(timings, 120.0, expected=120.0)
    assert late <= 0.05 * 120 + timings.min_poll and looks <= 10


def test_no_look_is_further_away_than_max_poll():
    timings = EngineTimings(max_poll=60.0)
    assert next_look(timings, elapsed=36000.0) == 60.0


def test_the_runbook_is_published_while_the_modules_import_and_verification_waits_for_both():
    plan = plan_for(Operation.PROVISION, TargetKind.AUTOMATION_ACCOUNT)
    assert "modules" not in plan.needs["runbook"]
    assert {"app-role", "entra-role", "modules", "runbook"} <= plan.needs["verify"]
    order = [step.name for step in plan.in_order()]
    assert order.index("verify") == len(order) - 1 and order[0] in ("identity", "exchange-sp")


def test_a_vm_verifies_after_its_modules_and_grants_and_has_no_automation_steps():
    plan = plan_for(Operation.PROVISION, TargetKind.VIRTUAL_MACHINE)
    assert plan.needs["verify"] == {"identity", "principal", "app-role", "entra-role", "vm-modules"}
    assert not {"modules", "runbook", "runtime-environment"} & set(plan.needs)


def test_a_scale_set_verifies_after_the_modules_on_its_instances_and_the_grants():
    plan = plan_for(Operation.PROVISION, TargetKind.SCALE_SET)
    assert plan.needs["verify"] == {"identity", "principal", "app-role", "entra-role", "vmss-modules"}
    assert plan.needs["vmss-modules"] == {"identity"}  # the install runs while the grants are made
    assert not {"modules", "runbook", "vm-modules"} & set(plan.needs)
