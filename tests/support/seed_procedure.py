"""The administrator of the seed document ("Use Azure managed identities to connect to Exchange Online
PowerShell"): each cmdlet the document runs, done with the real SDK request that cmdlet sends.

Az PowerShell cmdlets become azure-mgmt-* calls and Microsoft Graph PowerShell cmdlets msgraph-sdk
calls, all as the emulator's admin (Owner and Global Administrator). Nothing here uses the control
API: the tests set timings themselves.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any

from azure.mgmt.automation.models import Job, Module
from azure.mgmt.msi.models import Identity
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.models.app_role_assignment import AppRoleAssignment
from msgraph.generated.models.service_principal import ServicePrincipal
from msgraph.generated.models.unified_role_assignment import UnifiedRoleAssignment
from msgraph.generated.role_management.directory.role_definitions.role_definitions_request_builder import (
    RoleDefinitionsRequestBuilder,
)
from msgraph.generated.service_principals.service_principals_request_builder import (
    ServicePrincipalsRequestBuilder,
)

from tests.support.automation import TERMINAL_IMPORT, TERMINAL_JOB, until
from tests.support.emulator import Emulator

LOCATION = "West US"  # as the document writes it; ARM normalizes it to "westus"
ORG = "contoso.onmicrosoft.com"
ACCEPTED_DOMAINS = [ORG, "contoso.com"]  # the emulated tenant's domains
# "The AppId value is the same in every organization" / "the same in every organization".
EXCHANGE_APP_ID = "00000002-0000-0ff1-ce00-000000000000"
MANAGE_AS_APP_ROLE_ID = "dc50a0fb-09a3-484d-be87-e023b12c6440"
# The document's example version, and the REST connection dependencies its note points to.
EXO_MODULE = ("ExchangeOnlineManagement", "3.1.0")
REST_DEPENDENCIES = [("PackageManagement", "1.4.8.1"), ("PowerShellGet", "2.2.5")]


def content_link(name: str, version: str) -> str:
    """``-ContentLinkUri`` in the document's form."""
    return f"https://www.powershellgallery.com/packages/{name}/{version}"


def connect_script(organization: str = ORG, account_id: str | None = None) -> str:
    """The document's runbook: the connect line first, then the low-impact test command."""
    connect = f"Connect-ExchangeOnline -ManagedIdentity -Organization {organization}"
    if account_id:
        connect += f" -ManagedIdentityAccountId {account_id}"
    return f"{connect}\nGet-AcceptedDomain | Format-Table Name"


@dataclass
class Outcome:
    """What the person who ran the connect script sees: a job's (or a Run Command's) result."""

    status: str  # the job status, or "Succeeded" for a Run Command (it succeeds even when the script fails)
    output: list[str]
    errors: list[str]

    @property
    def lists_the_accepted_domains(self) -> bool:
        return self.output == ["Name", "----", *ACCEPTED_DOMAINS] and not self.errors


class Admin:
    """Az PowerShell and Microsoft Graph PowerShell, as the admin. Build it inside the async test (the
    Graph client belongs to the test's event loop)."""

    def __init__(self, emulator: Emulator) -> None:
        self.resources = emulator.resources()
        self.automation = emulator.automation()
        self.msi = emulator.msi()
        self.compute = emulator.compute()
        self.graph = emulator.graph()
        self.last_grant_at = 0.0

    # ------------------------------------------------------------------ Az PowerShell (ARM)

    def new_resource_group(self, name: str) -> None:
        """``New-AzResourceGroup -Name <name> -Location "West US"``"""
        group = self.resources.resource_groups.create_or_update(name, {"location": LOCATION})
        assert group.location == "westus"

    def new_user_assigned_identity(self, resource_group: str, name: str) -> Identity:
        """``New-AzUserAssignedIdentity -Name <name> -ResourceGroupName <rg> -Location "West US"``"""
        return self.msi.user_assigned_identities.create_or_update(
            resource_group, name, {"location": LOCATION}
        )

    def get_user_assigned_identity(self, resource_group: str, name: str) -> Identity:
        """``Get-AzUserAssignedIdentity -Name <name> -ResourceGroupName <rg>``"""
        return self.msi.user_assigned_identities.get(resource_group, name)

    def new_automation_account(
        self, resource_group: str, name: str, *, assign_user_identity: str | None = None
    ) -> Any:
        """``New-AzAutomationAccount ... -AssignSystemIdentity`` or ``-AssignUserIdentity $UAMI``."""
        identity: dict[str, Any] = (
            {"type": "UserAssigned", "userAssignedIdentities": {assign_user_identity: {}}}
            if assign_user_identity
            else {"type": "SystemAssigned"}
        )
        body = {"location": LOCATION, "identity": identity, "properties": {"sku": {"name": "Basic"}}}
        return self.automation.automation_account.create_or_update(resource_group, name, body)

    def new_vm(self, resource_group: str, name: str, *, assign_user_identity: str | None = None) -> Any:
        """``New-AzVM`` with a system-assigned identity, or with a user-assigned one."""
        identity: dict[str, Any] = (
            {"type": "UserAssigned", "userAssignedIdentities": {assign_user_identity: {}}}
            if assign_user_identity
            else {"type": "SystemAssigned"}
        )
        body = {
            "location": LOCATION,
            "identity": identity,
            "properties": {"hardwareProfile": {"vmSize": "Standard_B2s"}},
        }
        return self.compute.virtual_machines.begin_create_or_update(resource_group, name, body).result()

    def new_automation_module(self, resource_group: str, account: str, name: str, version: str) -> Module:
        """``New-AzAutomationModule -Name <name> -ContentLinkUri https://www.powershellgallery.com/packages/...``"""
        body = {"properties": {"contentLink": {"uri": content_link(name, version)}}}
        return self.automation.module.create_or_update(resource_group, account, name, body)

    def wait_for_module(self, resource_group: str, account: str, name: str) -> Module:
        """``Get-AzAutomationModule`` until ProvisioningState leaves Creating (and its import stages)."""
        return until(
            lambda: self.automation.module.get(resource_group, account, name),
            lambda module: module.provisioning_state in TERMINAL_IMPORT,
        )

    def new_runbook(self, resource_group: str, account: str, name: str, content: str) -> None:
        """Create a PowerShell runbook and save its content as the draft (portal: Create, Edit, Save)."""
        self.automation.runbook.create_or_update(
            resource_group, account, name, {"location": LOCATION, "properties": {"runbookType": "PowerShell"}}
        )
        self.automation.runbook_draft.begin_replace_content(resource_group, account, name, content).result()

    def publish_runbook(self, resource_group: str, account: str, name: str) -> None:
        """Portal: Publish."""
        self.automation.runbook.begin_publish(resource_group, account, name).result()
        assert self.automation.runbook.get(resource_group, account, name).state == "Published"

    def start_runbook(self, resource_group: str, account: str, runbook: str) -> str:
        """Portal: Start (a new job); answers the job's name."""
        name = str(uuid.uuid4())
        body = {"properties": {"runbook": {"name": runbook}, "parameters": {}, "runOn": ""}}
        self.automation.job.create(resource_group, account, name, body)
        return name

    def job_outcome(self, resource_group: str, account: str, job_name: str) -> Outcome:
        """Waits for the job to end; its status, Output and Error streams as the portal shows them."""
        job: Job = until(
            lambda: self.automation.job.get(resource_group, account, job_name),
            lambda j: j.status in TERMINAL_JOB,
        )
        output = self.automation.job.get_output(resource_group, account, job_name)
        errors = self.automation.job_stream.list_by_job(
            resource_group, account, job_name, filter="properties/streamType eq 'Error'"
        )
        return Outcome(job.status, output.split("\r\n") if output else [], [e.summary for e in errors])

    def invoke_run_command(
        self, resource_group: str, vm: str, script: list[str], parameters: dict[str, str] | None = None
    ) -> Outcome:
        """``Invoke-AzVMRunCommand -CommandId RunPowerShellScript``: a PowerShell window on the VM."""
        command: dict[str, Any] = {"commandId": "RunPowerShellScript", "script": script}
        if parameters:
            command["parameters"] = [{"name": k, "value": v} for k, v in parameters.items()]
        result = self.compute.virtual_machines.begin_run_command(resource_group, vm, command).result()
        stdout, stderr = result.value
        assert (stdout.code, stderr.code) == (
            "ComponentStatus/StdOut/succeeded",
            "ComponentStatus/StdErr/succeeded",
        )
        return Outcome("Succeeded", stdout.message.splitlines(), stderr.message.splitlines())

    # ------------------------------------------------------------------ Microsoft Graph PowerShell

    async def get_service_principals(self, filter: str) -> list[ServicePrincipal]:
        """``Get-MgServicePrincipal -Filter <filter>`` (``Get-AzADServicePrincipal -DisplayName`` sends
        the same ``displayName eq`` query)."""
        query = ServicePrincipalsRequestBuilder.ServicePrincipalsRequestBuilderGetQueryParameters(
            filter=filter
        )
        page = await self.graph.service_principals.get(RequestConfiguration(query_parameters=query))
        return page.value

    async def get_ad_service_principal(self, display_name: str) -> ServicePrincipal:
        """``Get-AzADServicePrincipal -DisplayName <name>``, run again until the new managed identity
        has replicated to the directory (it returns nothing at first)."""
        deadline = time.monotonic() + 15
        while True:
            found = await self.get_service_principals(f"displayName eq '{display_name}'")
            if found or time.monotonic() > deadline:
                assert len(found) == 1, found
                return found[0]
            await asyncio.sleep(0.05)

    async def get_exchange_service_principal(self) -> ServicePrincipal | None:
        """``Get-MgServicePrincipal -Filter "AppId eq '00000002-0000-0ff1-ce00-000000000000'"``"""
        found = await self.get_service_principals(f"AppId eq '{EXCHANGE_APP_ID}'")
        return found[0] if found else None

    async def new_service_principal(self, app_id: str) -> ServicePrincipal:
        """``New-MgServicePrincipal -AppId <appId>``: how "Office 365 Exchange Online" comes into a
        tenant that lacks it (what registering an app that requests Exchange.ManageAsApp leads to)."""
        return await self.graph.service_principals.post(ServicePrincipal(app_id=app_id))

    async def new_app_role_assignment(
        self, mi_id: str, resource_id: str, app_role_id: str
    ) -> AppRoleAssignment:
        """``New-MgServicePrincipalAppRoleAssignment -ServicePrincipalId $MI_ID -PrincipalId $MI_ID
        -AppRoleId $AppRoleID -ResourceId $ResourceID``"""
        body = AppRoleAssignment(
            principal_id=uuid.UUID(mi_id),
            resource_id=uuid.UUID(resource_id),
            app_role_id=uuid.UUID(app_role_id),
        )
        created = await self.graph.service_principals.by_service_principal_id(
            mi_id
        ).app_role_assignments.post(body)
        self.last_grant_at = time.time()
        return created

    async def get_role_definition_id(self, display_name: str) -> str:
        """``(Get-MgRoleManagementDirectoryRoleDefinition -Filter "DisplayName eq '<Role Name>'").Id``"""
        query = RoleDefinitionsRequestBuilder.RoleDefinitionsRequestBuilderGetQueryParameters(
            filter=f"DisplayName eq '{display_name}'"
        )
        page = await self.graph.role_management.directory.role_definitions.get(
            RequestConfiguration(query_parameters=query)
        )
        assert len(page.value) == 1
        return page.value[0].id

    async def new_role_assignment(self, mi_id: str, role_id: str) -> UnifiedRoleAssignment:
        """``New-MgRoleManagementDirectoryRoleAssignment -PrincipalId $MI_ID -RoleDefinitionId $RoleID
        -DirectoryScopeId "/"``"""
        body = UnifiedRoleAssignment(principal_id=mi_id, role_definition_id=role_id, directory_scope_id="/")
        created = await self.graph.role_management.directory.role_assignments.post(body)
        self.last_grant_at = time.time()
        return created

    # ------------------------------------------------------------------ waiting

    def wait_for_propagation(self, delay: float) -> None:
        """Grants reach the identity's Exchange token only after a while: wait until ``delay`` seconds
        have passed since the last grant (short in tests; minutes or more in real tenants)."""
        remaining = self.last_grant_at + delay - time.time()
        if remaining > 0:
            time.sleep(remaining)
