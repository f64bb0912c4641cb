"""Timer triggers (schedule, runOnStartup, past_due, no overlap) and the admin invoke API."""

from __future__ import annotations

import json
import uuid
from datetime import datetime

import httpx
import pytest

from devhost.settings import ConfigError
from devhost.timers import parse_schedule
from tests.devhost.support import FUNCTION_KEY, MASTER_KEY
from tests.support.polling import eventually


def test_a_timer_runs_on_schedule_never_overlaps_and_a_late_run_is_past_due(records):
    # The sample's tick runs every second; its 2nd run sleeps 1.5 s and so overruns the 3rd occurrence.
    runs = eventually(lambda: len(records("tick")) >= 4 and records("tick"), what="four scheduled runs")
    runs.sort(key=lambda r: r["run"])
    assert [r["run"] for r in runs[:4]] == [1, 2, 3, 4]
    assert runs[2]["past_due"] is True
    for earlier, later in zip(runs, runs[1:], strict=False):
        assert later["started"] >= earlier["ended"], "two runs of the same timer overlapped"


def test_run_on_startup_fires_once_at_start_with_the_schedule_status(records):
    (first, *_) = eventually(lambda: records("nightly"), what="the start-up run")
    assert first["past_due"] is False
    assert first["status"]["Next"].endswith("T03:00:00")  # "0 0 3 1 1 *": next 1 January, 03:00


def admin(sample_host, name: str, body, key: str | None = MASTER_KEY) -> httpx.Response:
    headers = {"x-functions-key": key} if key else {}
    with sample_host.client() as http:
        return http.post(f"/admin/functions/{name}", content=json.dumps(body), headers=headers)


def test_admin_api_runs_a_timer_on_demand(sample_host, records):
    before = len(eventually(lambda: records("nightly"), what="the start-up run"))
    assert admin(sample_host, "nightly", {"input": ""}).status_code == 202
    eventually(lambda: len(records("nightly")) == before + 1, what="the on-demand run")
    assert admin(sample_host, "NIGHTLY", {"input": None}).status_code == 202  # names ignore case
    eventually(lambda: len(records("nightly")) == before + 2, what="the second on-demand run")


def test_admin_api_refuses_missing_keys_unknown_functions_and_bad_bodies(sample_host):
    assert admin(sample_host, "nightly", {"input": ""}, key=None).status_code == 401
    assert admin(sample_host, "nightly", {"input": ""}, key=FUNCTION_KEY).status_code == 401
    assert admin(sample_host, "no_such_function", {"input": ""}).status_code == 404
    with sample_host.client() as http:
        response = http.post(
            "/admin/functions/nightly", content=b"not json", headers={"x-functions-key": MASTER_KEY}
        )
    assert response.status_code == 400


def test_admin_api_runs_queue_and_event_grid_functions_with_the_input(sample_host, records):
    body = f"direct:{uuid.uuid4()}"
    assert admin(sample_host, "work", {"input": body}).status_code == 202
    (seen,) = eventually(lambda: records("work", body=body), what="the direct queue invocation")
    assert seen["type"] == "azure.functions.queue.QueueMessage"
    event = {"id": str(uuid.uuid4()), "subject": "s", "eventType": "t", "data": {"x": 1}, "dataVersion": "1"}
    assert admin(sample_host, "on_event", {"input": json.dumps(event)}).status_code == 202
    eventually(lambda: records("on_event", id=event["id"]), what="the direct Event Grid invocation")


def occurrences(expression: str, start: datetime, count: int) -> list[datetime]:
    schedule, moments = parse_schedule(expression), []
    for _ in range(count):
        start = schedule.next_after(start)
        moments.append(start)
    return moments


def test_ncrontab_six_field_schedules():
    start = datetime(2026, 10, 1, 12, 0, 3)  # a Thursday
    assert occurrences("*/5 * * * * *", start, 3) == [datetime(2026, 10, 1, 12, 0, s) for s in (5, 10, 15)]
    assert occurrences("0 */5 * * * *", start, 2) == [
        datetime(2026, 10, 1, 12, 5),
        datetime(2026, 10, 1, 12, 10),
    ]
    assert occurrences("0 30 9 * * Mon-Fri", start, 3) == [
        datetime(2026, 10, 2, 9, 30),
        datetime(2026, 10, 5, 9, 30),
        datetime(2026, 10, 6, 9, 30),
    ]
    assert occurrences("10,20 0 0 1 Jan,Jul *", start, 2) == [
        datetime(2027, 1, 1, 0, 0, 10),
        datetime(2027, 1, 1, 0, 0, 20),
    ]
    # Five fields are accepted (seconds = 0); day-of-month and day-of-week must BOTH match (NCrontab).
    assert occurrences("0 0 13 * 5", start, 1) == [datetime(2026, 11, 13)]  # the next Friday the 13th
    assert occurrences("00:10:00", start, 2) == [
        datetime(2026, 10, 1, 12, 10, 3),
        datetime(2026, 10, 1, 12, 20, 3),
    ]


@pytest.mark.parametrize(
    "expression", ["* * * *", "61 * * * * *", "*/0 * * * * *", "0 0 0 31 2 *", "nonsense"]
)
def test_invalid_schedules_are_rejected_with_the_hosts_message(expression):
    with pytest.raises(ConfigError, match="was not recognized as a valid cron expression or timespan string"):
        parse_schedule(expression)
