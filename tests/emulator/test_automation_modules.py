"""PowerShell 5.1 modules: the fire-and-forget import, its failures, and the global modules."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from tests.support.automation import (
    ACCOUNT,
    GALLERY,
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

EXCEPTION = "Orchestrator.Shared.AsyncModuleImport.ModuleImportException"


@pytest.fixture
def client(emulator):
    create_account(emulator)
    return emulator.automation()


def test_import_starts_creating_and_succeeds_with_the_requested_version(emulator, client):
    emulator.set_timings(module_import=1.0)  # long enough to watch the intermediate states
    raw = client.module.create_or_update(
        RG,
        ACCOUNT,
        "ExchangeOnlineManagement",
        gallery_link("ExchangeOnlineManagement", "3.5.1"),
        cls=raw_response,
    )
    assert raw[0].status_code == 201
    assert_shape(load_example("automation_createOrUpdateModule.json")["body"], body_of(raw))
    assert raw[1].provisioning_state == "Creating" and raw[1].version is None and raw[1].is_global is False

    seen = []
    module = until(
        lambda: client.module.get(RG, ACCOUNT, "exchangeonlinemanagement"),
        lambda m: seen.append(m.provisioning_state) or m.provisioning_state in TERMINAL_IMPORT,
    )
    assert module.provisioning_state == "Succeeded" and module.version == "3.5.1"
    assert module.size_in_bytes > 0 and not module.error.message
    # It went through Azure's intermediate import states first.
    assert seen[-1] == "Succeeded" and "Succeeded" not in seen[:-1] and len(set(seen)) >= 3
    assert_shape(
        load_example("automation_getModule.json")["body"],
        body_of(client.module.get(RG, ACCOUNT, "ExchangeOnlineManagement", cls=raw_response)),
    )


def test_the_account_lists_the_51_global_modules(client):
    modules = {m.name: m for m in client.module.list_by_automation_account(RG, ACCOUNT)}
    assert modules["PackageManagement"].is_global and modules["PackageManagement"].version == "1.0.0.1"
    assert modules["PowerShellGet"].is_global and modules["PowerShellGet"].version == "1.0.0.1"
    assert "ExchangeOnlineManagement" not in modules
    assert client.module.get(RG, ACCOUNT, "powershellget").is_global is True

    with pytest.raises(HttpResponseError) as info:
        client.module.delete(RG, ACCOUNT, "PowerShellGet")
    assert info.value.status_code == 400 and "global module" in info.value.error.message
    with pytest.raises(HttpResponseError) as info:
        client.module.update(RG, ACCOUNT, "PowerShellGet", {"tags": {"a": "b"}})
    assert info.value.status_code == 400 and "global module" in info.value.error.message


def test_importing_a_newer_version_overrides_the_global_module_until_deleted(client):
    imported = import_modules(client, {"PackageManagement": "1.4.8.1"})["PackageManagement"]
    assert imported.provisioning_state == "Succeeded" and imported.is_global is False
    listed = [
        m for m in client.module.list_by_automation_account(RG, ACCOUNT) if m.name == "PackageManagement"
    ]
    assert [(m.version, m.is_global) for m in listed] == [("1.4.8.1", False)]

    raw = client.module.delete(RG, ACCOUNT, "PackageManagement", cls=raw_response)
    assert raw[0].status_code == 200
    restored = client.module.get(RG, ACCOUNT, "PackageManagement")
    assert restored.is_global and restored.version == "1.0.0.1"


@pytest.mark.parametrize(
    ("name", "uri", "message"),
    [
        (
            "ExchangeOnlineManagement",
            f"{GALLERY}/ExchangeOnlineManagement/9.9.9",
            "Failure processing module import runbook while getting module content. Error: The remote server "
            "returned an error: (404) Not Found.",
        ),
        (
            "NoSuchModule",
            f"{GALLERY}/NoSuchModule/1.0.0",
            "The remote server returned an error: (404) Not Found.",
        ),
        (
            "ExchangeOnline",
            f"{GALLERY}/ExchangeOnlineManagement/3.5.1",
            "Cannot import the module of name ExchangeOnline, as the module structure was invalid.",
        ),
        (
            "ExchangeOnlineManagement",
            "https://contoso.blob.core.windows.net/modules/readme.txt",
            "End of Central Directory record could not be found.",
        ),
    ],
)
def test_imports_the_gallery_cannot_serve_fail_with_azures_message(client, name, uri, message):
    created = client.module.create_or_update(RG, ACCOUNT, name, {"properties": {"contentLink": {"uri": uri}}})
    assert created.provisioning_state == "Creating"
    module = until(
        lambda: client.module.get(RG, ACCOUNT, name), lambda m: m.provisioning_state in TERMINAL_IMPORT
    )
    assert module.provisioning_state == "Failed" and module.version is None
    assert module.error.message.startswith(EXCEPTION + ": ") and message in module.error.message


def test_other_gallery_link_forms_resolve_to_the_package(client):
    client.module.create_or_update(
        RG,
        ACCOUNT,
        "ExchangeOnlineManagement",
        {
            "properties": {
                "contentLink": {
                    "uri": "https://www.powershellgallery.com/packages/ExchangeOnlineManagement/3.1.0"
                }
            }
        },
    )
    client.module.create_or_update(
        RG,
        ACCOUNT,
        "PowerShellGet",
        {
            "properties": {
                "contentLink": {
                    "uri": "https://psg-prod-eastus.azureedge.net/packages/powershellget.2.2.5.nupkg"
                }
            }
        },
    )
    client.module.create_or_update(
        RG,
        ACCOUNT,
        "PackageManagement",
        {"properties": {"contentLink": {"uri": f"{GALLERY}/PackageManagement"}}},
    )
    versions = {
        name: until(
            lambda n=name: client.module.get(RG, ACCOUNT, n),
            lambda m: m.provisioning_state in TERMINAL_IMPORT,
        ).version
        for name in ("ExchangeOnlineManagement", "PowerShellGet", "PackageManagement")
    }
    assert versions == {
        "ExchangeOnlineManagement": "3.1.0",
        "PowerShellGet": "2.2.5",
        "PackageManagement": "1.4.8.1",
    }


def test_the_control_api_makes_a_known_good_module_fail(emulator, client):
    emulator.ctl(
        "POST",
        "/automation/module-failures",
        {"module": "ExchangeOnlineManagement", "message": "An error occurred during module validation."},
    )
    failed = import_modules(client, {"ExchangeOnlineManagement": "3.5.1"})["ExchangeOnlineManagement"]
    assert failed.provisioning_state == "Failed"
    assert failed.error.message == f"{EXCEPTION}: An error occurred during module validation."

    emulator.ctl("DELETE", "/automation/module-failures")
    retried = import_modules(client, {"ExchangeOnlineManagement": "3.5.1"})["ExchangeOnlineManagement"]
    assert retried.provisioning_state == "Succeeded"


def test_update_reimports_and_keeps_tags(client):
    import_modules(client, {"ExchangeOnlineManagement": "3.4.0"})
    updated = client.module.update(
        RG,
        ACCOUNT,
        "ExchangeOnlineManagement",
        {
            "tags": {"pinned": "yes"},
            "properties": {"contentLink": {"uri": f"{GALLERY}/ExchangeOnlineManagement/3.5.1"}},
        },
    )
    assert updated.provisioning_state == "Creating" and updated.tags == {"pinned": "yes"}
    module = until(
        lambda: client.module.get(RG, ACCOUNT, "ExchangeOnlineManagement"),
        lambda m: m.provisioning_state in TERMINAL_IMPORT,
    )
    assert module.version == "3.5.1"


@pytest.mark.parametrize(
    "body",
    [
        {"properties": {}},
        {"properties": {"contentLink": {}}},
        {"properties": {"contentLink": {"uri": "not a url"}}},
    ],
)
def test_a_content_link_uri_is_required(client, body):
    with pytest.raises(HttpResponseError) as info:
        client.module.create_or_update(RG, ACCOUNT, "ExchangeOnlineManagement", body)
    assert info.value.status_code == 400 and info.value.error.code == "BadRequest"


def test_missing_modules_and_accounts(emulator, client):
    with pytest.raises(ResourceNotFoundError) as info:
        client.module.get(RG, ACCOUNT, "NoSuchModule")
    assert info.value.error.message.startswith(
        f"The Resource 'Microsoft.Automation/automationAccounts/{ACCOUNT}/modules/NoSuchModule' under resource "
        f"group '{RG}' was not found."
    )
    with pytest.raises(ResourceNotFoundError):
        client.module.delete(RG, ACCOUNT, "NoSuchModule")
    with pytest.raises(ResourceNotFoundError) as info:
        client.module.create_or_update(
            RG, "NoSuchAccount", "PowerShellGet", gallery_link("PowerShellGet", "2.2.5")
        )
    assert info.value.error.code == "ParentResourceNotFound"
    assert (
        "automationAccounts/modules" in info.value.error.message
        and "NoSuchAccount" in info.value.error.message
    )
    with pytest.raises(HttpResponseError) as info:
        client.module.create_or_update(RG, ACCOUNT, "Power Shell!", gallery_link("PowerShellGet", "2.2.5"))
    assert info.value.status_code == 400 and "Invalid module name" in info.value.error.message
