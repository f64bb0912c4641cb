"""The seed procedure's Azure PowerShell steps done with az: resource groups in "West US", user-assigned
identities, tags, listing what was made, resource providers; and the errors a user sees."""

from __future__ import annotations

from tests.support.azcli import AzCli

RG = "ContosoRG2"
LOCATION = "West US"  # the document's spelling


def test_locations_resource_group_and_identity(admin_az: AzCli, emulator) -> None:
    az = admin_az
    # Get-AzLocation | Format-Table Name: the name behind the document's "West US".
    assert az.json("account", "list-locations", "--query", "[?displayName=='West US'].name") == ["westus"]
    group = az.json("group", "create", "--name", RG, "--location", LOCATION)
    assert (group["name"], group["location"], group["properties"]) == (
        RG,
        "westus",
        {"provisioningState": "Succeeded"},
    )
    assert az.tsv("group", "exists", "--name", RG) == "true"

    # New-AzUserAssignedIdentity -Name "ContosoMI1" -ResourceGroupName "ContosoRG2" -Location "West US"
    created = az.json(
        "identity", "create", "--name", "ContosoMI1", "--resource-group", RG, "--location", LOCATION
    )
    assert created["location"] == "westus"
    assert created["type"] == "Microsoft.ManagedIdentity/userAssignedIdentities"
    # $MI_ID = (Get-AzUserAssignedIdentity -Name "ContosoMI1" -ResourceGroupName "ContosoRG2").ClientId
    client_id = az.tsv(
        "identity", "show", "--name", "ContosoMI1", "--resource-group", RG, "--query", "clientId"
    )
    assert client_id == created["clientId"]
    assert [i["name"] for i in az.json("identity", "list", "--resource-group", RG)] == ["ContosoMI1"]
    listed = az.json("resource", "list", "--resource-group", RG)
    assert [(r["name"], r["type"], r["location"]) for r in listed] == [
        ("ContosoMI1", "Microsoft.ManagedIdentity/userAssignedIdentities", "westus")
    ]
    # Microsoft.ManagedIdentity writes "resourcegroups" in its ids; ARM's own list "resourceGroups".
    assert [i.lower() for i in az.json("resource", "list", "--query", "[].id")] == [created["id"].lower()]


def test_tags_on_a_group_and_a_resource(admin_az: AzCli) -> None:
    az = admin_az
    group = az.json("group", "create", "--name", RG, "--location", LOCATION)
    identity = az.json("identity", "create", "--name", "ContosoMI1", "--resource-group", RG)

    # The Tags API on the group: create, then merge.
    created = az.json("tag", "create", "--resource-id", group["id"], "--tags", "env=test")
    assert created["properties"]["tags"] == {"env": "test"}
    merged = az.json(
        "tag", "update", "--resource-id", group["id"], "--operation", "Merge", "--tags", "owner=exomi"
    )
    assert merged["properties"]["tags"] == {"env": "test", "owner": "exomi"}
    assert az.json("group", "show", "--name", RG, "--query", "tags") == {"env": "test", "owner": "exomi"}

    # az resource tag finds the type's api-version through the Microsoft.ManagedIdentity provider.
    tagged = az.json("resource", "tag", "--ids", identity["id"], "--tags", "env=prod")
    assert tagged["tags"] == {"env": "prod"}
    assert az.json("identity", "show", "--ids", identity["id"], "--query", "tags") == {"env": "prod"}

    # Resources_List's $filter, as az resource list sends it.
    assert az.json("resource", "list", "--tag", "env=prod", "--query", "[].name") == ["ContosoMI1"]
    assert az.json("resource", "list", "--tag", "env=test", "--query", "[].name") == []
    by_type = az.json(
        "resource",
        "list",
        "--resource-type",
        "Microsoft.ManagedIdentity/userAssignedIdentities",
        "--query",
        "[].name",
    )
    assert by_type == ["ContosoMI1"]

    # Tags_List: every tag name in the subscription with its values and counts.
    names = {t["tagName"]: t for t in az.json("tag", "list")}
    assert sorted(names) == ["env", "owner"]
    assert names["env"]["count"] == {"type": "Total", "value": 2}
    assert sorted((v["tagValue"], v["count"]["value"]) for v in names["env"]["values"]) == [
        ("prod", 1),
        ("test", 1),
    ]


def test_resource_providers(admin_az: AzCli) -> None:
    az = admin_az
    provider = az.json("provider", "show", "--namespace", "Microsoft.ManagedIdentity")
    assert provider["registrationState"] == "Registered"
    types = {t["resourceType"]: t for t in provider["resourceTypes"]}
    assert "2025-05-31-preview" in types["userAssignedIdentities"]["apiVersions"]
    assert "West US" in types["userAssignedIdentities"]["locations"]
    namespaces = az.json("provider", "list", "--query", "[].namespace")
    assert {"Microsoft.Automation", "Microsoft.Compute", "Microsoft.ManagedIdentity"} <= set(namespaces)
    sizes = az.json("vm", "list-sizes", "--location", "westus", "--query", "[?name=='Standard_B2s']")
    assert sizes == [
        {
            "maxDataDiskCount": 4,
            "memoryInMB": 4096,
            "name": "Standard_B2s",
            "numberOfCores": 2,
            "osDiskSizeInMB": 1047552,
            "resourceDiskSizeInMB": 8192,
        }
    ]


def test_errors_as_az_shows_them(admin_az: AzCli, emulator) -> None:
    az = admin_az
    missing = az.fails("group", "show", "--name", "nope")
    assert missing.returncode == 3  # az's exit code for a resource that is not found
    assert "(ResourceGroupNotFound) Resource group 'nope' could not be found." in missing.stderr

    unknown = az.fails("provider", "show", "--namespace", "Microsoft.Nope")
    assert "(InvalidResourceNamespace) The resource namespace 'Microsoft.Nope' is invalid." in unknown.stderr

    malformed = az.fails(
        "rest", "--url", f"{az.arm}/subscriptions/not-a-guid/resourcegroups?api-version=2021-04-01"
    )
    assert "Bad Request" in malformed.stderr and '"code": "InvalidSubscriptionId"' in malformed.stderr

    old = az.fails(
        "rest",
        "--url",
        f"{az.arm}/subscriptions/{emulator.subscription_id}/resourcegroups?api-version=2014-01-01",
    )
    assert '"code": "NoRegisteredProviderFound"' in old.stderr


def test_predefined_tag_names(admin_az: AzCli, emulator) -> None:
    az = admin_az
    subscription = f"/subscriptions/{emulator.subscription_id}"
    created = az.json("tag", "create", "--name", "costCenter")
    assert created == {
        "count": {"type": "Total", "value": 0},
        "id": f"{subscription}/tagNames/costCenter",
        "tagName": "costCenter",
        "values": [],
    }
    value = az.json("tag", "add-value", "--name", "costCenter", "--value", "42")
    assert value["id"] == f"{subscription}/tagNames/costCenter/tagValues/42"
    reserved = az.fails("tag", "create", "--name", "azure-owner")
    assert "(InvalidTagName)" in reserved.stderr

    # Tags_List is the union of predefined tags and the tags in use (on the subscription too).
    az.run("tag", "create", "--resource-id", subscription, "--tags", "costCenter=42")
    [listed] = az.json("tag", "list")
    assert (listed["tagName"], listed["count"]["value"]) == ("costCenter", 1)
    assert [(v["tagValue"], v["count"]["value"]) for v in listed["values"]] == [("42", 1)]

    # A name in use, or with predefined values, cannot be deleted.
    assert "(TagNameInUse)" in az.fails("tag", "delete", "--name", "costCenter", "--yes").stderr
    az.run("tag", "delete", "--resource-id", subscription, "--yes")
    az.run("tag", "remove-value", "--name", "costCenter", "--value", "42")
    az.run("tag", "delete", "--name", "costCenter", "--yes")
    assert az.json("tag", "list") == []
