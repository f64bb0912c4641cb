"""The compatibility matrix (shared/compatibility.json): what it refuses, what it suggests, and that it
agrees with what the emulator's jobs and Run Commands do with every version the Gallery serves."""

from __future__ import annotations

import time

import pytest

from emulator import directory_data as dd
from emulator.powershell import GALLERY, ScriptHost, run_script
from emulator.tenant import Tenant
from emulator.timings import fast_timings
from shared.compatibility import ModuleVersion, load_matrix
from shared.policy import default_policy_document

MATRIX = load_matrix()
GOOD = {"PackageManagement": "1.4.8.1", "PowerShellGet": "2.2.5", "ExchangeOnlineManagement": "3.4.0"}
CONNECT = "$ErrorActionPreference = 'Stop'\nConnect-ExchangeOnline -ManagedIdentity -Organization contoso.onmicrosoft.com"


def test_versions_order_as_in_the_gallery():
    parse = ModuleVersion.parse
    assert parse("3.0.19-beta19") < parse("3.0.19") < parse("3.1")
    assert parse("1.4.8.1") > parse("1.4.8") == parse("1.4.8.0")
    with pytest.raises(ValueError, match="is not a module version"):
        parse("latest")


def test_exchange_online_management_3_5_1_does_not_work_on_powershell_72_and_the_fix_is_named():
    (problem,) = MATRIX.problems("7.2", {**GOOD, "ExchangeOnlineManagement": "3.5.1"})
    assert problem.module == "ExchangeOnlineManagement"
    assert "need PowerShell 7.4" in problem.reason
    assert problem.works == "ExchangeOnlineManagement 3.0.0 or later, before 3.5.0 (default 3.4.0)"
    assert "learn.microsoft.com" in MATRIX.source(problem.source)


@pytest.mark.parametrize(
    ("host", "modules", "module"),
    [
        ("7.4", {"ExchangeOnlineManagement": "3.10.0"}, "ExchangeOnlineManagement"),  # needs 7.6
        ("5.1", {"ExchangeOnlineManagement": "2.0.5"}, "ExchangeOnlineManagement"),  # no -ManagedIdentity
        ("5.1", {"PowerShellGet": "3.0.19-beta19"}, "PowerShellGet"),  # PSResourceGet#1398
        ("5.1", {"PowerShellGet": "1.0.0.1"}, "PowerShellGet"),  # the inbox version, too old for REST
        ("functions-7.4", {"ExchangeOnlineManagement": "3.5.1"}, "ExchangeOnlineManagement"),  # worker#1088
        (
            "linux-7.4",
            {"ExchangeOnlineManagement": "3.10.0"},
            "ExchangeOnlineManagement",
        ),  # pwsh 7.4 on Linux
    ],
)
def test_known_bad_combinations_are_found(host, modules, module):
    (problem,) = MATRIX.problems(host, modules)
    assert problem.module == module
    assert problem.version in problem.message


def test_windows_powershell_51_runs_every_3x_release():
    assert MATRIX.problems("5.1", {"ExchangeOnlineManagement": "3.10.0"}) == []


def test_each_hosts_defaults_work_there_and_the_default_policy_pins_them():
    pins = default_policy_document()["pinned_module_versions"]
    for host in MATRIX.hosts:
        assert MATRIX.problems(host, MATRIX.defaults(host)) == [], host
    for runtime, modules in pins.items():
        assert modules == MATRIX.defaults(runtime), runtime


def _outcome(host: str, exo: str, powershell_get: str, *, on_vm: bool) -> bool:
    # The matrix's host names the place; the emulator's host needs the PowerShell version that runs there.
    powershell = MATRIX_POWERSHELL.get(host, host)
    """Whether the emulator's Connect-ExchangeOnline succeeds with these modules on this host."""
    tenant = Tenant(fast_timings())
    principal = tenant.create_managed_identity(
        "aa", "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Automation/automationAccounts/aa"
    )
    tenant.add_app_role_assignment(principal.id, tenant.exchange_sp.id, dd.EXCHANGE_MANAGE_AS_APP_ROLE_ID)
    tenant.assign_directory_role(principal.id, dd.EXCHANGE_SUPPORTED_ROLES["Exchange Administrator"])
    script_host = ScriptHost(
        description="the host under test",
        automation_account_guid=None if on_vm else "5b8a3960-e8ab-45f6-bec6-567df8467d1a",
        system_principal_id=principal.id,
        system_client_id=principal.app_id,
        user_assigned={},
        modules={
            "exchangeonlinemanagement": exo,
            "packagemanagement": "1.4.8.1",
            "powershellget": powershell_get,
        },
        powershell=powershell,
    )
    return run_script(tenant, CONNECT, script_host, now=time.time() + 3600).succeeded


MATRIX_POWERSHELL = {"linux-7.4": "7.4"}  # pwsh on a Linux VM


@pytest.mark.parametrize(
    ("host", "on_vm"), [("5.1", False), ("5.1", True), ("7.2", False), ("7.4", False), ("linux-7.4", True)]
)
def test_the_matrix_and_the_emulator_agree_on_every_gallery_version(host, on_vm):
    """exomi refuses exactly what the emulated jobs and Run Commands fail with."""
    for exo in sorted(GALLERY["exchangeonlinemanagement"][1]):
        for powershell_get in sorted(GALLERY["powershellget"][1]):
            modules = {**GOOD, "ExchangeOnlineManagement": exo, "PowerShellGet": powershell_get}
            exomi_says_it_works = MATRIX.problems(host, modules) == []
            assert _outcome(host, exo, powershell_get, on_vm=on_vm) == exomi_says_it_works, (
                host,
                exo,
                powershell_get,
            )
