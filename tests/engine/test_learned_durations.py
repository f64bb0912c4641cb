"""exomi learns how long Azure's waits take in this tenant: after a provision the durations table holds
at least the emulated import and job times, and each later provision adds what it waited for."""

from __future__ import annotations

from azure.data.tables import TableClient

from emulator.timings import fast_timings
from tests.engine.test_provision import assert_succeeded

ANSWER_TRANSIT = 0.05


def learned(exomi) -> dict[str, tuple[float, int]]:
    """The durations table: timing -> (average seconds, observations)."""
    table = TableClient.from_connection_string(exomi.storage, f"{exomi.table_prefix}durations")
    with table:
        return {
            e["RowKey"]: (e["Seconds"], e["Count"])
            for e in table.query_entities("PartitionKey eq 'duration'")
        }


async def test_a_provision_teaches_the_import_and_job_times_and_the_next_one_adds_to_them(
    emulator, exomi, targets
):
    timings = fast_timings()
    first, second = targets.automation_account(), targets.automation_account(name="ContosoAzAuto2")
    code, output, stderr = exomi.run(
        "provision", "--target", first.id, "--organization", emulator.organization
    )
    assert_succeeded(code, output, stderr)
    after_first = learned(exomi)
    # A wait is never seen done before Azure finishes it: these are lower bounds, whatever the load. A
    # wait is timed from Azure's answer to the call that started it, which leaves Azure just after the
    # work began (ANSWER_TRANSIT, a loopback round trip at most).
    assert after_first["expected_import"][0] >= timings.module_import - ANSWER_TRANSIT
    assert after_first["expected_job"][0] >= timings.job_start + timings.job_run - ANSWER_TRANSIT
    assert "expected_run_command" not in after_first  # the VM's connect lead stays an operator's choice

    code, output, stderr = exomi.run(
        "provision", "--target", second.id, "--organization", emulator.organization
    )
    assert_succeeded(code, output, stderr)
    after_second = learned(exomi)
    assert after_second["expected_import"][1] == 2 and after_second["expected_job"][1] == 2
    assert after_second["expected_import"][0] >= timings.module_import - ANSWER_TRANSIT
