"""Microsoft Graph through ``az rest``: the seed procedure's Get-MgServicePrincipal queries, a count,
and Graph's errors as az shows them."""

from __future__ import annotations

from tests.support.azcli import AzCli
from tests.support.seed_procedure import EXCHANGE_APP_ID, MANAGE_AS_APP_ROLE_ID


def test_service_principals(admin_az: AzCli, emulator) -> None:
    az = admin_az
    # Get-MgServicePrincipal -Filter "AppId eq '00000002-0000-0ff1-ce00-000000000000'" | ... AppRoles
    page = az.graph_rest("GET", f"/servicePrincipals?$filter=AppId eq '{EXCHANGE_APP_ID}'")
    assert page["@odata.context"] == "https://graph.microsoft.com/v1.0/$metadata#servicePrincipals"
    [exchange] = page["value"]
    assert (exchange["id"], exchange["displayName"]) == (
        emulator.exchange_service_principal_id,
        "Office 365 Exchange Online",
    )
    roles = {r["value"]: r["id"] for r in exchange["appRoles"]}
    assert roles["Exchange.ManageAsApp"] == MANAGE_AS_APP_ROLE_ID
    by_app_id = az.graph_rest("GET", f"/servicePrincipals(appId='{EXCHANGE_APP_ID}')?$select=id,appId")
    assert {k: v for k, v in by_app_id.items() if not k.startswith("@")} == {
        "id": exchange["id"],
        "appId": EXCHANGE_APP_ID,
    }

    # /$count: a plain-text number, an advanced query (ConsistencyLevel: eventual).
    everyone = az.graph_rest("GET", "/servicePrincipals?$select=id")["value"]
    counted = az.text(
        "rest", "--url", f"{az.graph}/servicePrincipals/$count", "--resource", "https://graph.microsoft.com",
        "--headers", "ConsistencyLevel=eventual",
    )  # fmt: skip
    assert int(counted) == len(everyone)
    refused = az.fails(
        "rest", "--url", f"{az.graph}/servicePrincipals/$count", "--resource", "https://graph.microsoft.com"
    )
    assert '"code": "Request_BadRequest"' in refused.stderr
    assert "$count is not currently supported." in refused.stderr


def test_graph_errors(admin_az: AzCli, emulator) -> None:
    az = admin_az
    missing = az.fails(
        "rest", "--url", f"{az.graph}/servicePrincipals/00000000-0000-0000-0000-000000000001",
        "--resource", "https://graph.microsoft.com",
    )  # fmt: skip
    assert "Not Found" in missing.stderr and '"code": "Request_ResourceNotFound"' in missing.stderr
    # An ARM token is refused by Graph (what az sends without --resource, by the URL's host).
    wrong = az.fails("rest", "--url", f"{az.graph}/servicePrincipals")
    assert "Unauthorized" in wrong.stderr and "Invalid audience" in wrong.stderr
