"""The Event Grid trigger webhook with the host's aeg-event-type semantics."""

from __future__ import annotations

import json
import uuid

import pytest

from devhost.process import DevHostProcess
from tests.devhost.support import SAMPLE_APP

WEBHOOK = "/runtime/webhooks/eventgrid"


def resource_event(**data) -> dict:
    return {
        "id": str(uuid.uuid4()),
        "topic": "/subscriptions/s",
        "subject": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Automation/automationAccounts/aa",
        "eventType": "Microsoft.Resources.ResourceWriteSuccess",
        "eventTime": "2026-10-01T12:00:00.1234567Z",
        "dataVersion": "2",
        "metadataVersion": "1",
        "data": {"operationName": "Microsoft.Automation/automationAccounts/write", **data},
    }


def post(sample_host, body, event_type: str | None = "Notification", function: str | None = "on_event"):
    headers = {"aeg-event-type": event_type} if event_type else {}
    params = {"functionName": function} if function else {}
    with sample_host.client() as http:
        return http.post(WEBHOOK, params=params, content=json.dumps(body), headers=headers)


def test_unknown_or_missing_function_name_is_404(sample_host):
    unknown = post(sample_host, [resource_event()], function="nope")
    assert unknown.status_code == 404
    assert unknown.text == "cannot find function: 'nope'"
    assert post(sample_host, [resource_event()], function=None).status_code == 404
    # An HTTP-triggered function is not an Event Grid listener either.
    assert post(sample_host, [resource_event()], function="echo").status_code == 404


@pytest.mark.parametrize("event_type", [None, "SomethingElse"])
def test_a_missing_or_unknown_event_type_header_is_400(sample_host, event_type, records):
    event = resource_event()
    assert post(sample_host, [event], event_type=event_type).status_code == 400
    assert not records("on_event", id=event["id"])


def test_subscription_validation_answers_the_code_without_invoking_the_function(sample_host, records):
    code = str(uuid.uuid4())
    validation = {
        "id": str(uuid.uuid4()),
        "topic": "/subscriptions/s",
        "subject": "",
        "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
        "eventTime": "2026-10-01T12:00:00Z",
        "data": {"validationCode": code, "validationUrl": "https://rp-eastus2.eventgrid.azure.net/validate"},
        "metadataVersion": "1",
        "dataVersion": "1",
    }
    response = post(sample_host, [validation], event_type="subscriptionvalidation")  # header value: any case
    assert response.status_code == 200
    assert response.json() == {"validationResponse": code}
    # CloudEvents schema: a single object whose data is double-encoded.
    cloud = {
        "specversion": "1.0",
        "id": "v1",
        "source": "s",
        "type": "x",
        "data": json.dumps({"validationCode": "c2"}),
    }
    assert post(sample_host, cloud, event_type="SubscriptionValidation").json() == {
        "validationResponse": "c2"
    }
    assert not records("on_event", id=validation["id"]) and not records("on_event", id="v1")


def test_a_notification_batch_runs_once_per_event_and_answers_202(sample_host, records):
    events = [resource_event(n=n) for n in range(3)]
    response = post(sample_host, events)
    assert response.status_code == 202
    for event in events:  # the invocations finished before the answer
        (seen,) = records("on_event", id=event["id"])
        assert seen["kind"] == "EventGridEvent" and seen["data"] == event["data"]


def test_one_failing_event_makes_the_whole_delivery_500_but_every_event_still_runs(sample_host, records):
    good, bad = resource_event(), resource_event(fail=True)
    response = post(sample_host, [good, bad])
    assert response.status_code == 500
    assert response.text == "Exception while executing function: Functions.on_event"
    assert records("on_event", id=good["id"]) and records("on_event", id=bad["id"])


def test_a_single_cloudevent_object_is_delivered_as_func_cloudevent(sample_host, records):
    event = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "/subscriptions/s/resourceGroups/rg",
        "type": "Microsoft.Resources.ResourceWriteSuccess",
        "time": "2026-10-01T12:00:00Z",
        "data": {"operationName": "x/write"},
    }
    assert post(sample_host, event).status_code == 202
    (seen,) = records("on_event", id=event["id"])
    assert seen["kind"] == "CloudEvent" and seen["data"] == {"operationName": "x/write"}


def test_unsubscribe_is_202_and_the_cloudevents_options_handshake_is_allowed(sample_host):
    assert post(sample_host, [], event_type="Unsubscribe").status_code == 202
    with sample_host.client() as http:
        response = http.options(
            WEBHOOK,
            params={"functionName": "on_event"},
            headers={"WebHook-Request-Origin": "eventgrid.azure.net"},
        )
    assert response.status_code == 200
    assert response.headers["WebHook-Allowed-Origin"] == "eventgrid.azure.net"


def test_invalid_json_in_a_notification_is_a_500(sample_host):
    with sample_host.client() as http:
        response = http.post(
            WEBHOOK,
            params={"functionName": "on_event"},
            content=b"not json",
            headers={"aeg-event-type": "Notification"},
        )
    assert response.status_code == 500


def test_the_eventgrid_system_key_is_enforced_when_configured(tmp_path):
    env = {
        "SAMPLE_RECORD_DIR": str(tmp_path),
        "WORK_QUEUE": "unused-queue",
        "OUTBOX_QUEUE": "unused-outbox",
        "TICK_SCHEDULE": "0 0 0 1 1 *",
        "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        "DEVHOST_EVENTGRID_KEY": "eg-key",
        # Keep the sample's listeners quiet: only the webhook matters here.
        "AzureWebJobs.work.Disabled": "true",
        "AzureWebJobs.nightly.Disabled": "true",
    }
    with DevHostProcess(SAMPLE_APP, env=env, log_file=tmp_path / "devhost.log") as host:
        assert host.info["eventgrid_key"] == "eg-key"
        assert sorted(host.info["disabled"]) == ["nightly", "work"]
        assert post(host, [resource_event()]).status_code == 401
        with host.client() as http:
            params = {"functionName": "on_event", "code": "eg-key"}
            ok = http.post(
                WEBHOOK, params=params, json=[resource_event()], headers={"aeg-event-type": "Notification"}
            )
        assert ok.status_code == 202
