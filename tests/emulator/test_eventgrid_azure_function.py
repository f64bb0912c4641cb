"""Event Grid's AzureFunction destination, as infra/events/subscription.bicep makes exomi's event
subscription: no URL and no validation handshake; Event Grid delivers to the Function app's Event Grid
extension webhook with the host's ``eventgrid_extension`` system key. The real function_app.py runs under
devhost (which requires that key), against the emulator and Azurite: a tag write reaches
on_resource_event and becomes exomi's request, once the emulator knows where the host listens."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from devhost.process import DevHostProcess
from shared.bootstrap import Options, desired_event_subscription
from tests.app.tagging import TagRunner, eventually, put_tags, wait_for_requests, wait_until_ended
from tests.engine.conftest import Targets
from tests.support.api import QUIET_TIMERS
from tests.support.exomi import ROOT

GROUP, SITE, TOPIC, SUBSCRIPTION = "rg-exomi", "func-exomi-e2e", "exomi-arm-topic", "exomi-tags"
EVENTGRID_KEY = "eg-" + uuid.uuid4().hex  # the host's eventgrid_extension system key
FAST_QUEUES = {
    "AzureFunctionsJobHost__extensions__queues__visibilityTimeout": "00:00:01",
    "AzureFunctionsJobHost__extensions__queues__maxPollingInterval": "00:00:00.200",
}


@pytest.fixture
def exomi(emulator, azurite) -> TagRunner:
    return TagRunner(emulator, azurite)


@pytest.fixture
def targets(emulator) -> Targets:
    return Targets(emulator)


@pytest.fixture
def function_host(exomi, tmp_path) -> Iterator[DevHostProcess]:
    """exomi's function_app.py under devhost, whose Event Grid webhook takes only the system key."""
    env = {
        **exomi.env(),
        **FAST_QUEUES,
        **QUIET_TIMERS,
        "FUNCTIONS_WORKER_RUNTIME": "python",
        "DEVHOST_EVENTGRID_KEY": EVENTGRID_KEY,
    }
    host = DevHostProcess(ROOT, env=env, log_file=tmp_path / "host.log")
    host.start()
    yield host
    host.stop()


def _function_app(emulator) -> str:
    """exomi's Function app as a Microsoft.Web/sites resource: its resource id."""
    emulator.resources().resource_groups.create_or_update(GROUP, {"location": "westeurope"})
    body = {"location": "westeurope", "kind": "functionapp,linux", "identity": {"type": "SystemAssigned"}}
    return emulator.web().web_apps.begin_create_or_update(GROUP, SITE, body).result().id


def _subscribe_function(emulator, function_id: str):
    """infra/events: the system topic and the event subscription with exomi's filters (the ones bootstrap
    and docs/OPERATIONS.md use), delivered to the function by resource id."""
    client = emulator.eventgrid()
    client.system_topics.begin_create_or_update(
        GROUP,
        TOPIC,
        {
            "location": "global",
            "properties": {
                "source": f"/subscriptions/{emulator.subscription_id}",
                "topicType": "Microsoft.Resources.Subscriptions",
            },
        },
    ).result()
    body = desired_event_subscription(Options(principal_id=emulator.app_principal_id), "https://unused")
    body["properties"]["destination"] = {
        "endpointType": "AzureFunction",
        "properties": {
            "resourceId": function_id,
            "maxEventsPerBatch": 1,
            "preferredBatchSizeInKilobytes": 64,
        },
    }
    return client.system_topic_event_subscriptions.begin_create_or_update(
        GROUP, TOPIC, SUBSCRIPTION, body
    ).result()


def _deliveries(emulator) -> list[dict]:
    return emulator.event_deliveries(SUBSCRIPTION)


def test_a_tag_event_reaches_on_resource_event_through_an_azurefunction_subscription(
    emulator, exomi, targets, function_host
):
    emulator.set_timings(event_retry=0.1)
    site = _function_app(emulator)
    function_id = f"{site}/functions/on_resource_event"
    # No handshake: the subscription is made while nobody could answer one (no host is known yet).
    created = _subscribe_function(emulator, function_id)
    assert created.provisioning_state == "Succeeded"
    assert created.destination.endpoint_type == "AzureFunction"
    assert created.destination.resource_id == function_id

    account = targets.automation_account()
    put_tags(emulator, account.id, {"exo-organization": emulator.organization})
    # Until the emulator knows where the Function app's host listens, the event waits and is retried.
    waiting = eventually(
        lambda: [
            d
            for d in _deliveries(emulator)
            if d["outcome"] == "retrying" and account.name in str(d["subjects"])
        ],
        what="an attempt while no host is known",
    )
    assert "no Functions host is known" in waiting[0]["error"]
    assert exomi.run("list")[1] == []

    emulator.ctl(
        "PUT",
        "/eventgrid/function-hosts",
        {"site": site, "url": function_host.url, "eventgrid_extension_key": EVENTGRID_KEY},
    )
    request = wait_for_requests(exomi, 1)[0]
    assert (request["channel"], request["operation"], request["target"].lower()) == (
        "tag",
        "provision",
        account.id.lower(),
    )
    assert wait_until_ended(exomi, request["id"])["status"] == "succeeded"
    delivered = [d for d in _deliveries(emulator) if d["outcome"] == "delivered"]
    assert any(account.name in str(d["subjects"]) and d["status"] == 202 for d in delivered), delivered
    # The key is a secret: the control API shows only that there is one.
    (host,) = emulator.ctl("GET", "/eventgrid/function-hosts")["function_hosts"]
    assert host == {"site": site, "url": function_host.url, "has_key": True}


def test_function_hosts_control_validates_what_it_is_given(emulator):
    for body, problem in (
        ({"url": "http://127.0.0.1:7071"}, "site"),
        (
            {
                "site": "/subscriptions/x/resourceGroups/g/providers/Microsoft.Web/sites",
                "url": "http://127.0.0.1:1",
            },
            "site",
        ),
        (
            {
                "site": f"/subscriptions/{uuid.uuid4()}/resourceGroups/g/providers/Microsoft.Web/sites/a",
                "url": "http://example.com",
            },
            "https",
        ),
        (
            {
                "site": f"/subscriptions/{uuid.uuid4()}/resourceGroups/g/providers/Microsoft.Web/sites/a",
                "url": "https://h/api",
            },
            "url",
        ),
    ):
        response = emulator.control.put(f"{emulator.control_endpoint}/eventgrid/function-hosts", json=body)
        assert response.status_code == 400 and problem in response.text, (body, response.text)
    response = emulator.control.delete(
        f"{emulator.control_endpoint}/eventgrid/function-hosts", params={"site": "/nope"}
    )
    assert response.status_code == 404
