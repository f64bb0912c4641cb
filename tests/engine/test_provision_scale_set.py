"""`exomi provision` on VM scale sets: the grants for the set's one identity, the modules on every
instance (per-instance Run Command, in parallel), the connect test where they were installed; an
instance added later is reported by diagnose and a second provision installs on it only."""

from __future__ import annotations

import json

from azure.data.tables import TableClient

from tests.engine.test_provision import EXCHANGE_ADMIN, assert_succeeded, exchange_grants, grants_of
from tests.engine.test_resilience import _wait_for
from tests.support.exomi import ExomiRunner, policy_for

SCALE_SET_STEPS = ["identity", "principal", "exchange-sp", "app-role", "entra-role", "vmss-modules", "verify"]


def _provision(emulator, scale_set, uai=None) -> list[str]:
    args = ["provision", "--target", scale_set.id, "--organization", emulator.organization]
    args += ["--role", "Exchange Administrator"]
    return args + (["--identity", uai.id] if uai else [])


def _instance_ids(emulator, scale_set) -> list[str]:
    compute = emulator.compute()
    if scale_set.properties.orchestration_mode == "Flexible":
        vms = compute.virtual_machines.list(
            "ContosoRG", filter=f"'virtualMachineScaleSet/id' eq '{scale_set.id}'"
        )
        return [vm.id for vm in vms]
    return [vm.id for vm in compute.virtual_machine_scale_set_vms.list("ContosoRG", scale_set.name)]


def _step(output, name):
    return next(s for s in output["steps"] if s["name"] == name)


async def test_a_uniform_windows_set_and_a_flexible_linux_set_are_provisioned(emulator, exomi, targets):
    emulator.set_timings(propagation_delay=0.2, run_command=0.3)
    uniform = targets.scale_set("contoso-vmss1", capacity=2)
    flexible = targets.scale_set("contoso-vmss2", capacity=1, flexible=True, linux=True)

    for scale_set, command, instances in (
        (uniform, "RunPowerShellScript", 2),
        (flexible, "RunShellScript", 1),
    ):
        position = emulator.log_position()
        code, output, stderr = exomi.run(*_provision(emulator, scale_set))

        assert_succeeded(code, output, stderr)
        assert [s["name"] for s in output["steps"]] == SCALE_SET_STEPS
        app_roles, roles = await grants_of(emulator, scale_set.identity.principal_id)
        assert len(exchange_grants(app_roles, emulator.exchange_service_principal_id)) == 1
        assert [r.role_definition_id for r in roles] == [EXCHANGE_ADMIN]
        # Every instance got the module install and the connect test, with the command for its OS.
        ids = _instance_ids(emulator, scale_set)
        assert len(ids) == instances
        for instance in ids:
            commands = emulator.run_commands(instance)
            assert [c["commandId"] for c in commands] == [command, command] and all(
                c["done"] for c in commands
            )
        # The writes: 2 Graph grants, and 2 Run Commands per instance.
        writes = emulator.writes_since(position)
        assert len([w for w in writes if w["service"] == "graph"]) == 2
        assert len([w for w in writes if w["path"].lower().endswith("/runcommand")]) == 2 * instances
        assert len(writes) == 2 + 2 * instances
        verify = _step(output, "verify")
        assert verify["status"] == "done" and emulator.organization in verify["message"]
        _, status, _ = exomi.run("status", output["id"])
        assert status["connect_command"] == (
            f"Connect-ExchangeOnline -ManagedIdentity -Organization {emulator.organization}"
        )

        # Again: nothing to do, nothing written.
        position = emulator.log_position()
        assert_succeeded(*exomi.run(*_provision(emulator, scale_set)))
        assert emulator.writes_since(position) == []


async def test_an_instance_added_later_is_reported_and_a_second_provision_installs_on_it_only(
    emulator, exomi, targets
):
    emulator.set_timings(propagation_delay=0.2, run_command=0.3)
    scale_set = targets.scale_set(capacity=2)
    assert_succeeded(*exomi.run(*_provision(emulator, scale_set)))

    targets.scale_out(scale_set, 3)
    new_instance = f"{scale_set.name}_2"

    code, output, _ = exomi.run("diagnose", "--target", scale_set.id)
    modules = _step(output, "vmss-modules")
    assert modules["verdict"] == "missing" and f"instance {new_instance}" in modules["detail"]
    assert "provision again" in modules["fix"] and "contoso-vmss1_0" not in modules["detail"]

    position = emulator.log_position()
    code, output, stderr = exomi.run(*_provision(emulator, scale_set))
    assert_succeeded(code, output, stderr)
    # Only the new instance ran anything: its install and its connect test; no grant was made again.
    writes = emulator.writes_since(position)
    assert [w["path"].split("/virtualMachines/")[1] for w in writes] == ["2/runCommand", "2/runCommand"]
    assert new_instance in _step(output, "verify")["message"]

    code, output, _ = exomi.run("diagnose", "--target", scale_set.id)
    assert code == 0 and all(s["verdict"] in ("ok", "n/a") for s in output["steps"]), output

    # Revoking takes the set's grants away, as for a VM (the modules stay on the instances).
    code, output, _ = exomi.run("revoke", "--target", scale_set.id)
    assert code == 0 and output["status"] == "revoked"
    assert emulator.exchange_access(scale_set.identity.principal_id) == (0, [])


async def test_a_set_without_instances_is_granted_not_verified_and_revokes(emulator, exomi, targets):
    scale_set = targets.scale_set(capacity=0)
    position = emulator.log_position()

    code, output, stderr = exomi.run(*_provision(emulator, scale_set))

    assert_succeeded(code, output, stderr)
    assert "granted, not verified" in _step(output, "verify")["message"]
    assert "no instances" in _step(output, "vmss-modules")["message"]
    assert len(emulator.writes_since(position)) == 2  # the grants only
    assert emulator.exchange_access(scale_set.identity.principal_id)[0] > 0

    code, output, _ = exomi.run("revoke", "--target", scale_set.id)
    assert code == 0 and output["status"] == "revoked"
    assert emulator.exchange_access(scale_set.identity.principal_id) == (0, [])


async def test_verification_waits_for_propagation_on_every_instance(emulator, exomi, targets):
    # Deterministic: the grants do not reach Exchange until the test releases them, after the first
    # connect test has failed on both instances.
    emulator.set_timings(run_command=0.3)
    emulator.ctl("PUT", "/propagation", {"held": True})
    scale_set = targets.scale_set(capacity=2)
    ids = _instance_ids(emulator, scale_set)
    process = exomi.start(*_provision(emulator, scale_set))

    def first_tests_ran():
        return all(sum(c["done"] for c in emulator.run_commands(i)) >= 2 for i in ids)

    await _wait_for(first_tests_ran, "the first connect test to end on both instances")
    emulator.ctl("PUT", "/propagation", {"held": False})
    emulator.expire_exchange_tokens()  # what the passing of the cached tokens' lifetime does
    stdout, stderr = process.communicate(timeout=120)
    output = json.loads(stdout)
    assert_succeeded(process.returncode, output, stderr)
    # Each instance: one install, a refused test, and a test after propagation.
    assert all(len(emulator.run_commands(i)) >= 3 for i in ids)
    verify = _step(output, "verify")
    assert f"{scale_set.name}_0" in verify["message"] and f"{scale_set.name}_1" in verify["message"]


async def test_a_user_assigned_identity_connects_by_its_client_id_on_every_instance(emulator, exomi, targets):
    emulator.set_timings(propagation_delay=0.2, run_command=0.3)
    uai = targets.user_assigned_identity()
    scale_set = targets.scale_set(capacity=2, system=False, user_assigned=[uai.id], linux=True)

    code, output, stderr = exomi.run(*_provision(emulator, scale_set, uai))

    assert_succeeded(code, output, stderr)
    app_roles, _ = await grants_of(emulator, uai.principal_id)
    assert len(exchange_grants(app_roles, emulator.exchange_service_principal_id)) == 1
    _, status, _ = exomi.run("status", output["id"])
    assert f"-ManagedIdentityAccountId {uai.client_id}" in status["connect_command"]
    assert _step(output, "verify")["status"] == "done"


async def test_modules_that_cannot_run_on_a_linux_sets_pwsh_fail_before_any_write(emulator, azurite, targets):
    exomi = ExomiRunner(emulator, azurite, policy=policy_for(emulator, allow_unpinned_module_versions=True))
    scale_set = targets.scale_set(capacity=1, linux=True)
    position = emulator.log_position()

    code, output, _ = exomi.run(
        *_provision(emulator, scale_set), "--module-version", "ExchangeOnlineManagement=3.10.0"
    )

    assert code != 0 and output["status"] == "failed", output
    assert "does not work on PowerShell linux-7.4" in str(output)
    assert emulator.writes_since(position) == []


async def test_an_instance_removed_while_exomi_works_on_it_is_left_out(emulator, exomi, targets):
    # The set scales in while the installs run: the instance that went is no failure, the one that stays
    # gets the modules and the connect test (whenever the scale in lands, before or after its install ends).
    emulator.set_timings(propagation_delay=0.2, run_command=2.0)
    scale_set = targets.scale_set(capacity=2)
    ids = _instance_ids(emulator, scale_set)
    process = exomi.start(*_provision(emulator, scale_set))
    await _wait_for(lambda: all(emulator.run_commands(i) for i in ids), "the installs to start on both")
    targets.scale_out(scale_set, 1)  # scale in: the highest instance id goes

    stdout, stderr = process.communicate(timeout=120)
    output = json.loads(stdout)
    assert_succeeded(process.returncode, output, stderr)
    assert f"{scale_set.name}_0" in _step(output, "verify")["message"]
    code, output, _ = exomi.run("diagnose", "--target", scale_set.id)
    assert code == 0 and all(s["verdict"] in ("ok", "n/a") for s in output["steps"]), output


def _recorded_instances(exomi, scale_set) -> set[str]:
    """Where exomi's target record (Table Storage) says it installed the modules."""
    table = TableClient.from_connection_string(exomi.storage, f"{exomi.table_prefix}targets")
    record = next(
        e for e in table.query_entities("RowKey eq 'state'") if e["Target"].lower() == scale_set.id.lower()
    )
    return {m["runtime_environment"] for m in json.loads(record["Granted"])["modules"]}


async def test_instances_the_set_scaled_in_leave_the_record(emulator, exomi, targets):
    # A Uniform set may give a scaled-in instance's id (and so its name) to a new machine (Microsoft Learn,
    # "Understand names and instance IDs for Azure Virtual Machine Scale Set VMs"): exomi's record must
    # not go on saying the modules are on an instance that is gone.
    emulator.set_timings(propagation_delay=0.2, run_command=0.3)
    scale_set = targets.scale_set(capacity=2)
    code, output, stderr = exomi.run(*_provision(emulator, scale_set))
    assert_succeeded(code, output, stderr)
    names = {f"vmss-instance:{scale_set.name}_0", f"vmss-instance:{scale_set.name}_1"}
    assert _recorded_instances(exomi, scale_set) == names

    targets.scale_out(scale_set, 1)  # scale in: instance 1 goes
    position = emulator.log_position()
    code, output, stderr = exomi.run(*_provision(emulator, scale_set))

    assert_succeeded(code, output, stderr)
    assert emulator.writes_since(position) == []  # nothing to install or grant
    assert _recorded_instances(exomi, scale_set) == {f"vmss-instance:{scale_set.name}_0"}
    code, output, _ = exomi.run("diagnose", "--target", scale_set.id)
    assert code == 0 and all(s["verdict"] in ("ok", "n/a") for s in output["steps"]), output
    assert "on all 1 instances" in _step(output, "vmss-modules")["detail"]
