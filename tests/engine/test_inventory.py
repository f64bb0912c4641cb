"""The tenant inventory: every principal holding Exchange Online rights, read from live Graph and ARM
state and classified managed (by exomi) / unmanaged / orphaned, and whether over-privileged; as JSON
and CSV through the exomi command (and GET /api/inventory, tests/app)."""

from __future__ import annotations

import csv
import io


def test_the_inventory_classifies_every_holder(emulator, exomi, targets):
    managed = targets.automation_account("ContosoAzAuto1")
    code, _, stderr = exomi.run("provision", "--target", managed.id, "--organization", emulator.organization)
    assert code == 0, stderr
    # Someone else's Logic App with Exchange rights, given by hand, and more than it needs.
    handmade = emulator.seed_principal("logic-mailbox-report", type="Application")
    emulator.grant_exchange_access(handmade["id"], directory_role="Global Administrator")
    # A user-assigned identity whose resource is gone (its principal lingers, with its grants).
    missing = f"/subscriptions/{emulator.subscription_id}/resourceGroups/ContosoRG/providers/Microsoft.ManagedIdentity/userAssignedIdentities/deleted-mi"
    orphan = emulator.ctl(
        "POST",
        "/principals",
        {"displayName": "deleted-mi", "type": "ManagedIdentity", "visible": True, "resourceId": missing},
    )
    emulator.grant_exchange_access(orphan["id"], directory_role="Exchange Recipient Administrator")

    code, holders, stderr = exomi.run("inventory")
    assert code == 0, stderr
    by_id = {h["principal_id"]: h for h in holders}
    account = by_id[managed.identity.principal_id]
    assert (account["status"], account["over_privileged"], account["targets"]) == (
        "managed",
        False,
        [managed.id],
    )
    assert account["exchange_app_roles"] == ["Exchange.ManageAsApp"]
    assert account["entra_roles"] == ["Exchange Recipient Administrator"]
    assert account["resource_id"].lower() == managed.id.lower()
    logic = by_id[handmade["id"]]
    assert (logic["status"], logic["over_privileged"]) == ("unmanaged", True)
    assert logic["entra_roles"] == ["Global Administrator"] and logic["targets"] == []
    gone = by_id[orphan["id"]]
    assert (gone["status"], gone["resource_id"]) == ("orphaned", missing)
    assert holders[0]["over_privileged"]  # the riskiest first
    # The admin holds Global Administrator too: listed, unmanaged, over-privileged.
    assert by_id[emulator.admin_principal_id]["over_privileged"]

    position = emulator.log_position()
    text = exomi.run_text("inventory", "--csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {row["principal_id"] for row in rows} == set(by_id)
    assert next(r for r in rows if r["principal_id"] == orphan["id"])["status"] == "orphaned"
    assert emulator.writes_since(position) == []  # read-only


def test_the_inventory_reads_every_page_and_rides_out_graph_throttling(emulator, exomi):
    # More holders than one page of appRoleAssignedTo and of roleAssignments (100 each), and Graph
    # answering 429 with Retry-After on the lists and on principal reads: nobody is missed or doubled.
    seeded = set()
    for number in range(230):
        principal = emulator.seed_principal(f"mailbox-job-{number:03}", type="Application")
        emulator.grant_exchange_access(principal["id"], directory_role="Exchange Recipient Administrator")
        seeded.add(principal["id"])
    for path, count in (
        ("/appRoleAssignedTo$", 2),
        ("/roleManagement/directory/roleAssignments$", 2),
        ("/servicePrincipals/[0-9a-f-]{36}$", 5),
    ):
        emulator.add_fault(path=path, method="GET", status=429, retry_after=1, count=count)
    position = emulator.log_position()

    code, holders, stderr = exomi.run("inventory")
    assert code == 0, (stderr, str(holders)[:3000])
    listed = [h["principal_id"] for h in holders if h["principal_id"] in seeded]
    assert sorted(listed) == sorted(seeded)  # each exactly once
    sample = next(h for h in holders if h["principal_id"] in seeded)
    assert (sample["status"], sample["exchange_app_roles"], sample["entra_roles"]) == (
        "unmanaged",
        ["Exchange.ManageAsApp"],
        ["Exchange Recipient Administrator"],
    )
    graph = emulator.log(position, service="graph")
    assert sum(1 for e in graph if e["status"] == 429) == 9  # every throttled call was retried
    assert sum(1 for e in graph if "skiptoken" in e["query"].lower()) >= 4  # later pages were read
