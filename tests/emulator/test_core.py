"""The emulator's foundation: start-up, tokens, ARM authentication and authorization, resource groups,
fault injection and the request log, all through the real SDK clients."""

from __future__ import annotations

import time

import httpx
import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.identity import CredentialUnavailableError, ManagedIdentityCredential

from emulator.process import EmulatorProcess


def test_ready_line_has_every_documented_field(tmp_path):
    with EmulatorProcess(state_dir=tmp_path) as info:
        for field in (
            "arm_endpoint",
            "graph_endpoint",
            "identity_endpoint",
            "identity_header",
            "ca_bundle",
            "tenant_id",
            "subscription_id",
            "control_endpoint",
            "admin_client_id",
        ):
            assert getattr(info, field), field
        assert info.arm_endpoint.startswith("https://127.0.0.1:")
        # The CA really signs the server certificate.
        assert httpx.get(info.control_endpoint + "/info", verify=info.ca_bundle).status_code == 200


def test_app_and_admin_get_tokens_and_unknown_identities_are_refused(emulator):
    app_token = ManagedIdentityCredential().get_token("https://management.azure.com/.default")
    admin_token = emulator.admin_credential().get_token("https://graph.microsoft.com/.default")
    assert app_token.token != admin_token.token
    assert app_token.expires_on > time.time() + 600
    with pytest.raises(CredentialUnavailableError, match="No User Assigned or Delegated Managed Identity"):
        ManagedIdentityCredential(client_id="11111111-2222-3333-4444-555555555555").get_token(
            "https://management.azure.com/.default"
        )


def test_identity_endpoint_requires_the_identity_header(emulator):
    response = httpx.get(
        emulator.identity_endpoint,
        params={"api-version": "2019-08-01", "resource": "https://management.azure.com"},
    )
    assert response.status_code == 401


def test_arm_rejects_missing_forged_and_wrong_audience_tokens(emulator):
    url = f"{emulator.arm_endpoint}/subscriptions/{emulator.subscription_id}/resourcegroups?api-version=2025-04-01"
    with emulator.http() as http:
        missing = http.get(url)
        assert missing.status_code == 401 and missing.json()["error"]["code"] == "AuthenticationFailed"
        forged = http.get(url, headers={"Authorization": "Bearer a.b.c"})
        assert forged.status_code == 401 and forged.json()["error"]["code"] == "InvalidAuthenticationToken"
        graph_token = emulator.token("https://graph.microsoft.com", client_id=emulator.admin_client_id)
        wrong = http.get(url, headers={"Authorization": f"Bearer {graph_token}"})
        assert (
            wrong.status_code == 401 and wrong.json()["error"]["code"] == "InvalidAuthenticationTokenAudience"
        )


def test_resource_group_lifecycle_through_the_sdk(emulator):
    client = emulator.resources()
    created = client.resource_groups.create_or_update(
        "ContosoRG", {"location": "West US", "tags": {"env": "test"}}
    )
    assert created.name == "ContosoRG" and created.location == "westus" and created.tags == {"env": "test"}
    # Ids are case-insensitive.
    assert client.resource_groups.get("contosorg").id.endswith("/resourceGroups/ContosoRG")
    assert client.resource_groups.check_existence("CONTOSORG") is True
    assert [g.name for g in client.resource_groups.list()] == ["ContosoRG"]
    client.resource_groups.begin_delete("ContosoRG").result()
    with pytest.raises(ResourceNotFoundError) as info:
        client.resource_groups.get("ContosoRG")
    assert info.value.error.code == "ResourceGroupNotFound"


def test_unknown_subscription_and_missing_api_version(emulator):
    client = emulator.resources(subscription_id="00000000-0000-0000-0000-000000000000")
    with pytest.raises(ResourceNotFoundError) as info:
        client.resource_groups.get("rg")
    assert info.value.error.code == "SubscriptionNotFound"
    token = emulator.token(client_id=emulator.admin_client_id)
    with emulator.http() as http:
        response = http.get(
            f"{emulator.arm_endpoint}/subscriptions/{emulator.subscription_id}/resourcegroups/rg",
            headers={"Authorization": f"Bearer {token}"},
        )
    assert response.status_code == 400 and response.json()["error"]["code"] == "MissingApiVersionParameter"


def test_calls_without_a_role_assignment_get_authorization_failed(emulator):
    # exomi's identity starts with Reader: it may read but not create a resource group.
    client = emulator.resources(credential=emulator.app_credential())
    with pytest.raises(HttpResponseError) as info:
        client.resource_groups.create_or_update("rg", {"location": "westeurope"})
    assert info.value.status_code == 403 and info.value.error.code == "AuthorizationFailed"
    assert emulator.app_principal_id in info.value.error.message
    emulator.ctl("DELETE", "/rbac", {"principal_id": emulator.app_principal_id})
    with pytest.raises(HttpResponseError) as info:
        list(client.resource_groups.list())
    assert info.value.status_code == 403


def test_injected_throttling_is_retried_by_the_sdk_and_logged(emulator):
    client = emulator.resources()
    client.resource_groups.create_or_update("rg", {"location": "westeurope"})
    position = emulator.log_position()
    emulator.add_fault(path="/resourcegroups/rg$", method="GET", status=429, retry_after=1, count=1)
    assert client.resource_groups.get("rg").name == "rg"
    entries = [e for e in emulator.log(position) if e["service"] == "arm"]
    assert [e["status"] for e in entries] == [429, 200]
    assert entries[0]["fault"] == "status 429"
    assert entries[1]["caller_id"] == emulator.admin_principal_id


def test_persistent_server_errors_surface_after_retries(emulator):
    emulator.add_fault(path="/resourcegroups$", status=503)
    client = emulator.resources()
    client._config.retry_policy.backoff_factor = 0.01
    with pytest.raises(HttpResponseError) as info:
        list(client.resource_groups.list())
    assert info.value.status_code == 503


def test_dropped_connections_and_latency(emulator):
    client = emulator.resources()
    client.resource_groups.create_or_update("rg", {"location": "westeurope"})
    emulator.add_fault(path="/resourcegroups/rg$", kind="drop", count=1)
    assert client.resource_groups.get("rg").name == "rg"  # azure-core retries a dropped connection
    emulator.add_fault(path="/resourcegroups/rg$", kind="latency", latency_ms=300, count=1)
    started = time.monotonic()
    client.resource_groups.get("rg")
    assert time.monotonic() - started >= 0.3


def test_reset_can_start_without_the_exchange_service_principal(emulator):
    info = emulator.ctl("POST", "/reset", {"with_exchange_sp": False, "domain": "fabrikam.onmicrosoft.com"})
    assert info["exchange_service_principal_id"] is None
    assert info["organization"] == "fabrikam.onmicrosoft.com"
    bad = emulator.control.post(f"{emulator.control_endpoint}/reset", json={"bogus": 1})
    assert bad.status_code == 400 and "bogus" in bad.json()["error"]
