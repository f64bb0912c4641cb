"""Runbooks: create, draft content and publish (long-running operations), content, errors."""

from __future__ import annotations

import uuid

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from tests.support.automation import ACCOUNT, RG, SEED_RUNBOOK, body_of, create_account, raw_response, until
from tests.support.shapes import assert_shape, load_example

POWERSHELL = {"location": "westus", "properties": {"runbookType": "PowerShell", "description": "verify EXO"}}


@pytest.fixture
def client(emulator):
    create_account(emulator)
    return emulator.automation()


@pytest.fixture
def quick_polls(emulator):
    """Retry-After: 0 makes the SDK poll at its own (test) interval instead of waiting a second."""
    emulator.set_timings(retry_after=0)


def _runbook_url(emulator, name: str = "Verify") -> str:
    return (
        f"{emulator.arm_endpoint}/subscriptions/{emulator.subscription_id}/resourceGroups/{RG}/providers/"
        f"Microsoft.Automation/automationAccounts/{ACCOUNT}/runbooks/{name}"
    )


def test_create_matches_the_spec_example_and_starts_as_a_new_draft(client):
    raw = client.runbook.create_or_update(RG, ACCOUNT, "Verify", POWERSHELL, cls=raw_response)
    assert raw[0].status_code == 201
    assert_shape(load_example("automation_createOrUpdateRunbook.json")["body"], body_of(raw))
    runbook = raw[1]
    assert runbook.state == "New" and runbook.runbook_type == "PowerShell"
    assert runbook.runtime_environment == "PowerShell-5.1" and runbook.draft.in_edit is True
    assert runbook.description == "verify EXO" and runbook.job_count == 0

    again = client.runbook.create_or_update(
        RG, ACCOUNT, "verify", {"properties": {"runbookType": "PowerShell"}}, cls=raw_response
    )
    assert again[0].status_code == 200 and again[1].name == "Verify"


def test_draft_content_and_publish_through_the_sdk_pollers(client, quick_polls):
    client.runbook.create_or_update(RG, ACCOUNT, "Verify", POWERSHELL)
    with pytest.raises(ResourceNotFoundError):
        client.runbook.get_content(RG, ACCOUNT, "Verify")  # never published

    client.runbook_draft.begin_replace_content(RG, ACCOUNT, "Verify", SEED_RUNBOOK).result()
    assert client.runbook_draft.get_content(RG, ACCOUNT, "Verify") == SEED_RUNBOOK
    assert client.runbook.get(RG, ACCOUNT, "Verify").state == "New"
    draft = client.runbook_draft.get(RG, ACCOUNT, "Verify", cls=raw_response)
    assert_shape(load_example("automation_getRunbookDraft.json")["body"], body_of(draft))
    assert draft[1].in_edit is True

    client.runbook.begin_publish(RG, ACCOUNT, "Verify").result()
    published = client.runbook.get(RG, ACCOUNT, "Verify")
    assert published.state == "Published" and published.draft.in_edit is False
    assert client.runbook.get_content(RG, ACCOUNT, "Verify") == SEED_RUNBOOK

    # Editing again leaves the published version alone until the next publish.
    client.runbook_draft.begin_replace_content(RG, ACCOUNT, "Verify", "Write-Output 'v2'").result()
    assert client.runbook.get(RG, ACCOUNT, "Verify").state == "Edit"
    assert client.runbook.get_content(RG, ACCOUNT, "Verify") == SEED_RUNBOOK
    result = client.runbook_draft.undo_edit(RG, ACCOUNT, "Verify")
    assert result.status_code == "OK"
    assert client.runbook_draft.get_content(RG, ACCOUNT, "Verify") == SEED_RUNBOOK
    assert client.runbook.get(RG, ACCOUNT, "Verify").state == "Published"


def test_the_long_running_operations_on_the_wire(emulator, client):
    emulator.set_timings(lro=0.5)  # long enough to see the operation still running
    client.runbook.create_or_update(RG, ACCOUNT, "Verify", POWERSHELL)
    token = emulator.token(client_id=emulator.admin_client_id)
    headers = {"Authorization": f"Bearer {token}"}
    with emulator.http() as http:
        put = http.put(
            f"{_runbook_url(emulator)}/draft/content?api-version=2024-10-23",
            content=SEED_RUNBOOK.encode(),
            headers={**headers, "Content-Type": "text/plain"},
        )
        assert put.status_code == 202 and put.headers["Retry-After"] == "1"
        location = put.headers["Location"]
        assert location.startswith(f"{_runbook_url(emulator)}/draft/content/operationResults/")
        assert location.endswith("?api-version=2024-10-23")
        first = http.get(location, headers=headers)
        assert first.status_code == 202 and first.headers["Location"] == location
        done = until(lambda: http.get(location, headers=headers), lambda r: r.status_code != 202)
        assert done.status_code == 200 and done.json() == {}

        publish = http.post(f"{_runbook_url(emulator)}/publish?api-version=2024-10-23", headers=headers)
        assert publish.status_code == 202
        example = load_example("automation_publishRunbook.json")["headers"]["Location"]
        assert (
            publish.headers["Location"].split("/runbooks/")[1].split("/")[1:3]
            == example.split("/runbooks/")[1].split("/")[1:3]
        )
        until(lambda: http.get(publish.headers["Location"], headers=headers), lambda r: r.status_code == 200)
        unknown = http.get(
            f"{_runbook_url(emulator)}/publish/operationResults/{uuid.uuid4()}?api-version=2024-10-23",
            headers=headers,
        )
        assert unknown.status_code == 404

    # The SDK's poller honours Retry-After: one 202 answer, then the 200.
    position = emulator.log_position()
    client.runbook_draft.begin_replace_content(RG, ACCOUNT, "Verify", "Write-Output 'v2'").result()
    polls = [e["status"] for e in emulator.log(position) if "/operationResults/" in e["path"]]
    assert polls[0] == 202 and polls[-1] == 200


def test_publishing_without_draft_content_is_refused(client):
    client.runbook.create_or_update(RG, ACCOUNT, "Verify", POWERSHELL)
    with pytest.raises(HttpResponseError) as info:
        client.runbook.begin_publish(RG, ACCOUNT, "Verify")
    assert info.value.status_code == 400 and "no draft content to publish" in info.value.error.message
    with pytest.raises(ResourceNotFoundError):
        client.runbook_draft.get_content(RG, ACCOUNT, "Verify")
    with pytest.raises(HttpResponseError) as info:
        client.runbook_draft.undo_edit(RG, ACCOUNT, "Verify")
    assert info.value.status_code == 400 and "never been published" in info.value.error.message


def test_powershell_7_runbooks_need_their_runtime_environment(client):
    with pytest.raises(HttpResponseError) as info:
        client.runbook.create_or_update(
            RG,
            ACCOUNT,
            "Verify",
            {"properties": {"runbookType": "PowerShell", "runtimeEnvironment": "PowerShell-7.4"}},
        )
    assert info.value.status_code == 400 and "PowerShell-7.4" in info.value.error.message
    client.runtime_environments.create(
        RG,
        ACCOUNT,
        "PowerShell-7.4",
        {"location": "westus", "properties": {"runtime": {"language": "PowerShell", "version": "7.4"}}},
    )
    created = client.runbook.create_or_update(
        RG,
        ACCOUNT,
        "Verify",
        {"properties": {"runbookType": "PowerShell", "runtimeEnvironment": "PowerShell-7.4"}},
    )
    assert created.runtime_environment == "PowerShell-7.4"
    legacy = client.runbook.create_or_update(
        RG, ACCOUNT, "Legacy72", {"properties": {"runbookType": "PowerShell72"}}
    )
    assert legacy.runtime_environment == "PowerShell-7.2"


@pytest.mark.parametrize(
    ("name", "properties", "message"),
    [
        ("Verify", {}, "'properties.runbookType' property is required"),
        ("Verify", {"runbookType": "Bash"}, "Invalid runbook type 'Bash'"),
        ("Verify", {"runbookType": "PowerShell72", "runtimeEnvironment": "PowerShell-5.1"}, "cannot run on"),
        (
            "Verify",
            {"runbookType": "PowerShellWorkflow", "runtimeEnvironment": "PowerShell-7.2"},
            "cannot run on",
        ),
        ("Verify", {"runbookType": "Python3", "runtimeEnvironment": "PowerShell-5.1"}, "cannot run on"),
        ("1Verify", {"runbookType": "PowerShell"}, "Invalid runbook name"),
        (
            "Verify",
            {"runbookType": "PowerShell", "publishContentLink": {"uri": "https://example.com/verify.ps1"}},
            "Unable to download the runbook content",
        ),
    ],
)
def test_invalid_runbooks_are_rejected(client, name, properties, message):
    with pytest.raises(HttpResponseError) as info:
        client.runbook.create_or_update(RG, ACCOUNT, name, {"properties": properties})
    assert info.value.status_code == 400 and message in info.value.error.message


def test_update_list_and_delete(client):
    client.runbook.create_or_update(RG, ACCOUNT, "Verify", POWERSHELL)
    client.runbook.create_or_update(RG, ACCOUNT, "Other", POWERSHELL)
    updated = client.runbook.update(
        RG, ACCOUNT, "Verify", {"properties": {"logVerbose": True}, "tags": {"a": "b"}}
    )
    assert updated.log_verbose is True and updated.tags == {"a": "b"} and updated.description == "verify EXO"
    assert sorted(r.name for r in client.runbook.list_by_automation_account(RG, ACCOUNT)) == [
        "Other",
        "Verify",
    ]
    client.runbook.delete(RG, ACCOUNT, "Verify")
    with pytest.raises(ResourceNotFoundError) as info:
        client.runbook.get(RG, ACCOUNT, "Verify")
    assert info.value.error.message.startswith(
        f"The Resource 'Microsoft.Automation/automationAccounts/{ACCOUNT}/runbooks/Verify' under resource group "
        f"'{RG}' was not found."
    )


def test_missing_runbooks_and_accounts(client):
    with pytest.raises(ResourceNotFoundError) as info:
        client.runbook_draft.begin_replace_content(RG, ACCOUNT, "Missing", SEED_RUNBOOK)
    assert info.value.error.code == "ResourceNotFound"
    with pytest.raises(ResourceNotFoundError):
        client.runbook.begin_publish(RG, ACCOUNT, "Missing")
    with pytest.raises(ResourceNotFoundError) as info:
        client.runbook.create_or_update(RG, "NoSuchAccount", "Verify", POWERSHELL)
    assert info.value.error.code == "ParentResourceNotFound"


def test_exomi_identity_publishes_and_a_reader_cannot(emulator, client, quick_polls):
    app_client = emulator.automation(credential=emulator.app_credential())
    app_client.runbook.create_or_update(RG, ACCOUNT, "Verify", POWERSHELL)
    app_client.runbook_draft.begin_replace_content(RG, ACCOUNT, "Verify", SEED_RUNBOOK).result()
    app_client.runbook.begin_publish(RG, ACCOUNT, "Verify").result()
    assert app_client.runbook.get(RG, ACCOUNT, "Verify").state == "Published"

    emulator.ctl(
        "DELETE", "/rbac", {"principal_id": emulator.app_principal_id, "role": "Automation Contributor"}
    )
    with pytest.raises(HttpResponseError) as info:
        app_client.runbook.begin_publish(RG, ACCOUNT, "Verify")
    assert info.value.status_code == 403
    assert "Microsoft.Automation/automationAccounts/runbooks/publish/action" in info.value.error.message
