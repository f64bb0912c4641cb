"""Nothing lost, nothing stuck: a request recorded while the work queue does not answer is accepted (no
5xx) and queued by an idempotent replay, and runs exactly once without the timer; a request whose worker
died in the middle of a pass is resumed by the resume pass once its lease has run out, not after the
queue's 10-minute lease."""

from __future__ import annotations

import re
import socket
from datetime import UTC, datetime

import httpx

from tests.engine.test_provision import RECIPIENT_ADMIN
from tests.support.exomi import ExomiRunner
from tests.support.polling import eventually


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens there once the socket is closed


def test_a_request_recorded_while_the_queue_does_not_answer_runs_exactly_once(
    emulator, azurite, targets, start_api
):
    api = start_api(env={"EXOMI_QUEUED_GRACE_SECONDS": "3600"})  # the resume pass would not queue it
    account = targets.automation_account()
    unreachable = re.sub(
        r"QueueEndpoint=http://127\.0\.0\.1:\d+", f"QueueEndpoint=http://127.0.0.1:{closed_port()}", azurite
    )
    assert unreachable != azurite
    offline = ExomiRunner(
        emulator,
        unreachable,
        table_prefix=api.exomi.table_prefix,
        policy=api.exomi.policy,
        callback_key=api.exomi.callback_key,
    )
    args = ("provision", "--target", account.id, "--organization", emulator.organization)

    code, first, stderr = offline.run(*args, "--no-wait", "--idempotency-key", "CHG-1")
    assert code == 0 and first["status"] == "queued", stderr  # recorded, not lost, no failure
    assert "did not take it" in stderr  # the warning says so

    # The caller retries with the same key once the queue is back: the replay queues it.
    code, replay, _ = api.exomi.run(*args, "--no-wait", "--idempotency-key", "CHG-1")
    assert code == 0 and replay["id"] == first["id"]
    final, _ = api.follow_id(first["id"])
    assert final.json()["status"] == "succeeded"
    code, listed, _ = api.exomi.run("list")
    assert [r["id"] for r in listed] == [first["id"]]
    assert emulator.exchange_access(account.identity.principal_id) == (1, [RECIPIENT_ADMIN])


def test_a_request_whose_worker_died_is_resumed_when_its_lease_runs_out(emulator, targets, start_api):
    settings = {"EXOMI_LEASE_SECONDS": "2", "AzureWebJobs.resume_requests.Disabled": "false"}
    api = start_api(env=settings)
    account = targets.automation_account()
    # The pass will be in the middle of the module import when the worker dies.
    fault = emulator.add_fault(
        path=r"/modules/ExchangeOnlineManagement$", method="PUT", kind="latency", latency_ms=3000, count=1
    )
    accepted = api.post("requests", {"target": account.id, "organization": emulator.organization})
    request_id = accepted.json()["id"]

    def fired() -> bool:
        return (
            next(f for f in emulator.ctl("GET", "/faults")["faults"] if f["id"] == fault["id"])["fired"] > 0
        )

    eventually(fired, timeout=60, what="the pass to reach the module import", interval=0.1)
    api.host.process.kill()  # the worker dies; its work item stays invisible for the queue's 10 minutes
    api.host.process.wait()
    running = api.exomi.run("status", request_id)[1]
    assert running["status"] == "running"

    # A new instance of the app; the resume pass (its timer, run here at once) finds the lease run out.
    other = start_api(env=settings, instance_of=api)

    def lease_over() -> bool:
        lease = api.exomi.run("status", request_id)[1]["lease_until"]
        return lease is not None and datetime.fromisoformat(lease) < datetime.now(UTC)

    eventually(lease_over, timeout=30, what="the dead pass's lease to run out", interval=0.2)
    trigger = httpx.post(
        f"{other.url}/admin/functions/resume_requests",
        json={"input": ""},
        headers={"x-functions-key": other.host.info["master_key"]},
    )
    assert trigger.status_code == 202
    final, _ = other.follow_id(request_id)
    assert final.json().get("status") == "succeeded", final.json()
    assert emulator.exchange_access(account.identity.principal_id) == (1, [RECIPIENT_ADMIN])
