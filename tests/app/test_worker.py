"""The queue-triggered worker under the local Functions host: a request handed to the queue is
advanced, re-queued while it waits, and ends verified; a poisoned request ends failed with its reason."""

from __future__ import annotations

import contextlib
import time

from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from shared.work_queue import encode


def wait_for_status(exomi, request_id: str, statuses: set[str], deadline_seconds: float = 90) -> dict:
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        code, output, _ = exomi.run("status", request_id)
        if code == 0 and output["status"] in statuses:
            return output
        time.sleep(0.5)
    raise AssertionError(f"request {request_id} did not reach {statuses}: {output}")


def test_a_queued_request_is_carried_to_the_end_by_the_worker(emulator, exomi, targets, function_host):
    account = targets.automation_account()
    code, output, _ = exomi.run(
        "provision", "--target", account.id, "--organization", emulator.organization, "--no-wait"
    )
    assert code == 0 and output["status"] == "queued"
    final = wait_for_status(exomi, output["id"], {"succeeded", "failed"})
    assert final["status"] == "succeeded", final
    assert [s["status"] for s in final["steps"]] == ["done"] * 9
    # The worker's log (INFO, as the Functions worker forwards it) has exomi's lines, not azure-core's
    # lines for every request and response of every ARM, Graph and Storage call.
    log = function_host.log_file.read_text()
    assert output["id"] in log
    assert "Request URL:" not in log


def test_a_poisoned_work_item_ends_its_request_failed_with_the_reason(
    emulator, exomi, targets, function_host, azurite
):
    account = targets.automation_account()
    # Every ARM call fails: the worker's invocation raises each time, the host retries, then poisons it.
    emulator.add_fault(
        path=r"/automationAccounts/", status=400, code="BadRequest", message="the emulator refuses this"
    )
    code, output, _ = exomi.run(
        "provision", "--target", account.id, "--organization", emulator.organization, "--no-wait"
    )
    assert code == 0
    final = wait_for_status(exomi, output["id"], {"succeeded", "failed"})
    assert final["status"] == "failed" and final["error"]["code"]


def test_a_malformed_work_item_is_dropped_without_harm(exomi, function_host, azurite):
    queue = QueueClient.from_connection_string(
        azurite, "exomi-work", message_encode_policy=TextBase64EncodePolicy()
    )
    with contextlib.suppress(ResourceExistsError):  # the host may not have polled it yet
        queue.create_queue()
    queue.send_message("not json")
    # A well-formed item for a request nobody recorded: encode() gives the body as exomi sends it.
    QueueClient.from_connection_string(azurite, "exomi-work").send_message(
        encode("0190a9f0-0000-7000-8000-000000000000")
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and queue.peek_messages(max_messages=5):
        time.sleep(0.2)
    assert queue.peek_messages(max_messages=5) == []
