"""Runtime environments (PowerShell 7.x and friends) and their packages."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from tests.support.automation import (
    ACCOUNT,
    RG,
    TERMINAL_IMPORT,
    body_of,
    create_account,
    gallery_link,
    import_modules,
    raw_response,
    until,
)
from tests.support.shapes import assert_shape, load_example

PS74 = {
    "location": "westus",
    "properties": {
        "runtime": {"language": "PowerShell", "version": "7.4"},
        "defaultPackages": {"Az": "12.3.0"},
    },
}


@pytest.fixture
def client(emulator):
    create_account(emulator)
    return emulator.automation()


def test_every_account_has_the_system_generated_environments(client):
    environments = {e.name: e for e in client.runtime_environments.list_by_automation_account(RG, ACCOUNT)}
    assert {"PowerShell-5.1", "PowerShell-7.1", "PowerShell-7.2", "Python-3.8", "Python-3.10"} <= set(
        environments
    )
    assert environments["PowerShell-7.2"].properties.runtime.version == "7.2"
    assert client.runtime_environments.get(RG, ACCOUNT, "powershell-5.1").name == "PowerShell-5.1"
    with pytest.raises(HttpResponseError) as info:
        client.runtime_environments.delete(RG, ACCOUNT, "PowerShell-7.2")
    assert info.value.status_code == 400 and "system-generated" in info.value.error.message


def test_create_update_list_and_delete_a_74_environment(client):
    raw = client.runtime_environments.create(RG, ACCOUNT, "PowerShell-7.4", PS74, cls=raw_response)
    assert raw[0].status_code == 201
    assert_shape(load_example("automation_createRuntimeEnvironment.json")["body"], body_of(raw))
    assert raw[1].properties.runtime.language == "PowerShell" and raw[1].properties.default_packages == {
        "Az": "12.3.0"
    }

    again = client.runtime_environments.create(RG, ACCOUNT, "PowerShell-7.4", PS74, cls=raw_response)
    assert again[0].status_code == 200
    updated = client.runtime_environments.update(
        RG, ACCOUNT, "PowerShell-7.4", {"properties": {"defaultPackages": {"Az": "12.4.0"}}}
    )
    assert updated.properties.default_packages == {"Az": "12.4.0"}
    assert "PowerShell-7.4" in {
        e.name for e in client.runtime_environments.list_by_automation_account(RG, ACCOUNT)
    }

    python = {"location": "westus", "properties": {"runtime": {"language": "Python", "version": "3.10"}}}
    with pytest.raises(HttpResponseError) as info:
        client.runtime_environments.create(RG, ACCOUNT, "PowerShell-7.4", python)
    assert info.value.status_code == 400 and "cannot be changed" in info.value.error.message
    with pytest.raises(HttpResponseError) as info:
        client.runtime_environments.update(
            RG, ACCOUNT, "PowerShell-7.2", {"properties": {"defaultPackages": {}}}
        )
    assert info.value.status_code == 400 and "system-generated" in info.value.error.message

    client.runtime_environments.delete(RG, ACCOUNT, "PowerShell-7.4")
    with pytest.raises(ResourceNotFoundError):
        client.runtime_environments.get(RG, ACCOUNT, "PowerShell-7.4")


@pytest.mark.parametrize(
    "runtime",
    [{"language": "PowerShell", "version": "6.0"}, {"language": "Ruby", "version": "3.3"}, None],
)
def test_unsupported_runtimes_are_rejected(client, runtime):
    body = {"location": "westus", "properties": {"runtime": runtime} if runtime else {}}
    with pytest.raises(HttpResponseError) as info:
        client.runtime_environments.create(RG, ACCOUNT, "Custom", body)
    assert info.value.status_code == 400


def test_runtime_environments_need_api_version_2024_10_23(emulator, client):
    url = (
        f"{emulator.arm_endpoint}/subscriptions/{emulator.subscription_id}/resourceGroups/{RG}/providers/"
        f"Microsoft.Automation/automationAccounts/{ACCOUNT}/runtimeEnvironments?api-version=2023-11-01"
    )
    token = emulator.token(client_id=emulator.admin_client_id)
    with emulator.http() as http:
        response = http.get(url, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "NoRegisteredProviderFound"


def test_packages_import_like_modules(emulator, client):
    client.runtime_environments.create(RG, ACCOUNT, "PowerShell-7.4", PS74)
    raw = client.package.create_or_update(
        RG,
        ACCOUNT,
        "PowerShell-7.4",
        "ExchangeOnlineManagement",
        gallery_link("ExchangeOnlineManagement", "3.5.1"),
        cls=raw_response,
    )
    assert raw[0].status_code == 201 and raw[1].provisioning_state == "Creating"
    package = until(
        lambda: client.package.get(
            RG, ACCOUNT, "PowerShell-7.4", "ExchangeOnlineManagement", cls=raw_response
        ),
        lambda r: r[1].provisioning_state in TERMINAL_IMPORT,
    )
    assert_shape(load_example("automation_getPackage.json")["body"], body_of(package))
    assert (
        package[1].provisioning_state == "Succeeded"
        and package[1].version == "3.5.1"
        and package[1].default is False
    )

    client.package.create_or_update(
        RG, ACCOUNT, "PowerShell-7.4", "Az.Accounts", gallery_link("Az.Accounts", "1.0.0")
    )
    failed = until(
        lambda: client.package.get(RG, ACCOUNT, "PowerShell-7.4", "Az.Accounts"),
        lambda p: p.provisioning_state in TERMINAL_IMPORT,
    )
    assert failed.provisioning_state == "Failed" and "(404) Not Found" in failed.error.message
    names = {p.name for p in client.package.list_by_runtime_environment(RG, ACCOUNT, "PowerShell-7.4")}
    assert names == {"ExchangeOnlineManagement", "Az.Accounts"}

    client.package.delete(RG, ACCOUNT, "PowerShell-7.4", "Az.Accounts")
    with pytest.raises(ResourceNotFoundError):
        client.package.get(RG, ACCOUNT, "PowerShell-7.4", "Az.Accounts")
    # Packages belong to their environment.
    assert not list(client.package.list_by_runtime_environment(RG, ACCOUNT, "PowerShell-7.2"))


def test_the_51_environments_packages_are_the_modules(client):
    import_modules(client, {"PowerShellGet": "2.2.5"})
    packages = {p.name: p for p in client.package.list_by_runtime_environment(RG, ACCOUNT, "PowerShell-5.1")}
    assert packages["PowerShellGet"].version == "2.2.5" and packages["PowerShellGet"].default is False
    assert (
        packages["PackageManagement"].version == "1.0.0.1" and packages["PackageManagement"].default is True
    )

    client.package.create_or_update(
        RG,
        ACCOUNT,
        "PowerShell-5.1",
        "ExchangeOnlineManagement",
        gallery_link("ExchangeOnlineManagement", "3.5.1"),
    )
    module = until(
        lambda: client.module.get(RG, ACCOUNT, "ExchangeOnlineManagement"),
        lambda m: m.provisioning_state in TERMINAL_IMPORT,
    )
    assert module.provisioning_state == "Succeeded" and module.version == "3.5.1"


def test_missing_environments_and_packages(client):
    with pytest.raises(ResourceNotFoundError) as info:
        client.runtime_environments.get(RG, ACCOUNT, "PowerShell-9.9")
    assert info.value.error.code == "ResourceNotFound"
    with pytest.raises(ResourceNotFoundError) as info:
        client.package.get(RG, ACCOUNT, "PowerShell-9.9", "ExchangeOnlineManagement")
    assert info.value.error.code == "ParentResourceNotFound"
    with pytest.raises(ResourceNotFoundError) as info:
        client.package.get(RG, ACCOUNT, "PowerShell-7.2", "ExchangeOnlineManagement")
    assert info.value.error.code == "ResourceNotFound"
    with pytest.raises(ResourceNotFoundError) as info:
        list(client.runtime_environments.list_by_automation_account(RG, "NoSuchAccount"))
    assert info.value.error.code == "ParentResourceNotFound"
    with pytest.raises(HttpResponseError) as info:
        client.package.create_or_update(
            RG, ACCOUNT, "PowerShell-7.2", "ExchangeOnlineManagement", {"properties": {}}
        )
    assert info.value.status_code == 400


def test_package_update_reimports_and_default_packages_are_read_only(client):
    client.runtime_environments.create(RG, ACCOUNT, "PowerShell-7.4", PS74)
    client.package.create_or_update(
        RG,
        ACCOUNT,
        "PowerShell-7.4",
        "ExchangeOnlineManagement",
        gallery_link("ExchangeOnlineManagement", "3.4.0"),
    )
    updated = client.package.update(
        RG,
        ACCOUNT,
        "PowerShell-7.4",
        "ExchangeOnlineManagement",
        {
            "properties": {
                "contentLink": {
                    "uri": "https://www.powershellgallery.com/api/v2/package/ExchangeOnlineManagement/3.5.1"
                }
            }
        },
    )
    assert updated.provisioning_state == "Creating"
    package = until(
        lambda: client.package.get(RG, ACCOUNT, "PowerShell-7.4", "ExchangeOnlineManagement"),
        lambda p: p.provisioning_state in TERMINAL_IMPORT,
    )
    assert package.version == "3.5.1"
    with pytest.raises(HttpResponseError) as info:
        client.package.delete(RG, ACCOUNT, "PowerShell-5.1", "PackageManagement")
    assert info.value.status_code == 400 and "default package" in info.value.error.message
