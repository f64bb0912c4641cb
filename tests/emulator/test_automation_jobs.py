"""Runbook jobs: the seed procedure's verification runbook end to end, and each prerequisite it needs.

A job runs the published runbook with emulator.powershell when it starts; these tests prepare the
tenant through the real SDK (account, modules, runbook) and the control API (Exchange grants).
"""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

from tests.support.automation import (
    ACCOUNT,
    MODULES_51,
    ORG,
    RG,
    SEED_RUNBOOK,
    STRICT_RUNBOOK,
    TERMINAL_IMPORT,
    body_of,
    create_account,
    finished_job,
    gallery_link,
    grant_exchange,
    import_modules,
    publish_runbook,
    raw_response,
    run_runbook,
    start_job,
    until,
)
from tests.support.shapes import assert_shape, load_example

DOMAINS = ["contoso.onmicrosoft.com", "contoso.com"]


@pytest.fixture(autouse=True)
def quick_polls(emulator):
    """Retry-After: 0 lets the SDK's LRO pollers use the test's 0.1 s interval."""
    emulator.set_timings(retry_after=0)


def _prepared(emulator, *, modules=MODULES_51, grant=True, identity=None):
    """The procedure's steps for a system-assigned identity on a PowerShell 5.1 account."""
    account = create_account(emulator, identity=identity)
    client = emulator.automation()
    if modules:
        assert all(m.provisioning_state == "Succeeded" for m in import_modules(client, modules).values())
    if grant and account.identity.principal_id:
        grant_exchange(emulator, account.identity.principal_id)
    return client, account


def test_the_seed_runbook_lists_the_accepted_domains(emulator):
    client, _ = _prepared(emulator)
    publish_runbook(client, "Verify", SEED_RUNBOOK)
    raw = client.job.create(
        RG,
        ACCOUNT,
        "5b8a3960-e8ab-45f6-bec6-567df8467d1a",
        {"properties": {"runbook": {"name": "Verify"}, "parameters": {}, "runOn": ""}},
        cls=raw_response,
    )
    assert raw[0].status_code == 201
    assert_shape(load_example("automation_createJob.json")["body"], body_of(raw))
    created = raw[1]
    assert created.status == "New" and created.provisioning_state == "Processing"
    assert created.job_id == "5b8a3960-e8ab-45f6-bec6-567df8467d1a"
    assert created.job_runtime_environment.runtime_environment_name == "PowerShell-5.1"

    job = finished_job(client, created.name)
    assert job.status == "Completed", job.exception
    assert job.provisioning_state == "Succeeded" and job.exception is None
    assert job.start_time and job.end_time and job.start_time <= job.end_time
    assert_shape(
        load_example("automation_getJob.json")["body"],
        body_of(client.job.get(RG, ACCOUNT, job.name, cls=raw_response)),
    )

    output = client.job.get_output(RG, ACCOUNT, job.name)
    assert output.split("\r\n") == ["Name", "----", *DOMAINS]
    streams = list(client.job_stream.list_by_job(RG, ACCOUNT, job.name))
    assert [s.stream_type for s in streams] == ["Output"] * 4
    assert streams[0].job_stream_id.startswith(created.job_id + "_")
    assert not list(
        client.job_stream.list_by_job(RG, ACCOUNT, job.name, filter="properties/streamType eq 'Error'")
    )
    single = client.job_stream.get(RG, ACCOUNT, job.name, streams[-1].job_stream_id, cls=raw_response)
    assert_shape(load_example("automation_getJobStream.json")["body"], body_of(single))
    assert single[1].stream_text == "contoso.com"
    assert client.job.get_runbook_content(RG, ACCOUNT, job.name) == SEED_RUNBOOK
    assert client.runbook.get(RG, ACCOUNT, "Verify").job_count == 1


def test_job_lists_and_stream_lists_match_the_spec_examples(emulator):
    client, _ = _prepared(emulator)
    publish_runbook(client, "Verify", SEED_RUNBOOK)
    publish_runbook(client, "Other", "Write-Output 'hello'")
    first = run_runbook(client, "Verify")
    run_runbook(client, "Other")
    assert len(list(client.job.list_by_automation_account(RG, ACCOUNT))) == 2
    listed = list(
        client.job.list_by_automation_account(RG, ACCOUNT, filter="properties/runbook/name eq 'Verify'")
    )
    assert [j.name for j in listed] == [first.name] and listed[0].status == "Completed"
    assert not list(
        client.job.list_by_automation_account(RG, ACCOUNT, filter="properties/status eq 'Failed'")
    )

    token = emulator.token(client_id=emulator.admin_client_id)
    base = (
        f"{emulator.arm_endpoint}/subscriptions/{emulator.subscription_id}/resourceGroups/{RG}/providers/"
        f"Microsoft.Automation/automationAccounts/{ACCOUNT}/jobs"
    )
    with emulator.http() as http:
        jobs = http.get(f"{base}?api-version=2024-10-23", headers={"Authorization": f"Bearer {token}"}).json()
        streams = http.get(
            f"{base}/{first.name}/streams?api-version=2024-10-23",
            headers={"Authorization": f"Bearer {token}"},
        ).json()
        bad = http.get(
            f"{base}?api-version=2024-10-23&$filter=properties/color eq 'red'",
            headers={"Authorization": f"Bearer {token}"},
        )
    assert_shape(load_example("automation_listJobsByAutomationAccount.json")["body"], jobs)
    assert_shape(load_example("automation_listJobStreamsByJob.json")["body"], streams)
    assert bad.status_code == 400


# Each prerequisite of the procedure left out in turn, with the message a real job shows.
FULL_GRANTS = {
    "app_role": "Exchange.ManageAsApp",
    "directory_role": "Exchange Administrator",
    "backdate": True,
}
CASES = {
    "no EXO module": (
        {k: v for k, v in MODULES_51.items() if k != "ExchangeOnlineManagement"},
        FULL_GRANTS,
        ORG,
    ),
    "inbox PackageManagement and PowerShellGet": ({"ExchangeOnlineManagement": "3.5.1"}, FULL_GRANTS, ORG),
    "no app role": (MODULES_51, {**FULL_GRANTS, "app_role": None}, ORG),
    "no Entra role": (MODULES_51, {**FULL_GRANTS, "directory_role": None}, ORG),
    "grants too fresh": (MODULES_51, {**FULL_GRANTS, "backdate": False}, ORG),
    "wrong organization": (MODULES_51, FULL_GRANTS, "fabrikam.onmicrosoft.com"),
}


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no EXO module", "The term 'Connect-ExchangeOnline' is not recognized"),
        ("inbox PackageManagement and PowerShellGet", "Missing or too old: PackageManagement, PowerShellGet"),
        ("no app role", "UnAuthorized"),
        ("no Entra role", "isn't supported in this scenario"),
        ("grants too fresh", "UnAuthorized"),
        ("wrong organization", "AADSTS90002: Tenant 'fabrikam.onmicrosoft.com' not found"),
    ],
)
def test_a_missing_prerequisite_fails_the_job_with_the_real_message(emulator, case, message):
    modules, grants, organization = CASES[case]
    client, account = _prepared(emulator, modules=modules, grant=False)
    publish_runbook(client, "Verify", STRICT_RUNBOOK.replace(ORG, organization))
    # Granted just before the job starts, so "fresh" grants are younger than the propagation delay.
    grant_exchange(emulator, account.identity.principal_id, **grants)
    job = run_runbook(client, "Verify")
    assert job.status == "Failed" and job.provisioning_state == "Failed"
    assert message in job.exception
    errors = list(
        client.job_stream.list_by_job(RG, ACCOUNT, job.name, filter="properties/streamType eq 'Error'")
    )
    assert errors and message in errors[0].summary
    assert client.job.get_output(RG, ACCOUNT, job.name) == ""


def test_an_account_without_a_system_identity_has_none_to_connect_with(emulator):
    client, account = _prepared(emulator, identity={"type": "None"})
    publish_runbook(client, "Verify", STRICT_RUNBOOK)
    job = run_runbook(client, "Verify")
    guid = account.automation_hybrid_service_url.rsplit("/", 1)[1]
    assert job.status == "Failed"
    assert f"No managed System identity was found for Automation account {guid}" in job.exception


def test_a_user_assigned_identity_works_by_client_id_but_not_by_object_id(emulator):
    emulator.resources().resource_groups.create_or_update(RG, {"location": "westus"})
    uai = emulator.msi().user_assigned_identities.create_or_update(RG, "ContosoMI1", {"location": "westus"})
    client, _ = _prepared(
        emulator, identity={"type": "UserAssigned", "userAssignedIdentities": {uai.id: {}}}, grant=False
    )
    grant_exchange(emulator, uai.principal_id)
    by_client_id = STRICT_RUNBOOK.replace(ORG, f"{ORG} -ManagedIdentityAccountId {uai.client_id}")
    publish_runbook(client, "ByClientId", by_client_id)
    publish_runbook(client, "ByObjectId", by_client_id.replace(uai.client_id, uai.principal_id))
    good = run_runbook(client, "ByClientId")
    assert good.status == "Completed", good.exception
    assert client.job.get_output(RG, ACCOUNT, good.name).endswith("\r\n".join(DOMAINS))
    bad = run_runbook(client, "ByObjectId")
    assert bad.status == "Failed"
    assert "No User Assigned or Delegated Managed Identity found" in bad.exception


def test_a_powershell_74_environment_only_needs_the_exo_package(emulator):
    client, account = _prepared(emulator, modules={})
    client.runtime_environments.create(
        RG,
        ACCOUNT,
        "PowerShell-7.4",
        {"location": "westus", "properties": {"runtime": {"language": "PowerShell", "version": "7.4"}}},
    )
    client.package.create_or_update(
        RG,
        ACCOUNT,
        "PowerShell-7.4",
        "ExchangeOnlineManagement",
        gallery_link("ExchangeOnlineManagement", "3.5.1"),
    )
    until(
        lambda: client.package.get(RG, ACCOUNT, "PowerShell-7.4", "ExchangeOnlineManagement"),
        lambda p: p.provisioning_state == "Succeeded",
    )
    publish_runbook(client, "Verify74", STRICT_RUNBOOK, runtime="PowerShell-7.4")
    publish_runbook(client, "Verify51", STRICT_RUNBOOK)
    job = run_runbook(client, "Verify74")
    assert job.status == "Completed", job.exception
    assert job.job_runtime_environment.runtime_environment_name == "PowerShell-7.4"
    # The 5.1 runtime of the same account has no EXO module.
    assert "is not recognized" in run_runbook(client, "Verify51").exception


def test_the_seed_runbook_fails_on_a_connect_error_even_without_stop_on_error(emulator):
    # Connect-ExchangeOnline rethrows its failures with `throw`, which ends the script: the job fails
    # with the message as its exception (office-docs-powershell#11008: "Failed / UnAuthorized").
    client, _ = _prepared(emulator, grant=False)
    publish_runbook(client, "Verify", SEED_RUNBOOK)
    job = run_runbook(client, "Verify")
    assert job.status == "Failed" and job.exception == "UnAuthorized"
    errors = list(
        client.job_stream.list_by_job(RG, ACCOUNT, job.name, filter="properties/streamType eq 'Error'")
    )
    assert [e.summary for e in errors] == ["UnAuthorized"]  # Get-AcceptedDomain never ran


def test_without_the_module_the_seed_runbook_completes_with_errors(emulator):
    # A command that is not found is a non-terminating error: the script goes on, the job completes.
    client, _ = _prepared(emulator, modules={})
    publish_runbook(client, "Verify", SEED_RUNBOOK)
    job = run_runbook(client, "Verify")
    assert job.status == "Completed" and job.exception is None
    errors = list(
        client.job_stream.list_by_job(RG, ACCOUNT, job.name, filter="properties/streamType eq 'Error'")
    )
    assert [e.summary for e in errors] == [
        f"The term '{name}' is not recognized as the name of a cmdlet, function, script file, or operable "
        "program. Check the spelling of the name, or if a path was included, verify that the path is correct "
        "and try again."
        for name in ("Connect-ExchangeOnline", "Get-AcceptedDomain")
    ]
    assert (
        len(
            list(
                client.job_stream.list_by_job(RG, ACCOUNT, job.name, filter="properties/streamType eq 'Any'")
            )
        )
        == 2
    )
    assert client.job.get_output(RG, ACCOUNT, job.name) == ""


def test_a_module_still_importing_when_the_job_starts_is_not_there(emulator):
    client, account = _prepared(emulator, modules={"PackageManagement": "1.4.8.1", "PowerShellGet": "2.2.5"})
    publish_runbook(client, "Verify", STRICT_RUNBOOK)
    emulator.set_timings(module_import=1.2)
    client.module.create_or_update(
        RG, ACCOUNT, "ExchangeOnlineManagement", gallery_link("ExchangeOnlineManagement", "3.5.1")
    )
    job_name = start_job(client, "Verify")
    until(
        lambda: client.module.get(RG, ACCOUNT, "ExchangeOnlineManagement"),
        lambda m: m.provisioning_state == "Succeeded",
    )
    job = finished_job(client, job_name)
    assert job.status == "Failed" and "'Connect-ExchangeOnline' is not recognized" in job.exception
    assert run_runbook(client, "Verify").status == "Completed"


def test_runbook_parameters_are_bound_to_the_script(emulator):
    client, _ = _prepared(emulator)
    script = (
        "param([Parameter(Mandatory=$true)][string]$Organization, [string]$Greeting = 'connected')\n"
        "$ErrorActionPreference = 'Stop'\n"
        "Connect-ExchangeOnline -ManagedIdentity -Organization $Organization\n"
        "Write-Output $Greeting"
    )
    publish_runbook(client, "Verify", script)
    job = run_runbook(client, "Verify", {"Organization": "contoso.com"})
    assert job.status == "Completed", job.exception
    assert job.parameters == {"Organization": "contoso.com"}
    assert client.job.get_output(RG, ACCOUNT, job.name) == "connected"


def test_jobs_need_a_published_runbook_and_a_new_name(emulator):
    client, _ = _prepared(emulator, modules={})
    client.runbook.create_or_update(RG, ACCOUNT, "Draft", {"properties": {"runbookType": "PowerShell"}})
    with pytest.raises(HttpResponseError) as info:
        start_job(client, "Draft")
    assert (
        info.value.status_code == 400 and "only published runbooks can be started" in info.value.error.message
    )
    with pytest.raises(ResourceNotFoundError) as info:
        start_job(client, "Missing")
    assert "runbooks/Missing" in info.value.error.message
    publish_runbook(client, "Verify", "Write-Output 'hi'")
    name = start_job(client, "Verify")
    with pytest.raises(ResourceExistsError):
        client.job.create(RG, ACCOUNT, name, {"properties": {"runbook": {"name": "Verify"}}})
    with pytest.raises(HttpResponseError) as info:
        client.job.create(
            RG, ACCOUNT, "job-2", {"properties": {"runbook": {"name": "Verify"}, "runOn": "Workers"}}
        )
    assert info.value.status_code == 400
    with pytest.raises(ResourceNotFoundError) as info:
        client.job.get(RG, ACCOUNT, "no-such-job")
    assert info.value.error.code == "ResourceNotFound"
    with pytest.raises(ResourceNotFoundError) as info:
        client.job.get(RG, "NoSuchAccount", name)
    assert info.value.error.code == "ParentResourceNotFound"


def test_stopping_a_running_job(emulator):
    client, _ = _prepared(emulator, modules={})
    publish_runbook(client, "Verify", "Write-Output 'hi'")
    emulator.set_timings(job_run=30.0)
    job_name = start_job(client, "Verify")
    until(lambda: client.job.get(RG, ACCOUNT, job_name), lambda j: j.status == "Running")
    client.job.stop(RG, ACCOUNT, job_name)
    stopped = client.job.get(RG, ACCOUNT, job_name)
    assert stopped.status == "Stopped" and stopped.end_time is not None
    with pytest.raises(HttpResponseError) as info:
        client.job.stop(RG, ACCOUNT, job_name)
    assert info.value.status_code == 400


def test_exomi_identity_does_the_whole_procedure_and_a_reader_cannot_start_jobs(emulator):
    app_client = emulator.automation(credential=emulator.app_credential())
    account = create_account(emulator, app_client)
    assert all(m.provisioning_state == "Succeeded" for m in import_modules(app_client, MODULES_51).values())
    grant_exchange(emulator, account.identity.principal_id)
    publish_runbook(app_client, "Verify", SEED_RUNBOOK)
    job = run_runbook(app_client, "Verify")
    assert job.status == "Completed" and job.started_by == "exomi-function-app"

    emulator.ctl(
        "DELETE", "/rbac", {"principal_id": emulator.app_principal_id, "role": "Automation Contributor"}
    )
    assert app_client.job.get_output(RG, ACCOUNT, job.name).endswith("contoso.com")  # Reader reads output
    with pytest.raises(HttpResponseError) as info:
        start_job(app_client, "Verify")
    assert info.value.status_code == 403
    assert "Microsoft.Automation/automationAccounts/jobs/write" in info.value.error.message


def test_the_grants_control_endpoint_refuses_what_the_tenant_lacks(emulator):
    account = create_account(emulator)
    principal_id = account.identity.principal_id
    emulator.ctl("POST", "/grants", {"principal_id": "00000000-0000-0000-0000-000000000000"}, expect=404)
    emulator.ctl(
        "POST", "/grants", {"principal_id": principal_id, "app_role": "Exchange.Everything"}, expect=400
    )
    emulator.ctl("POST", "/grants", {"principal_id": principal_id, "directory_role": "Emperor"}, expect=400)
    emulator.ctl("DELETE", "/exchange-service-principal")
    emulator.ctl(
        "POST", "/grants", {"principal_id": principal_id, "app_role": "Exchange.ManageAsApp"}, expect=409
    )


@pytest.mark.parametrize(
    ("version", "outcome"),
    [
        ("3.4.0", "Completed"),
        ("3.5.1", "Could not load file or assembly 'System.Runtime, Version=8.0.0.0"),
    ],
)
def test_on_powershell_72_only_modules_built_before_3_5_0_connect(emulator, version, outcome):
    # PowerShell 7.2 runs on .NET 6; ExchangeOnlineManagement 3.5.0 and later are built for .NET 8
    # (Microsoft's supported-versions table), so their connection fails there.
    client, _ = _prepared(emulator, modules={})
    environment = {
        "location": "westus",
        "properties": {"runtime": {"language": "PowerShell", "version": "7.2"}},
    }
    client.runtime_environments.create(RG, ACCOUNT, "exomi-powershell-7-2", environment)
    client.package.create_or_update(
        RG,
        ACCOUNT,
        "exomi-powershell-7-2",
        "ExchangeOnlineManagement",
        gallery_link("ExchangeOnlineManagement", version),
    )
    package = until(
        lambda: client.package.get(RG, ACCOUNT, "exomi-powershell-7-2", "ExchangeOnlineManagement"),
        lambda p: p.provisioning_state in TERMINAL_IMPORT,
    )
    assert package.provisioning_state == "Succeeded"  # the import itself does not look at .NET
    publish_runbook(client, "Verify72", STRICT_RUNBOOK, runtime="exomi-powershell-7-2")
    job = run_runbook(client, "Verify72")
    if outcome == "Completed":
        assert job.status == "Completed", job.exception
    else:
        assert job.status == "Failed"
        assert outcome in job.exception


def test_a_prerelease_powershellget_breaks_every_connection_in_the_sandbox(emulator):
    client, _ = _prepared(emulator, modules={**MODULES_51, "PowerShellGet": "3.0.19-beta19"})
    publish_runbook(client, "Verify", STRICT_RUNBOOK)
    job = run_runbook(client, "Verify")
    assert job.status == "Failed"
    assert job.exception.startswith("Could not find file 'C:\\Users\\Client\\Temp\\")
    assert "\\tmpEXO_" in job.exception


def test_the_seed_procedure_at_api_version_2022_08_08(emulator):
    # An older client (2022-08-08: no runtime environments yet) runs the same procedure; the answers
    # have every key of that version's spec example, and what the version lacks is refused.
    create_account(emulator)
    client = emulator.automation(api_version="2022-08-08")
    import_modules(client, MODULES_51)
    grant_exchange(emulator, emulator.automation().automation_account.get(RG, ACCOUNT).identity.principal_id)
    publish_runbook(client, "Verify", SEED_RUNBOOK)

    job = run_runbook(client, "Verify")

    assert job.status == "Completed"
    client.runbook.update(
        RG, ACCOUNT, "Verify", {"properties": {"description": "Connects to Exchange Online"}}
    )
    runbook = client.runbook.get(RG, ACCOUNT, "Verify", cls=raw_response)
    assert_shape(load_example("automation_2022-08-08_getRunbook.json")["body"], body_of(runbook))
    with pytest.raises(HttpResponseError) as info:
        client.runtime_environments.get(RG, ACCOUNT, "PowerShell-7.2")
    assert info.value.status_code == 400
