"""The Tags API through azure-mgmt-resource's ``tags.*_at_scope``: replace, merge, delete, and ARM's
errors, on subscriptions, resource groups and resources."""

from __future__ import annotations

import json

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from tests.support.shapes import assert_shape, load_example


@pytest.fixture
def rg(emulator):
    emulator.resources().resource_groups.create_or_update("rg-tags", {"location": "westeurope"})
    return f"/subscriptions/{emulator.subscription_id}/resourceGroups/rg-tags"


def test_put_get_and_the_spec_example_shape(emulator, rg):
    client = emulator.resources()
    result = client.tags.begin_create_or_update_at_scope(
        rg, {"properties": {"tags": {"exo-organization": "contoso.onmicrosoft.com", "env": "prod"}}}
    ).result()
    assert result.properties.tags == {"exo-organization": "contoso.onmicrosoft.com", "env": "prod"}
    raw = client.tags.get_at_scope(rg, cls=lambda pipeline_response, obj, headers: pipeline_response)
    body = json.loads(raw.http_response.text())
    assert_shape(load_example("resources_GetTagsResource.json")["body"], body)
    assert body["id"] == f"{rg}/providers/Microsoft.Resources/tags/default"
    assert body["name"] == "default" and body["type"] == "Microsoft.Resources/tags"
    # The tags are the resource group's own tags.
    assert client.resource_groups.get("rg-tags").tags == {
        "exo-organization": "contoso.onmicrosoft.com",
        "env": "prod",
    }


def test_patch_merge_replace_and_delete(emulator, rg):
    tags = emulator.resources().tags
    tags.begin_create_or_update_at_scope(rg, {"properties": {"tags": {"a": "1", "b": "2"}}}).result()
    merged = tags.begin_update_at_scope(
        rg, {"operation": "Merge", "properties": {"tags": {"B": "20", "c": "3"}}}
    ).result()
    # Tag names are case-insensitive: "B" updates "b".
    assert merged.properties.tags == {"a": "1", "b": "20", "c": "3"}
    deleted = tags.begin_update_at_scope(
        rg, {"operation": "Delete", "properties": {"tags": {"a": "", "c": "other-value"}}}
    ).result()
    assert deleted.properties.tags == {"b": "20", "c": "3"}  # "c" stays: its value did not match
    replaced = tags.begin_update_at_scope(
        rg, {"operation": "Replace", "properties": {"tags": {"only": "this"}}}
    ).result()
    assert replaced.properties.tags == {"only": "this"}
    tags.begin_delete_at_scope(rg).result()
    assert tags.get_at_scope(rg).properties.tags == {}


def test_tags_on_a_user_assigned_identity_and_the_subscription(emulator, rg):
    identity = emulator.msi().user_assigned_identities.create_or_update(
        "rg-tags", "uai1", {"location": "westeurope"}
    )
    tags = emulator.resources().tags
    tags.begin_create_or_update_at_scope(identity.id, {"properties": {"tags": {"exo": "yes"}}}).result()
    assert emulator.msi().user_assigned_identities.get("rg-tags", "uai1").tags == {"exo": "yes"}
    subscription = f"/subscriptions/{emulator.subscription_id}"
    tags.begin_create_or_update_at_scope(subscription, {"properties": {"tags": {"owner": "it"}}}).result()
    assert tags.get_at_scope(subscription).properties.tags == {"owner": "it"}


def test_errors(emulator, rg):
    tags = emulator.resources().tags
    with pytest.raises(HttpResponseError) as info:
        tags.begin_update_at_scope(rg, {"operation": "Append", "properties": {"tags": {"a": "1"}}}).result()
    assert info.value.status_code == 400 and info.value.error.code == "InvalidRequestContent"
    with pytest.raises(HttpResponseError) as info:
        tags.begin_create_or_update_at_scope(rg, {"properties": {"tags": {"bad/name": "x"}}}).result()
    assert info.value.status_code == 400 and info.value.error.code == "InvalidTagNameCharacters"
    too_many = {f"t{i}": "v" for i in range(51)}
    with pytest.raises(HttpResponseError) as info:
        tags.begin_create_or_update_at_scope(rg, {"properties": {"tags": too_many}}).result()
    assert info.value.status_code == 400
    with pytest.raises(ResourceNotFoundError) as info:
        tags.get_at_scope(f"/subscriptions/{emulator.subscription_id}/resourceGroups/nope")
    assert info.value.error.code == "ResourceGroupNotFound"
    missing_vm = f"{rg}/providers/Microsoft.Compute/virtualMachines/nope"
    with pytest.raises(ResourceNotFoundError) as info:
        tags.begin_create_or_update_at_scope(missing_vm, {"properties": {"tags": {}}}).result()
    assert info.value.error.code == "ResourceNotFound"
    assert "Microsoft.Compute/virtualMachines/nope" in info.value.error.message


def test_tag_writes_need_the_tags_permission(emulator, rg):
    # exomi's identity (Reader, Automation Contributor, Virtual Machine Contributor) may read tags only.
    tags = emulator.resources(credential=emulator.app_credential()).tags
    assert tags.get_at_scope(rg).properties.tags == {}
    with pytest.raises(HttpResponseError) as info:
        tags.begin_create_or_update_at_scope(rg, {"properties": {"tags": {"a": "1"}}}).result()
    assert info.value.status_code == 403 and info.value.error.code == "AuthorizationFailed"
    assert "Microsoft.Resources/tags/write" in info.value.error.message
    emulator.ctl(
        "POST",
        "/rbac",
        {"principal_id": emulator.app_principal_id, "role": "Tag Contributor", "scope": rg},
    )
    assert tags.begin_create_or_update_at_scope(rg, {"properties": {"tags": {"a": "1"}}}).result()
