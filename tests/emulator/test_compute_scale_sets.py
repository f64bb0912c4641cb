"""VM scale sets through ``virtual_machine_scale_sets`` and ``virtual_machine_scale_set_vms``: Uniform
instances under the set with per-instance Run Command, Flexible instances as ordinary VMs, one identity
for every instance, scaling out and in with ``sku.capacity``, and the errors the service answers."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from tests.support.run_command import CONNECT, INSTALL, ORG

RG = "rg-vmss"
UBUNTU = {"publisher": "Canonical", "offer": "ubuntu-24_04-lts", "sku": "server", "version": "latest"}
WINDOWS = {
    "publisher": "MicrosoftWindowsServer",
    "offer": "WindowsServer",
    "sku": "2022-datacenter",
    "version": "latest",
}


@pytest.fixture
def compute(emulator):
    emulator.resources().resource_groups.create_or_update(RG, {"location": "westeurope"})
    return emulator.compute()


def _body(mode="Uniform", capacity=2, image=WINDOWS, identity=None, **extra):
    body = {
        "location": "westeurope",
        "sku": {"name": "Standard_B2s", "tier": "Standard", "capacity": capacity},
        "properties": {
            "orchestrationMode": mode,
            "virtualMachineProfile": {
                "osProfile": {
                    "computerNamePrefix": "web",
                    "adminUsername": "azureuser",
                    "adminPassword": "x",
                },
                "storageProfile": {"imageReference": image},
            },
            **extra,
        },
    }
    if identity:
        body["identity"] = identity
    return body


def _create(compute, name="vmss1", **kwargs):
    return compute.virtual_machine_scale_sets.begin_create_or_update(RG, name, _body(**kwargs)).result()


def _run(compute, instance_id, script, name="vmss1"):
    result = compute.virtual_machine_scale_set_vms.begin_run_command(
        RG, name, instance_id, {"commandId": "RunPowerShellScript", "script": script}
    ).result()
    stdout, stderr = result.value
    return stdout.message, stderr.message


def test_a_uniform_set_has_its_instances_under_it(compute):
    created = _create(compute, identity={"type": "SystemAssigned"})
    assert created.properties.orchestration_mode == "Uniform"
    assert created.sku.capacity == 2 and created.identity.principal_id
    assert "adminPassword" not in created.properties.virtual_machine_profile.os_profile
    listed = list(compute.virtual_machine_scale_set_vms.list(RG, "vmss1"))
    assert [(vm.instance_id, vm.name) for vm in listed] == [("0", "vmss1_0"), ("1", "vmss1_1")]
    one = compute.virtual_machine_scale_set_vms.get(RG, "vmss1", "1")
    assert one.properties.os_profile.computer_name == "web000001"
    assert one.properties.storage_profile.os_disk.os_type == "Windows"
    # Every instance uses the set's identity: one principal.
    assert one.identity.principal_id == created.identity.principal_id
    assert [s.name for s in compute.virtual_machine_scale_sets.list(RG)] == ["vmss1"]


def test_run_command_on_each_instance_uses_the_sets_identity(emulator, compute):
    created = _create(compute, identity={"type": "SystemAssigned"})
    emulator.grant_exchange_access(created.identity.principal_id)
    for instance in ("0", "1"):
        assert _run(compute, instance, INSTALL)[1] == ""
        stdout, stderr = _run(compute, instance, CONNECT)
        assert stderr == "" and ORG in stdout


def test_modules_installed_on_one_instance_stay_on_it(emulator, compute):
    created = _create(compute, identity={"type": "SystemAssigned"})
    emulator.grant_exchange_access(created.identity.principal_id)
    _run(compute, "0", INSTALL)
    assert _run(compute, "0", CONNECT)[1] == ""
    assert "is not recognized" in _run(compute, "1", CONNECT)[1]


def test_scaling_out_adds_instances_with_new_ids_and_scaling_in_removes_the_highest(compute):
    _create(compute)
    scaled = compute.virtual_machine_scale_sets.begin_update(RG, "vmss1", {"sku": {"capacity": 3}}).result()
    assert scaled.sku.capacity == 3
    ids = [vm.instance_id for vm in compute.virtual_machine_scale_set_vms.list(RG, "vmss1")]
    assert ids == ["0", "1", "2"]
    compute.virtual_machine_scale_sets.begin_update(RG, "vmss1", {"sku": {"capacity": 1}}).result()
    compute.virtual_machine_scale_sets.begin_update(RG, "vmss1", {"sku": {"capacity": 2}}).result()
    ids = [vm.instance_id for vm in compute.virtual_machine_scale_set_vms.list(RG, "vmss1")]
    assert ids == ["0", "3"]  # instance ids are never reused
    # A PUT without a sku keeps the set's size and capacity.
    body = {k: v for k, v in _body().items() if k != "sku"}
    kept = compute.virtual_machine_scale_sets.begin_create_or_update(RG, "vmss1", body).result()
    assert (kept.sku.name, kept.sku.capacity) == ("Standard_B2s", 2)


def test_a_flexible_set_has_ordinary_vms(emulator, compute):
    created = _create(compute, mode="Flexible", image=UBUNTU, identity={"type": "SystemAssigned"})
    assert created.properties.orchestration_mode == "Flexible"
    vms = list(compute.virtual_machines.list(RG, filter=f"'virtualMachineScaleSet/id' eq '{created.id}'"))
    assert len(vms) == 2 and all(vm.name.startswith("vmss1_") for vm in vms)
    assert all(vm.virtual_machine_scale_set.id == created.id for vm in vms)
    assert all(vm.storage_profile.os_disk.os_type == "Linux" for vm in vms)
    assert {vm.identity.principal_id for vm in vms} == {created.identity.principal_id}
    result = compute.virtual_machines.begin_run_command(
        RG, vms[0].name, {"commandId": "RunShellScript", "script": ["echo hello"]}
    ).result()
    assert "hello" in result.value[0].message
    # The Uniform instance APIs do not serve a Flexible set.
    with pytest.raises(HttpResponseError) as info:
        list(compute.virtual_machine_scale_set_vms.list(RG, "vmss1"))
    assert info.value.status_code == 400 and info.value.error.code == "BadRequest"
    assert (
        "Operation 'VirtualMachineScaleSets.virtualMachines.GET' is not allowed" in info.value.error.message
    )
    # Deleting the set deletes its VMs, and its identity goes with it.
    compute.virtual_machine_scale_sets.begin_delete(RG, "vmss1").result()
    assert list(compute.virtual_machines.list(RG)) == []
    assert all(p["id"] != created.identity.principal_id for p in emulator.principals())


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("a", True),
        ("x" * 64, True),
        ("-vmss", True),  # only '_' is named as a forbidden first character
        ("web-01", True),
        ("x" * 65, False),
        ("vmss-", False),
        ("vmss.", False),
        ("vm_ss", False),
        ("vm.ss", False),
        ("vm ss", False),
        ("_vmss", False),
    ],
)
def test_scale_set_names_follow_the_naming_rules_page(compute, name, valid):
    # Microsoft Learn "Naming rules and restrictions for Azure resources", Microsoft.Compute
    # virtualMachineScaleSets: letters, digits and hyphens, not ending with '.' or '-', up to 64 characters.
    if valid:
        assert _create(compute, name=name).name == name
        return
    with pytest.raises(HttpResponseError) as info:
        _create(compute, name=name)
    assert info.value.status_code in (400, 404)  # a name with '.' or ' ' may not even route


def test_a_long_windows_prefix_is_cut_to_fit_the_15_character_computer_name(compute):
    body = _body(capacity=1)
    body["properties"]["virtualMachineProfile"]["osProfile"]["computerNamePrefix"] = "contosoweb01"
    compute.virtual_machine_scale_sets.begin_create_or_update(RG, "vmss1", body).result()
    instance = compute.virtual_machine_scale_set_vms.get(RG, "vmss1", "0")
    assert instance.os_profile.computer_name == "contosowe000000"
    body["properties"]["virtualMachineProfile"]["osProfile"]["computerNamePrefix"] = "x" * 16
    with pytest.raises(HttpResponseError) as info:
        compute.virtual_machine_scale_sets.begin_create_or_update(RG, "vmss2", body).result()
    assert info.value.status_code == 400 and info.value.error.target == "osProfile.computerNamePrefix"


def test_errors(compute):
    with pytest.raises(ResourceNotFoundError) as info:
        compute.virtual_machine_scale_sets.get(RG, "missing")
    assert info.value.error.code == "ResourceNotFound"
    _create(compute)
    with pytest.raises(ResourceNotFoundError) as info:
        compute.virtual_machine_scale_set_vms.get(RG, "vmss1", "7")
    assert info.value.error.code == "NotFound"
    for body, target in (
        (_body(capacity=-1), "sku.capacity"),
        (_body(mode="Elastic"), "orchestrationMode"),
        ({**_body(), "properties": {"orchestrationMode": "Uniform"}}, "virtualMachineProfile"),
    ):
        with pytest.raises(HttpResponseError) as info:
            compute.virtual_machine_scale_sets.begin_create_or_update(RG, "vmss2", body).result()
        assert info.value.status_code == 400 and info.value.error.target == target
    with pytest.raises(HttpResponseError) as info:
        compute.virtual_machine_scale_sets.begin_create_or_update(
            RG, "vmss1", _body(mode="Flexible")
        ).result()
    assert info.value.error.code == "PropertyChangeNotAllowed"
    with pytest.raises(HttpResponseError) as info:
        compute.virtual_machine_scale_sets.begin_create_or_update(
            RG, "vmss1", {**_body(), "location": "northeurope"}
        ).result()
    assert info.value.status_code == 409 and info.value.error.code == "InvalidResourceLocation"
    # A second command while one runs: 409, as on a VM.
    compute.virtual_machine_scale_set_vms.begin_run_command(
        RG, "vmss1", "0", {"commandId": "RunPowerShellScript", "script": ["Write-Output 1"]}, polling=False
    )
    with pytest.raises(HttpResponseError) as info:
        _run(compute, "0", ["Write-Output 2"])
    assert info.value.status_code == 409 and info.value.error.code == "Conflict"
    # A shell script on a Windows instance: 409, as on a VM.
    with pytest.raises(HttpResponseError) as info:
        compute.virtual_machine_scale_set_vms.begin_run_command(
            RG, "vmss1", "1", {"commandId": "RunShellScript", "script": ["echo"]}
        ).result()
    assert info.value.status_code == 409


def test_a_managed_run_command_runs_on_its_instance_and_reports_its_outcome(emulator, compute):
    created = _create(compute, identity={"type": "SystemAssigned"})
    emulator.grant_exchange_access(created.identity.principal_id)
    runs = compute.virtual_machine_scale_set_vm_run_commands
    body = {"location": "westeurope", "properties": {"source": {"script": "\n".join(INSTALL)}}}
    made = runs.begin_create_or_update(RG, "vmss1", "0", "install", body).result()
    assert made.type == "Microsoft.Compute/virtualMachineScaleSets/virtualMachines/runCommands"
    assert made.properties.provisioning_state == "Succeeded"
    connect = {
        "location": "westeurope",
        "properties": {"source": {"script": "\n".join(CONNECT)}, "runAsPassword": "secret"},
    }
    runs.begin_create_or_update(RG, "vmss1", "0", "connect", connect).result()
    view = runs.get(RG, "vmss1", "0", "connect", expand="instanceView").properties
    assert view.instance_view.execution_state == "Succeeded" and view.instance_view.exit_code == 0
    assert ORG in view.instance_view.output and view.run_as_password is None
    # The install stayed on instance 0; instance 1 has no module.
    runs.begin_create_or_update(RG, "vmss1", "1", "connect", connect).result()
    failed = runs.get(RG, "vmss1", "1", "connect", expand="instanceView").properties.instance_view
    assert failed.execution_state == "Failed" and "is not recognized" in failed.error
    assert sorted(r.name for r in runs.list(RG, "vmss1", "0")) == ["connect", "install"]
    runs.begin_delete(RG, "vmss1", "0", "install").result()
    with pytest.raises(ResourceNotFoundError):
        runs.get(RG, "vmss1", "0", "install")
    with pytest.raises(HttpResponseError) as info:
        runs.begin_create_or_update(
            RG, "vmss1", "0", "x", {"location": "westeurope", "properties": {"source": {}}}
        ).result()
    assert info.value.status_code == 400 and info.value.error.target == "source"
