"""`exomi provision` for an Automation account whose runbooks run on a Hybrid Runbook Worker group.

A hybrid worker runs jobs on its own machine: the account's system-assigned identity works there, its
user-assigned identity does not ("supported for cloud jobs only"), and the module must be installed on
the machine. exomi grants, hands back the lines, and refuses the user-assigned identity up front."""

from __future__ import annotations

from tests.engine.conftest import RG
from tests.engine.test_provision import assert_succeeded, exchange_grants, grants_of

GROUP = "ContosoWorkers"
STEPS = ["identity", "principal", "exchange-sp", "app-role", "entra-role", "hybrid-worker"]


def _worker_group(emulator, account_name: str, group: str = GROUP):
    return emulator.automation().hybrid_runbook_worker_group.create(RG, account_name, group, {})


def _provision(emulator, account, *extra: str) -> list[str]:
    return [
        "provision",
        "--target",
        account.id,
        "--organization",
        emulator.organization,
        "--hybrid-worker-group",
        GROUP,
        *extra,
    ]


async def test_a_hybrid_worker_group_gets_the_grants_and_the_lines_to_install(emulator, exomi, targets):
    account = targets.automation_account()
    _worker_group(emulator, account.name)
    position = emulator.log_position()

    code, output, stderr = exomi.run(*_provision(emulator, account))

    assert_succeeded(code, output, stderr)
    assert [s["name"] for s in output["steps"]] == STEPS
    principal_id = account.identity.principal_id
    app_roles, roles = await grants_of(emulator, principal_id)
    assert len(exchange_grants(app_roles, emulator.exchange_service_principal_id)) == 1 and len(roles) == 1
    writes = emulator.writes_since(position)
    # The two grants and nothing in the account: the worker uses its machine's modules, not imports.
    assert len(writes) == 2 and all(w["service"] == "graph" for w in writes)
    last = output["steps"][-1]["message"]
    assert last.startswith("granted, not verified")
    assert "Install-Module -Name ExchangeOnlineManagement -RequiredVersion 3.5.1 -Scope AllUsers" in last
    assert f"Connect-ExchangeOnline -ManagedIdentity -Organization {emulator.organization}" in last
    assert "ManagedIdentityAccountId" not in last  # the system-assigned identity

    position = emulator.log_position()
    code, output, stderr = exomi.run(*_provision(emulator, account))
    assert_succeeded(code, output, stderr)
    assert emulator.writes_since(position) == []

    code, output, _ = exomi.run("revoke", "--target", account.id)
    assert code == 0 and output["status"] == "revoked"
    assert emulator.exchange_access(principal_id) == (0, [])


async def test_a_user_assigned_identity_on_a_hybrid_worker_is_refused_with_the_alternatives(
    emulator, exomi, targets
):
    uai = targets.user_assigned_identity()
    account = targets.automation_account(user_assigned=[uai.id])
    _worker_group(emulator, account.name)
    position = emulator.log_position()

    code, output, _ = exomi.run(*_provision(emulator, account, "--identity", uai.id))

    assert code == 2, output
    error = output["error"]
    assert error["rule"] == "hosts" and error["field"] == "hybrid_worker_group"
    assert "supported for cloud jobs only" in error["message"]
    assert "identity 'system'" in error["message"] and "provision the Azure VM" in error["message"]
    assert emulator.writes_since(position) == []
    code, refusals, _ = exomi.run("refusals")
    assert code == 0 and [r["rule"] for r in refusals] == ["hosts"]


async def test_a_hybrid_worker_group_that_does_not_exist_ends_before_any_grant(emulator, exomi, targets):
    account = targets.automation_account()
    position = emulator.log_position()

    code, output, _ = exomi.run(*_provision(emulator, account))

    assert code != 0 and output["status"] == "failed", output
    assert f"no Hybrid Runbook Worker group '{GROUP}'" in output["message"]
    assert emulator.writes_since(position) == []
