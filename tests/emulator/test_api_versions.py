"""Older published api-versions: each type answers at the versions whose spec folder defines it, in that
version's shape (what it does not define is neither shown nor read), and refuses what it cannot express;
a version that does not exist is ARM's 400 listing the supported ones."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.eventgrid import EventGridManagementClient
from azure.mgmt.eventgrid.models import SystemTopic

from tests.support.automation import (
    ACCOUNT,
    RG,
    body_of,
    create_account,
    publish_runbook,
    raw_response,
    run_runbook,
)
from tests.support.shapes import assert_shape, load_example

READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
COMPUTE_RG = "rg-apiver"
WINDOWS = {"publisher": "MicrosoftWindowsServer", "offer": "WindowsServer", "sku": "2022-datacenter"}


def _arm(emulator, method: str, path: str, api_version: str, body: Any = None) -> httpx.Response:
    """A raw ARM call as the admin, for versions or bodies the pinned SDK does not send."""
    token = emulator.token(client_id=emulator.admin_client_id)
    with emulator.http() as http:
        return http.request(
            method,
            f"{emulator.arm_endpoint}{path}",
            params={"api-version": api_version},
            json=body,
            headers={"Authorization": f"Bearer {token}"},
        )


def _account_path(emulator) -> str:
    return (
        f"/subscriptions/{emulator.subscription_id}/resourceGroups/{RG}"
        f"/providers/Microsoft.Automation/automationAccounts/{ACCOUNT}"
    )


def _role_id(emulator, guid: str) -> str:
    return (
        f"/subscriptions/{emulator.subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{guid}"
    )


# --------------------------------------------------------------------------------------------------
# Microsoft.Automation


def test_automation_at_2019_06_01_has_that_versions_account_and_runbook_shapes(emulator):
    emulator.resources().resource_groups.create_or_update(RG, {"location": "westus"})
    client = emulator.automation(api_version="2019-06-01")
    # 2019-06-01 has no account identity: the body's identity is not read.
    client.automation_account.create_or_update(
        RG,
        ACCOUNT,
        {
            "location": "westus",
            "identity": {"type": "SystemAssigned"},
            "properties": {"sku": {"name": "Basic"}},
        },
    )
    account = body_of(client.automation_account.get(RG, ACCOUNT, cls=raw_response))
    assert_shape(load_example("automation_2019-06-01_getAutomationAccount.json")["body"], account)
    assert "identity" not in account and "systemData" not in account
    assert not {"disableLocalAuth", "publicNetworkAccess", "encryption"} & set(account["properties"])
    assert emulator.automation().automation_account.get(RG, ACCOUNT).identity.type == "None"

    client.runbook.create_or_update(
        RG,
        ACCOUNT,
        "Verify",
        {"location": "westus", "properties": {"runbookType": "PowerShell", "description": "Checks Exchange"}},
    )
    runbook = body_of(client.runbook.get(RG, ACCOUNT, "Verify", cls=raw_response))
    assert_shape(load_example("automation_2019-06-01_getRunbook.json")["body"], runbook)
    assert "runtimeEnvironment" not in runbook["properties"] and "systemData" not in runbook
    # The newest version shows what it defines of the same runbook.
    latest = body_of(emulator.automation().runbook.get(RG, ACCOUNT, "Verify", cls=raw_response))
    assert latest["properties"]["runtimeEnvironment"] == "PowerShell-5.1"


def test_a_job_at_2019_06_01_runs_and_has_no_runtime_environment(emulator):
    create_account(emulator)
    client = emulator.automation(api_version="2019-06-01")
    publish_runbook(client, "Hello", "Write-Output 'hello'")

    job = run_runbook(client, "Hello")

    assert job.status == "Completed"
    got = body_of(client.job.get(RG, ACCOUNT, job.name, cls=raw_response))
    assert_shape(load_example("automation_2019-06-01_getJob.json")["body"], got)
    assert "jobRuntimeEnvironment" not in got["properties"]
    latest = body_of(emulator.automation().job.get(RG, ACCOUNT, job.name, cls=raw_response))
    assert latest["properties"]["jobRuntimeEnvironment"] == {"runtimeEnvironmentName": "PowerShell-5.1"}


def test_runbook_types_a_version_does_not_have_are_refused(emulator):
    emulator.resources().resource_groups.create_or_update(RG, {"location": "westus"})
    emulator.automation().automation_account.create_or_update(
        RG, ACCOUNT, {"location": "westus", "properties": {"sku": {"name": "Basic"}}}
    )
    path = f"{_account_path(emulator)}/runbooks/Verify"
    body = {"location": "westus", "properties": {"runbookType": "PowerShell72"}}
    error = {"code", "message"}

    old = _arm(emulator, "PUT", path, "2019-06-01", body)
    assert old.status_code == 400
    assert {k: old.json()["error"][k] for k in error} == {
        "code": "BadRequest",
        "message": "Invalid runbook type 'PowerShell72'. The supported runbook types are: Script, Graph, "
        "PowerShellWorkflow, PowerShell, GraphPowerShellWorkflow, GraphPowerShell, Python2, Python3.",
    }
    python = _arm(emulator, "PUT", path, "2018-06-30", {**body, "properties": {"runbookType": "Python3"}})
    assert python.status_code == 400 and "Python2" not in python.json()["error"]["message"]
    assert _arm(emulator, "GET", path, "2019-06-01").status_code == 404  # nothing was made

    assert _arm(emulator, "PUT", path, "2022-08-08", body).status_code == 201


def test_a_version_that_does_not_define_the_type_lists_the_ones_that_do(emulator):
    emulator.resources().resource_groups.create_or_update(RG, {"location": "westus"})
    emulator.automation().automation_account.create_or_update(
        RG, ACCOUNT, {"location": "westus", "properties": {"sku": {"name": "Basic"}}}
    )
    # 2020-01-13-preview has accounts but takes its runbooks from 2018-06-30 (the readme's tag).
    assert _arm(emulator, "GET", _account_path(emulator), "2020-01-13-preview").status_code == 200
    response = _arm(emulator, "GET", f"{_account_path(emulator)}/runbooks", "2020-01-13-preview")
    assert response.status_code == 400
    assert {k: response.json()["error"][k] for k in ("code", "message")} == {
        "code": "NoRegisteredProviderFound",
        "message": "No registered resource provider found for location 'global' and API version "
        "'2020-01-13-preview' for type 'automationAccounts/runbooks'. The supported api-versions are "
        "'2015-10-31, 2018-06-30, 2019-06-01, 2022-08-08, 2023-11-01, 2024-10-23'. The supported locations "
        "are ''.",
    }
    made_up = _arm(emulator, "GET", _account_path(emulator), "2016-01-01")
    assert made_up.status_code == 400 and made_up.json()["error"]["code"] == "NoRegisteredProviderFound"
    assert "'2015-10-31, 2019-06-01, 2020-01-13-preview, 2021-06-22, 2022-08-08" in made_up.text


# --------------------------------------------------------------------------------------------------
# Microsoft.Authorization


def test_role_assignments_at_2015_07_01_have_that_versions_shape(emulator):
    target = emulator.seed_principal("target", visible=True)
    rg = (
        emulator.resources()
        .resource_groups.create_or_update("rg-apiver-authz", {"location": "westeurope"})
        .id
    )
    old = emulator.arm_client(AuthorizationManagementClient, "2015-07-01")
    name = str(uuid.uuid4())
    old.role_assignments.create(
        rg,
        name,
        {"properties": {"roleDefinitionId": _role_id(emulator, READER), "principalId": target["id"]}},
    )

    got = json.loads(old.role_assignments.get(rg, name, cls=lambda r, *_: r.http_response).text())
    assert_shape(load_example("authorization_2015-07-01_GetRoleAssignmentByName.json")["body"], got)
    assert set(got["properties"]) == {"roleDefinitionId", "principalId", "scope"}
    assert got["properties"]["scope"] == rg
    assert emulator.authorization().role_assignments.get(rg, name).principal_type == "ServicePrincipal"

    definition = json.loads(old.role_definitions.get(rg, READER, cls=lambda r, *_: r.http_response).text())
    assert_shape(load_example("authorization_2015-07-01_GetRoleDefinitionById.json")["body"], definition)
    assert set(definition["properties"]["permissions"][0]) == {"actions", "notActions"}
    assert "createdOn" not in definition["properties"]


def test_a_2015_07_01_client_cannot_name_the_principal_type(emulator):
    # A new identity the directory does not show yet: only principalType (2018-09-01-preview on) lets
    # the assignment through, so the older version's body, which cannot carry it, fails.
    fresh = emulator.seed_principal("fresh", visible=False)
    scope = f"/subscriptions/{emulator.subscription_id}"
    body = {
        "properties": {
            "roleDefinitionId": _role_id(emulator, READER),
            "principalId": fresh["id"],
            "principalType": "ServicePrincipal",
        }
    }
    path = f"{scope}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}"
    old = _arm(emulator, "PUT", path, "2015-07-01", body)
    assert old.status_code == 400 and old.json()["error"]["code"] == "PrincipalNotFound"
    assert _arm(emulator, "PUT", path, "2018-09-01-preview", body).status_code == 201


# --------------------------------------------------------------------------------------------------
# Microsoft.Compute


def _scale_set(mode: str) -> dict[str, Any]:
    return {
        "location": "westeurope",
        "sku": {"name": "Standard_B2s", "tier": "Standard", "capacity": 1},
        "properties": {
            "orchestrationMode": mode,
            "virtualMachineProfile": {
                "osProfile": {
                    "computerNamePrefix": "web",
                    "adminUsername": "azureuser",
                    "adminPassword": "x",
                },
                "storageProfile": {"imageReference": {**WINDOWS, "version": "latest"}},
            },
        },
    }


def _compute_path(emulator, kind: str, name: str) -> str:
    emulator.resources().resource_groups.create_or_update(COMPUTE_RG, {"location": "westeurope"})
    return (
        f"/subscriptions/{emulator.subscription_id}/resourceGroups/{COMPUTE_RG}"
        f"/providers/Microsoft.Compute/{kind}/{name}"
    )


# azure-mgmt-compute 39.0.0 sends 2026-04-01 whatever api_version it is given: raw HTTP here.
def test_scale_sets_before_2020_12_01_have_no_orchestration_mode(emulator):
    path = _compute_path(emulator, "virtualMachineScaleSets", "flex")
    created = _arm(emulator, "PUT", path, "2020-06-01", _scale_set("Flexible"))
    assert created.status_code == 201 and "orchestrationMode" not in created.json()["properties"]
    assert "orchestrationMode" not in _arm(emulator, "GET", path, "2020-06-01").json()["properties"]
    # The 2020-06-01 body could not ask for Flexible: the set is Uniform.
    assert _arm(emulator, "GET", path, "2020-12-01").json()["properties"]["orchestrationMode"] == "Uniform"
    assert (
        emulator.compute().virtual_machine_scale_sets.get(COMPUTE_RG, "flex").orchestration_mode == "Uniform"
    )
    flexible = _compute_path(emulator, "virtualMachineScaleSets", "flex2")
    assert _arm(emulator, "PUT", flexible, "2020-12-01", _scale_set("Flexible")).status_code == 201
    assert (
        _arm(emulator, "GET", flexible, "2020-12-01").json()["properties"]["orchestrationMode"] == "Flexible"
    )

    # Managed Run Commands on a set's instances exist from 2020-06-01, its instances' Run Command from 2018-04-01.
    runs = _arm(emulator, "GET", f"{path}/virtualMachines/0/runCommands", "2019-12-01")
    assert runs.status_code == 400 and runs.json()["error"]["code"] == "NoRegisteredProviderFound"
    assert "'2020-06-01, 2020-12-01, 2021-03-01," in runs.json()["error"]["message"]
    assert _arm(emulator, "GET", f"{path}/virtualMachines/0/runCommands", "2020-06-01").status_code == 200
    action = _arm(emulator, "POST", f"{path}/virtualmachines/0/runCommand", "2017-12-01", {"commandId": "x"})
    assert action.status_code == 400 and "'2018-04-01, 2018-06-01," in action.json()["error"]["message"]


def test_virtual_machines_at_2017_03_30(emulator):
    example = load_example("compute_VirtualMachine_Create_WithPasswordAuthentication.json")
    path = _compute_path(emulator, "virtualMachines", "myVM")
    assert _arm(emulator, "PUT", path, "2017-03-30", example["request"]).status_code == 201
    got = _arm(emulator, "GET", path, "2017-03-30")
    assert got.status_code == 200
    assert_shape(example["body"], got.json())
    # Run Command (POST .../runCommand) first appears in 2017-03-30.
    run = _arm(emulator, "POST", f"{path}/runCommand", "2016-03-30", {"commandId": "RunPowerShellScript"})
    assert run.status_code == 400 and "'2017-03-30, 2017-12-01," in run.json()["error"]["message"]


# --------------------------------------------------------------------------------------------------
# Microsoft.Web and Microsoft.EventGrid


def test_sites_at_an_older_version_answer_the_same_site(emulator):
    emulator.resources().resource_groups.create_or_update("rg-apiver-web", {"location": "westus"})
    emulator.web().web_apps.begin_create_or_update(
        "rg-apiver-web",
        "contoso-func9",
        {"location": "West US", "kind": "functionapp", "identity": {"type": "SystemAssigned"}},
    ).result()
    path = (
        f"/subscriptions/{emulator.subscription_id}/resourceGroups/rg-apiver-web"
        "/providers/Microsoft.Web/sites/contoso-func9"
    )
    old, new = _arm(emulator, "GET", path, "2016-08-01"), _arm(emulator, "GET", path, "2025-05-01")
    assert old.status_code == new.status_code == 200
    assert old.json()["identity"]["principalId"] == new.json()["identity"]["principalId"]
    assert _arm(emulator, "GET", path, "2015-08-01").json()["error"]["code"] == "NoRegisteredProviderFound"


def test_system_topics_at_2022_06_15_through_the_sdk(emulator):
    emulator.resources().resource_groups.create_or_update("rg-apiver-eg", {"location": "westeurope"})
    old = emulator.arm_client(EventGridManagementClient, "2022-06-15")
    source = f"/subscriptions/{emulator.subscription_id}"
    old.system_topics.begin_create_or_update(
        "rg-apiver-eg",
        "apiver-topic",
        SystemTopic(location="global", source=source, topic_type="Microsoft.Resources.Subscriptions"),
    ).result()
    got = old.system_topics.get("rg-apiver-eg", "apiver-topic", cls=lambda r, *_: r.http_response)
    assert_shape(load_example("eventgrid_2022-06-15_SystemTopics_Get.json")["body"], json.loads(got.text()))
    # System topics first appear in 2020-04-01-preview.
    with pytest.raises(HttpResponseError) as info:
        emulator.arm_client(EventGridManagementClient, "2019-06-01").system_topics.get(
            "rg-apiver-eg", "apiver-topic"
        )
    assert info.value.status_code == 400 and info.value.error.code == "NoRegisteredProviderFound"
