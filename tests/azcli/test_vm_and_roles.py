"""The seed procedure's user-assigned path on a VM with az (az identity, az vm, az vm run-command), and
Azure role assignments with az role."""

from __future__ import annotations

import json
import time

from tests.support.azcli import AzCli, poll
from tests.support.seed_procedure import (
    EXCHANGE_APP_ID,
    EXO_MODULE,
    MANAGE_AS_APP_ROLE_ID,
    REST_DEPENDENCIES,
    connect_script,
)

RG = "ContosoRG2"
PROPAGATION = 0.3
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"


def _vm_body(identity_id: str) -> str:
    return json.dumps(
        {
            "location": "West US",
            "identity": {"type": "UserAssigned", "userAssignedIdentities": {identity_id: {}}},
            "properties": {"hardwareProfile": {"vmSize": "Standard_B2s"}},
        }
    )


def run_command(az: AzCli, vm: str, *lines: str) -> tuple[str, str]:
    """``az vm run-command invoke --command-id RunPowerShellScript``: (stdout, stderr) of the script."""
    result = az.json(
        "vm", "run-command", "invoke", "--resource-group", RG, "--name", vm,
        "--command-id", "RunPowerShellScript", "--scripts", *lines,
    )  # fmt: skip
    stdout, stderr = result["value"]
    assert (stdout["code"], stderr["code"]) == (
        "ComponentStatus/StdOut/succeeded",
        "ComponentStatus/StdErr/succeeded",
    )
    return stdout["message"], stderr["message"]


def test_vm_with_a_user_assigned_identity(admin_az: AzCli, emulator) -> None:
    az = admin_az
    # Operations finish before az's first poll (without Retry-After az would wait 30 s between polls).
    emulator.set_timings(lro=0, run_command=0, replication_delay=0.2, propagation_delay=PROPAGATION)
    az.run("group", "create", "--name", RG, "--location", "West US")
    identity = az.json("identity", "create", "--name", "ContosoMI1", "--resource-group", RG)

    vm = az.json(
        "resource", "create", "--resource-group", RG, "--name", "ContosoVM1",
        "--resource-type", "Microsoft.Compute/virtualMachines", "--is-full-object",
        "--properties", _vm_body(identity["id"]),
    )  # fmt: skip
    assert vm["properties"]["provisioningState"] == "Succeeded"
    shown = az.json("vm", "show", "--resource-group", RG, "--name", "ContosoVM1")
    assert (shown["hardwareProfile"]["vmSize"], shown["location"]) == ("Standard_B2s", "westus")
    linked = az.json("vm", "identity", "show", "--resource-group", RG, "--name", "ContosoVM1")
    assert linked["type"] == "UserAssigned"
    [(linked_id, linked_ids)] = linked["userAssignedIdentities"].items()
    assert linked_id.lower() == identity["id"].lower()
    assert (linked_ids["clientId"], linked_ids["principalId"]) == (
        identity["clientId"],
        identity["principalId"],
    )

    # "Install the Exchange Online PowerShell module in the Azure VM".
    modules = [*REST_DEPENDENCIES, EXO_MODULE]
    install = [f"Install-Module -Name {name} -RequiredVersion {version} -Force" for name, version in modules]
    assert run_command(az, "ContosoVM1", "$ErrorActionPreference = 'Stop'", *install)[1] == ""

    # Grants for the identity's principal (its object id), once it has replicated to the directory.
    mi_id = identity["principalId"]
    poll(lambda: az.graph_rest("GET", f"/servicePrincipals?$filter=id eq '{mi_id}'")["value"], bool)
    exchange = az.graph_rest("GET", f"/servicePrincipals(appId='{EXCHANGE_APP_ID}')")
    az.graph_rest(
        "POST",
        f"/servicePrincipals/{mi_id}/appRoleAssignments",
        {"principalId": mi_id, "resourceId": exchange["id"], "appRoleId": MANAGE_AS_APP_ROLE_ID},
    )
    role = az.graph_rest(
        "GET", "/roleManagement/directory/roleDefinitions?$filter=displayName eq 'Exchange Administrator'"
    )["value"][0]
    az.graph_rest(
        "POST",
        "/roleManagement/directory/roleAssignments",
        {"principalId": mi_id, "roleDefinitionId": role["id"], "directoryScopeId": "/"},
    )
    time.sleep(PROPAGATION)

    # In a PowerShell window on the VM: the connect line with -ManagedIdentityAccountId (the client id).
    script = connect_script(emulator.organization, identity["clientId"]).splitlines()
    stdout, stderr = run_command(az, "ContosoVM1", *script)
    assert stderr == ""
    assert stdout.splitlines() == ["Name", "----", *emulator.accepted_domains]


def test_role_assignments(admin_az: AzCli, emulator) -> None:
    az = admin_az
    group = az.json("group", "create", "--name", RG, "--location", "West US")
    identity = az.json("identity", "create", "--name", "ContosoMI1", "--resource-group", RG)
    assert az.json(
        "role", "definition", "list", "--name", "Reader", "--query", "[].{name: name, type: roleType}"
    ) == [{"name": READER, "type": "BuiltInRole"}]

    # A just-created managed identity: the principal type is given, as the docs advise.
    created = az.json(
        "role", "assignment", "create", "--assignee-object-id", identity["principalId"],
        "--assignee-principal-type", "ServicePrincipal", "--role", "Reader", "--scope", group["id"],
    )  # fmt: skip
    assert created["principalId"] == identity["principalId"]
    assert created["scope"] == group["id"]
    assert created["roleDefinitionId"].endswith(
        f"/providers/Microsoft.Authorization/roleDefinitions/{READER}"
    )

    # --fill-principal-name false: names would come from graph.microsoft.com, which az knows this
    # cloud by; the emulator's Graph is reached only with az rest.
    listed = az.json(
        "role", "assignment", "list", "--scope", group["id"], "--fill-principal-name", "false",
        "--query", "[].{role: roleDefinitionName, principal: principalId, scope: scope}",
    )  # fmt: skip
    assert {"role": "Reader", "principal": identity["principalId"], "scope": group["id"]} in listed
    mine = az.json(
        "role", "assignment", "list", "--all", "--assignee-object-id", identity["principalId"],
        "--fill-principal-name", "false", "--query", "[].id",
    )  # fmt: skip
    assert mine == [created["id"]]

    az.run("role", "assignment", "delete", "--ids", created["id"])
    assert az.json(
        "role", "assignment", "list", "--all", "--assignee-object-id", identity["principalId"],
        "--fill-principal-name", "false",
    ) == []  # fmt: skip
