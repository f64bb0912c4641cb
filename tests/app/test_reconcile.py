"""The reconciliation timer under the local Functions host, run on demand through the admin API: drift
is healed (a grant removed behind exomi's back comes back) or reported (grants exomi did not make stay),
one broken target does not stop the others, tags changed while events were lost are reported (no event
names a requester) while a deleted target is revoked, and a request whose work item was lost is resumed."""

from __future__ import annotations

import json
import re
import socket
import subprocess

import httpx
import pytest
from azure.data.tables import TableClient

from tests.app.tagging import (
    TagRunner,
    eventually,
    merge_tags,
    put_tags,
    requests,
    subscribe,
    unsubscribe,
    wait_for_requests,
    wait_until_ended,
)
from tests.engine.conftest import RG
from tests.engine.test_provision import GLOBAL_READER, RECIPIENT_ADMIN, exchange_grants, grants_of
from tests.engine.test_revoke_plan_diagnose import _assign_by_hand
from tests.support.exomi import EXOMI, ROOT


@pytest.fixture
def exomi(emulator, azurite) -> TagRunner:
    # A queued request counts as lost (its work item gone) after 0.2 s instead of a minute.
    return TagRunner(emulator, azurite, extra={"EXOMI_QUEUED_GRACE_SECONDS": "0.2"})


def reconcile(host, log_file) -> str:
    """Runs the timer function now (as `func` or the portal's "Test/Run" does) and waits for its report."""
    runs = log_file.read_text().count("reconciliation: resumed")
    response = httpx.post(
        f"{host.url}/admin/functions/reconcile",
        json={"input": ""},
        headers={"x-functions-key": host.info["master_key"]},
    )
    assert response.status_code == 202
    text = eventually(
        lambda: (log := log_file.read_text()).count("reconciliation: resumed") > runs and log,
        what="the reconciliation run to end",
    )
    return text.rsplit("reconciliation: ", 1)[1].splitlines()[0]  # "resumed 0, checked 1, ..."


def provision(exomi, emulator, target_id: str) -> dict:
    code, output, stderr = exomi.run(
        "provision", "--target", target_id, "--organization", emulator.organization
    )
    assert code == 0 and output["status"] == "succeeded", (output, stderr[-2000:])
    return output


def target_state(exomi, azurite, target_id: str) -> dict:
    table = TableClient.from_connection_string(azurite, f"{exomi.table_prefix}targets")
    entity = next(
        e for e in table.query_entities("RowKey eq 'state'") if e["Target"].lower() == target_id.lower()
    )
    return {**entity, "Drift": json.loads(entity.get("Drift", "[]"))}


async def test_drift_is_healed_or_reported_and_a_broken_target_does_not_stop_the_others(
    emulator, exomi, targets, function_host, azurite, tmp_path
):
    account = targets.automation_account("ContosoAzAuto1")
    broken = targets.automation_account("ContosoAzAuto2")
    provision(exomi, emulator, account.id)
    provision(exomi, emulator, broken.id)
    principal_id = account.identity.principal_id
    # Behind exomi's back: the grant is removed, another role and a look-alike app role added by hand.
    graph = emulator.graph()
    app_roles, _ = await grants_of(emulator, principal_id)
    (grant,) = exchange_grants(app_roles, emulator.exchange_service_principal_id)
    await (
        graph.service_principals.by_service_principal_id(principal_id)
        .app_role_assignments.by_app_role_assignment_id(grant.id)
        .delete()
    )
    await _assign_by_hand(emulator, principal_id, GLOBAL_READER)
    emulator.grant_exchange_access(principal_id, app_role="Exchange.ManageAsAppV2", directory_role=None)
    # Reading the other account fails: its check fails, the others' go on.
    emulator.add_fault(
        path=r"/automationAccounts/ContosoAzAuto2$", method="GET", status=400, code="BadRequest"
    )

    summary = reconcile(function_host, tmp_path / "host.log")
    assert "healed 1" in summary and "failed 1" in summary and "extra grants 2" in summary
    (heal,) = requests(exomi, channel="reconcile")
    assert (
        heal["requested_by"] == "exomi-reconcile" and heal["request"]["organization"] == emulator.organization
    )
    assert wait_until_ended(exomi, heal["id"])["status"] == "succeeded"

    app_roles, roles = await grants_of(emulator, principal_id)
    assert len(exchange_grants(app_roles, emulator.exchange_service_principal_id)) == 1  # healed
    assert sorted(r.role_definition_id for r in roles) == sorted([RECIPIENT_ADMIN, GLOBAL_READER])  # kept
    assert len(app_roles) == 2  # the look-alike is kept too
    drift = {(f["kind"], f["what"]): f for f in target_state(exomi, azurite, account.id)["Drift"]}
    assert drift[("missing", "app-role")]["request_id"] == heal["id"]
    assert ("extra", "entra-role:Global Reader") in drift
    assert ("extra", "app-role:Exchange.ManageAsAppV2") in drift
    log = (tmp_path / "host.log").read_text()
    assert "WARNING exomi.reconcile: drift on" in log and "entra-role:Global Reader" in log
    assert f"could not check {broken.id}" in log

    # The next run finds the grant back and still reports (never removes) the hand-made grants.
    summary = reconcile(function_host, tmp_path / "host.log")
    assert "healed 0" in summary
    drift = target_state(exomi, azurite, account.id)["Drift"]
    assert sorted(f["kind"] for f in drift) == ["extra", "extra"]


async def test_tags_changed_while_events_were_lost_are_reported_and_a_deletion_revokes(
    emulator, exomi, targets, function_host, azurite, tmp_path
):
    subscribe(emulator, function_host)
    account = targets.automation_account()
    put_tags(emulator, account.id, {"exo-organization": emulator.organization})
    (first,) = wait_for_requests(exomi, 1)
    assert wait_until_ended(exomi, first["id"])["status"] == "succeeded"
    unsubscribe(emulator)  # from here on, events are lost

    # Without the event nobody is known to have asked, so the policy's rules cannot admit anyone:
    # reconciliation reports the difference and changes nothing.
    merge_tags(emulator, account.id, {"exo-role": "Global Reader"})
    summary = reconcile(function_host, tmp_path / "host.log")
    assert "tag differences 1" in summary and "revoked 0" in summary
    drift = {f["what"]: f for f in target_state(exomi, azurite, account.id)["Drift"]}
    assert "no event" in drift["tags"]["detail"]
    code, requests, _ = exomi.run("list")
    assert code == 0 and len(requests) == 1
    _, roles = await grants_of(emulator, account.identity.principal_id)
    assert [r.role_definition_id for r in roles] == [RECIPIENT_ADMIN]

    # A deleted resource needs no requester: nothing of exomi's may stay behind.
    user_assigned = targets.user_assigned_identity("ContosoMI-lost")
    code, output, stderr = exomi.run(
        "provision", "--target", user_assigned.id, "--organization", emulator.organization
    )
    assert code == 0, stderr
    emulator.msi().user_assigned_identities.delete(RG, "ContosoMI-lost")
    assert "revoked 1" in reconcile(function_host, tmp_path / "host.log")
    revoke = wait_for_requests(exomi, 3)[-1]
    assert (revoke["operation"], revoke["channel"]) == ("revoke", "reconcile")
    assert wait_until_ended(exomi, revoke["id"])["status"] == "revoked"


def test_a_request_whose_work_item_was_lost_is_resumed(
    emulator, azurite, exomi, targets, function_host, tmp_path
):
    account = targets.automation_account()
    # Recorded, but the work queue did not answer (its endpoint is a port nobody listens on), so its work
    # item was never sent: as lost as after a crash between recording and enqueueing.
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    storage = re.sub(
        r"QueueEndpoint=http://127\.0\.0\.1:\d+/", f"QueueEndpoint=http://127.0.0.1:{port}/", azurite
    )
    lost = subprocess.run(
        [
            EXOMI,
            "--json",
            "provision",
            "--target",
            account.id,
            "--organization",
            emulator.organization,
            "--no-wait",
        ],
        cwd=ROOT,
        env={**exomi.env(), "AzureWebJobsStorage": storage},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "the work queue did not take it" in lost.stderr
    request = json.loads(lost.stdout)
    assert request["status"] == "queued"
    assert "resumed 1," in reconcile(function_host, tmp_path / "host.log")
    assert wait_until_ended(exomi, request["id"])["status"] == "succeeded"


async def test_an_instance_a_scale_set_gained_is_reported_and_healed(
    emulator, exomi, targets, function_host, azurite, tmp_path
):
    emulator.set_timings(propagation_delay=0.2, run_command=0.3)
    scale_set = targets.scale_set(capacity=1)
    provision(exomi, emulator, scale_set.id)
    targets.scale_out(scale_set, 2)  # a new instance, without the modules

    summary = reconcile(function_host, tmp_path / "host.log")
    assert "healed 1" in summary
    (heal,) = requests(exomi, channel="reconcile")
    assert wait_until_ended(exomi, heal["id"])["status"] == "succeeded"
    drift = {(f["kind"], f["what"]): f for f in target_state(exomi, azurite, scale_set.id)["Drift"]}
    finding = drift[("missing", "vmss-modules")]
    assert f"instance {scale_set.name}_1" in finding["detail"] and finding["request_id"] == heal["id"]
    # The heal ran on the new instance only: the first one had one install and one connect test.
    instances = emulator.compute().virtual_machine_scale_set_vms.list(RG, scale_set.name)
    assert [len(emulator.run_commands(i.id)) for i in instances] == [2, 2]

    assert "healed 0" in reconcile(function_host, tmp_path / "host.log")
