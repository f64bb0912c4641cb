"""Virtual machines through azure-mgmt-compute: the LRO wire behaviour, identities, power state,
listing and deletion."""

from __future__ import annotations

import json

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from tests.support.shapes import assert_shape, load_example

RG = "rg-vms"
VM_BODY = {
    "location": "westeurope",
    "properties": {
        "hardwareProfile": {"vmSize": "Standard_B2s"},
        "osProfile": {"computerName": "exo-vm", "adminUsername": "azureuser", "adminPassword": "S3cret!pass"},
    },
}


@pytest.fixture
def compute(emulator):
    emulator.resources().resource_groups.create_or_update(RG, {"location": "westeurope"})
    return emulator.compute()


def _principal(emulator, principal_id):
    return next((p for p in emulator.principals() if p["id"] == principal_id), None)


def test_create_is_a_long_running_operation_matching_the_spec_example(emulator, compute):
    example = load_example("compute_VirtualMachine_Create_WithPasswordAuthentication.json")
    initial_response, _ = compute.virtual_machines.begin_create_or_update(
        RG,
        "myVM",
        example["request"],
        polling=False,
        cls=lambda pipeline_response, obj, headers: (pipeline_response.http_response, obj),
    ).result()
    assert initial_response.status_code == 201
    body = json.loads(initial_response.text())
    assert_shape(example["body"], body)
    assert body["properties"]["provisioningState"] == "Creating"
    assert "adminPassword" not in body["properties"]["osProfile"]
    assert (
        "/providers/Microsoft.Compute/locations/westus/operations/"
        in initial_response.headers["Azure-AsyncOperation"]
    )

    vm = compute.virtual_machines.begin_create_or_update(RG, "myVM", example["request"]).result()
    assert vm.provisioning_state == "Succeeded"
    assert vm.vm_id == body["properties"]["vmId"]  # an update keeps the VM's id
    assert vm.os_profile.computer_name == "myVM"


def test_get_with_instance_view_update_and_list(emulator, compute):
    created = compute.virtual_machines.begin_create_or_update(RG, "vm1", VM_BODY).result()
    assert created.storage_profile.os_disk.os_type == "Windows"
    view = compute.virtual_machines.get(RG, "VM1", expand="instanceView").instance_view
    assert [s.code for s in view.statuses] == ["ProvisioningState/succeeded", "PowerState/running"]
    assert view.computer_name == "exo-vm"

    updated = compute.virtual_machines.begin_update(
        RG, "vm1", {"tags": {"exo-organization": "contoso.com"}}
    ).result()
    assert updated.tags == {"exo-organization": "contoso.com"}
    assert updated.vm_id == created.vm_id
    resized = compute.virtual_machines.begin_update(
        RG, "vm1", {"properties": {"hardwareProfile": {"vmSize": "Standard_D4s_v3"}}}
    ).result()
    assert resized.hardware_profile.vm_size == "Standard_D4s_v3"
    assert resized.os_profile.computer_name == "exo-vm"  # a PATCH merges into what is there
    assert resized.tags == {"exo-organization": "contoso.com"}

    compute.virtual_machines.begin_create_or_update(RG, "vm2", VM_BODY).result()
    assert sorted(v.name for v in compute.virtual_machines.list(RG)) == ["vm1", "vm2"]
    assert len(list(compute.virtual_machines.list_all())) == 2


def test_system_assigned_identity_lives_and_dies_with_the_vm(emulator, compute):
    vm = compute.virtual_machines.begin_create_or_update(
        RG, "vm1", {**VM_BODY, "identity": {"type": "SystemAssigned"}}
    ).result()
    principal_id = vm.identity.principal_id
    assert vm.identity.tenant_id == emulator.tenant_id
    principal = _principal(emulator, principal_id)
    assert principal["type"] == "ManagedIdentity" and principal["miResourceId"].endswith(
        "/virtualMachines/vm1"
    )

    compute.virtual_machines.begin_delete(RG, "vm1").result()
    assert _principal(emulator, principal_id) is None
    with pytest.raises(ResourceNotFoundError) as info:
        compute.virtual_machines.get(RG, "vm1")
    assert info.value.error.code == "ResourceNotFound"
    compute.virtual_machines.begin_delete(RG, "vm1").result()  # deleting again is a quiet 204


def test_identity_added_by_update_and_user_assigned_identities(emulator, compute):
    uai = emulator.msi().user_assigned_identities.create_or_update(RG, "uai1", {"location": "westeurope"})
    compute.virtual_machines.begin_create_or_update(RG, "vm1", VM_BODY).result()
    vm = compute.virtual_machines.begin_update(
        RG,
        "vm1",
        {"identity": {"type": "SystemAssigned, UserAssigned", "userAssignedIdentities": {uai.id: {}}}},
    ).result()
    assert vm.identity.type == "SystemAssigned, UserAssigned"
    assert _principal(emulator, vm.identity.principal_id) is not None
    ((key, linked),) = vm.identity.user_assigned_identities.items()
    assert "/resourcegroups/" in key  # ARM's casing in identity keys
    assert (linked.client_id, linked.principal_id) == (uai.client_id, uai.principal_id)


def test_linking_an_identity_needs_assign_permission_on_it(emulator, compute):
    uai = emulator.msi().user_assigned_identities.create_or_update(RG, "uai1", {"location": "westeurope"})
    app_compute = emulator.compute(credential=emulator.app_credential())
    body = {**VM_BODY, "identity": {"type": "UserAssigned", "userAssignedIdentities": {uai.id: {}}}}
    with pytest.raises(HttpResponseError) as info:
        app_compute.virtual_machines.begin_create_or_update(RG, "vm1", body).result()
    assert info.value.status_code == 403 and info.value.error.code == "LinkedAuthorizationFailed"
    # Virtual Machine Contributor is enough for a VM with a system-assigned identity.
    vm = app_compute.virtual_machines.begin_create_or_update(
        RG, "vm1", {**VM_BODY, "identity": {"type": "SystemAssigned"}}
    ).result()
    assert vm.identity.principal_id


def test_power_state_changes(emulator, compute):
    compute.virtual_machines.begin_create_or_update(RG, "vm1", VM_BODY).result()
    compute.virtual_machines.begin_power_off(RG, "vm1").result()
    assert compute.virtual_machines.instance_view(RG, "vm1").statuses[1].code == "PowerState/stopped"
    compute.virtual_machines.begin_deallocate(RG, "vm1").result()
    assert compute.virtual_machines.instance_view(RG, "vm1").statuses[1].display_status == "VM deallocated"
    compute.virtual_machines.begin_start(RG, "vm1").result()
    assert compute.virtual_machines.instance_view(RG, "vm1").statuses[1].code == "PowerState/running"


def test_validation_errors(emulator, compute):
    with pytest.raises(HttpResponseError) as info:
        compute.virtual_machines.begin_create_or_update(
            RG, "vm1", {"properties": VM_BODY["properties"]}
        ).result()
    assert info.value.status_code == 400 and info.value.error.code == "LocationRequired"
    with pytest.raises(HttpResponseError) as info:
        compute.virtual_machines.begin_create_or_update(
            RG, "vm1", {"location": "westeurope", "properties": {}}
        ).result()
    assert (
        info.value.error.code == "InvalidParameter" and "hardwareProfile.vmSize" in info.value.error.message
    )
    with pytest.raises(ResourceNotFoundError) as info:
        compute.virtual_machines.begin_create_or_update("nope", "vm1", VM_BODY).result()
    assert info.value.error.code == "ResourceGroupNotFound"
    compute.virtual_machines.begin_create_or_update(RG, "vm1", VM_BODY).result()
    with pytest.raises(HttpResponseError) as info:
        compute.virtual_machines.begin_create_or_update(RG, "vm1", {**VM_BODY, "location": "eastus"}).result()
    assert info.value.status_code == 409 and info.value.error.code == "InvalidResourceLocation"
