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
from azure.mgmt.eventgrid.models import (
    EventSubscription,
    EventSubscriptionFilter,
    StringNotContainsAdvancedFilter,
    SystemTopic,
    WebHookEventSubscriptionDestination,
)

from tests.support.automation import (
    ACCOUNT,
    RG,
    body_of,
    create_account,
    publish_runbook,
    raw_response,
    run_runbook,
    until,
)
from tests.support.shapes import assert_shape, load_example
from tests.support.webhook import Webhook

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

    # 2022-08-08's enum ends at Python3; PowerShell72 is 2023-11-01's, Python the runtime environments' one.
    assert _arm(emulator, "PUT", path, "2022-08-08", body).status_code == 400
    preview = _arm(emulator, "PUT", path, "2023-05-15-preview", body)
    assert preview.status_code == 400
    assert preview.json()["error"]["message"].endswith("Python2, Python3, Python.")
    python_body = {**body, "properties": {"runbookType": "Python"}}
    assert _arm(emulator, "PUT", f"{path}Py", "2023-11-01", python_body).status_code == 400
    assert _arm(emulator, "PUT", f"{path}Py", "2023-05-15-preview", python_body).status_code == 201
    assert _arm(emulator, "PUT", path, "2023-11-01", body).status_code == 201


def test_automation_at_2023_05_15_preview_has_runtime_environments(emulator):
    create_account(emulator)
    client = emulator.automation(api_version="2023-05-15-preview")
    ps74 = {
        "location": "westus",
        "properties": {
            "runtime": {"language": "PowerShell", "version": "7.4"},
            "defaultPackages": {"Az": "12.3.0"},
            "description": "PowerShell 7.4 with Az",
        },
    }
    client.runtime_environments.create(RG, ACCOUNT, "PowerShell-7.4", ps74)
    environment = body_of(client.runtime_environments.get(RG, ACCOUNT, "PowerShell-7.4", cls=raw_response))
    assert_shape(
        load_example("automation_2023-05-15-preview_getRuntimeEnvironment.json")["body"], environment
    )
    assert environment["properties"]["runtime"] == {"language": "PowerShell", "version": "7.4"}

    properties = {
        "runbookType": "PowerShell",
        "runtimeEnvironment": "PowerShell-7.2",
        "description": "Greets",
    }
    client.runbook.create_or_update(
        RG, ACCOUNT, "Hello", {"location": "westus", "tags": {"team": "exomi"}, "properties": properties}
    )
    publish_runbook(client, "Hello", "Write-Output 'hello'", runtime="PowerShell-7.2")
    runbook = body_of(client.runbook.get(RG, ACCOUNT, "Hello", cls=raw_response))
    assert_shape(load_example("automation_2023-05-15-preview_getRunbook.json")["body"], runbook)
    assert runbook["properties"]["runtimeEnvironment"] == "PowerShell-7.2" and "systemData" in runbook

    job = run_runbook(client, "Hello")
    assert job.status == "Completed"
    got = body_of(client.job.get(RG, ACCOUNT, job.name, cls=raw_response))
    assert_shape(load_example("automation_2023-05-15-preview_createJob.json")["body"], got)
    assert got["properties"]["jobRuntimeEnvironment"] == {"runtimeEnvironmentName": "PowerShell-7.2"}

    # 2023-11-01 (stable) came after the preview but has no runtime environments.
    stable = emulator.automation(api_version="2023-11-01")
    later = body_of(stable.runbook.get(RG, ACCOUNT, "Hello", cls=raw_response))
    assert "runtimeEnvironment" not in later["properties"] and "systemData" not in later
    assert (
        "jobRuntimeEnvironment"
        not in body_of(stable.job.get(RG, ACCOUNT, job.name, cls=raw_response))["properties"]
    )
    environments = _arm(emulator, "GET", f"{_account_path(emulator)}/runtimeEnvironments", "2023-11-01")
    assert environments.status_code == 400
    assert "'2023-05-15-preview, 2024-10-23'" in environments.json()["error"]["message"]


def _worker_group(emulator, name: str = "Contoso") -> tuple[str, str]:
    """A group (through the newest SDK) with one worker on a VM; returns the group's path and the VM's name."""
    create_account(emulator)
    vm = (
        emulator.compute()
        .virtual_machines.begin_create_or_update(
            RG, "hrw1", {"location": "westus", "properties": {"hardwareProfile": {"vmSize": "Standard_B2s"}}}
        )
        .result()
    )
    client = emulator.automation()
    client.hybrid_runbook_worker_group.create(
        RG, ACCOUNT, name, {"properties": {"credential": {"name": "RunAs"}}}
    )
    client.hybrid_runbook_workers.create(
        RG, ACCOUNT, name, str(uuid.uuid4()), {"properties": {"vmResourceId": vm.id}}
    )
    return f"{_account_path(emulator)}/hybridRunbookWorkerGroups/{name}", vm.name


def test_worker_groups_at_the_agent_based_versions_are_flat_with_their_machines_inline(emulator):
    path, vm = _worker_group(emulator)

    old = _arm(emulator, "GET", path, "2015-10-31")
    assert old.status_code == 200
    assert_shape(load_example("automation_2015-10-31_hybridRunbookWorkerGroupGet.json")["body"], old.json())
    assert not {"properties", "type", "systemData"} & set(old.json())
    assert old.json()["groupType"] == "User" and old.json()["credential"] == {"name": "RunAs"}
    assert [w["name"] for w in old.json()["hybridRunbookWorkers"]] == [vm]
    listed = _arm(emulator, "GET", path.rsplit("/", 1)[0], "2020-01-13-preview").json()["value"]
    assert [(g["name"], g["credential"]["name"]) for g in listed] == [("Contoso", "RunAs")]

    # PATCH takes the flat body; these versions have no PUT and no worker resources.
    patched = _arm(emulator, "PATCH", path, "2019-06-01", {"credential": {"name": "Other"}})
    assert patched.status_code == 200 and patched.json()["credential"] == {"name": "Other"}
    group = emulator.automation().hybrid_runbook_worker_group.get(RG, ACCOUNT, "Contoso")
    assert group.credential.name == "Other"
    put = _arm(emulator, "PUT", f"{path}2", "2015-10-31", {"credential": {"name": "RunAs"}})
    assert put.status_code == 405 and put.json()["error"]["code"] == "MethodNotAllowed"
    workers = _arm(emulator, "GET", f"{path}/hybridRunbookWorkers", "2020-01-13-preview")
    assert workers.status_code == 400 and workers.json()["error"]["code"] == "NoRegisteredProviderFound"
    assert "'2021-06-22, 2022-08-08, 2023-05-15-preview, 2023-11-01, 2024-10-23'" in workers.text
    # The newest version shows neither the machines inline nor the flat fields.
    latest = body_of(
        emulator.automation().hybrid_runbook_worker_group.get(RG, ACCOUNT, "Contoso", cls=raw_response)
    )
    assert set(latest["properties"]) == {"groupType", "credential"} and "credential" not in latest


def test_worker_groups_at_2021_06_22_are_flat_and_at_2022_02_22_nested(emulator):
    path, _ = _worker_group(emulator)
    new = f"{path.rsplit('/', 1)[0]}/Fabrikam"

    created = _arm(emulator, "PUT", new, "2021-06-22", {"credential": {"name": "RunAs"}})
    assert created.status_code == 200  # the only code 2021-06-22's spec lists
    assert_shape(
        load_example("automation_2021-06-22_getHybridRunbookWorkerGroup.json")["body"], created.json()
    )
    assert "properties" not in created.json() and created.json()["hybridRunbookWorkers"] == []
    assert (
        emulator.automation().hybrid_runbook_worker_group.get(RG, ACCOUNT, "Fabrikam").credential.name
        == "RunAs"
    )
    worker = _arm(emulator, "GET", f"{path}/hybridRunbookWorkers", "2021-06-22").json()["value"][0]
    assert worker["properties"]["workerType"] == "HybridV2"
    second = _arm(
        emulator,
        "PUT",
        f"{new}/hybridRunbookWorkers/{uuid.uuid4()}",
        "2021-06-22",
        {"properties": {"vmResourceId": worker["properties"]["vmResourceId"]}},
    )
    assert second.status_code == 200  # hybridRunbookWorker.json of 2021-06-22 lists only 200 too
    inline = _arm(emulator, "GET", new, "2021-06-22").json()["hybridRunbookWorkers"]
    assert [w["name"] for w in inline] == ["hrw1"]

    nested = _arm(emulator, "GET", new, "2022-02-22").json()
    assert nested["properties"] == {"groupType": "User", "credential": {"name": "RunAs"}}
    again = _arm(emulator, "PUT", f"{new}2", "2022-02-22", {"properties": {"credential": {"name": "RunAs"}}})
    assert again.status_code == 200
    assert _arm(emulator, "PUT", f"{new}3", "2022-08-08", {"properties": {}}).status_code == 201


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
        "'2015-10-31, 2018-06-30, 2019-06-01, 2022-08-08, 2023-05-15-preview, 2023-11-01, 2024-10-23'. "
        "The supported locations are ''.",
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
    # 2016-03-30's set has no uniqueId (from 2017-03-30) and no timeCreated (from 2021-11-01).
    old_set = _arm(emulator, "GET", path, "2016-03-30").json()["properties"]
    assert not {"uniqueId", "timeCreated"} & set(old_set) and old_set["virtualMachineProfile"]
    assert "uniqueId" in _arm(emulator, "GET", path, "2017-03-30").json()["properties"]
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


def _run_command_result(emulator, path: str, api_version: str) -> httpx.Response:
    """Starts a Run Command at ``api_version`` and follows its Location until the result is there."""
    started = _arm(
        emulator,
        "POST",
        f"{path}/runCommand",
        api_version,
        {"commandId": "RunPowerShellScript", "script": ["Write-Output 'hi'"]},
    )
    assert started.status_code == 202
    token = emulator.token(client_id=emulator.admin_client_id)
    with emulator.http() as http:
        return until(
            lambda: http.get(started.headers["Location"], headers={"Authorization": f"Bearer {token}"}),
            lambda r: r.status_code != 202,
        )


def test_run_command_before_2018_04_01_answers_an_operation_status(emulator):
    example = load_example("compute_VirtualMachine_Create_WithPasswordAuthentication.json")
    path = _compute_path(emulator, "virtualMachines", "myVM")
    assert _arm(emulator, "PUT", path, "2017-12-01", example["request"]).status_code == 201

    old = _run_command_result(emulator, path, "2017-12-01")
    assert old.status_code == 200
    assert_shape(load_example("compute_2017-12-01_VirtualMachineRunCommand.json")["body"], old.json())
    assert old.json()["status"] == "Succeeded"
    assert [s["message"] for s in old.json()["properties"]["output"]] == ["hi", ""]

    new = _run_command_result(emulator, path, "2018-04-01")
    assert new.status_code == 200
    assert_shape(load_example("compute_VirtualMachineRunCommand.json")["body"], new.json())
    assert [s["message"] for s in new.json()["value"]] == ["hi", ""]


def _vm_body(identity: dict[str, Any]) -> dict[str, Any]:
    example = load_example("compute_VirtualMachine_Create_WithPasswordAuthentication.json")["request"]
    return {**example, "identity": identity}


def test_vm_identity_follows_each_versions_model(emulator):
    # 2015-06-15 has no identity at all: the body's is not read, the answer shows none.
    path = _compute_path(emulator, "virtualMachines", "vm2015")
    created = _arm(emulator, "PUT", path, "2015-06-15", _vm_body({"type": "SystemAssigned"}))
    assert created.status_code == 201 and "identity" not in created.json()
    assert "vmId" not in created.json()["properties"]
    assert emulator.compute().virtual_machines.get(COMPUTE_RG, "vm2015").identity is None

    # 2016-03-30 to 2017-03-30: system-assigned only.
    path = _compute_path(emulator, "virtualMachines", "vm2017")
    refused = _arm(emulator, "PUT", path, "2017-03-30", _vm_body({"type": "UserAssigned"}))
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "InvalidParameter"
    assert refused.json()["error"]["message"].endswith("Allowed values: SystemAssigned.")
    system = _arm(emulator, "PUT", path, "2017-03-30", _vm_body({"type": "SystemAssigned"}))
    assert system.status_code == 201 and system.json()["identity"]["principalId"]
    assert "timeCreated" not in system.json()["properties"] and "etag" not in system.json()

    # 2017-12-01 and 2018-04-01 name user-assigned identities in identityIds.
    uai = emulator.msi().user_assigned_identities.create_or_update(
        COMPUTE_RG, "uai1", {"location": "westeurope"}
    )
    path = _compute_path(emulator, "virtualMachines", "vmids")
    listed = _arm(
        emulator, "PUT", path, "2017-12-01", _vm_body({"type": "UserAssigned", "identityIds": [uai.id]})
    )
    assert listed.status_code == 201
    assert [i.lower() for i in listed.json()["identity"]["identityIds"]] == [uai.id.lower()]
    assert "userAssignedIdentities" not in listed.json()["identity"]
    latest = emulator.compute().virtual_machines.get(COMPUTE_RG, "vmids")
    assert [k.lower() for k in latest.identity.user_assigned_identities] == [uai.id.lower()]
    mapped = _arm(emulator, "GET", path, "2018-06-01").json()["identity"]
    assert "identityIds" not in mapped and len(mapped["userAssignedIdentities"]) == 1
    assert "etag" not in _arm(emulator, "GET", path, "2023-07-01").json()
    assert "etag" in _arm(emulator, "GET", path, "2023-09-01").json()


# --------------------------------------------------------------------------------------------------
# Microsoft.EventGrid: every version that defines system topics


def test_system_topics_at_2020_04_01_preview_have_that_versions_shape(emulator):
    emulator.resources().resource_groups.create_or_update("rg-apiver-eg", {"location": "westeurope"})
    old = emulator.arm_client(EventGridManagementClient, "2020-04-01-preview")
    source = f"/subscriptions/{emulator.subscription_id}"
    topic = old.system_topics.begin_create_or_update(
        "rg-apiver-eg",
        "apiver-topic",
        SystemTopic(location="global", source=source, topic_type="Microsoft.Resources.Subscriptions"),
    ).result()
    assert topic.source == source
    raw = old.system_topics.get("rg-apiver-eg", "apiver-topic", cls=lambda r, *_: r.http_response)
    assert "identity" not in json.loads(raw.text())
    newer = emulator.arm_client(EventGridManagementClient, "2020-10-15-preview")
    assert newer.system_topics.get("rg-apiver-eg", "apiver-topic").identity.type == "None"

    hook = Webhook().start()
    try:
        subscription = EventSubscription(
            destination=WebHookEventSubscriptionDestination(endpoint_url=hook.url),
            filter=EventSubscriptionFilter(subject_begins_with="/subscriptions/"),
        )
        subs = old.system_topic_event_subscriptions
        created = subs.begin_create_or_update(
            "rg-apiver-eg", "apiver-topic", "apiver-sub", subscription
        ).result()
        assert created.provisioning_state == "Succeeded"
        got = subs.get("rg-apiver-eg", "apiver-topic", "apiver-sub", cls=lambda r, *_: r.http_response)
        body = json.loads(got.text())
        example = "eventgrid_2020-04-01-preview_SystemTopicEventSubscriptions_CreateOrUpdate.json"
        assert_shape(load_example(example)["body"], body)
        assert "enableAdvancedFilteringOnArrays" not in body["properties"]["filter"]

        # StringNotContains and the other operators of 2020-10-15-preview are refused by the older version.
        ranged = EventSubscription(
            destination=WebHookEventSubscriptionDestination(endpoint_url=hook.url),
            filter=EventSubscriptionFilter(
                advanced_filters=[StringNotContainsAdvancedFilter(key="subject", values=["secret"])]
            ),
        )
        with pytest.raises(HttpResponseError) as info:
            subs.begin_create_or_update("rg-apiver-eg", "apiver-topic", "ranged", ranged).result()
        assert info.value.status_code == 400 and info.value.error.code == "InvalidRequest"
        assert "'StringNotContains'" in info.value.error.message
        later = newer.system_topic_event_subscriptions
        assert later.begin_create_or_update("rg-apiver-eg", "apiver-topic", "ranged", ranged).result().name
    finally:
        hook.stop()

    # stable/2020-06-01 defines no system topics; the newest preview does.
    response = _arm(
        emulator,
        "GET",
        f"/subscriptions/{emulator.subscription_id}/resourceGroups/rg-apiver-eg"
        "/providers/Microsoft.EventGrid/systemTopics/apiver-topic",
        "2020-06-01",
    )
    assert response.status_code == 400
    assert (
        "'2020-04-01-preview, 2020-10-15-preview, 2021-06-01-preview," in response.json()["error"]["message"]
    )
    latest = emulator.arm_client(EventGridManagementClient, "2025-07-15-preview")
    assert latest.system_topics.get("rg-apiver-eg", "apiver-topic").name == "apiver-topic"
