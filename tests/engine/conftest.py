"""Fixtures for the engine's end-to-end tests: targets created by the admin, and the exomi command."""

from __future__ import annotations

import pytest

from tests.support.emulator import Emulator
from tests.support.exomi import ExomiRunner

RG = "ContosoRG"
LOCATION = "westeurope"
WINDOWS_SERVER = {
    "publisher": "MicrosoftWindowsServer",
    "offer": "WindowsServer",
    "sku": "2022-datacenter",
    "version": "latest",
}
UBUNTU = {"publisher": "Canonical", "offer": "ubuntu-24_04-lts", "sku": "server", "version": "latest"}


@pytest.fixture
def exomi(emulator, azurite) -> ExomiRunner:
    return ExomiRunner(emulator, azurite)


class Targets:
    """Resources as an admin sets them up before asking exomi (through the real SDKs)."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        emulator.resources().resource_groups.create_or_update(RG, {"location": LOCATION})

    def user_assigned_identity(self, name: str = "ContosoMI1"):
        return self.emulator.msi().user_assigned_identities.create_or_update(RG, name, {"location": LOCATION})

    def automation_account(
        self, name: str = "ContosoAzAuto1", *, system: bool = True, user_assigned: list[str] = ()
    ):
        identity: dict = {"type": "None"}
        if system or user_assigned:
            kinds = (["SystemAssigned"] if system else []) + (["UserAssigned"] if user_assigned else [])
            identity = {"type": ", ".join(kinds)}
            if user_assigned:
                identity["userAssignedIdentities"] = {uai: {} for uai in user_assigned}
        body = {"location": LOCATION, "identity": identity, "properties": {"sku": {"name": "Basic"}}}
        return self.emulator.automation().automation_account.create_or_update(RG, name, body)

    def virtual_machine(
        self,
        name: str = "contoso-vm1",
        *,
        system: bool = True,
        user_assigned: list[str] = (),
        linux: bool = False,
    ):
        kinds = (["SystemAssigned"] if system else []) + (["UserAssigned"] if user_assigned else [])
        identity: dict = {"type": ", ".join(kinds) or "None"}
        if user_assigned:
            identity["userAssignedIdentities"] = {uai: {} for uai in user_assigned}
        body = {
            "location": LOCATION,
            "identity": identity,
            "properties": {
                "hardwareProfile": {"vmSize": "Standard_B2s"},
                "osProfile": {
                    "computerName": name[:15],
                    "adminUsername": "azureuser",
                    "adminPassword": "Pa55w.rd-not-used",
                },
                "storageProfile": {"imageReference": UBUNTU if linux else WINDOWS_SERVER},
            },
        }
        return self.emulator.compute().virtual_machines.begin_create_or_update(RG, name, body).result()

    def scale_set(
        self,
        name: str = "contoso-vmss1",
        *,
        capacity: int = 2,
        flexible: bool = False,
        linux: bool = False,
        system: bool = True,
        user_assigned: list[str] = (),
    ):
        kinds = (["SystemAssigned"] if system else []) + (["UserAssigned"] if user_assigned else [])
        identity: dict = {"type": ", ".join(kinds) or "None"}
        if user_assigned:
            identity["userAssignedIdentities"] = {uai: {} for uai in user_assigned}
        body = {
            "location": LOCATION,
            "identity": identity,
            "sku": {"name": "Standard_B2s", "tier": "Standard", "capacity": capacity},
            "properties": {
                "orchestrationMode": "Flexible" if flexible else "Uniform",
                "virtualMachineProfile": {
                    "osProfile": {
                        "computerNamePrefix": name[:9],
                        "adminUsername": "azureuser",
                        "adminPassword": "Pa55w.rd-not-used",
                    },
                    "storageProfile": {"imageReference": UBUNTU if linux else WINDOWS_SERVER},
                },
            },
        }
        compute = self.emulator.compute()
        return compute.virtual_machine_scale_sets.begin_create_or_update(RG, name, body).result()

    def scale_out(self, scale_set, capacity: int):
        compute = self.emulator.compute()
        return compute.virtual_machine_scale_sets.begin_update(
            RG, scale_set.name, {"sku": {"capacity": capacity}}
        ).result()

    def function_app(
        self, name: str = "contoso-func1", *, system: bool = True, user_assigned: list[str] = (), linux=False
    ):
        kinds = (["SystemAssigned"] if system else []) + (["UserAssigned"] if user_assigned else [])
        identity: dict = {"type": ", ".join(kinds) or "None"}
        if user_assigned:
            identity["userAssignedIdentities"] = {uai: {} for uai in user_assigned}
        config = {"linuxFxVersion": "PowerShell|7.4"} if linux else {"powerShellVersion": "7.4"}
        body = {
            "location": LOCATION,
            "kind": "functionapp,linux" if linux else "functionapp",
            "identity": identity,
            "properties": {"siteConfig": config},
        }
        return self.emulator.web().web_apps.begin_create_or_update(RG, name, body).result()


@pytest.fixture
def targets(emulator) -> Targets:
    return Targets(emulator)
