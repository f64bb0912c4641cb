"""Event Grid adapter (azure-mgmt-eventgrid): the subscription's system topic and exomi's event
subscription on it, as ``exomi bootstrap`` and ``exomi doctor`` read and write them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import ResourceNotFoundError

from shared.azure.clients import AzureClients
from shared.azure.failures import from_arm
from shared.errors import PermissionMissing

if TYPE_CHECKING:
    from azure.mgmt.eventgrid.aio import EventGridManagementClient

SUBSCRIPTIONS_TOPIC_TYPE = "Microsoft.Resources.Subscriptions"


@dataclass(frozen=True)
class SystemTopicInfo:
    id: str
    name: str
    resource_group: str
    source: str
    topic_type: str
    provisioning_state: str | None


@dataclass
class EventSubscriptionInfo:
    id: str
    name: str
    provisioning_state: str | None
    endpoint_type: str | None
    endpoint_base_url: str | None
    endpoint_url: str | None  # the full URL (getFullUrl), None when it cannot be read
    full_url_readable: bool = True  # False: the caller may read the subscription but not its URL's key
    function_resource_id: str | None = None  # an AzureFunction destination's function
    included_event_types: list[str] = field(default_factory=list)
    advanced_filters: list[dict[str, Any]] = field(default_factory=list)
    subject_begins_with: str = ""
    max_delivery_attempts: int | None = None
    event_ttl_minutes: int | None = None
    dead_letter: dict[str, Any] | None = None


def _resource_group(resource_id: str) -> str:
    parts = resource_id.split("/")
    lowered = [p.lower() for p in parts]
    return parts[lowered.index("resourcegroups") + 1] if "resourcegroups" in lowered else ""


def _topic_info(topic: Any) -> SystemTopicInfo:
    resource_id = str(topic.id or "")
    return SystemTopicInfo(
        resource_id,
        str(topic.name or ""),
        _resource_group(resource_id),
        str(topic.source or ""),
        str(topic.topic_type or ""),
        topic.provisioning_state,
    )


class EventGridGateway:
    def __init__(self, clients: AzureClients) -> None:
        self.clients = clients

    def _client(self, subscription_id: str) -> EventGridManagementClient:
        from azure.mgmt.eventgrid.aio import EventGridManagementClient

        # One client per subscription, closed with the others (AzureClients.close).
        return self.clients._arm("eventgrid", EventGridManagementClient, subscription_id)

    async def subscription_topic(self, subscription_id: str) -> SystemTopicInfo | None:
        """The subscription's ``Microsoft.Resources.Subscriptions`` system topic, whoever made it: Azure
        allows one per source, so an existing one (Defender's, another tool's) is the one to use."""
        source = f"/subscriptions/{subscription_id}".lower()
        try:
            async for topic in self._client(subscription_id).system_topics.list_by_subscription():
                if (topic.topic_type or "").lower() == SUBSCRIPTIONS_TOPIC_TYPE.lower() and (
                    topic.source or ""
                ).rstrip("/").lower() == source:
                    return _topic_info(topic)
        except Exception as exc:  # noqa: BLE001 - every SDK failure becomes an exomi error
            raise from_arm(exc, "list Event Grid system topics") from exc
        return None

    async def create_subscription_topic(
        self, subscription_id: str, resource_group: str, name: str
    ) -> SystemTopicInfo:
        from azure.mgmt.eventgrid.models import SystemTopic

        body = SystemTopic(
            location="global", source=f"/subscriptions/{subscription_id}", topic_type=SUBSCRIPTIONS_TOPIC_TYPE
        )
        try:
            poller = await self._client(subscription_id).system_topics.begin_create_or_update(
                resource_group, name, body
            )
            topic = await poller.result()
        except Exception as exc:  # noqa: BLE001
            raise from_arm(exc, "create Event Grid system topic") from exc
        return _topic_info(topic)

    async def get_event_subscription(self, topic: SystemTopicInfo, name: str) -> EventSubscriptionInfo | None:
        client = self._client(topic.id.split("/")[2]).system_topic_event_subscriptions
        try:
            found = await client.get(topic.resource_group, topic.name, name)
        except ResourceNotFoundError:
            return None
        except Exception as exc:  # noqa: BLE001
            raise from_arm(exc, "read Event Grid event subscription") from exc
        destination = found.destination
        endpoint_type = getattr(destination, "endpoint_type", None)
        full_url, readable = None, True
        if endpoint_type == "WebHook":
            try:
                full_url = (await client.get_full_url(topic.resource_group, topic.name, name)).endpoint_url
            except Exception as exc:  # noqa: BLE001
                error = from_arm(exc, "read Event Grid event subscription URL")
                if not isinstance(error, PermissionMissing):
                    raise error from exc
                readable = False  # e.g. Reader: getFullUrl is an action (the URL may carry a key)
        spec = found.filter
        retry = found.retry_policy
        dead_letter = found.dead_letter_destination or found.dead_letter_with_resource_identity
        return EventSubscriptionInfo(
            id=str(found.id or ""),
            name=str(found.name or ""),
            provisioning_state=found.provisioning_state,
            endpoint_type=endpoint_type,
            endpoint_base_url=getattr(destination, "endpoint_base_url", None),
            endpoint_url=full_url,
            full_url_readable=readable,
            function_resource_id=getattr(destination, "resource_id", None)
            if endpoint_type == "AzureFunction"
            else None,
            included_event_types=list(spec.included_event_types or []) if spec else [],
            advanced_filters=[dict(f.serialize()) for f in (spec.advanced_filters or [])] if spec else [],
            subject_begins_with=(spec.subject_begins_with or "") if spec else "",
            max_delivery_attempts=retry.max_delivery_attempts if retry else None,
            event_ttl_minutes=retry.event_time_to_live_in_minutes if retry else None,
            dead_letter=dict(dead_letter.serialize()) if dead_letter is not None else None,
        )

    async def put_event_subscription(self, topic: SystemTopicInfo, name: str, body: dict[str, Any]) -> None:
        """Creates or replaces it; Event Grid runs the validation handshake with the endpoint first."""
        from azure.mgmt.eventgrid.models import EventSubscription

        client = self._client(topic.id.split("/")[2]).system_topic_event_subscriptions
        try:
            model = EventSubscription.deserialize(body)
            poller = await client.begin_create_or_update(topic.resource_group, topic.name, name, model)
            await poller.result()
        except Exception as exc:  # noqa: BLE001
            raise from_arm(exc, "create Event Grid event subscription") from exc
