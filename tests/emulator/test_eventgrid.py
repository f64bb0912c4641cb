"""Event Grid: the handshake, the shape of Microsoft.Resources events, filters, retries and
dead-lettering, and the duplicate / out-of-order delivery Azure is allowed to do. A webhook inside the
test receives the deliveries; every wait polls with a deadline."""

from __future__ import annotations

import re
import time
import uuid

import pytest

from tests.support.webhook import Webhook

RG = "rg-events"
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
DASHLESS_GUID = re.compile(r"^[0-9a-f]{32}$")
EVENT_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$")
OID_CLAIM = "http://schemas.microsoft.com/identity/claims/objectidentifier"
OWNER_ROLE_ID = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"


@pytest.fixture
def webhook():
    hook = Webhook().start()
    yield hook
    hook.stop()


def _subscribe(emulator, webhook, name="exomi-events", **options):
    return emulator.subscribe_events(name, webhook.url, **options)


def _wait_deliveries(emulator, condition, subscription=None, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        deliveries = emulator.event_deliveries(subscription)
        if condition(deliveries):
            return deliveries
        time.sleep(0.05)
    raise AssertionError(f"delivery condition not met; deliveries: {emulator.event_deliveries(subscription)}")


def _is(operation_name, subject_end=None):
    def condition(event):
        data = event["data"]
        return data["operationName"] == operation_name and (
            subject_end is None or event["subject"].lower().endswith(subject_end.lower())
        )

    return condition


def test_handshake_then_a_resource_group_write_event_with_the_full_shape(emulator, webhook):
    created = _subscribe(emulator, webhook)
    assert created["name"] == "exomi-events" and created["max_delivery_attempts"] == 30
    (validation,) = webhook.validations
    assert validation["headers"]["aeg-event-type"] == "SubscriptionValidation"
    assert validation["body"][0]["eventType"] == "Microsoft.EventGrid.SubscriptionValidationEvent"

    emulator.resources().resource_groups.create_or_update(RG, {"location": "westeurope"})
    event = webhook.wait_for_event(_is("Microsoft.Resources/subscriptions/resourceGroups/write"))
    sub = emulator.subscription_id
    subject = f"/subscriptions/{sub}/resourcegroups/{RG}"
    assert event["topic"] == f"/subscriptions/{sub}"
    assert event["subject"] == subject  # ARM lower-cases "resourcegroups"
    assert event["eventType"] == "Microsoft.Resources.ResourceWriteSuccess"
    assert GUID.match(event["id"]) and EVENT_TIME.match(event["eventTime"])
    assert (event["dataVersion"], event["metadataVersion"]) == ("2", "1")
    data = event["data"]
    assert data["resourceUri"] == subject and data["authorization"]["scope"] == subject
    assert data["authorization"]["action"] == "Microsoft.Resources/subscriptions/resourceGroups/write"
    evidence = data["authorization"]["evidence"]
    assert evidence["role"] == "Owner" and evidence["roleAssignmentScope"] == f"/subscriptions/{sub}"
    assert evidence["roleDefinitionId"] == OWNER_ROLE_ID.replace("-", "")
    assert DASHLESS_GUID.match(evidence["roleAssignmentId"])
    # ARM writes the principal id without dashes; the claims carry the token's oid as it is.
    assert evidence["principalId"] == emulator.admin_principal_id.replace("-", "")
    assert evidence["principalType"] == "ServicePrincipal"
    assert data["claims"][OID_CLAIM] == emulator.admin_principal_id
    assert data["claims"]["appid"] == emulator.admin_client_id
    assert data["claims"]["aud"] == "https://management.azure.com/"
    assert GUID.match(data["correlationId"])
    assert "httpRequest" not in data  # a create carries no request details
    assert data["resourceProvider"] == "Microsoft.Resources" and data["status"] == "Succeeded"
    assert (data["subscriptionId"], data["tenantId"]) == (sub, emulator.tenant_id)

    (delivery,) = [d for d in webhook.deliveries if d.body[0]["id"] == event["id"]]
    assert delivery.header("aeg-event-type") == "Notification"
    assert delivery.header("aeg-subscription-name") == "EXOMI-EVENTS"
    assert delivery.header("aeg-delivery-count") == "0"
    assert (delivery.header("aeg-data-version"), delivery.header("aeg-metadata-version")) == ("2", "1")
    assert delivery.header("Content-Type") == "application/json; charset=utf-8"
    assert isinstance(delivery.body, list) and len(delivery.body) == 1

    # An update of the existing group carries the request.
    emulator.resources().resource_groups.create_or_update(RG, {"location": "westeurope", "tags": {"a": "b"}})
    update = webhook.wait_for_event(
        lambda e: (
            _is("Microsoft.Resources/subscriptions/resourceGroups/write")(e) and "httpRequest" in e["data"]
        )
    )
    request = update["data"]["httpRequest"]
    assert request["method"] == "PUT"
    assert request["url"].startswith(f"https://management.azure.com/subscriptions/{sub}/resourcegroups/{RG}?")


def test_identity_delete_and_tag_write_events(emulator, webhook):
    _subscribe(emulator, webhook)
    emulator.resources().resource_groups.create_or_update(RG, {"location": "westeurope"})
    uai = emulator.msi().user_assigned_identities.create_or_update(RG, "uai1", {"location": "westeurope"})
    emulator.resources().tags.begin_create_or_update_at_scope(
        uai.id, {"properties": {"tags": {"exo-organization": "contoso.onmicrosoft.com"}}}
    ).result()
    emulator.msi().user_assigned_identities.delete(RG, "uai1")

    tag_event = webhook.wait_for_event(_is("Microsoft.Resources/tags/write"))
    assert tag_event["eventType"] == "Microsoft.Resources.ResourceWriteSuccess"
    assert tag_event["subject"].endswith(
        "/userAssignedIdentities/uai1/providers/Microsoft.Resources/tags/default"
    )
    assert tag_event["data"]["resourceProvider"] == "Microsoft.Resources"

    deleted = webhook.wait_for_event(_is("Microsoft.ManagedIdentity/userAssignedIdentities/delete"))
    assert deleted["eventType"] == "Microsoft.Resources.ResourceDeleteSuccess"
    assert (
        deleted["subject"]
        == f"/subscriptions/{emulator.subscription_id}/resourcegroups/{RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/uai1"
    )
    assert deleted["data"]["httpRequest"]["method"] == "DELETE"
    assert deleted["data"]["resourceProvider"] == "Microsoft.ManagedIdentity"


def test_events_caused_by_exomis_identity_name_it(emulator, webhook):
    _subscribe(emulator, webhook)
    emulator.resources().resource_groups.create_or_update(RG, {"location": "westeurope"})
    app_compute = emulator.compute(credential=emulator.app_credential())
    app_compute.virtual_machines.begin_create_or_update(
        RG, "vm1", {"location": "westeurope", "properties": {"hardwareProfile": {"vmSize": "Standard_B2s"}}}
    ).result()
    app_compute.virtual_machines.begin_run_command(RG, "vm1", {"commandId": "RunPowerShellScript"}).result()

    action = webhook.wait_for_event(_is("Microsoft.Compute/virtualMachines/runCommand/action"))
    assert action["eventType"] == "Microsoft.Resources.ResourceActionSuccess"
    assert action["subject"].endswith("/providers/Microsoft.Compute/virtualMachines/vm1")
    assert action["data"]["httpRequest"]["method"] == "POST"
    evidence = action["data"]["authorization"]["evidence"]
    assert evidence["role"] == "Virtual Machine Contributor"
    assert evidence["principalId"] == emulator.app_principal_id.replace("-", "")
    assert action["data"]["claims"][OID_CLAIM] == emulator.app_principal_id
    write = webhook.wait_for_event(_is("Microsoft.Compute/virtualMachines/write"))
    assert write["data"]["claims"]["appid"] == emulator.app_client_id


def test_filters_by_type_subject_and_operation(emulator, webhook):
    rg_prefix = f"/SUBSCRIPTIONS/{emulator.subscription_id}/resourceGroups/{RG}"  # case does not matter
    _subscribe(
        emulator,
        webhook,
        name="tags-only",
        included_event_types=["Microsoft.Resources.ResourceWriteSuccess"],
        subject_begins_with=rg_prefix,
        advanced_filters=[
            {
                "operatorType": "StringIn",
                "key": "data.operationName",
                "values": ["microsoft.resources/TAGS/write"],
            }
        ],
    )
    other = Webhook().start()
    try:
        uai2_id = f"/subscriptions/{emulator.subscription_id}/resourceGroups/elsewhere/providers/Microsoft.ManagedIdentity/userAssignedIdentities/uai2"
        _subscribe(
            emulator,
            other,
            name="not-tags",
            subject_begins_with=uai2_id,
            advanced_filters=[
                {
                    "operatorType": "StringNotIn",
                    "key": "data.operationName",
                    "values": ["Microsoft.Resources/tags/write"],
                }
            ],
        )
        resources, msi = emulator.resources(), emulator.msi()
        resources.resource_groups.create_or_update(RG, {"location": "westeurope"})
        resources.resource_groups.create_or_update("elsewhere", {"location": "westeurope"})
        uai1 = msi.user_assigned_identities.create_or_update(RG, "uai1", {"location": "westeurope"})
        uai2 = msi.user_assigned_identities.create_or_update("elsewhere", "uai2", {"location": "westeurope"})
        resources.tags.begin_create_or_update_at_scope(uai2.id, {"properties": {"tags": {"k": "v"}}}).result()
        msi.user_assigned_identities.delete("elsewhere", "uai2")
        resources.tags.begin_create_or_update_at_scope(uai1.id, {"properties": {"tags": {"k": "v"}}}).result()

        # Delivery per subscription is in order: once its last matching event is in, so is everything else.
        webhook.wait_for_event(
            _is("Microsoft.Resources/tags/write", "/uai1/providers/Microsoft.Resources/tags/default")
        )
        assert [e["subject"].split("/providers/", 1)[1] for e in webhook.events()] == [
            "Microsoft.ManagedIdentity/userAssignedIdentities/uai1/providers/Microsoft.Resources/tags/default"
        ]
        other.wait_for_event(_is("Microsoft.ManagedIdentity/userAssignedIdentities/delete"))
        assert [e["data"]["operationName"] for e in other.events()] == [
            "Microsoft.ManagedIdentity/userAssignedIdentities/write",
            "Microsoft.ManagedIdentity/userAssignedIdentities/delete",
        ]
    finally:
        other.stop()


def test_a_failing_endpoint_is_retried_until_it_succeeds(emulator, webhook):
    _subscribe(emulator, webhook)
    webhook.respond_with(500, 503)
    emulator.resources().resource_groups.create_or_update(RG, {"location": "westeurope"})
    deliveries = _wait_deliveries(emulator, lambda ds: any(d["outcome"] == "delivered" for d in ds))
    assert [(d["attempt"], d["status"], d["outcome"]) for d in deliveries] == [
        (1, 500, "retrying"),
        (2, 503, "retrying"),
        (3, 200, "delivered"),
    ]
    assert len({d["event_id"] for d in deliveries}) == 1
    assert [d.header("aeg-delivery-count") for d in webhook.deliveries] == ["0", "1", "2"]
    assert len({d.body[0]["id"] for d in webhook.deliveries}) == 1


def test_bad_request_is_not_retried_and_attempts_are_capped(emulator, webhook):
    emulator.set_timings(event_retry=0)  # a retry, if there were one, would come before the next event
    _subscribe(emulator, webhook)
    webhook.respond_with(400)
    resources = emulator.resources()
    resources.resource_groups.create_or_update(RG, {"location": "westeurope"})
    _wait_deliveries(emulator, lambda ds: len(ds) == 1)
    resources.resource_groups.create_or_update("second", {"location": "westeurope"})
    webhook.wait_for_event(lambda e: e["subject"].endswith("/resourcegroups/second"))
    first, second = webhook.deliveries
    assert first.status == 400 and first.body[0]["subject"].endswith(f"/resourcegroups/{RG}")
    deliveries = emulator.event_deliveries()
    assert [(d["status"], d["outcome"]) for d in deliveries] == [(400, "dead_lettered"), (200, "delivered")]

    always_failing = Webhook().start()
    try:
        _subscribe(emulator, always_failing, name="capped", max_delivery_attempts=3)
        always_failing.respond_with(*[500] * 10)
        resources.resource_groups.create_or_update("third", {"location": "westeurope"})
        capped = _wait_deliveries(emulator, lambda ds: ds and ds[-1]["outcome"] == "dead_lettered", "capped")
        assert [(d["attempt"], d["outcome"]) for d in capped] == [
            (1, "retrying"),
            (2, "retrying"),
            (3, "dead_lettered"),
        ]
    finally:
        always_failing.stop()


def test_unreachable_endpoint_attempts_record_the_error(emulator, webhook):
    _subscribe(emulator, webhook, max_delivery_attempts=2)
    webhook.stop()  # gone after the handshake
    emulator.resources().resource_groups.create_or_update(RG, {"location": "westeurope"})
    deliveries = _wait_deliveries(emulator, lambda ds: len(ds) == 2)
    assert all(d["status"] is None and d["error"] for d in deliveries)
    assert deliveries[-1]["outcome"] == "dead_lettered"


def test_duplicates_and_arms_second_write_event(emulator, webhook):
    _subscribe(emulator, webhook)
    emulator.ctl("PATCH", "/eventgrid/behaviour", {"duplicate_probability": 1.0, "duplicate_count": 2})
    emulator.resources().resource_groups.create_or_update(RG, {"location": "westeurope"})
    webhook.wait_for(lambda hook: len(hook.events()) == 3)
    assert len({e["id"] for e in webhook.events()}) == 1  # the same event, three times

    emulator.ctl(
        "PATCH", "/eventgrid/behaviour", {"duplicate_probability": 0, "double_write_on_create": True}
    )
    emulator.msi().user_assigned_identities.create_or_update(RG, "uai1", {"location": "westeurope"})
    writes = webhook.wait_for(
        lambda hook: len(found := [e for e in hook.events() if e["subject"].endswith("/uai1")]) == 2 and found
    )
    assert writes[0]["id"] != writes[1]["id"]
    assert writes[0]["data"]["correlationId"] == writes[1]["data"]["correlationId"]


def test_shuffled_delivery_changes_the_order(emulator, webhook):
    _subscribe(emulator, webhook)
    emulator.ctl("PATCH", "/eventgrid/behaviour", {"shuffle": True, "shuffle_window": 1.5})
    emulator.resources().resource_groups.create_or_update(RG, {"location": "westeurope"})
    scope = f"/subscriptions/{emulator.subscription_id}/resourceGroups/{RG}"
    tags = emulator.resources().tags
    for index in range(4):
        tags.begin_create_or_update_at_scope(scope, {"properties": {"tags": {"n": str(index)}}}).result()
    events = webhook.wait_for(lambda hook: len(hook.events()) == 5 and hook.events())
    published = [
        "Microsoft.Resources/subscriptions/resourceGroups/write",
        *["Microsoft.Resources/tags/write"] * 4,
    ]
    assert sorted(e["data"]["operationName"] for e in events) == sorted(published)
    times = [e["eventTime"] for e in events]
    assert times != sorted(times)


def test_concurrent_delivery_sends_each_event_before_the_last_is_answered(emulator, webhook):
    _subscribe(emulator, webhook)
    emulator.ctl("PATCH", "/eventgrid/behaviour", {"concurrent": True})
    webhook.hold()
    emulator.resources().resource_groups.create_or_update(RG, {"location": "westeurope"})
    scope = f"/subscriptions/{emulator.subscription_id}/resourceGroups/{RG}"
    for index in range(2):
        emulator.resources().tags.begin_create_or_update_at_scope(
            scope, {"properties": {"tags": {"n": str(index)}}}
        ).result()
    webhook.wait_for(lambda hook: hook.arrived == 3)  # all three in flight, none answered yet
    assert webhook.events() == []

    webhook.release()
    events = webhook.wait_for(lambda hook: len(hook.events()) == 3 and hook.events())
    assert sorted(e["data"]["operationName"] for e in events) == sorted(
        ["Microsoft.Resources/subscriptions/resourceGroups/write", *["Microsoft.Resources/tags/write"] * 2]
    )
    deliveries = _wait_deliveries(emulator, lambda found: len(found) == 3)
    assert {d["status"] for d in deliveries} == {200}


def test_a_paused_subscription_delivers_what_is_due_in_order_once_resumed(emulator, webhook):
    _subscribe(emulator, webhook)
    emulator.ctl("PATCH", "/eventgrid/behaviour", {"paused": True})
    emulator.resources().resource_groups.create_or_update(RG, {"location": "westeurope"})
    scope = f"/subscriptions/{emulator.subscription_id}/resourceGroups/{RG}"
    for index in range(3):
        emulator.resources().tags.begin_create_or_update_at_scope(
            scope, {"properties": {"tags": {"n": str(index)}}}
        ).result()
    assert webhook.arrived == 0 and emulator.event_deliveries() == []  # written, not delivered

    emulator.ctl("PATCH", "/eventgrid/behaviour", {"paused": False})
    events = webhook.wait_for(lambda hook: len(hook.events()) == 4 and hook.events())
    times = [e["eventTime"] for e in events]
    assert times == sorted(times)


def test_batches_and_cloud_events(emulator, webhook):
    emulator.set_timings(event_delivery=1.5)  # events collect before the first attempt
    _subscribe(emulator, webhook, max_events_per_batch=10)
    cloud = Webhook(handshake="cloudevents").start()
    try:
        _subscribe(emulator, cloud, name="cloud", schema="CloudEventSchemaV1_0")
        resources = emulator.resources()
        for name in ("rg1", "rg2", "rg3"):
            resources.resource_groups.create_or_update(name, {"location": "westeurope"})
        webhook.wait_for(lambda hook: len(hook.events()) == 3)
        assert len(webhook.deliveries) == 1  # one POST with all three
        cloud.wait_for(lambda hook: len(hook.events()) == 3)
        first = cloud.events()[0]
        assert first["specversion"] == "1.0" and first["type"] == "Microsoft.Resources.ResourceWriteSuccess"
        assert first["source"] == f"/subscriptions/{emulator.subscription_id}"
        assert first["subject"].endswith("/resourcegroups/rg1")
        assert cloud.deliveries[0].header("Content-Type").startswith("application/cloudevents-batch+json")
    finally:
        cloud.stop()


@pytest.mark.parametrize("handshake", ["wrong", "error"])
def test_a_failed_handshake_refuses_the_subscription(emulator, handshake):
    hook = Webhook(handshake=handshake).start()
    try:
        response = emulator.control.post(
            f"{emulator.control_endpoint}/eventgrid/subscriptions",
            json={"name": "refused", "endpoint": hook.url},
        )
        assert response.status_code == 400
        assert "validation handshake failed" in response.json()["error"]
        assert emulator.ctl("GET", "/eventgrid/subscriptions")["subscriptions"] == []
        cloud = emulator.control.post(
            f"{emulator.control_endpoint}/eventgrid/subscriptions",
            json={"name": "refused", "endpoint": hook.url, "schema": "CloudEventSchemaV1_0"},
        )
        assert cloud.status_code == 400  # no WebHook-Allowed-Origin
    finally:
        hook.stop()


def test_subscription_management_and_reset(emulator, webhook):
    bad = emulator.control.post(
        f"{emulator.control_endpoint}/eventgrid/subscriptions",
        json={"name": "x", "endpoint": webhook.url},
    )
    assert bad.status_code == 400
    bad_filter = emulator.control.post(
        f"{emulator.control_endpoint}/eventgrid/subscriptions",
        json={
            "name": "bad-filter",
            "endpoint": webhook.url,
            "advanced_filters": [{"operatorType": "Like", "key": "subject"}],
        },
    )
    assert bad_filter.status_code == 400 and "operatorType" in bad_filter.json()["error"]
    _subscribe(emulator, webhook)
    duplicate = emulator.control.post(
        f"{emulator.control_endpoint}/eventgrid/subscriptions",
        json={"name": "exomi-events", "endpoint": webhook.url},
    )
    assert duplicate.status_code == 409
    assert [s["name"] for s in emulator.ctl("GET", "/eventgrid/subscriptions")["subscriptions"]] == [
        "exomi-events"
    ]
    emulator.ctl("DELETE", "/eventgrid/subscriptions/exomi-events")
    assert emulator.ctl("GET", "/eventgrid/subscriptions")["subscriptions"] == []

    # A reset starts a tenant without subscriptions, and the new tenant's operations are published.
    _subscribe(emulator, webhook)
    info = emulator.reset()
    assert emulator.ctl("GET", "/eventgrid/subscriptions")["subscriptions"] == []
    _subscribe(emulator, webhook)
    emulator.resources().resource_groups.create_or_update(RG, {"location": "westeurope"})
    event = webhook.wait_for_event(_is("Microsoft.Resources/subscriptions/resourceGroups/write"))
    assert event["data"]["tenantId"] == info["tenant_id"] and uuid.UUID(event["id"])
