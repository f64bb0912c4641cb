"""The contract between function_app.py and the Functions host: the bindings the worker reports.

The app is indexed once (``get_functions()`` is not idempotent), in a fresh interpreter so the
module-level settings it reads are the production defaults; every function's raw bindings and its
trigger parameter's annotation (the check the worker runs at load time) are asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.exomi import ROOT

INDEX = """
import json, inspect, sys
import azure.functions as func
from azure.functions import meta
import function_app
out = {}
for f in function_app.app.get_functions():
    bindings = [json.loads(b) for b in f.get_raw_bindings()]
    trigger = next(b for b in bindings if b["type"].endswith("Trigger"))
    annotation = inspect.signature(f.get_user_function()).parameters[trigger["name"]].annotation
    if isinstance(annotation, str):
        annotation = eval(annotation, vars(function_app))
    converter = meta.get_binding_registry().get(trigger["type"])
    out[f.get_function_name()] = {
        "bindings": bindings,
        "annotation_ok": converter.check_input_type_annotation(annotation),
        "is_async": inspect.iscoroutinefunction(f.get_user_function()),
    }
print(json.dumps(out))
"""


def _http(route: str, method: str, auth: str = "FUNCTION") -> list[dict]:
    return [
        {
            "direction": "IN",
            "type": "httpTrigger",
            "name": "req",
            "methods": [method],
            "authLevel": auth,
            "route": route,
        },
        {"direction": "OUT", "type": "http", "name": "$return"},
    ]


EXPECTED = {
    "advance_request": [
        {
            "direction": "IN",
            "type": "queueTrigger",
            "name": "msg",
            "queueName": "exomi-work",
            "connection": "AzureWebJobsStorage",
        }
    ],
    "fail_poisoned_request": [
        {
            "direction": "IN",
            "type": "queueTrigger",
            "name": "msg",
            "queueName": "exomi-work-poison",
            "connection": "AzureWebJobsStorage",
        }
    ],
    "on_resource_event": [{"direction": "IN", "type": "eventGridTrigger", "name": "event"}],
    "reconcile": [
        {
            "direction": "IN",
            "type": "timerTrigger",
            "name": "timer",
            "schedule": "0 */15 * * * *",
            "runOnStartup": False,
        }
    ],
    "resume_requests": [
        {
            "direction": "IN",
            "type": "timerTrigger",
            "name": "timer",
            "schedule": "*/30 * * * * *",
            "runOnStartup": False,
        }
    ],
    "create_request": _http("requests", "POST"),
    "list_requests": _http("requests", "GET"),
    "get_request": _http("requests/{id}", "GET"),
    "plan_request": _http("plan", "POST"),
    "diagnose_target": _http("diagnose", "POST"),
    "create_revocation": _http("revocations", "POST"),
    "decide_approval": _http("requests/{id}/approval", "POST"),
    "cancel_request": _http("requests/{id}/cancel", "POST"),
    "list_refusals": _http("refusals", "GET"),
    "list_findings": _http("findings", "GET"),
    "get_inventory": _http("inventory", "GET"),
    "get_health": _http("health", "GET", "ANONYMOUS"),
    "get_openapi": _http("openapi.json", "GET", "ANONYMOUS"),
}


@pytest.fixture(scope="module")
def indexed() -> dict:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    completed = subprocess.run(
        [sys.executable, "-c", INDEX],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_every_function_and_only_these_are_indexed(indexed):
    assert sorted(indexed) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bindings(indexed, name):
    assert indexed[name]["bindings"] == EXPECTED[name]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_trigger_annotations_pass_the_workers_check_and_functions_are_async(indexed, name):
    assert indexed[name]["annotation_ok"], name
    assert indexed[name]["is_async"], "all I/O is async: a sync function would block the worker's thread pool"


def test_host_json_has_the_extension_bundle_and_queue_retry_settings():
    host = json.loads((ROOT / "host.json").read_text())
    assert host["version"] == "2.0"
    assert host["extensionBundle"] == {
        "id": "Microsoft.Azure.Functions.ExtensionBundle",
        "version": "[4.*, 5.0.0)",
    }
    queues = host["extensions"]["queues"]
    assert queues["maxDequeueCount"] == 5 and queues["messageEncoding"] == "base64"


def _seconds(timespan: str) -> float:
    hours, minutes, seconds = timespan.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def test_host_json_retries_a_failed_pass_after_its_lease_and_lets_a_whole_pass_finish():
    """A failed invocation's work item comes back once the dead pass's lease has run out (else the
    retry finds the request held and only re-queues it), and no pass is cut off by functionTimeout."""
    from shared.settings import EngineTimings

    host = json.loads((ROOT / "host.json").read_text())
    queues = host["extensions"]["queues"]
    timings = EngineTimings()
    assert _seconds(queues["visibilityTimeout"]) >= timings.lease
    assert _seconds(host["functionTimeout"]) > 2 * (timings.advance_budget + timings.hold + timings.lease)
    # Target-based scaling asks for one instance per batchSize queued messages; at most
    # batchSize + newBatchThreshold passes run at once on an instance.
    assert 1 <= queues["batchSize"] <= 32 and queues["newBatchThreshold"] < queues["batchSize"]


def test_requirements_name_the_functions_library_and_not_the_worker():
    requirements = (ROOT / "requirements.txt").read_text().lower()
    assert "azure-functions==" in requirements and "azure-functions-worker" not in requirements
