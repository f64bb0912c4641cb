"""The script outcomes a runbook job or Run Command produces, decided from the tenant's state.

These run the evaluator directly on a tenant object; the Automation and VM tests run the same scripts
through the real SDKs.
"""

from __future__ import annotations

import time

import pytest

from emulator import directory_data as dd
from emulator.clouds import CLOUDS
from emulator.powershell import ScriptHost, run_script
from emulator.tenant import ServicePrincipal, Tenant
from emulator.timings import fast_timings

CONNECT = "$ErrorActionPreference = 'Stop'\nConnect-ExchangeOnline -ManagedIdentity -Organization contoso.onmicrosoft.com\nGet-AcceptedDomain | Format-Table Name"
READY_MODULES = {
    "exchangeonlinemanagement": "3.5.1",
    "packagemanagement": "1.4.8.1",
    "powershellget": "2.2.5",
}
LATER = time.time() + 3600  # long after every grant's propagation


@pytest.fixture
def tenant() -> Tenant:
    return Tenant(fast_timings())


def _host(tenant: Tenant, *, system: bool = True, modules=None, user_assigned=None) -> tuple[ScriptHost, str]:
    principal = tenant.create_managed_identity(
        "aa", "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Automation/automationAccounts/aa"
    )
    host = ScriptHost(
        description="Automation account 'aa'",
        automation_account_guid="5b8a3960-e8ab-45f6-bec6-567df8467d1a",
        system_principal_id=principal.id if system else None,
        system_client_id=principal.app_id if system else None,
        user_assigned=user_assigned or {},
        modules=dict(READY_MODULES if modules is None else modules),
    )
    return host, principal.id


def _grant_all(tenant: Tenant, principal_id: str, role: str = "Exchange Administrator") -> None:
    tenant.add_app_role_assignment(principal_id, tenant.exchange_sp.id, dd.EXCHANGE_MANAGE_AS_APP_ROLE_ID)
    tenant.assign_directory_role(principal_id, dd.EXCHANGE_SUPPORTED_ROLES[role])


def _user_assigned_host(tenant: Tenant) -> tuple[ServicePrincipal, ScriptHost]:
    """(identity, host) for a host whose only identity is the user-assigned mi1, granted everything."""
    uai = tenant.create_managed_identity(
        "mi1",
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/mi1",
    )
    host, _ = _host(tenant, system=False, user_assigned={uai.app_id: uai.id})
    _grant_all(tenant, uai.id)
    return uai, host


def test_a_fully_prepared_identity_lists_the_accepted_domains(tenant):
    host, principal_id = _host(tenant)
    _grant_all(tenant, principal_id)
    outcome = run_script(tenant, CONNECT, host, now=LATER)
    assert outcome.succeeded, outcome.exception
    assert outcome.output == ["Name", "----", "contoso.onmicrosoft.com", "contoso.com"]


@pytest.mark.parametrize(
    ("modules", "message"),
    [
        ({}, "The term 'Connect-ExchangeOnline' is not recognized"),
        ({"exchangeonlinemanagement": "3.5.1"}, "require the PowerShellGet and PackageManagement modules"),
        (
            {"exchangeonlinemanagement": "3.5.1", "packagemanagement": "1.0.0.1", "powershellget": "1.0.0.1"},
            "Missing or too old: PackageManagement, PowerShellGet",
        ),
    ],
)
def test_missing_modules_fail_the_connection(tenant, modules, message):
    host, principal_id = _host(tenant, modules=modules)
    _grant_all(tenant, principal_id)
    outcome = run_script(tenant, CONNECT, host, now=LATER)
    assert not outcome.succeeded and message in outcome.exception


def test_without_the_app_role_the_connection_is_unauthorized(tenant):
    host, principal_id = _host(tenant)
    tenant.assign_directory_role(principal_id, dd.EXCHANGE_SUPPORTED_ROLES["Exchange Administrator"])
    assert run_script(tenant, CONNECT, host, now=LATER).exception == "UnAuthorized"


def test_a_look_alike_app_role_does_not_work(tenant):
    host, principal_id = _host(tenant)
    look_alike = next(r["id"] for r in tenant.exchange_sp.app_roles if r["value"] == "Exchange.ManageAsAppV2")
    tenant.add_app_role_assignment(principal_id, tenant.exchange_sp.id, look_alike)
    tenant.assign_directory_role(principal_id, dd.EXCHANGE_SUPPORTED_ROLES["Exchange Administrator"])
    assert run_script(tenant, CONNECT, host, now=LATER).exception == "UnAuthorized"


def test_without_a_supported_entra_role_the_role_is_not_supported(tenant):
    host, principal_id = _host(tenant)
    tenant.add_app_role_assignment(principal_id, tenant.exchange_sp.id, dd.EXCHANGE_MANAGE_AS_APP_ROLE_ID)
    tenant.assign_directory_role(principal_id, dd.OTHER_BUILT_IN_ROLES["User Administrator"])
    outcome = run_script(tenant, CONNECT, host, now=LATER)
    app_id = tenant.principal(principal_id).app_id
    assert outcome.exception.startswith(
        f"The role assigned to application {app_id} isn't supported in this scenario."
    )


def test_fresh_grants_have_not_propagated_yet(tenant):
    host, principal_id = _host(tenant)
    _grant_all(tenant, principal_id)
    assert run_script(tenant, CONNECT, host, now=time.time()).exception == "UnAuthorized"


def test_unknown_organization_is_reported(tenant):
    host, principal_id = _host(tenant)
    _grant_all(tenant, principal_id)
    outcome = run_script(
        tenant, CONNECT.replace("contoso.onmicrosoft.com", "fabrikam.onmicrosoft.com"), host, now=LATER
    )
    assert "AADSTS90002: Tenant 'fabrikam.onmicrosoft.com' not found" in outcome.exception


def test_no_system_identity_on_the_account(tenant):
    host, _ = _host(tenant, system=False)
    outcome = run_script(tenant, CONNECT, host, now=LATER)
    assert "No managed System identity was found for Automation account" in outcome.exception


def test_user_assigned_identity_needs_its_client_id_not_its_object_id(tenant):
    uai, host = _user_assigned_host(tenant)
    by_client_id = CONNECT.replace(
        "contoso.onmicrosoft.com\n", f"contoso.onmicrosoft.com -ManagedIdentityAccountId {uai.app_id}\n"
    )
    assert run_script(tenant, by_client_id, host, now=LATER).succeeded
    by_object_id = by_client_id.replace(uai.app_id, uai.id)
    outcome = run_script(tenant, by_object_id, host, now=LATER)
    assert "No User Assigned or Delegated Managed Identity found" in outcome.exception


@pytest.mark.parametrize("by_object_id", [False, True])
def test_on_a_vm_imds_knows_no_such_identity(tenant, by_object_id):
    # No system-assigned identity, or a user-assigned one asked for by its object id: IMDS answers
    # "Identity not found" where the Automation endpoint names what it could not find.
    uai, host = _user_assigned_host(tenant)
    host.automation_account_guid = None  # a VM
    script = CONNECT.replace(
        "contoso.onmicrosoft.com\n", f"contoso.onmicrosoft.com -ManagedIdentityAccountId {uai.id}\n"
    )
    outcome = run_script(tenant, script if by_object_id else CONNECT, host, now=LATER)
    assert outcome.exception == (
        'Failed to acquire managed identity token: {"error":"invalid_request","error_description":"Identity not found"}'
    )


def test_variables_are_substituted_as_in_the_seed_procedure(tenant):
    uai, host = _user_assigned_host(tenant)
    script = f'$MI_ID = "{uai.app_id}"\nConnect-ExchangeOnline -ManagedIdentity -Organization contoso.onmicrosoft.com -ManagedIdentityAccountId $MI_ID\nGet-AcceptedDomain'
    assert run_script(tenant, script, host, now=LATER).output[-2:] == [
        "contoso.onmicrosoft.com",
        "contoso.com",
    ]


def test_without_stop_preference_errors_are_recorded_and_the_script_continues(tenant):
    host, _ = _host(tenant, modules={})
    outcome = run_script(
        tenant,
        "Connect-ExchangeOnline -ManagedIdentity -Organization contoso.onmicrosoft.com\nWrite-Output done",
        host,
        now=LATER,
    )
    assert outcome.succeeded and outcome.output == ["done"]
    assert "is not recognized" in outcome.errors[0]


def test_connect_failures_end_the_script_whatever_the_error_preference(tenant):
    # The module rethrows with `throw`; only a command that is not found is non-terminating.
    host, principal_id = _host(tenant)
    tenant.assign_directory_role(principal_id, dd.EXCHANGE_SUPPORTED_ROLES["Exchange Administrator"])
    outcome = run_script(
        tenant,
        "Connect-ExchangeOnline -ManagedIdentity -Organization contoso.onmicrosoft.com\nWrite-Output done",
        host,
        now=LATER,
    )
    assert not outcome.succeeded and outcome.exception == "UnAuthorized"
    assert outcome.output == [] and outcome.errors == ["UnAuthorized"]


def test_install_module_on_a_vm_makes_the_module_available(tenant):
    installed = {}
    host, principal_id = _host(tenant, modules={"packagemanagement": "1.4.8.1", "powershellget": "2.2.5"})
    host.install_module = lambda name, version: installed.__setitem__(name, version)
    _grant_all(tenant, principal_id)
    script = (
        "$ErrorActionPreference = 'Stop'\nInstall-Module -Name ExchangeOnlineManagement -RequiredVersion 3.5.1 -Force -Scope AllUsers\n"
        + CONNECT
    )
    outcome = run_script(tenant, script, host, now=LATER)
    assert outcome.succeeded and installed == {"ExchangeOnlineManagement": "3.5.1"}
    bad = run_script(
        tenant, "Install-Module -Name ExchangeOnlineManagement -RequiredVersion 9.9.9 -ErrorAction Stop", host
    )
    assert "No match was found" in bad.exception


@pytest.mark.parametrize(
    ("argument", "outcome"),
    [
        (" -ExchangeEnvironmentName O365USGovGCCHigh", None),
        ("", "AADSTS500011: The resource principal named https://outlook.office365.com was not found"),
        (" -ExchangeEnvironmentName O365USGovDoD", "named https://webmail.apps.mil was not found"),
        (" -ExchangeEnvironmentName O365Gov", "Cannot bind parameter 'ExchangeEnvironmentName'"),
    ],
)
def test_a_gcc_high_tenant_connects_only_with_its_exchange_environment(argument, outcome):
    tenant = Tenant(fast_timings(), cloud=CLOUDS["O365USGovGCCHigh"])
    host, principal_id = _host(tenant)
    _grant_all(tenant, principal_id)
    script = CONNECT.replace(
        "-Organization contoso.onmicrosoft.com", f"-Organization contoso.onmicrosoft.com{argument}"
    )
    result = run_script(tenant, script, host, now=LATER)
    if outcome is None:
        assert result.succeeded, result.exception
    else:
        assert not result.succeeded and outcome in result.exception
