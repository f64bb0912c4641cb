"""Event Grid as ARM resources, through azure-mgmt-eventgrid: system topics (one per source), event
subscriptions (handshake on create, filters applied to delivery, full URL only through getFullUrl),
and ARM's 400/404 answers."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.eventgrid.models import (
    EventSubscription,
    EventSubscriptionFilter,
    RetryPolicy,
    StringInAdvancedFilter,
    SystemTopic,
    WebHookEventSubscriptionDestination,
)

from tests.support.webhook import Webhook

RG = "rg-eventgrid"
TOPIC = "exomi-arm-topic"


@pytest.fixture
def webhook():
    hook = Webhook().start()
    yield hook
    hook.stop()


def _topic(emulator, client, name=TOPIC):
    emulator.resources().resource_groups.create_or_update(RG, {"location": "westeurope"})
    source = f"/subscriptions/{emulator.subscription_id}"
    return client.system_topics.begin_create_or_update(
        RG,
        name,
        SystemTopic(location="global", source=source, topic_type="Microsoft.Resources.Subscriptions"),
    ).result()


def _subscription(url, **filter_args):
    return EventSubscription(
        destination=WebHookEventSubscriptionDestination(endpoint_url=url),
        filter=EventSubscriptionFilter(**filter_args),
        retry_policy=RetryPolicy(max_delivery_attempts=30, event_time_to_live_in_minutes=1440),
    )


def test_system_topic_crud_and_one_topic_per_source(emulator):
    client = emulator.eventgrid()
    topic = _topic(emulator, client)
    assert topic.provisioning_state == "Succeeded"
    assert topic.source == f"/subscriptions/{emulator.subscription_id}"
    assert [t.name for t in client.system_topics.list_by_subscription()] == [TOPIC]

    with pytest.raises(HttpResponseError) as second:
        _topic(emulator, client, name="another-topic")
    assert second.value.status_code == 400 and second.value.error.code == "InvalidRequest"
    assert "Only one system topic is allowed per source" in second.value.error.message

    client.system_topics.begin_delete(RG, TOPIC).result()
    with pytest.raises(ResourceNotFoundError):
        client.system_topics.get(RG, TOPIC)
    assert _topic(emulator, client, name="another-topic").name == "another-topic"  # the source is free again


def test_event_subscription_runs_the_handshake_and_delivers_only_what_its_filters_let_through(
    emulator, webhook
):
    client = emulator.eventgrid()
    _topic(emulator, client)
    url = webhook.url + "?code=secret"
    created = client.system_topic_event_subscriptions.begin_create_or_update(
        RG,
        TOPIC,
        "exomi-tags",
        _subscription(
            url,
            included_event_types=["Microsoft.Resources.ResourceWriteSuccess"],
            advanced_filters=[
                StringInAdvancedFilter(
                    key="data.operationName",
                    values=["Microsoft.Resources/subscriptions/resourceGroups/write"],
                )
            ],
        ),
    ).result()
    assert created.provisioning_state == "Succeeded"
    assert len(webhook.validations) == 1
    # ARM never shows a webhook's key: the base URL only, the full one through getFullUrl.
    assert created.destination.endpoint_base_url == webhook.url and created.destination.endpoint_url is None
    full = client.system_topic_event_subscriptions.get_full_url(RG, TOPIC, "exomi-tags")
    assert full.endpoint_url == url
    assert created.filter.advanced_filters[0].values == [
        "Microsoft.Resources/subscriptions/resourceGroups/write"
    ]

    resources = emulator.resources()
    resources.tags.begin_create_or_update_at_scope(
        f"/subscriptions/{emulator.subscription_id}/resourceGroups/{RG}", {"properties": {"tags": {"a": "1"}}}
    ).result()
    resources.resource_groups.create_or_update("rg-second", {"location": "westeurope"})
    event = webhook.wait_for_event(lambda e: e["subject"].endswith("/resourcegroups/rg-second"))
    assert event["data"]["operationName"] == "Microsoft.Resources/subscriptions/resourceGroups/write"
    # The tag write (another operation) was filtered out by the advanced filter.
    assert all(e["data"]["operationName"] != "Microsoft.Resources/tags/write" for e in webhook.events())

    client.system_topic_event_subscriptions.begin_delete(RG, TOPIC, "exomi-tags").result()
    assert list(client.system_topic_event_subscriptions.list_by_system_topic(RG, TOPIC)) == []


def test_a_refused_handshake_fails_the_subscription_and_nothing_is_delivered(emulator):
    hook = Webhook(handshake="error").start()
    try:
        client = emulator.eventgrid()
        _topic(emulator, client)
        with pytest.raises(HttpResponseError) as failed:
            client.system_topic_event_subscriptions.begin_create_or_update(
                RG, TOPIC, "refused", _subscription(hook.url)
            ).result()
        assert "Webhook validation handshake failed" in str(failed.value)
        kept = client.system_topic_event_subscriptions.get(RG, TOPIC, "refused")
        assert kept.provisioning_state == "Failed"
        emulator.resources().resource_groups.create_or_update("rg-other", {"location": "westeurope"})
        assert emulator.event_deliveries("refused") == []
    finally:
        hook.stop()


def test_not_found_and_bad_request_shapes(emulator, webhook):
    client = emulator.eventgrid()
    emulator.resources().resource_groups.create_or_update(RG, {"location": "westeurope"})
    with pytest.raises(ResourceNotFoundError) as missing_topic:
        client.system_topic_event_subscriptions.get(RG, "no-such-topic", "exomi-tags")
    assert missing_topic.value.error.code == "ParentResourceNotFound"
    _topic(emulator, client)
    with pytest.raises(ResourceNotFoundError) as missing:
        client.system_topic_event_subscriptions.get(RG, TOPIC, "exomi-tags")
    assert missing.value.error.code == "ResourceNotFound"
    with pytest.raises(HttpResponseError) as other_subscription:
        client.system_topics.begin_create_or_update(
            RG,
            "foreign",
            SystemTopic(
                location="global",
                source=f"/subscriptions/{emulator.subscription_ids[1]}",
                topic_type="Microsoft.Resources.Subscriptions",
            ),
        ).result()
    assert other_subscription.value.status_code == 400
    with pytest.raises(HttpResponseError) as bad_filter:
        client.system_topic_event_subscriptions.begin_create_or_update(
            RG,
            TOPIC,
            "bad-filter",
            EventSubscription(
                destination=WebHookEventSubscriptionDestination(endpoint_url=webhook.url),
                filter={
                    "advancedFilters": [{"operatorType": "StringSoundsLike", "key": "subject", "values": []}]
                },
            ),
        ).result()
    assert bad_filter.value.status_code == 400 and bad_filter.value.error.code == "InvalidRequest"


def test_patch_changes_the_filter_delivery_follows_and_a_deleted_group_takes_the_subscription(
    emulator, webhook
):
    client = emulator.eventgrid()
    _topic(emulator, client)
    subscriptions = client.system_topic_event_subscriptions
    subscriptions.begin_create_or_update(
        RG, TOPIC, "exomi-tags", _subscription(webhook.url, subject_ends_with="/resourcegroups/rg-never")
    ).result()
    updated = subscriptions.begin_update(
        RG, TOPIC, "exomi-tags", {"filter": {"subjectEndsWith": "/resourcegroups/rg-wanted"}}
    ).result()
    assert updated.filter.subject_ends_with == "/resourcegroups/rg-wanted"
    assert updated.destination.endpoint_base_url == webhook.url  # the destination stays
    assert subscriptions.get_delivery_attributes(RG, TOPIC, "exomi-tags").value == []

    resources = emulator.resources()
    resources.resource_groups.create_or_update("rg-wanted", {"location": "westeurope"})
    webhook.wait_for_event(lambda e: e["subject"].endswith("/resourcegroups/rg-wanted"))

    resources.resource_groups.begin_delete(RG, polling_interval=0.1).result()
    with pytest.raises(ResourceNotFoundError):
        client.system_topics.get(RG, TOPIC)
    seen = len(webhook.events())
    resources.resource_groups.create_or_update("rg-after", {"location": "westeurope"})
    assert (
        emulator.ctl("GET", "/eventgrid/subscriptions")["subscriptions"] == []
    )  # nothing left to deliver to
    assert len(webhook.events()) == seen
