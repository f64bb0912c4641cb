"""GET /api/findings and the findings of a diagnosis and of a request's result, through the HTTP API."""

from __future__ import annotations


def test_findings_through_the_api(emulator, start_api, targets):
    api = start_api()
    account = targets.automation_account()
    emulator.grant_exchange_access(
        account.identity.principal_id, app_role=None, directory_role="Global Administrator"
    )
    final, _ = api.follow(api.post("requests", {"target": account.id, "organization": emulator.organization}))
    assert final.status_code == 200
    (result_finding,) = final.json()["result"]["findings"]
    assert (result_finding["severity"], result_finding["what"]) == ("high", "entra-role:Global Administrator")

    listed = api.get("findings")
    assert listed.status_code == 200
    assert [(f["target"], f["severity"], f["kind"]) for f in listed.json()["value"]] == [
        (account.id, "high", "extra-privilege")
    ]
    assert api.get("findings", params={"severity": "low"}).json()["value"] == listed.json()["value"]
    assert api.get("findings", params={"severity": "critical"}).status_code == 422

    diagnosis = api.post("diagnose", {"target": account.id})
    assert diagnosis.status_code == 200
    assert [f["what"] for f in diagnosis.json()["findings"]] == ["entra-role:Global Administrator"]


def test_the_inventory_through_the_api(emulator, start_api, targets):
    api = start_api()
    account = targets.automation_account()
    final, _ = api.follow(api.post("requests", {"target": account.id, "organization": emulator.organization}))
    assert final.status_code == 200
    listed = api.get("inventory")
    assert listed.status_code == 200
    holders = {h["principal_id"]: h for h in listed.json()["value"]}
    assert holders[account.identity.principal_id]["status"] == "managed"
    assert holders[emulator.admin_principal_id][
        "over_privileged"
    ]  # the emulator's admin is Global Administrator
    assert api.get("inventory", params={"format": "xml"}).status_code == 422
