"""Approvals, denial, cancellation and the refusal log through the exomi command: an operator's request
for a role that needs approval waits (exit 3, nothing granted); the operator cannot approve it, an
approver can, and `exomi resume` then runs it; refusals are listed by `exomi refusals`."""

from __future__ import annotations

import pytest

from tests.support.exomi import ExomiRunner, policy_for


@pytest.fixture
def exomi(emulator, azurite) -> ExomiRunner:
    policy = policy_for(
        emulator,
        approval={
            "approvers": ["secops-*@jumphost"],
            "required_for_roles": ["Exchange Administrator"],
            "timeout": "PT1H",
        },
    )
    return ExomiRunner(emulator, azurite, policy=policy)


def ask(exomi, emulator, target: str) -> dict:
    code, output, stderr = exomi.run(
        "provision",
        "--target",
        target,
        "--organization",
        emulator.organization,
        "--role",
        "Exchange Administrator",
        "--requested-by",
        "alice@workstation",
    )
    assert code == 3, stderr  # not finished: awaiting approval
    assert output["status"] == "awaiting_approval" and output["steps"] == []
    return output


def test_an_approved_request_runs_and_the_requester_cannot_approve_it(emulator, exomi, targets):
    account = targets.automation_account()
    request = ask(exomi, emulator, account.id)
    assert emulator.exchange_access(account.identity.principal_id) == (0, [])

    code, output, _ = exomi.run("approve", request["id"], "--as", "alice@workstation")
    assert code == 2 and output["error"]["rule"] == "approval.approvers"
    code, output, _ = exomi.run("approve", request["id"], "--as", "secops-bob@jumphost", "--comment", "CAB-7")
    assert code == 0 and output["status"] == "queued"
    assert output["approval"]["decided_by"] == "secops-bob@jumphost"
    code, output, stderr = exomi.run("resume", request["id"])
    assert code == 0 and output["status"] == "succeeded", stderr
    assert emulator.exchange_access(account.identity.principal_id)[0] == 1

    code, refusals, _ = exomi.run("refusals")
    assert [(r["operation"], r["requested_by"], r["channel"]) for r in refusals] == [
        ("approve", "alice@workstation", "cli")
    ]


def test_a_denied_or_cancelled_request_ends_with_nothing_granted(emulator, exomi, targets):
    first = targets.automation_account("ContosoAzAuto1")
    second = targets.automation_account("ContosoAzAuto2")
    denied, cancelled = ask(exomi, emulator, first.id), ask(exomi, emulator, second.id)

    code, output, _ = exomi.run("deny", denied["id"], "--as", "secops-eve@jumphost", "--comment", "no ticket")
    assert code == 0 and output["status"] == "denied"
    assert output["error"]["code"] == "ApprovalDenied"
    code, output, stderr = exomi.run("cancel", cancelled["id"])
    assert code == 0 and output["status"] == "cancelled" and output["kept"] == [], (output, stderr)
    code, output, _ = exomi.run("cancel", cancelled["id"])
    assert code == 2 and output["error"]["code"] == "Conflict"  # it has ended already

    code, listed, _ = exomi.run("list")
    assert sorted(r["status"] for r in listed) == ["cancelled", "denied"]
    for account in (first, second):
        assert emulator.exchange_access(account.identity.principal_id) == (0, [])
