"""VM Run Command through ``virtual_machines.begin_run_command``: the LRO wire shape, scripts that
install the modules and connect to Exchange Online with the VM's identity, and the failures a user of
the real service sees (in StdErr: the command itself succeeds)."""

from __future__ import annotations

import json

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

from tests.support.run_command import CONNECT, INSTALL, ORG
from tests.support.shapes import assert_shape, load_example

IMDS_IDENTITY_NOT_FOUND = 'Failed to acquire managed identity token: {"error":"invalid_request","error_description":"Identity not found"}'

RG = "rg-run"
VM_BODY = {
    "location": "westeurope",
    "properties": {"hardwareProfile": {"vmSize": "Standard_B2s"}},
}


@pytest.fixture
def compute(emulator):
    emulator.resources().resource_groups.create_or_update(RG, {"location": "westeurope"})
    return emulator.compute()


def _vm(compute, name="vm1", identity=None):
    body = {**VM_BODY, "identity": identity} if identity else VM_BODY
    return compute.virtual_machines.begin_create_or_update(RG, name, body).result()


def _run(compute, script, vm="vm1", parameters=None) -> tuple[str, str]:
    command = {"commandId": "RunPowerShellScript", "script": script}
    if parameters:
        command["parameters"] = parameters
    result = compute.virtual_machines.begin_run_command(RG, vm, command).result()
    stdout, stderr = result.value
    assert (stdout.code, stderr.code) == (
        "ComponentStatus/StdOut/succeeded",
        "ComponentStatus/StdErr/succeeded",
    )
    return stdout.message, stderr.message


def test_wire_shape_and_parameters(emulator, compute):
    _vm(compute)
    position = emulator.log_position()
    result = compute.virtual_machines.begin_run_command(
        RG,
        "vm1",
        {
            "commandId": "RunPowerShellScript",
            "script": ["Write-Output $greeting"],
            "parameters": [{"name": "greeting", "value": "hello"}],
        },
        cls=lambda pipeline_response, obj, headers: (pipeline_response.http_response, obj),
    ).result()
    final_response, run = result
    assert_shape(
        load_example("compute_VirtualMachineRunCommand.json")["body"], json.loads(final_response.text())
    )
    assert [s.message for s in run.value] == ["hello", ""]
    calls = [(e["method"], e["path"].rsplit("/", 2)[-2:], e["status"]) for e in emulator.log(position, "arm")]
    assert calls[0] == ("POST", ["vm1", "runCommand"], 202)
    polls = [c for c in calls[1:] if c[1][0] == "operations"]
    assert polls and all(c[0] == "GET" and c[2] in (200, 202) for c in polls)


def test_installs_modules_then_connects_with_the_system_identity(emulator, compute):
    vm = _vm(compute, identity={"type": "SystemAssigned"})
    emulator.grant_exchange_access(vm.identity.principal_id)

    stdout, stderr = _run(compute, ["Get-InstalledModule PackageManagement"])
    assert stdout == "1.0.0.1 PackageManagement" and stderr == ""  # Windows PowerShell 5.1's inbox module

    stdout, stderr = _run(compute, INSTALL)
    assert stderr == ""
    # A new Run Command is a new session: the installed modules are still there.
    stdout, stderr = _run(compute, CONNECT)
    assert stderr == ""
    assert stdout.splitlines() == ["Name", "----", ORG, "contoso.com"]


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ([], "The term 'Connect-ExchangeOnline' is not recognized"),
        (
            ["Install-Module ExchangeOnlineManagement -RequiredVersion 3.5.1 -Force"],
            "require the PowerShellGet and PackageManagement modules",
        ),
    ],
)
def test_missing_modules_show_up_in_stderr(emulator, compute, script, message):
    vm = _vm(compute, identity={"type": "SystemAssigned"})
    emulator.grant_exchange_access(vm.identity.principal_id)
    stdout, stderr = _run(compute, [*script, *CONNECT])
    assert message in stderr and stdout == ""


def test_grant_problems_show_up_in_stderr(emulator, compute):
    vm = _vm(compute, identity={"type": "SystemAssigned"})
    _run(compute, INSTALL)
    _, stderr = _run(compute, CONNECT)
    assert stderr == "UnAuthorized"  # no Exchange.ManageAsApp
    emulator.grant_exchange_access(vm.identity.principal_id, directory_role=None)
    emulator.expire_exchange_tokens()  # the refused connection's token is cached without the grant
    _, stderr = _run(compute, CONNECT)
    # The app role but no Entra role; Exchange names the identity by its application (client) id.
    client_id = next(p["appId"] for p in emulator.principals() if p["id"] == vm.identity.principal_id)
    assert stderr.startswith(
        f"The role assigned to application {client_id} isn't supported in this scenario."
    )
    # A grant made just now has not reached the identity's token yet.
    emulator.set_timings(propagation_delay=600)
    emulator.grant_exchange_access(vm.identity.principal_id, app_role=None, backdate=False)
    emulator.expire_exchange_tokens()
    _, stderr = _run(compute, CONNECT)
    assert "isn't supported in this scenario" in stderr


def test_user_assigned_identity_works_by_client_id_not_by_object_id(emulator, compute):
    uai = emulator.msi().user_assigned_identities.create_or_update(RG, "uai1", {"location": "westeurope"})
    _vm(compute, identity={"type": "UserAssigned", "userAssignedIdentities": {uai.id: {}}})
    emulator.grant_exchange_access(uai.principal_id)
    _run(compute, INSTALL)
    connect = f"Connect-ExchangeOnline -ManagedIdentity -ManagedIdentityAccountId {{}} -Organization {ORG}"
    stdout, stderr = _run(
        compute, ["$ErrorActionPreference = 'Stop'", connect.format(uai.client_id), "Get-AcceptedDomain"]
    )
    assert stderr == "" and ORG in stdout.splitlines()
    _, stderr = _run(compute, ["$ErrorActionPreference = 'Stop'", connect.format(uai.principal_id)])
    # The VM's token comes from IMDS, which knows no identity by that id.
    assert stderr == IMDS_IDENTITY_NOT_FOUND


def test_a_vm_without_identity_cannot_connect(emulator, compute):
    _vm(compute)
    _run(compute, INSTALL)
    _, stderr = _run(compute, CONNECT)
    assert stderr == IMDS_IDENTITY_NOT_FOUND


def test_output_is_limited_to_the_last_4096_bytes(emulator, compute):
    _vm(compute)
    stdout, _ = _run(compute, [f"Write-Output line-{i:04d}" for i in range(1000)])
    assert len(stdout.encode()) <= 4096
    assert stdout.endswith("line-0999") and "line-0000" not in stdout


def test_exomis_identity_can_run_commands(emulator, compute):
    _vm(compute)
    app_compute = emulator.compute(credential=emulator.app_credential())
    assert _run(app_compute, ["Write-Output from-exomi"]) == ("from-exomi", "")


def test_refusals(emulator, compute):
    _vm(compute)
    with pytest.raises(ResourceNotFoundError) as info:
        compute.virtual_machines.begin_run_command(
            RG, "vm1", {"commandId": "RunBatchScript", "script": ["ls"]}
        ).result()
    assert info.value.error.code == "NotFound"
    with pytest.raises(HttpResponseError) as info:
        compute.virtual_machines.begin_run_command(RG, "vm1", {"script": ["x"]}).result()
    assert info.value.status_code == 400 and info.value.error.code == "InvalidParameter"
    with pytest.raises(ResourceNotFoundError) as info:
        compute.virtual_machines.begin_run_command(RG, "nope", {"commandId": "RunPowerShellScript"}).result()
    assert info.value.error.code == "ResourceNotFound"

    # One Run Command at a time.
    emulator.set_timings(run_command=600)
    compute.virtual_machines.begin_run_command(RG, "vm1", {"commandId": "RunPowerShellScript"}, polling=False)
    with pytest.raises(ResourceExistsError) as info:
        compute.virtual_machines.begin_run_command(RG, "vm1", {"commandId": "RunPowerShellScript"}).result()
    assert info.value.error.message.startswith("Run command extension execution is in progress.")


def test_a_stopped_vm_refuses_run_commands_until_started(emulator, compute):
    _vm(compute)
    compute.virtual_machines.begin_deallocate(RG, "vm1").result()
    with pytest.raises(ResourceExistsError) as info:
        _run(compute, ["Write-Output hi"])
    assert info.value.status_code == 409 and info.value.error.code == "OperationNotAllowed"
    assert info.value.error.message == "The operation requires the VM to be running (or set to run)."
    compute.virtual_machines.begin_start(RG, "vm1").result()
    assert _run(compute, ["Write-Output hi"]) == ("hi", "")
