"""Linux VMs through ``virtual_machines``: the image makes the OS, ``RunShellScript`` runs bash (with
pwsh once a script installs it), and each command fails on the other OS as Azure does."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError

from shared.runbooks import PWSH_VERSION, connect_shell_script, install_modules_shell_script
from shared.settings import ExchangeEnvironment

RG = "rg-linux"
ORG = "contoso.onmicrosoft.com"
UBUNTU = {"publisher": "Canonical", "offer": "ubuntu-24_04-lts", "sku": "server", "version": "latest"}
MODULES = {"PackageManagement": "1.4.8.1", "PowerShellGet": "2.2.5", "ExchangeOnlineManagement": "3.5.1"}


@pytest.fixture
def compute(emulator):
    emulator.resources().resource_groups.create_or_update(RG, {"location": "westeurope"})
    return emulator.compute()


def _linux_vm(compute, name="lvm1", identity=None, **storage):
    properties = {
        "hardwareProfile": {"vmSize": "Standard_B2s"},
        "osProfile": {"computerName": name, "adminUsername": "azureuser", "adminPassword": "x"},
        "storageProfile": storage or {"imageReference": UBUNTU},
    }
    body = {"location": "westeurope", "properties": properties}
    if identity:
        body["identity"] = identity
    return compute.virtual_machines.begin_create_or_update(RG, name, body).result()


def _shell(compute, lines: list[str], vm="lvm1") -> str:
    result = compute.virtual_machines.begin_run_command(
        RG, vm, {"commandId": "RunShellScript", "script": lines}
    ).result()
    (status,) = result.value  # one status holds both streams, as RunShellScript answers
    assert status.code == "ProvisioningState/succeeded"
    return status.message


@pytest.mark.parametrize(
    "storage",
    [
        {"imageReference": UBUNTU},
        {"osDisk": {"osType": "Linux", "createOption": "FromImage"}},
    ],
)
def test_a_linux_image_makes_a_linux_vm(compute, storage):
    vm = _linux_vm(compute, **storage)
    assert vm.storage_profile.os_disk.os_type == "Linux"
    assert vm.os_profile.linux_configuration.provision_vm_agent is True
    assert vm.os_profile.windows_configuration is None
    view = compute.virtual_machines.instance_view(RG, "lvm1")
    assert view.os_name == "ubuntu"


def test_linux_settings_on_a_windows_disk_are_refused(compute):
    with pytest.raises(HttpResponseError) as info:
        compute.virtual_machines.begin_create_or_update(
            RG,
            "bad",
            {
                "location": "westeurope",
                "properties": {
                    "hardwareProfile": {"vmSize": "Standard_B2s"},
                    "osProfile": {"computerName": "bad", "linuxConfiguration": {}},
                    "storageProfile": {"osDisk": {"osType": "Windows"}},
                },
            },
        ).result()
    assert info.value.status_code == 400 and info.value.error.code == "InvalidParameter"


def test_run_shell_script_output_and_exit_codes(compute):
    _linux_vm(compute)
    assert (
        _shell(compute, ["echo hello", "echo world"])
        == "Enable succeeded: \n[stdout]\nhello\nworld\n\n[stderr]\n"
    )
    message = _shell(compute, ["set -e", "echo before", "false", "echo after"])
    assert message == (
        "Enable failed: failed to execute command: command terminated with exit status=1\n"
        "[stdout]\nbefore\n\n[stderr]\n"
    )
    # A fresh Linux image has no PowerShell.
    message = _shell(compute, ["pwsh -Command 'Write-Output hi'"])
    assert message.startswith(
        "Enable failed: failed to execute command: command terminated with exit status=127"
    )
    assert message.endswith(
        "[stderr]\n/var/lib/waagent/run-command/download/0/script.sh: line 1: pwsh: command not found\n"
    )


def test_output_keeps_the_last_4096_bytes_of_each_stream(compute):
    _linux_vm(compute)
    message = _shell(compute, [f"echo line-{i:04d}" for i in range(1000)])
    stdout = message.split("[stdout]\n", 1)[1].split("\n[stderr]\n", 1)[0]
    assert len(stdout.encode()) <= 4096 and stdout.endswith("line-0999\n") and "line-0000" not in stdout


def test_exomis_scripts_install_pwsh_and_the_modules_then_connect(emulator, compute):
    vm = _linux_vm(compute, identity={"type": "SystemAssigned"})
    emulator.grant_exchange_access(vm.identity.principal_id)
    message = _shell(compute, install_modules_shell_script(MODULES).splitlines())
    assert message.startswith("Enable succeeded")
    assert f"Setting up powershell ({PWSH_VERSION}-1.deb)" in message
    assert "3.5.1 ExchangeOnlineManagement" in message
    # pwsh and the modules stay on the VM: the next script finds them (and installs no pwsh again).
    message = _shell(compute, install_modules_shell_script(MODULES).splitlines())
    assert message.startswith("Enable succeeded") and "Setting up powershell" not in message
    script = connect_shell_script(ORG, None, ExchangeEnvironment.DEFAULT)
    message = _shell(compute, script.splitlines())
    assert message == f"Enable succeeded: \n[stdout]\nName\n----\n{ORG}\ncontoso.com\n\n[stderr]\n"


def test_a_connection_failure_under_pwsh_fails_the_script(emulator, compute):
    uai = emulator.msi().user_assigned_identities.create_or_update(RG, "uai1", {"location": "westeurope"})
    _linux_vm(compute, identity={"type": "UserAssigned", "userAssignedIdentities": {uai.id: {}}})
    _shell(compute, install_modules_shell_script(MODULES).splitlines())
    # Not granted yet: Exchange refuses the identity, pwsh exits 1 and set -e ends the script.
    message = _shell(
        compute, connect_shell_script(ORG, uai.client_id, ExchangeEnvironment.DEFAULT).splitlines()
    )
    assert message == (
        "Enable failed: failed to execute command: command terminated with exit status=1\n"
        "[stdout]\n\n[stderr]\nUnAuthorized\n"
    )


def test_exchange_online_management_for_net_10_does_not_load_on_pwsh_74(emulator, compute):
    vm = _linux_vm(compute, identity={"type": "SystemAssigned"})
    emulator.grant_exchange_access(vm.identity.principal_id)
    _shell(
        compute, install_modules_shell_script({**MODULES, "ExchangeOnlineManagement": "3.10.0"}).splitlines()
    )
    message = _shell(compute, connect_shell_script(ORG, None, ExchangeEnvironment.DEFAULT).splitlines())
    assert "Could not load file or assembly 'System.Runtime, Version=10.0.0.0" in message


def test_a_pwsh_release_that_does_not_exist_fails_the_download(compute):
    _linux_vm(compute)
    message = _shell(compute, install_modules_shell_script(MODULES, pwsh_version="7.4.99").splitlines())
    assert message.startswith(
        "Enable failed: failed to execute command: command terminated with exit status=22"
    )
    assert "curl: (22) The requested URL returned error: 404" in message


def test_each_command_runs_only_on_its_os(emulator, compute):
    _linux_vm(compute)
    compute.virtual_machines.begin_create_or_update(
        RG, "wvm1", {"location": "westeurope", "properties": {"hardwareProfile": {"vmSize": "Standard_B2s"}}}
    ).result()
    for vm, command, message in [
        ("lvm1", "RunPowerShellScript", "Run command OS type 'Windows' does not match the target OS Linux."),
        ("wvm1", "RunShellScript", "Run command OS type 'Linux' does not match the target OS Windows."),
    ]:
        with pytest.raises(ResourceExistsError) as info:
            compute.virtual_machines.begin_run_command(
                RG, vm, {"commandId": command, "script": ["x"]}
            ).result()
        assert info.value.status_code == 409 and info.value.error.code == "Conflict"
        assert info.value.error.message == message
    commands = emulator.run_commands()
    assert commands == []  # a refused command is not started


def test_the_os_type_cannot_change(compute):
    _linux_vm(compute)
    with pytest.raises(HttpResponseError) as info:
        compute.virtual_machines.begin_update(
            RG, "lvm1", {"properties": {"storageProfile": {"osDisk": {"osType": "Windows"}}}}
        ).result()
    assert info.value.status_code == 400


def test_a_pwsh_of_another_release_is_replaced_by_the_pinned_one(emulator, compute):
    vm = _linux_vm(compute, identity={"type": "SystemAssigned"})
    emulator.grant_exchange_access(vm.identity.principal_id)
    # The admin installed PowerShell 7.2, whose .NET 6 cannot load ExchangeOnlineManagement 3.5.1.
    message = _shell(compute, install_modules_shell_script(MODULES, pwsh_version="7.2.24").splitlines())
    assert "Setting up powershell (7.2.24-1.deb)" in message
    message = _shell(compute, connect_shell_script(ORG, None, ExchangeEnvironment.DEFAULT).splitlines())
    assert "Could not load file or assembly 'System.Runtime, Version=8.0.0.0" in message

    message = _shell(compute, install_modules_shell_script(MODULES).splitlines())
    assert f"Setting up powershell ({PWSH_VERSION}-1.deb)" in message
    message = _shell(compute, ["pwsh --version"])
    assert message == f"Enable succeeded: \n[stdout]\nPowerShell {PWSH_VERSION}\n\n[stderr]\n"
    message = _shell(compute, connect_shell_script(ORG, None, ExchangeEnvironment.DEFAULT).splitlines())
    assert message.startswith("Enable succeeded") and ORG in message


def test_set_e_spares_conditions_and_the_left_of_or(compute):
    _linux_vm(compute)
    script = ["set -e", "if false; then", "echo no", "fi", "false || echo recovered", "echo end"]
    assert _shell(compute, script) == "Enable succeeded: \n[stdout]\nrecovered\nend\n\n[stderr]\n"


def test_echo_to_stderr_and_command_lookup(compute):
    _linux_vm(compute)
    script = ["command -v apt-get", "command -v dnf || echo 'no dnf' >&2"]
    assert _shell(compute, script) == "Enable succeeded: \n[stdout]\n/usr/bin/apt-get\n\n[stderr]\nno dnf\n"


def test_a_put_that_names_no_os_keeps_the_vms(compute):
    _linux_vm(compute)
    body = {
        "location": "westeurope",
        "tags": {"a": "b"},
        "properties": {"hardwareProfile": {"vmSize": "Standard_B2s"}},
    }
    vm = compute.virtual_machines.begin_create_or_update(RG, "lvm1", body).result()
    assert vm.storage_profile.os_disk.os_type == "Linux" and vm.tags == {"a": "b"}
