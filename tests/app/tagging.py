"""Helpers for the tag-driven tests: the host's Event Grid subscription, tag writes as the admin, and
reading exomi's requests back through the ``exomi`` command."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from devhost.process import DevHostProcess
from tests.support import polling
from tests.support.emulator import Emulator
from tests.support.exomi import ExomiRunner

T = TypeVar("T")
FUNCTION = "on_resource_event"
SUBSCRIPTION = "exomi-events"
# Short waits where production waits minutes: a tag request starts a second after the last tag write,
# reconciliation resumes overdue requests after a second.
FAST_TAGS = {
    "EXOMI_TAG_SETTLE_SECONDS": "1",
    "EXOMI_RESUME_GRACE_SECONDS": "1",
    "EXOMI_QUEUED_GRACE_SECONDS": "1",
}


@dataclass
class TagRunner(ExomiRunner):
    """The exomi command and the host (which takes its settings from here) with FAST_TAGS and ``extra``."""

    extra: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        return {**super().env(), **FAST_TAGS, **self.extra}


def webhook_url(host: DevHostProcess) -> str:
    return f"{host.url}/runtime/webhooks/eventgrid?functionName={FUNCTION}"


TOPIC_GROUP, TOPIC = "rg-exomi-events", "exomi-arm-topic"


def subscribe(emulator: Emulator, host: DevHostProcess, *, schema: str = "EventGridSchema") -> None:
    """The subscription docs/OPERATIONS.md describes (its event types), made as in Azure: the subscription's
    system topic and an event subscription on it through ARM; Event Grid validates the host's endpoint."""
    emulator.resources().resource_groups.create_or_update(TOPIC_GROUP, {"location": "westeurope"})
    client = emulator.eventgrid()
    client.system_topics.begin_create_or_update(
        TOPIC_GROUP,
        TOPIC,
        {
            "location": "global",
            "properties": {
                "source": f"/subscriptions/{emulator.subscription_id}",
                "topicType": "Microsoft.Resources.Subscriptions",
            },
        },
    ).result()
    client.system_topic_event_subscriptions.begin_create_or_update(
        TOPIC_GROUP,
        TOPIC,
        SUBSCRIPTION,
        {
            "properties": {
                "destination": {"endpointType": "WebHook", "properties": {"endpointUrl": webhook_url(host)}},
                "filter": {
                    "includedEventTypes": [
                        "Microsoft.Resources.ResourceWriteSuccess",
                        "Microsoft.Resources.ResourceDeleteSuccess",
                    ]
                },
                "eventDeliverySchema": schema,
            }
        },
    ).result()


def unsubscribe(emulator: Emulator) -> None:
    """Deletes the event subscription (from then on, events are lost)."""
    emulator.eventgrid().system_topic_event_subscriptions.begin_delete(
        TOPIC_GROUP, TOPIC, SUBSCRIPTION
    ).result()


def eventually(probe: Callable[[], T], *, timeout: float = 60.0, what: str = "condition") -> T:
    """``polling.eventually`` with the app's pace: a run through the host takes seconds, not ticks."""
    return polling.eventually(probe, timeout=timeout, what=what, interval=0.2)


def put_tags(emulator: Emulator, resource_id: str, tags: dict[str, str], credential: Any = None) -> None:
    """Replace a resource's tags through the Tags API, as `az tag create` does (as the admin, or as
    whoever ``credential`` is)."""
    emulator.resources(credential=credential).tags.begin_create_or_update_at_scope(
        resource_id, {"properties": {"tags": tags}}
    ).result()


def merge_tags(emulator: Emulator, resource_id: str, tags: dict[str, str], credential: Any = None) -> None:
    """`az tag update --operation Merge`."""
    emulator.resources(credential=credential).tags.begin_update_at_scope(
        resource_id, {"operation": "Merge", "properties": {"tags": tags}}
    ).result()


def delete_tags(emulator: Emulator, resource_id: str, *names: str) -> None:
    """`az tag update --operation Delete` for these tag names."""
    emulator.resources().tags.begin_update_at_scope(
        resource_id, {"operation": "Delete", "properties": {"tags": dict.fromkeys(names, "")}}
    ).result()


def settled(emulator: Emulator, since: int = 0) -> list[dict[str, Any]]:
    """Waits until Event Grid has nothing left to deliver (every event answered or dead-lettered);
    returns the delivery attempts after the first ``since``."""

    def idle() -> list[dict[str, Any]] | None:
        subscriptions = emulator.ctl("GET", "/eventgrid/subscriptions")["subscriptions"]
        if any(s["pending"] or s["in_flight"] for s in subscriptions):
            return None
        return [None, *emulator.event_deliveries()[since:]]  # truthy even when empty

    return eventually(idle, what="Event Grid to deliver everything")[1:]


def delivered(emulator: Emulator, subject_contains: str, since: int = 0) -> list[dict[str, Any]]:
    """The deliveries (after ``since``) of events whose subject contains the text, once all are answered."""
    return [
        d
        for d in settled(emulator, since)
        if any(subject_contains.lower() in s.lower() for s in d["subjects"])
    ]


def requests(exomi: ExomiRunner, **filters: str) -> list[dict[str, Any]]:
    args = [item for name, value in filters.items() for item in (f"--{name.replace('_', '-')}", value)]
    code, output, stderr = exomi.run("list", *args)
    assert code == 0, stderr
    return output


def wait_for_requests(
    exomi: ExomiRunner, count: int, *, timeout: float = 60, **filters: str
) -> list[dict[str, Any]]:
    return eventually(
        lambda: (found := requests(exomi, **filters)) and len(found) >= count and found,
        timeout=timeout,
        what=f"{count} request(s) matching {filters}",
    )


def wait_until_ended(exomi: ExomiRunner, request_id: str, timeout: float = 90) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        code, output, _ = exomi.run("status", request_id)
        return (
            output
            if code in (0, 1)
            and output
            and output["status"] not in ("awaiting_approval", "queued", "running", "waiting")
            else None
        )

    return eventually(ended, timeout=timeout, what=f"request {request_id} to end")


def post_events(host: DevHostProcess, events: Any) -> httpx.Response:
    """A delivery straight to the webhook, as Event Grid would send it."""
    return httpx.post(
        webhook_url(host),
        json=events,
        headers={"aeg-event-type": "Notification", "aeg-subscription-name": SUBSCRIPTION.upper()},
        timeout=60,
    )
