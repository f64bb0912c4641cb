"""The seed procedure with an Automation account and its system-assigned identity, every step an az
command as the admin: Azure Automation is an az extension (not installable offline), so its calls go
through ``az resource`` and ``az rest``, and Microsoft Graph PowerShell's through ``az rest`` on Graph."""

from __future__ import annotations

import time
import uuid

from tests.support.azcli import AzCli, poll
from tests.support.seed_procedure import (
    EXCHANGE_APP_ID,
    EXO_MODULE,
    MANAGE_AS_APP_ROLE_ID,
    REST_DEPENDENCIES,
    connect_script,
    content_link,
)

RG = "ContosoRG"
ACCOUNT = "ContosoAzAuto1"
API = "api-version=2024-10-23"
PROPAGATION = 0.3


def test_system_assigned_automation_account(admin_az: AzCli, emulator) -> None:
    az = admin_az
    emulator.set_timings(
        propagation_delay=PROPAGATION, module_import=0.2, lro=0.05, job_start=0.05, job_run=0.1
    )
    az.run("group", "create", "--name", RG, "--location", "West US")

    # New-AzAutomationAccount ... -AssignSystemIdentity (az resource finds the api-version itself).
    account = az.json(
        "resource",
        "create",
        "--resource-group",
        RG,
        "--name",
        ACCOUNT,
        "--resource-type",
        "Microsoft.Automation/automationAccounts",
        "--is-full-object",
        "--properties",
        '{"location": "West US", "identity": {"type": "SystemAssigned"}, "properties": {"sku": {"name": "Basic"}}}',
    )
    assert (account["location"], account["identity"]["type"]) == ("westus", "SystemAssigned")
    aa = account["id"]

    # $MI_ID = (Get-AzADServicePrincipal -DisplayName "ContosoAzAuto1").Id, once it has replicated.
    found = poll(
        lambda: az.graph_rest("GET", f"/servicePrincipals?$filter=displayName eq '{ACCOUNT}'")["value"],
        lambda value: len(value) == 1,
    )
    mi_id = found[0]["id"]
    assert mi_id == account["identity"]["principalId"]
    assert found[0]["servicePrincipalType"] == "ManagedIdentity"

    # New-AzAutomationModule for the REST dependencies and ExchangeOnlineManagement, then
    # Get-AzAutomationModule until the import is done ("Creating", then "Succeeded"). With az resource
    # create az would wait itself, polling at ARM's default 30 s without a Retry-After.
    for name, version in [*REST_DEPENDENCIES, EXO_MODULE]:
        module = f"{aa}/modules/{name}"
        body = {"properties": {"contentLink": {"uri": content_link(name, version)}}}
        created = az.rest("PUT", f"{az.arm}{module}?{API}", body)
        assert (created["name"], created["properties"]["provisioningState"]) == (name, "Creating")
    for name, version in [*REST_DEPENDENCIES, EXO_MODULE]:
        imported = poll(
            lambda: az.json("resource", "show", "--ids", f"{aa}/modules/{name}", "--query", "properties"),  # noqa: B023
            lambda p: p["provisioningState"] in ("Succeeded", "Failed", "Canceled"),
        )
        assert (imported["provisioningState"], imported["version"]) == ("Succeeded", version)

    # Step 4: Exchange.ManageAsApp for the identity.
    exchange = az.graph_rest("GET", f"/servicePrincipals?$filter=appId eq '{EXCHANGE_APP_ID}'")["value"]
    assert [sp["displayName"] for sp in exchange] == ["Office 365 Exchange Online"]
    grant = az.graph_rest(
        "POST",
        f"/servicePrincipals/{mi_id}/appRoleAssignments",
        {"principalId": mi_id, "resourceId": exchange[0]["id"], "appRoleId": MANAGE_AS_APP_ROLE_ID},
    )
    assert (grant["principalId"], grant["resourceDisplayName"]) == (mi_id, "Office 365 Exchange Online")
    # Step 5: the Exchange Administrator role.
    roles = az.graph_rest(
        "GET", "/roleManagement/directory/roleDefinitions?$filter=displayName eq 'Exchange Administrator'"
    )["value"]
    assigned = az.graph_rest(
        "POST",
        "/roleManagement/directory/roleAssignments",
        {"principalId": mi_id, "roleDefinitionId": roles[0]["id"], "directoryScopeId": "/"},
    )
    assert (assigned["principalId"], assigned["roleDefinitionId"]) == (mi_id, roles[0]["id"])
    granted_at = time.time()

    # The runbook: created, its draft saved, published (both long-running: az rest does not wait, so
    # the user looks again), then started.
    runbook = f"{az.arm}{aa}/runbooks/ConnectEXO"
    created = az.rest(
        "PUT", f"{runbook}?{API}", {"location": "westus", "properties": {"runbookType": "PowerShell"}}
    )
    assert created["properties"]["state"] == "New"
    script = connect_script(emulator.organization)
    az.run(
        "rest", "--method", "put", "--url", f"{runbook}/draft/content?{API}", "--body", script,
        "--headers", "Content-Type=text/powershell",
    )  # fmt: skip
    poll(
        lambda: az.text("rest", "--url", f"{runbook}/draft/content?{API}"),
        lambda text: text.strip() == script,
    )
    az.run("rest", "--method", "post", "--url", f"{runbook}/publish?{API}")
    poll(
        lambda: az.rest("GET", f"{runbook}?{API}")["properties"]["state"], lambda state: state == "Published"
    )

    time.sleep(max(0.0, granted_at + PROPAGATION - time.time()))  # the grants reach Exchange
    job = f"{az.arm}{aa}/jobs/{uuid.uuid4()}?{API}"
    started = az.rest("PUT", job, {"properties": {"runbook": {"name": "ConnectEXO"}, "parameters": {}}})
    assert started["properties"]["status"] == "New"
    finished = poll(
        lambda: az.rest("GET", job)["properties"],
        lambda p: p["status"] in ("Completed", "Failed", "Stopped", "Suspended"),
    )
    assert finished["status"] == "Completed", finished
    output = az.text("rest", "--url", job.replace("?", "/output?"))
    assert output.strip().splitlines() == ["Name", "----", *emulator.accepted_domains]
