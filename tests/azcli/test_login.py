"""Getting started with the Azure CLI against the emulator: the cloud's endpoints discovered from
ARM's metadata, ``az login --identity`` with each kind of managed identity, subscriptions listed."""

from __future__ import annotations

from tests.support.azcli import CLOUD, AzCli


def test_cloud_register_discovers_the_endpoints(az: AzCli, emulator) -> None:
    cloud = az.json("cloud", "show", "--name", CLOUD)
    assert cloud["isActive"] is True
    endpoints = cloud["endpoints"]
    assert endpoints["resourceManager"] == emulator.arm_endpoint  # as given; the rest from the metadata
    assert endpoints["activeDirectoryResourceId"] == "https://management.core.windows.net/"
    assert endpoints["microsoftGraphResourceId"] == "https://graph.microsoft.com/"
    assert endpoints["activeDirectory"] == "https://login.microsoftonline.com/"


def test_login_with_the_admins_identity_lists_every_subscription(az: AzCli, emulator) -> None:
    accounts = az.login(emulator.admin_client_id)
    assert sorted(a["id"] for a in accounts) == sorted(emulator.subscription_ids)
    assert {a["tenantId"] for a in accounts} == {emulator.tenant_id}
    assert {a["environmentName"] for a in accounts} == {CLOUD}
    assert {a["user"]["type"] for a in accounts} == {"servicePrincipal"}
    assert sum(a["isDefault"] for a in accounts) == 1

    other = next(s for s in emulator.subscription_ids if s != emulator.subscription_id)
    az.run("account", "set", "--subscription", other)
    assert az.json("account", "show", "--query", "{id: id, name: name}") == {
        "id": other,
        "name": "Emulated subscription 2",
    }


def test_login_lists_only_the_subscriptions_the_identity_has_a_role_in(az: AzCli, emulator) -> None:
    identity = emulator.seed_principal("reader-of-one", visible=True)
    second = next(s for s in emulator.subscription_ids if s != emulator.subscription_id)
    emulator.ctl(
        "POST",
        "/rbac",
        {"principal_id": identity["id"], "role": "Reader", "scope": f"/subscriptions/{second}"},
    )
    accounts = az.login(identity["appId"])
    assert [(a["id"], a["isDefault"]) for a in accounts] == [(second, True)]
    assert accounts[0]["user"]["assignedIdentityInfo"] == f"MSIClient-{identity['appId']}"


def test_login_with_an_identity_without_roles(az: AzCli, emulator) -> None:
    identity = emulator.seed_principal("roleless", visible=True)
    # GET /subscriptions answers an empty list: az says so, and logs in at tenant level when allowed.
    refused = az.fails("login", "--identity", "--client-id", identity["appId"])
    assert (
        "No access was configured for the managed identity, hence no subscriptions were found"
        in refused.stderr
    )
    accounts = az.login(identity["appId"], "--allow-no-subscriptions")
    assert [(a["id"], a["name"]) for a in accounts] == [(emulator.tenant_id, "N/A(tenant level account)")]


def test_login_as_a_user_assigned_identity_the_admin_made(admin_az: AzCli, emulator, tmp_path) -> None:
    admin_az.run("group", "create", "--name", "ContosoRG2", "--location", "West US")
    identity = admin_az.json("identity", "create", "--name", "ContosoMI1", "--resource-group", "ContosoRG2")
    admin_az.run(
        "role", "assignment", "create", "--assignee-object-id", identity["principalId"],
        "--assignee-principal-type", "ServicePrincipal", "--role", "Reader",
        "--scope", f"/subscriptions/{emulator.subscription_id}",
    )  # fmt: skip

    # Another az (its own configuration) signs in as that identity, by resource id and by object id.
    mi = AzCli(emulator, tmp_path / "mi")
    mi.register_cloud()
    [account] = mi.login(None, "--resource-id", identity["id"])
    assert account["id"] == emulator.subscription_id
    assert account["user"]["assignedIdentityInfo"] == f"MSIResource-{identity['id']}"
    [account] = mi.login(None, "--object-id", identity["principalId"])
    assert account["user"]["assignedIdentityInfo"] == f"MSIObject-{identity['principalId']}"

    # A Reader reads, and may not write.
    assert mi.json("group", "list", "--query", "[].name") == ["ContosoRG2"]
    refused = mi.fails("group", "create", "--name", "other", "--location", "westus")
    assert "(AuthorizationFailed)" in refused.stderr
    assert f"'{identity['principalId']}'" in refused.stderr
