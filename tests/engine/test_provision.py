"""`exomi provision` brings each kind of target to a verified state. Every assertion reads the
tenant back (Graph, ARM, the emulator's request log), not just the command's exit code."""

from __future__ import annotations

import pytest

from tests.engine.conftest import RG

EXO_APP_ID = "00000002-0000-0ff1-ce00-000000000000"
MANAGE_AS_APP = "dc50a0fb-09a3-484d-be87-e023b12c6440"
RECIPIENT_ADMIN = "31392ffb-586c-42d1-9346-e59415a2cc4e"
EXCHANGE_ADMIN = "29232cdf-9323-42fd-ade2-1d097af3e4de"
GLOBAL_READER = "f2ef992c-3afb-46b9-b7cf-a126ee74c451"  # a role exomi never grants


async def grants_of(emulator, principal_id: str) -> tuple[list, list]:
    graph = emulator.graph()
    app_roles = (
        await graph.service_principals.by_service_principal_id(principal_id).app_role_assignments.get()
    ).value
    from kiota_abstractions.base_request_configuration import RequestConfiguration
    from msgraph.generated.role_management.directory.role_assignments.role_assignments_request_builder import (
        RoleAssignmentsRequestBuilder,
    )

    query = RoleAssignmentsRequestBuilder.RoleAssignmentsRequestBuilderGetQueryParameters(
        filter=f"principalId eq '{principal_id}'"
    )
    roles = (
        await graph.role_management.directory.role_assignments.get(
            RequestConfiguration(query_parameters=query)
        )
    ).value
    return app_roles, roles


def exchange_grants(app_roles, exchange_sp_id: str) -> list:
    return [
        a for a in app_roles if str(a.resource_id) == exchange_sp_id and str(a.app_role_id) == MANAGE_AS_APP
    ]


def assert_succeeded(code: int, output: dict, stderr: str) -> None:
    assert code == 0, f"exit {code}: {output} {stderr[-2000:]}"
    assert output["status"] == "succeeded", output


async def test_automation_account_with_system_identity_is_verified(emulator, exomi, targets):
    account = targets.automation_account()
    code, output, stderr = exomi.run(
        "provision", "--target", account.id, "--organization", emulator.organization
    )
    assert_succeeded(code, output, stderr)
    assert [s["status"] for s in output["steps"]] == ["done"] * 9

    principal_id = account.identity.principal_id
    app_roles, roles = await grants_of(emulator, principal_id)
    assert len(exchange_grants(app_roles, emulator.exchange_service_principal_id)) == 1
    assert [r.role_definition_id for r in roles] == [RECIPIENT_ADMIN]  # the policy's least-privileged default

    automation = emulator.automation()
    modules = {
        m: automation.module.get(RG, account.name, m)
        for m in ("ExchangeOnlineManagement", "PackageManagement", "PowerShellGet")
    }
    assert {
        m: (x.properties.version, str(x.properties.provisioning_state.value)) for m, x in modules.items()
    } == {
        "ExchangeOnlineManagement": ("3.5.1", "Succeeded"),
        "PackageManagement": ("1.4.8.1", "Succeeded"),
        "PowerShellGet": ("2.2.5", "Succeeded"),
    }
    content = automation.runbook.get_content(RG, account.name, "exomi-connect-exchange")
    assert (
        f"Connect-ExchangeOnline -ManagedIdentity -Organization {emulator.organization} -ShowBanner:$false"
        in content
    )
    assert "ManagedIdentityAccountId" not in content
    jobs = list(automation.job.list_by_automation_account(RG, account.name))
    assert [str(j.status.value) for j in jobs] == ["Completed"]
    assert emulator.organization in automation.job.get_output(RG, account.name, jobs[0].name)
    # exomi let the identity take an Exchange token only once every grant had propagated: the one
    # token its host cached carries both (a token taken earlier would stay without them for a day).
    (token,) = [t for t in emulator.exchange_tokens() if t["principal_id"] == principal_id]
    assert token["has_exchange_app_role"] and token["role_template_ids"] == [RECIPIENT_ADMIN]

    # Every change was made by exomi's own identity, never by the admin.
    writes = [e for e in emulator.log() if e["method"] != "GET" and e["service"] in ("arm", "graph")]
    exomi_writes = [e for e in writes if e["caller_id"] == emulator.app_principal_id]
    assert {e["path"].split("/")[-1] for e in exomi_writes if e["service"] == "graph"} >= {
        "appRoleAssignments",
        "roleAssignments",
    }

    # Each change names the call that made it: Graph's request-id, or ARM's correlation id.
    code, status, _ = exomi.run("status", output["id"])
    results = [a for a in status["audit"] if a["step"] != "request" and not a["action"].endswith("(started)")]
    by_step = {a["step"]: a for a in results}
    assert by_step["app-role"]["service_request_id"] and by_step["entra-role"]["service_request_id"]
    assert by_step["modules"]["correlation_id"] and by_step["runbook"]["correlation_id"]
    assert by_step["app-role"]["correlation_id"] is None


async def test_automation_account_with_user_assigned_identity_uses_both_ids_correctly(
    emulator, exomi, targets
):
    uai = targets.user_assigned_identity()
    account = targets.automation_account(system=False, user_assigned=[uai.id])
    code, output, stderr = exomi.run(
        "provision",
        "--target",
        account.id,
        "--identity",
        uai.id,
        "--organization",
        emulator.organization,
        "--role",
        "Exchange Recipient Administrator",
    )
    assert_succeeded(code, output, stderr)
    # Graph assignments use the principal (object) id ...
    app_roles, roles = await grants_of(emulator, uai.principal_id)
    assert len(exchange_grants(app_roles, emulator.exchange_service_principal_id)) == 1
    assert [r.role_definition_id for r in roles] == [RECIPIENT_ADMIN]
    # ... and the runbook uses the client id, never the other way round.
    content = emulator.automation().runbook.get_content(RG, account.name, "exomi-connect-exchange")
    assert f"-ManagedIdentityAccountId {uai.client_id}" in content
    assert uai.principal_id not in content
    graph_paths = [e["path"] for e in emulator.log(service="graph") if e["method"] == "POST"]
    assert all(uai.client_id not in p for p in graph_paths)


async def test_runtime_7_4_uses_a_runtime_environment(emulator, exomi, targets):
    account = targets.automation_account()
    code, output, stderr = exomi.run(
        "provision", "--target", account.id, "--organization", emulator.organization, "--runtime", "7.4"
    )
    assert_succeeded(code, output, stderr)
    automation = emulator.automation()
    environment = automation.runtime_environments.get(RG, account.name, "exomi-powershell-7-4")
    assert (environment.properties.runtime.language, environment.properties.runtime.version) == (
        "PowerShell",
        "7.4",
    )
    package = automation.package.get(RG, account.name, "exomi-powershell-7-4", "ExchangeOnlineManagement")
    assert package.properties.version == "3.5.1"
    runbook = automation.runbook.get(RG, account.name, "exomi-connect-exchange")
    assert runbook.properties.runtime_environment == "exomi-powershell-7-4"
    # 7.x modules live in the runtime environment; the 5.1 modules API is left alone.
    names = {m.name for m in automation.module.list_by_automation_account(RG, account.name)}
    assert "ExchangeOnlineManagement" not in names


@pytest.mark.parametrize("identity", ["system", "user-assigned"])
async def test_virtual_machine_is_verified_with_run_command(emulator, exomi, targets, identity):
    uai = targets.user_assigned_identity() if identity == "user-assigned" else None
    vm = targets.virtual_machine(system=uai is None, user_assigned=[uai.id] if uai else [])
    args = [
        "provision",
        "--target",
        vm.id,
        "--organization",
        emulator.organization,
        "--role",
        "Exchange Administrator",
    ]
    if uai:
        args += ["--identity", uai.id]
    code, output, stderr = exomi.run(*args)
    assert_succeeded(code, output, stderr)
    assert [s["name"] for s in output["steps"]] == [
        "identity",
        "principal",
        "exchange-sp",
        "app-role",
        "entra-role",
        "vm-modules",
        "verify",
    ]
    principal_id = uai.principal_id if uai else vm.identity.principal_id
    app_roles, roles = await grants_of(emulator, principal_id)
    assert len(exchange_grants(app_roles, emulator.exchange_service_principal_id)) == 1
    assert [r.role_definition_id for r in roles] == [EXCHANGE_ADMIN]
    run_commands = [
        e for e in emulator.log(service="arm") if e["method"] == "POST" and e["path"].endswith("/runCommand")
    ]
    # One Run Command installs the modules; verification runs once more per propagation retry.
    assert len(run_commands) >= 2
    verify = next(s for s in output["steps"] if s["name"] == "verify")
    assert emulator.organization in verify["message"]


async def test_user_assigned_identity_alone_gets_its_grants(emulator, exomi, targets):
    uai = targets.user_assigned_identity()
    code, output, stderr = exomi.run("provision", "--target", uai.id, "--organization", emulator.organization)
    assert_succeeded(code, output, stderr)
    assert [s["name"] for s in output["steps"]] == [
        "identity",
        "principal",
        "exchange-sp",
        "app-role",
        "entra-role",
    ]
    app_roles, roles = await grants_of(emulator, uai.principal_id)
    assert len(exchange_grants(app_roles, emulator.exchange_service_principal_id)) == 1 and len(roles) == 1


async def test_running_a_completed_request_again_writes_nothing(emulator, exomi, targets):
    account = targets.automation_account()
    args = ("provision", "--target", account.id, "--organization", emulator.organization)
    assert_succeeded(*exomi.run(*args))
    position = emulator.log_position()
    code, output, stderr = exomi.run(*args)
    assert_succeeded(code, output, stderr)
    assert [(e["method"], e["path"]) for e in emulator.writes_since(position)] == []
    assert all(s["action"] == "none" for s in output["steps"])
