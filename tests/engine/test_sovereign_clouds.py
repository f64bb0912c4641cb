"""Sovereign clouds end to end: the emulator started as each cloud (its ARM and Graph audiences, its
Exchange Online environment) and exomi configured for it with EXOMI_CLOUD / EXOMI_EXCHANGE_ENVIRONMENT
provision a target whose scripts connect with the right -ExchangeEnvironmentName."""

from __future__ import annotations

import httpx
import pytest

from tests.engine.conftest import RG, Targets
from tests.support.automation import (
    ACCOUNT,
    MODULES_51,
    grant_exchange,
    import_modules,
    publish_runbook,
    run_runbook,
)

CLOUDS = [
    ("AzureCloud", "O365Default"),
    ("AzureUSGovernment", "O365USGovGCCHigh"),
    ("AzureUSGovernment", "O365USGovDoD"),
    ("AzureChinaCloud", "O365China"),
]


def _connect_line(organization: str, environment: str) -> str:
    line = f"Connect-ExchangeOnline -ManagedIdentity -Organization {organization}"
    return line if environment == "O365Default" else f"{line} -ExchangeEnvironmentName {environment}"


@pytest.mark.parametrize(("cloud", "environment"), CLOUDS)
def test_an_automation_account_in_each_cloud_connects_to_its_exchange(emulator, exomi, cloud, environment):
    emulator.reset(cloud=environment)
    assert (emulator.cloud, emulator.exchange_environment) == (cloud, environment)
    account = Targets(emulator).automation_account()

    code, output, stderr = exomi.run(
        "provision", "--target", account.id, "--organization", emulator.organization
    )

    assert code == 0 and output["status"] == "succeeded", f"{output} {stderr[-2000:]}"
    automation = emulator.automation()
    content = automation.runbook.get_content(RG, account.name, "exomi-connect-exchange")
    assert f"{_connect_line(emulator.organization, environment)} -ShowBanner:$false" in content
    jobs = list(automation.job.list_by_automation_account(RG, account.name))
    assert [str(j.status.value) for j in jobs] == ["Completed"]
    # What the request's result tells the admin to put in their own scripts.
    _, status, _ = exomi.run("status", output["id"])
    assert status["connect_command"] == _connect_line(emulator.organization, environment)


@pytest.mark.parametrize("linux", [False, True], ids=["windows", "linux"])
def test_a_dod_vm_is_verified_through_run_command_with_its_environment(emulator, exomi, linux):
    emulator.reset(cloud="O365USGovDoD")
    vm = Targets(emulator).virtual_machine(linux=linux)

    code, output, stderr = exomi.run("provision", "--target", vm.id, "--organization", emulator.organization)

    assert code == 0 and output["status"] == "succeeded", f"{output} {stderr[-2000:]}"
    run_commands = [
        e for e in emulator.log(service="arm") if e["method"] == "POST" and e["path"].endswith("/runCommand")
    ]
    assert len(run_commands) >= 2  # the module install, then the verification
    # A connection without -ExchangeEnvironmentName fails in DoD: the shell script carried it to pwsh.
    expected = "RunShellScript" if linux else "RunPowerShellScript"
    assert {c["commandId"] for c in emulator.run_commands(vm.id)} == {expected}


def test_a_script_without_the_environment_cannot_connect_from_a_gcc_high_tenant(emulator):
    # What exomi's connect line prevents: the seed procedure's line, unchanged, in GCC High.
    emulator.reset(cloud="O365USGovGCCHigh")
    emulator.set_timings(retry_after=0)
    account = Targets(emulator).automation_account(ACCOUNT)
    client = emulator.automation()
    import_modules(client, MODULES_51)
    grant_exchange(emulator, account.identity.principal_id)
    publish_runbook(
        client, "Seed", f"Connect-ExchangeOnline -ManagedIdentity -Organization {emulator.organization}"
    )
    job = run_runbook(client, "Seed")
    assert job.status == "Failed"
    assert (
        "AADSTS500011: The resource principal named https://outlook.office365.com was not found"
        in job.exception
    )


@pytest.mark.parametrize("endpoint", ["app-service", "imds"])
def test_an_identity_in_government_gets_no_token_for_the_commercial_cloud(emulator, endpoint):
    # A GCC High identity asking for commercial ARM: Entra in that cloud has no such resource principal.
    emulator.reset(cloud="O365USGovGCCHigh")
    wrong, right = "https://management.azure.com", "https://management.usgovcloudapi.net"
    imds = emulator.identity_endpoint.replace("/msi/token", "/metadata/identity/oauth2/token")

    def token(resource: str) -> httpx.Response:
        if endpoint == "imds":
            return httpx.get(imds, params={"resource": resource}, headers={"Metadata": "true"})
        return httpx.get(
            emulator.identity_endpoint,
            params={"api-version": "2019-08-01", "resource": resource},
            headers={"X-IDENTITY-HEADER": emulator.identity_header},
        )

    refused = token(wrong)
    assert refused.status_code == 400
    text = refused.json()["error_description" if endpoint == "imds" else "message"]
    assert text.startswith(f"AADSTS500011: The resource principal named {wrong} was not found")
    if endpoint == "imds":
        assert refused.json()["error"] == "invalid_resource"
    assert token(right).status_code == 200
    assert token("https://storage.azure.com").status_code == 200  # not modelled per cloud: allowed
