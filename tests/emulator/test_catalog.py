"""What the Azure CLI needed besides the SDKs' calls, on the wire: cloud metadata without a token, the
subscription list for any caller, subscription ids checked, the subscription catalog (locations,
providers, resources, tag names) and Graph's ``$count``."""

from __future__ import annotations

import httpx

from tests.support.emulator import Emulator


def _arm(emulator: Emulator, path: str, token: str | None = None, **params: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token or emulator.token(client_id=emulator.admin_client_id)}"}
    with emulator.http() as http:
        return http.get(f"{emulator.arm_endpoint}{path}", params=params, headers=headers)


def test_cloud_metadata_is_served_without_a_token(emulator: Emulator) -> None:
    with emulator.http() as http:
        single = http.get(f"{emulator.arm_endpoint}/metadata/endpoints", params={"api-version": "2022-09-01"})
        listed = http.get(f"{emulator.arm_endpoint}/metadata/endpoints", params={"api-version": "2019-05-01"})
        missing = http.get(f"{emulator.arm_endpoint}/metadata/endpoints")
    assert single.status_code == 200 and single.headers["Content-Type"].startswith("application/json")
    body = single.json()
    assert body["resourceManager"] == emulator.arm_endpoint + "/"
    assert body["authentication"]["audiences"][0] == "https://management.core.windows.net/"
    assert body["microsoftGraphResourceId"] == "https://graph.microsoft.com/"
    assert listed.json() == [body]
    assert missing.status_code == 400 and missing.json()["error"]["code"] == "MissingApiVersionParameter"


def test_subscriptions_are_listed_for_a_caller_without_a_role(emulator: Emulator) -> None:
    nobody = emulator.seed_principal("nobody", visible=True)
    response = _arm(
        emulator, "/subscriptions", emulator.token(client_id=nobody["appId"]), **{"api-version": "2022-12-01"}
    )
    assert response.status_code == 200
    assert response.json() == {"value": [], "nextLink": None}


def test_a_malformed_subscription_id_is_400(emulator: Emulator) -> None:
    response = _arm(emulator, "/subscriptions/not-a-guid/resourcegroups", **{"api-version": "2021-04-01"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "InvalidSubscriptionId"
    assert response.json()["error"]["message"] == (
        "The provided subscription identifier 'not-a-guid' is malformed or invalid."
    )


def test_the_subscription_catalog(emulator: Emulator) -> None:
    sub = f"/subscriptions/{emulator.subscription_id}"
    locations = _arm(emulator, f"{sub}/locations", **{"api-version": "2022-12-01"}).json()["value"]
    west = next(loc for loc in locations if loc["name"] == "westus")
    assert (west["displayName"], west["type"], west["id"]) == ("West US", "Region", f"{sub}/locations/westus")

    provider = _arm(emulator, f"{sub}/providers/microsoft.automation", **{"api-version": "2021-04-01"}).json()
    assert (provider["namespace"], provider["registrationState"]) == ("Microsoft.Automation", "Registered")
    accounts = next(t for t in provider["resourceTypes"] if t["resourceType"] == "automationAccounts")
    assert accounts["apiVersions"][0] == "2024-10-23"
    unknown = _arm(emulator, f"{sub}/providers/Microsoft.Nope", **{"api-version": "2021-04-01"})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "InvalidResourceNamespace"

    bad_filter = _arm(emulator, f"{sub}/resources", **{"api-version": "2021-04-01", "$filter": "plan eq 'x'"})
    assert bad_filter.status_code == 400
    tag_names = _arm(emulator, f"{sub}/tagNames", **{"api-version": "2021-04-01"})
    assert tag_names.json() == {"value": [], "nextLink": None}


def test_service_principal_count_is_an_advanced_query(emulator: Emulator) -> None:
    counted = emulator.graph_http(
        "GET", "/servicePrincipals/$count", headers={"ConsistencyLevel": "eventual"}
    )
    assert counted.status_code == 200
    assert counted.headers["Content-Type"] == "text/plain; charset=utf-8"
    listed = emulator.graph_http("GET", "/servicePrincipals", params={"$select": "id"}).json()["value"]
    assert int(counted.text) == len(listed)
    filtered = emulator.graph_http(
        "GET",
        "/servicePrincipals/$count",
        params={"$filter": "displayName eq 'Office 365 Exchange Online'"},
        headers={"ConsistencyLevel": "eventual"},
    )
    assert filtered.text == "1"
    refused = emulator.graph_http("GET", "/servicePrincipals/$count")
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "Request_BadRequest"
    assert refused.json()["error"]["message"] == "$count is not currently supported."


def test_resource_pages_keep_the_filter(emulator: Emulator) -> None:
    resources = emulator.resources()
    resources.resource_groups.create_or_update("paged", {"location": "westus"})
    msi = emulator.msi()
    for index in range(101):
        tags = {"page": "yes"} if index % 2 == 0 else {}
        msi.user_assigned_identities.create_or_update(
            "paged", f"mi{index:03}", {"location": "westus", "tags": tags}
        )
    sub = f"/subscriptions/{emulator.subscription_id}"
    first = _arm(
        emulator, f"{sub}/resources", **{"api-version": "2021-04-01", "$filter": "tagName eq 'page'"}
    ).json()
    assert len(first["value"]) == 51 and first["nextLink"] is None
    everything = _arm(
        emulator, f"{sub}/resourceGroups/paged/resources", **{"api-version": "2021-04-01"}
    ).json()
    assert len(everything["value"]) == 100 and "$skiptoken=100" in everything["nextLink"]
    listed = [r.name for r in resources.resources.list(filter="resourceGroup eq 'paged'")]
    assert len(listed) == 101
