"""`exomi provision` for an Automation account whose runbooks run on a Hybrid Runbook Worker group.

A hybrid worker runs jobs on its own machine: the account's system-assigned identity works there, its
user-assigned identity does not ("supported for cloud jobs only"), and the module must be installed on
the machine. exomi grants, hands back the lines naming each worker machine, and refuses up front the
user-assigned identity and a group with an Azure Arc-enabled server among its workers. The lines it hands
back work: run on the worker VM, a job on the group then completes."""

from __future__ import annotations

import uuid

from tests.engine.conftest import RG
from tests.engine.test_provision import assert_succeeded, exchange_grants, grants_of
from tests.support.automation import STRICT_RUNBOOK, finished_job, publish_runbook

GROUP = "ContosoWorkers"
STEPS = ["identity", "principal", "exchange-sp", "app-role", "entra-role", "hybrid-worker"]


def _worker_group(emulator, account_name: str, group: str = GROUP):
    return emulator.automation().hybrid_runbook_worker_group.create(RG, account_name, group, {})


def _worker(emulator, account_name: str, machine_id: str, group: str = GROUP) -> None:
    emulator.automation().hybrid_runbook_workers.create(
        RG, account_name, group, str(uuid.uuid4()), {"properties": {"vmResourceId": machine_id}}
    )


def _run_on_the_vm(emulator, vm_name: str, script: str) -> tuple[str, str]:
    command = {"commandId": "RunPowerShellScript", "script": script.splitlines()}
    result = emulator.compute().virtual_machines.begin_run_command(RG, vm_name, command).result()
    return result.value[0].message, result.value[1].message


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
    assert "has no worker machine yet: jobs on it stay queued" in last
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


async def test_the_result_names_each_worker_machine_and_its_lines_make_a_job_on_the_group_work(
    emulator, exomi, targets
):
    account = targets.automation_account()
    _worker_group(emulator, account.name)
    vms = [targets.virtual_machine(name, system=False) for name in ("contoso-hrw1", "contoso-hrw2")]
    for vm in vms:
        _worker(emulator, account.name, vm.id)
    gone = targets.virtual_machine("contoso-hrw3", system=False)
    _worker(emulator, account.name, gone.id)
    emulator.compute().virtual_machines.begin_delete(RG, gone.name).result()
    position = emulator.log_position()

    code, output, stderr = exomi.run(*_provision(emulator, account))

    assert_succeeded(code, output, stderr)
    assert all(w["service"] == "graph" for w in emulator.writes_since(position))  # nothing on the machines
    last = output["steps"][-1]
    assert last["message"].startswith("granted, not verified")
    assert (
        f"on each worker machine of group {GROUP} (contoso-hrw1, contoso-hrw2, contoso-hrw3)"
        in last["message"]
    )
    assert "The VM of worker contoso-hrw3 no longer exists: it takes no job" in last["message"]

    # What the admin does with the lines: install the module (and the REST dependencies on 5.1) on each
    # worker, then start the runbook on the group; it connects with the account's system identity.
    install = "\n".join(
        [
            "$ErrorActionPreference = 'Stop'",
            "Install-Module PackageManagement -RequiredVersion 1.4.8.1 -Force",
            "Install-Module PowerShellGet -RequiredVersion 2.2.5 -Force",
            last["message"].split(", run ", 1)[1].split(";", 1)[0],
        ]
    )
    for vm in vms:
        assert _run_on_the_vm(emulator, vm.name, install)[1] == ""
    client = emulator.automation()
    publish_runbook(client, "HybridCheck", STRICT_RUNBOOK, account=account.name)
    emulator.set_timings(job_start=0.0, job_run=0.0)
    job = str(uuid.uuid4())
    client.job.create(
        RG, account.name, job, {"properties": {"runbook": {"name": "HybridCheck"}, "runOn": GROUP}}
    )
    done = finished_job(client, job, account=account.name)
    assert done.status == "Completed", done.exception


async def test_a_group_with_an_arc_server_among_its_workers_is_refused_before_any_grant(
    emulator, exomi, targets
):
    account = targets.automation_account()
    _worker_group(emulator, account.name)
    _worker(emulator, account.name, targets.virtual_machine("contoso-hrw1", system=False).id)
    arc = f"/subscriptions/{emulator.subscription_id}/resourceGroups/{RG}/providers/Microsoft.HybridCompute/machines/onprem-hrw2"
    _worker(emulator, account.name, arc)
    position = emulator.log_position()

    code, output, _ = exomi.run(*_provision(emulator, account))

    assert code == 1 and output["status"] == "failed", output  # a refusal only a step can make
    error = output["error"]
    assert error["rule"] == "hosts" and error["field"] == "hybrid_worker_group"
    assert "Azure Arc-enabled servers among its workers (onprem-hrw2)" in error["message"]
    assert "169.254.169.254" in error["message"] and "move the Arc servers" in error["message"]
    assert emulator.writes_since(position) == []
    code, refusals, _ = exomi.run("refusals")
    assert code == 0 and [r["rule"] for r in refusals] == ["hosts"]
