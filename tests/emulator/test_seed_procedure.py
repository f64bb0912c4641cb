"""The emulator's acceptance test: Microsoft's manual procedure (the seed document, "Use Azure managed
identities to connect to Exchange Online PowerShell"), end to end, through the real SDK clients only.

The admin follows the document's steps in order: the resource with its identity, $MI_ID, the
Exchange Online module, the Exchange.ManageAsApp grant, an Entra role, then the connect script (a
published runbook's job, or Run Command on a VM) whose output lists the tenant's accepted domains. Then
each prerequisite is left out in turn: the connection fails with the message a real user sees, and
doing the one missing step afterwards makes it work, so the difference is exactly that step.

The control API only shortens the emulated delays (and, for one case, builds a tenant without the
Exchange service principal); every step of the procedure is an SDK call as the admin.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from azure.core.exceptions import HttpResponseError
from msgraph.generated.models.o_data_errors.o_data_error import ODataError

from tests.support.emulator import Emulator
from tests.support.seed_procedure import (
    EXCHANGE_APP_ID,
    EXO_MODULE,
    MANAGE_AS_APP_ROLE_ID,
    ORG,
    REST_DEPENDENCIES,
    Admin,
    Outcome,
    connect_script,
)

PROPAGATION = 0.3  # seconds for a grant to reach the identity's token (real tenants: minutes or more)
ALL_MODULES = [*REST_DEPENDENCIES, EXO_MODULE]
ROLE = "Exchange Administrator"
WRONG_ORG = "fabrikam.onmicrosoft.com"


@pytest.fixture(autouse=True)
def quick_timings(emulator):
    emulator.set_timings(
        replication_delay=0.2,
        propagation_delay=PROPAGATION,
        module_import=0.2,
        lro=0.05,
        job_start=0.05,
        job_run=0.1,
        run_command=0.05,
        retry_after=0,  # the SDK's LRO pollers then use the clients' 0.1 s interval
    )


@dataclass
class Procedure:
    """One variant of the document: an Automation account or a VM, with a system-assigned identity
    (Steps 1-5) or a user-assigned one (Steps 1-6). The document's names; VMs are not named there."""

    admin: Admin
    host: str  # "automation" | "vm"
    identity: str  # "system" | "user"
    mi_id: str = ""  # the identity's object id: what Graph's $MI_ID must be
    client_id: str = ""  # its application (client) id: what -ManagedIdentityAccountId takes

    @property
    def resource_group(self) -> str:
        return "ContosoRG" if self.identity == "system" else "ContosoRG2"

    @property
    def resource(self) -> str:
        number = 1 if self.identity == "system" else 2
        return f"ContosoAzAuto{number}" if self.host == "automation" else f"ContosoVM{number}"

    def create_resource(self) -> None:
        """System-assigned Step 1: Create a resource with system-assigned managed identity.
        User-assigned Step 1: Create a user-assigned managed identity, and Step 2: Create a resource
        with user-assigned managed identity."""
        admin, rg = self.admin, self.resource_group
        admin.new_resource_group(rg)
        uami = None
        if self.identity == "user":
            admin.new_user_assigned_identity(rg, "ContosoMI1")
            # $UAMI = (Get-AzUserAssignedIdentity -Name "ContosoMI1" -ResourceGroupName "ContosoRG2").Id
            uami = admin.get_user_assigned_identity(rg, "ContosoMI1").id
        if self.host == "automation":
            admin.new_automation_account(rg, self.resource, assign_user_identity=uami)
        else:
            admin.new_vm(rg, self.resource, assign_user_identity=uami)

    async def store_identity(self) -> None:
        """System-assigned Step 2 / user-assigned Step 3: Store the managed identity in a variable."""
        if self.identity == "system":
            # $MI_ID = (Get-AzADServicePrincipal -DisplayName "ContosoAzAuto1").Id
            sp = await self.admin.get_ad_service_principal(self.resource)
            self.mi_id, self.client_id = sp.id, sp.app_id
            return
        # $MI_ID = (Get-AzUserAssignedIdentity -Name "ContosoMI1" -ResourceGroupName "ContosoRG2").ClientId
        uami = self.admin.get_user_assigned_identity(self.resource_group, "ContosoMI1")
        self.client_id = uami.client_id
        # The directory object behind it: its object id is the identity's principalId, not the client id
        # the document stores (see test_user_assigned_automation_account for what that does in Graph).
        sp = await self.admin.get_ad_service_principal("ContosoMI1")
        assert (sp.id, sp.app_id) == (uami.principal_id, uami.client_id)
        self.mi_id = uami.principal_id

    def add_modules(self, modules: list[tuple[str, str]]) -> None:
        """System-assigned Step 3 / user-assigned Step 4: Add the Exchange Online PowerShell module to
        the managed identity (with PackageManagement and PowerShellGet, per the REST connections note)."""
        admin, rg = self.admin, self.resource_group
        if self.host == "automation":
            for name, version in modules:
                created = admin.new_automation_module(rg, self.resource, name, version)
                assert created.provisioning_state == "Creating"
            for name, version in modules:
                module = admin.wait_for_module(rg, self.resource, name)
                assert (module.provisioning_state, module.version) == ("Succeeded", version)
            return
        # "Install the Exchange Online PowerShell module in the Azure VM": Install-Module over Run Command.
        script = [
            f"Install-Module -Name {name} -RequiredVersion {version} -Force" for name, version in modules
        ]
        installed = admin.invoke_run_command(rg, self.resource, ["$ErrorActionPreference = 'Stop'", *script])
        assert installed.errors == []

    async def grant_manage_as_app(self) -> bool:
        """System-assigned Step 4 / user-assigned Step 5: Grant the Exchange.ManageAsApp API permission.
        False when the tenant has no "Office 365 Exchange Online" ("the next step won't work")."""
        exchange = await self.admin.get_exchange_service_principal()
        if exchange is None:
            return False
        # The permission's id is the same in every organization: check value AND id
        # (... | Select-Object -ExpandProperty AppRoles | Format-Table Value,Id).
        roles = {role.value: str(role.id) for role in exchange.app_roles}
        assert roles["Exchange.ManageAsApp"] == MANAGE_AS_APP_ROLE_ID
        granted = await self.admin.new_app_role_assignment(self.mi_id, exchange.id, MANAGE_AS_APP_ROLE_ID)
        assert str(granted.app_role_id) == MANAGE_AS_APP_ROLE_ID and str(granted.principal_id) == self.mi_id
        assert granted.resource_display_name == "Office 365 Exchange Online"
        return True

    async def assign_entra_role(self) -> None:
        """System-assigned Step 5 / user-assigned Step 6: Assign Microsoft Entra roles."""
        role_id = await self.admin.get_role_definition_id(ROLE)
        assigned = await self.admin.new_role_assignment(self.mi_id, role_id)
        assert (assigned.principal_id, assigned.role_definition_id, assigned.directory_scope_id) == (
            self.mi_id,
            role_id,
            "/",
        )

    def connect(
        self, *, organization: str = ORG, account_id: str | None = None, publish: bool = True
    ) -> Outcome:
        """The document's "Connect to Exchange Online PowerShell" sections: a runbook whose first command
        is the connect line (saved, published, started), or the same commands in PowerShell on the VM."""
        admin, rg = self.admin, self.resource_group
        if self.host == "vm":
            # The document's VM form: -ManagedIdentityAccountId $MI_ID (a Run Command parameter here).
            script = connect_script(organization, "$MI_ID" if account_id else None).splitlines()
            parameters = {"MI_ID": account_id} if account_id else None
            return admin.invoke_run_command(rg, self.resource, script, parameters)
        admin.new_runbook(rg, self.resource, "ConnectEXO", connect_script(organization, account_id))
        if publish:
            admin.publish_runbook(rg, self.resource, "ConnectEXO")
        try:
            job = admin.start_runbook(rg, self.resource, "ConnectEXO")
        except HttpResponseError as refused:
            return Outcome(f"{refused.status_code} {refused.error.code}", [], [refused.error.message])
        return admin.job_outcome(rg, self.resource, job)

    @property
    def account_id(self) -> str | None:
        """What the connect line passes in -ManagedIdentityAccountId (user-assigned identities only)."""
        return self.client_id if self.identity == "user" else None


async def follow(procedure: Procedure, left_out: str | None = None) -> Outcome:
    """The whole procedure in the document's order, without ``left_out``."""
    procedure.create_resource()
    await procedure.store_identity()
    modules = {
        "module": REST_DEPENDENCIES,  # ExchangeOnlineManagement never added
        "dependencies": [EXO_MODULE],  # only the module the step names
    }.get(left_out, ALL_MODULES)
    procedure.add_modules(modules)
    if left_out != "app_role":
        # No Exchange service principal: the grant is impossible (the document's "no results" branch).
        assert await procedure.grant_manage_as_app() is (left_out != "exchange_sp")
    if left_out != "entra_role":
        await procedure.assign_entra_role()
    if left_out != "propagation":
        procedure.admin.wait_for_propagation(PROPAGATION)
    account_id = procedure.mi_id if left_out == "wrong_id" else procedure.account_id
    return procedure.connect(
        organization=WRONG_ORG if left_out == "organization" else ORG,
        account_id=account_id,
        publish=left_out != "published",
    )


async def add_what_was_left_out(emulator: Emulator, procedure: Procedure, left_out: str) -> Outcome:
    """Does the one missing step, then connects again."""
    admin = procedure.admin
    if left_out == "module":
        procedure.add_modules([EXO_MODULE])
    elif left_out == "dependencies":
        procedure.add_modules(REST_DEPENDENCIES)
    elif left_out == "exchange_sp":
        # "If the command returns no results": bring Office 365 Exchange Online into the tenant, run
        # Get-MgServicePrincipal again, then return to the grant.
        await admin.new_service_principal(EXCHANGE_APP_ID)
        assert await procedure.grant_manage_as_app()
    elif left_out == "app_role":
        assert await procedure.grant_manage_as_app()
    elif left_out == "entra_role":
        await procedure.assign_entra_role()
    elif left_out == "propagation":
        emulator.set_timings(propagation_delay=PROPAGATION)  # the long wait, done
    admin.wait_for_propagation(PROPAGATION)
    # A connection that failed for authorization left a token without the grants in the host's cache:
    # the admin also waits for it to expire (up to 24 hours in Azure) before connecting again.
    emulator.expire_exchange_tokens()
    return procedure.connect(account_id=procedure.account_id)


def assert_lists_the_accepted_domains(outcome: Outcome, status: str) -> None:
    assert outcome.status == status, outcome
    assert outcome.lists_the_accepted_domains, outcome


# ---------------------------------------------------------------------------------------------------
# The whole procedure


async def test_system_assigned_automation_account(emulator):
    procedure = Procedure(Admin(emulator), "automation", "system")
    outcome = await follow(procedure)
    assert_lists_the_accepted_domains(outcome, "Completed")
    # Every change was the admin's own SDK call, in the document's order.
    writes = emulator.writes_since(0)
    assert {e["caller_name"] for e in writes} == {"exomi-emulator-admin"}
    assert [(e["method"], "/".join(e["path"].split("/")[-2:])) for e in writes[:-1]] == [
        ("PUT", "resourcegroups/ContosoRG"),  # Step 1
        ("PUT", "automationAccounts/ContosoAzAuto1"),
        ("PUT", "modules/PackageManagement"),  # Step 3
        ("PUT", "modules/PowerShellGet"),
        ("PUT", "modules/ExchangeOnlineManagement"),
        ("POST", f"{procedure.mi_id}/appRoleAssignments"),  # Step 4
        ("POST", "directory/roleAssignments"),  # Step 5
        ("PUT", "runbooks/ConnectEXO"),  # the runbook: created, saved, published, started
        ("PUT", "draft/content"),
        ("POST", "ConnectEXO/publish"),
    ]
    assert writes[-1]["method"] == "PUT" and "/jobs/" in writes[-1]["path"]


async def test_user_assigned_automation_account(emulator):
    admin = Admin(emulator)
    procedure = Procedure(admin, "automation", "user")
    procedure.create_resource()
    await procedure.store_identity()
    procedure.add_modules(ALL_MODULES)

    # Steps 5 and 6 with the document's $MI_ID, the CLIENT id: no directory object has that id.
    exchange = await admin.get_exchange_service_principal()
    with pytest.raises(ODataError) as refused:
        await admin.new_app_role_assignment(procedure.client_id, exchange.id, MANAGE_AS_APP_ROLE_ID)
    role_id = await admin.get_role_definition_id(ROLE)
    with pytest.raises(ODataError) as also_refused:
        await admin.new_role_assignment(procedure.client_id, role_id)
    for error in (refused.value, also_refused.value):
        assert error.response_status_code == 404 and error.error.code == "Request_ResourceNotFound"
        assert error.error.message == (
            f"Resource '{procedure.client_id}' does not exist or one of its queried reference-property "
            "objects are not present."
        )

    # With the identity's principal (object) id both grants work.
    assert await procedure.grant_manage_as_app()
    await procedure.assign_entra_role()
    admin.wait_for_propagation(PROPAGATION)
    outcome = procedure.connect(account_id=procedure.client_id)
    assert_lists_the_accepted_domains(outcome, "Completed")


@pytest.mark.parametrize("identity", ["system", "user"])
async def test_vm(emulator, identity):
    procedure = Procedure(Admin(emulator), "vm", identity)
    outcome = await follow(procedure)
    assert_lists_the_accepted_domains(outcome, "Succeeded")  # Run Command: the script's stdout


# ---------------------------------------------------------------------------------------------------
# Each prerequisite left out in turn

NOT_RECOGNIZED = "The term 'Connect-ExchangeOnline' is not recognized as the name of a cmdlet"
# left out -> (job status, the stable part of the first error a user sees). "{client_id}" is the
# identity's application id, by which Exchange names it.
FAILURES = {
    # A command that is not found does not stop the script: the job completes, with errors.
    "module": ("Completed", NOT_RECOGNIZED),
    "dependencies": (
        "Failed",
        "REST based connections require the PowerShellGet and PackageManagement modules",
    ),
    "exchange_sp": ("Failed", "UnAuthorized"),
    "app_role": ("Failed", "UnAuthorized"),
    "entra_role": (
        "Failed",
        "The role assigned to application {client_id} isn't supported in this scenario.",
    ),
    "propagation": ("Failed", "UnAuthorized"),
    "organization": ("Failed", f"AADSTS90002: Tenant '{WRONG_ORG}' not found."),
    # ARM refuses a job for a runbook that was saved but never published.
    "published": ("400 BadRequest", "only published runbooks can be started"),
    "wrong_id": (
        "Failed",
        "No User Assigned or Delegated Managed Identity found for specified ClientId/ResourceId/PrincipalId",
    ),
}
# A VM's token comes from IMDS, which answers "Identity not found" for an id the VM has no identity by.
VM_MESSAGES = {
    "wrong_id": 'Failed to acquire managed identity token: {"error":"invalid_request","error_description":"Identity not found"}'
}
CASES = [
    *(("automation", "system", left_out) for left_out in FAILURES if left_out != "wrong_id"),
    *(("automation", "user", left_out) for left_out in ("module", "app_role", "entra_role", "wrong_id")),
    ("vm", "system", "dependencies"),  # Windows' inbox PackageManagement and PowerShellGet are too old
    *(("vm", "user", left_out) for left_out in ("module", "app_role", "entra_role", "wrong_id")),
]


@pytest.mark.parametrize(("host", "identity", "left_out"), CASES)
async def test_each_prerequisite_left_out_in_turn(emulator, host, identity, left_out):
    if left_out == "exchange_sp":
        emulator.reset(with_exchange_sp=False)  # a tenant that never used Exchange Online
    if left_out == "propagation":
        emulator.set_timings(propagation_delay=600)  # connecting straight after the grants
    procedure = Procedure(Admin(emulator), host, identity)

    failed = await follow(procedure, left_out)
    status, message = FAILURES[left_out]
    if host == "vm":
        status, message = "Succeeded", VM_MESSAGES.get(left_out, message)
    assert failed.status == status, failed
    assert failed.output == [] and failed.errors, failed  # no accepted domains, an error instead
    assert message.replace("{client_id}", procedure.client_id) in failed.errors[0]

    completed = await add_what_was_left_out(emulator, procedure, left_out)
    assert_lists_the_accepted_domains(completed, "Completed" if host == "automation" else "Succeeded")
