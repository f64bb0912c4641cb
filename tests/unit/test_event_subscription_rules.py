"""What bootstrap and doctor count as exomi's event subscription being right: docs/OPERATIONS.md's
filters, compared the way Event Grid treats them (value order and case do not matter)."""

from __future__ import annotations

import pytest

from shared.azure.eventgrid import EventSubscriptionInfo
from shared.bootstrap import Options, desired_event_subscription, event_subscription_differences
from shared.errors import InputError

PRINCIPAL = "6f1f8f0e-7f57-4a59-9d6b-2a4c7a1f0b11"
URL = "https://exomi.azurewebsites.net/runtime/webhooks/eventgrid?functionName=on_resource_event&code=k"


def _as_found(desired: dict, **changes) -> EventSubscriptionInfo:
    props = desired["properties"]
    found = EventSubscriptionInfo(
        id="/subscriptions/x/.../eventSubscriptions/exomi-tags",
        name="exomi-tags",
        provisioning_state="Succeeded",
        endpoint_type="WebHook",
        endpoint_base_url=URL.split("?")[0],
        endpoint_url=URL,
        included_event_types=list(reversed(props["filter"]["includedEventTypes"])),
        advanced_filters=[
            {**f, "values": [v.upper() for v in reversed(f["values"])]}
            for f in props["filter"]["advancedFilters"]
        ],
        max_delivery_attempts=30,
        event_ttl_minutes=1440,
    )
    for name, value in changes.items():
        setattr(found, name, value)
    return found


def test_the_subscription_it_would_create_is_right_whatever_the_order_and_case():
    desired = desired_event_subscription(Options(PRINCIPAL), URL)
    assert event_subscription_differences(_as_found(desired), desired) == []
    # exomi's own writes are filtered out by its dash-less object id.
    own = desired["properties"]["filter"]["advancedFilters"][-1]
    assert own == {
        "operatorType": "StringNotIn",
        "key": "data.authorization.evidence.principalId",
        "values": [PRINCIPAL.replace("-", "")],
    }


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"provisioning_state": "Failed"}, "provisioningState is Failed"),
        ({"endpoint_url": URL.replace("code=k", "code=old")}, "endpoint is"),
        ({"included_event_types": ["Microsoft.Resources.ResourceWriteSuccess"]}, "includedEventTypes"),
        ({"advanced_filters": []}, "advanced filters"),
        ({"max_delivery_attempts": 3}, "retry policy"),
    ],
)
def test_each_difference_is_named(change, problem):
    desired = desired_event_subscription(Options(PRINCIPAL), URL)
    (found,) = event_subscription_differences(_as_found(desired, **change), desired)
    assert problem in found


def test_without_the_full_url_only_the_base_is_compared():
    desired = desired_event_subscription(Options(PRINCIPAL), URL)
    found = _as_found(desired, endpoint_url=None, full_url_readable=False)
    assert event_subscription_differences(found, desired) == []


def test_an_azure_function_destination_to_on_resource_event_is_right_too():
    desired = desired_event_subscription(Options(PRINCIPAL), URL)
    function = (
        "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Web/sites/exomi/functions/on_resource_event"
    )
    found = _as_found(
        desired,
        endpoint_type="AzureFunction",
        endpoint_url=None,
        endpoint_base_url=None,
        function_resource_id=function,
    )
    assert event_subscription_differences(found, desired) == []


def test_bad_options_name_their_field():
    with pytest.raises(InputError) as bad_id:
        Options("not-a-guid")
    assert bad_id.value.field == "principal_id"
    with pytest.raises(InputError) as bad_url:
        Options(PRINCIPAL, event_endpoint="ftp://x")
    assert bad_url.value.field == "event_endpoint"
    with pytest.raises(InputError) as bad_container:
        Options(PRINCIPAL, dead_letter_container="/subscriptions/x/storageAccounts/a")
    assert bad_container.value.field == "dead_letter_container"
