"""`exomi provision` on a Linux VM: the same steps and writes as a Windows VM, with Run Command
RunShellScript installing pwsh and the modules and running the connect test under pwsh."""

from __future__ import annotations

import pytest

from tests.engine.test_provision import EXCHANGE_ADMIN, assert_succeeded, exchange_grants, grants_of
from tests.support.exomi import ExomiRunner, policy_for

VM_STEPS = ["identity", "principal", "exchange-sp", "app-role", "entra-role", "vm-modules", "verify"]


def _provision(emulator, vm, uai=None) -> list[str]:
    args = ["provision", "--target", vm.id, "--organization", emulator.organization]
    args += ["--role", "Exchange Administrator"]
    return args + (["--identity", uai.id] if uai else [])


@pytest.mark.parametrize("identity", ["system", "user-assigned"])
async def test_linux_vm_is_provisioned_and_verified_with_run_shell_script(emulator, exomi, targets, identity):
    # Grants propagate before the connect test runs: one verification, no retry.
    emulator.set_timings(propagation_delay=0.2, run_command=0.3)
    uai = targets.user_assigned_identity() if identity == "user-assigned" else None
    vm = targets.virtual_machine(system=uai is None, user_assigned=[uai.id] if uai else [], linux=True)
    position = emulator.log_position()

    code, output, stderr = exomi.run(*_provision(emulator, vm, uai))

    assert_succeeded(code, output, stderr)
    assert [s["name"] for s in output["steps"]] == VM_STEPS
    principal_id = uai.principal_id if uai else vm.identity.principal_id
    app_roles, roles = await grants_of(emulator, principal_id)
    assert len(exchange_grants(app_roles, emulator.exchange_service_principal_id)) == 1
    assert [r.role_definition_id for r in roles] == [EXCHANGE_ADMIN]
    # The module install and the connect test both ran as shell scripts on the VM, and both ran.
    commands = emulator.run_commands(vm.id)
    assert [c["commandId"] for c in commands] == ["RunShellScript", "RunShellScript"]
    assert all(c["done"] for c in commands)
    # Exactly the writes of a Windows VM: 2 Graph grants and 2 Run Commands.
    writes = emulator.writes_since(position)
    assert len([w for w in writes if w["service"] == "graph"]) == 2
    assert len([w for w in writes if w["path"].endswith("/runCommand")]) == 2 and len(writes) == 4
    verify = next(s for s in output["steps"] if s["name"] == "verify")
    assert verify["status"] == "done" and emulator.organization in verify["message"]

    position = emulator.log_position()
    code, output, stderr = exomi.run(*_provision(emulator, vm, uai))
    assert_succeeded(code, output, stderr)
    assert emulator.writes_since(position) == []


async def test_modules_that_cannot_run_on_linux_pwsh_fail_before_any_write(emulator, azurite, targets):
    exomi = ExomiRunner(emulator, azurite, policy=policy_for(emulator, allow_unpinned_module_versions=True))
    vm = targets.virtual_machine(linux=True)
    position = emulator.log_position()

    # Windows PowerShell 5.1 would run 3.10.0 (the policy accepts it for a VM); the pwsh 7.4 exomi
    # installs on Linux cannot.
    code, output, stderr = exomi.run(
        *_provision(emulator, vm), "--module-version", "ExchangeOnlineManagement=3.10.0"
    )

    assert code != 0 and output["status"] == "failed", output
    text = str(output)
    assert "ExchangeOnlineManagement 3.10.0 does not work on PowerShell linux-7.4" in text
    assert "before 3.10.0 (default 3.5.1)" in text
    assert emulator.writes_since(position) == []
    assert emulator.run_commands(vm.id) == []
    # Only the identity step could see the OS, yet the refusal is logged like the policy's own.
    code, refusals, _ = exomi.run("refusals")
    assert code == 0 and [(r["rule"], r["request_id"]) for r in refusals] == [("compatibility", output["id"])]
    assert refusals[0]["field"] == "module_versions.ExchangeOnlineManagement"


async def test_a_provisioned_linux_vm_diagnoses_ok_and_revokes_cleanly(emulator, exomi, targets):
    emulator.set_timings(propagation_delay=0.2, run_command=0.3)
    vm = targets.virtual_machine(linux=True)
    assert_succeeded(*exomi.run(*_provision(emulator, vm)))

    code, output, stderr = exomi.run("diagnose", "--target", vm.id)
    assert code == 0 and all(s["verdict"] in ("ok", "n/a") for s in output["steps"]), (output, stderr)

    code, output, _ = exomi.run("revoke", "--target", vm.id)
    assert code == 0 and output["status"] == "revoked"
    assert emulator.exchange_access(vm.identity.principal_id) == (0, [])
