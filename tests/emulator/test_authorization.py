"""Microsoft.Authorization role assignments and role definitions through azure-mgmt-authorization 4.0.0
(api-version 2022-04-01): create, get, list with each filter, inheritance, delete, ARM's errors, and the
assignments' effect on what a principal may do on ARM."""

from __future__ import annotations

import json
import uuid

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.identity import ManagedIdentityCredential

from tests.support.automation import ACCOUNT, create_account
from tests.support.automation import RG as AUTOMATION_RG
from tests.support.shapes import assert_shape, load_example

RG = "rg-authz"
OWNER = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
TAG_CONTRIBUTOR = "4a9ae827-6dc8-4573-8ac7-8239d42aa03f"
MI_OPERATOR = "f1a07417-d97a-45cb-824c-7a7467783830"
USER_ACCESS_ADMINISTRATOR = "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9"
RBAC_ADMINISTRATOR = "f58310d9-a9f6-439a-9e8d-f62e7b41a168"
UNSUPPORTED = (
    "The filter '{}' is not supported. Supported filters are either 'atScope()' or 'principalId eq '{{value}}' "
    "or assignedTo('{{value}}')'."
)


def raw(pipeline_response, deserialized, headers):
    """``cls=`` for calls whose HTTP response a test inspects."""
    return pipeline_response.http_response


def body(response) -> dict:
    return json.loads(response.text())


@pytest.fixture
def sub(emulator) -> str:
    return f"/subscriptions/{emulator.subscription_id}"


@pytest.fixture
def rg(emulator, sub) -> str:
    emulator.resources().resource_groups.create_or_update(RG, {"location": "westeurope"})
    return f"{sub}/resourceGroups/{RG}"


@pytest.fixture
def uai(emulator, rg):
    return emulator.msi().user_assigned_identities.create_or_update(
        RG, "uai-authz", {"location": "westeurope"}
    )


def role_id(emulator, guid: str) -> str:
    return (
        f"/subscriptions/{emulator.subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{guid}"
    )


def seeded(emulator, name: str = "target", **options) -> dict:
    """A managed identity in the directory (visible unless told); it can also get tokens as a caller."""
    return emulator.seed_principal(name, visible=options.pop("visible", True), **options)


def credential_of(principal: dict) -> ManagedIdentityCredential:
    return ManagedIdentityCredential(client_id=principal["appId"])


def assign(
    emulator, scope: str, principal_id: str, role: str, *, client=None, name: str | None = None, **props
):
    client = client or emulator.authorization()
    return client.role_assignments.create(
        scope,
        name or str(uuid.uuid4()),
        {"properties": {"roleDefinitionId": role_id(emulator, role), "principalId": principal_id, **props}},
    )


def names(assignments) -> set[str]:
    return {a.name for a in assignments}


# --------------------------------------------------------------------------------------------------
# create, get, delete


def test_create_get_and_delete_match_the_spec_examples(emulator, rg):
    target = seeded(emulator)
    client = emulator.authorization()
    name = str(uuid.uuid4())
    parameters = {
        "properties": {
            "roleDefinitionId": role_id(emulator, READER),
            "principalId": target["id"],
            "principalType": "ServicePrincipal",
        }
    }
    created = client.role_assignments.create(rg, name, parameters, cls=raw)
    assert created.status_code == 201
    data = body(created)
    assert_shape(load_example("authorization_RoleAssignments_CreateForResource.json")["body"], data)
    assert data["id"] == f"{rg}/providers/Microsoft.Authorization/roleAssignments/{name}"
    assert data["name"] == name and data["type"] == "Microsoft.Authorization/roleAssignments"
    properties = data["properties"]
    # The real form of the role definition id: subscription-qualified.
    assert properties["roleDefinitionId"] == role_id(emulator, READER)
    assert properties["principalId"] == target["id"] and properties["principalType"] == "ServicePrincipal"
    assert properties["scope"] == rg
    assert properties["createdBy"] == properties["updatedBy"] == emulator.admin_principal_id
    assert properties["createdOn"] == properties["updatedOn"]
    for absent in ("condition", "conditionVersion", "description", "delegatedManagedIdentityResourceId"):
        assert properties[absent] is None

    got = client.role_assignments.get(rg, name, cls=raw)
    assert_shape(load_example("authorization_RoleAssignments_Get.json")["body"], body(got))
    model = client.role_assignments.get(rg, name)
    assert model.role_definition_id == role_id(emulator, READER) and model.scope == rg
    assert model.principal_type == "ServicePrincipal" and model.created_by == emulator.admin_principal_id
    assert client.role_assignments.get_by_id(data["id"]).name == name

    # The same assignment again is an update (200), with a description now.
    again = client.role_assignments.create(
        rg, name, {"properties": {**parameters["properties"], "description": "exomi"}}, cls=raw
    )
    assert again.status_code == 200 and body(again)["properties"]["description"] == "exomi"

    deleted = client.role_assignments.delete(rg, name)
    assert deleted.name == name and deleted.description == "exomi"
    assert client.role_assignments.delete(rg, name) is None  # 204: already deleted
    with pytest.raises(ResourceNotFoundError) as info:
        client.role_assignments.get(rg, name)
    assert info.value.error.code == "RoleAssignmentNotFound"

    by_id = assign(emulator, rg, target["id"], READER)
    assert client.role_assignments.delete_by_id(by_id.id).name == by_id.name
    assert client.role_assignments.delete_by_id(by_id.id) is None


def test_the_root_scope_and_a_nested_resource_scope(emulator):
    create_account(emulator)
    client = emulator.automation()
    client.runbook.create_or_update(
        AUTOMATION_RG, ACCOUNT, "Verify", {"location": "westus", "properties": {"runbookType": "PowerShell"}}
    )
    account = f"/subscriptions/{emulator.subscription_id}/resourceGroups/{AUTOMATION_RG}/providers/Microsoft.Automation/automationAccounts/{ACCOUNT}"
    runbook = f"{account}/runbooks/Verify"
    target = seeded(emulator)
    assignment = assign(emulator, runbook, target["id"], READER)
    assert assignment.scope == runbook
    assert assignment.id == f"{runbook}/providers/Microsoft.Authorization/roleAssignments/{assignment.name}"
    ra = emulator.authorization().role_assignments
    assert assignment.name in names(ra.list_for_scope(runbook, filter="atScope()"))
    assert assignment.name not in names(ra.list_for_scope(account, filter="atScope()"))  # below the account
    assert assignment.name in names(ra.list_for_scope(account, filter=f"assignedTo('{target['id']}')"))

    # The root scope: only an assignment at "/" reaches it (the admin is Owner of the subscriptions only).
    with pytest.raises(HttpResponseError) as info:
        list(ra.list_for_scope("/", filter="atScope()"))
    assert info.value.status_code == 403 and info.value.error.code == "AuthorizationFailed"
    emulator.ctl(
        "POST", "/rbac", {"principal_id": emulator.admin_principal_id, "role": "Owner", "scope": "/"}
    )
    root = [a for a in ra.list_for_scope("/", filter="atScope()") if a.scope == "/"]
    assert root and root[0].id == f"/providers/Microsoft.Authorization/roleAssignments/{root[0].name}"
    assert root[0].role_definition_id == f"/providers/Microsoft.Authorization/roleDefinitions/{OWNER}"
    # Listed through a subscription, the same assignment names the subscription's role definition.
    at_sub = {a.name: a for a in ra.list_for_subscription(filter="atScope()")}
    assert at_sub[root[0].name].role_definition_id == role_id(emulator, OWNER)


# --------------------------------------------------------------------------------------------------
# list and filters


def test_filters_inheritance_and_below_scope(emulator, sub, rg, uai):
    p = seeded(emulator, "p")["id"]
    q = seeded(emulator, "q")["id"]
    a_sub = assign(emulator, sub, p, READER).name
    a_rg = assign(emulator, rg, p, TAG_CONTRIBUTOR).name
    a_res = assign(emulator, uai.id, p, MI_OPERATOR).name
    b_res = assign(emulator, uai.id, q, READER).name
    ra = emulator.authorization().role_assignments

    # atScope(): at the scope and above, never below.
    at_res = list(ra.list_for_scope(uai.id, filter="atScope()"))
    assert {a_sub, a_rg, a_res, b_res} <= names(at_res)
    assert any(a.principal_id == emulator.admin_principal_id and a.scope == sub for a in at_res)
    at_rg = names(ra.list_for_scope(rg, filter="atScope()"))
    assert {a_sub, a_rg} <= at_rg and not {a_res, b_res} & at_rg
    at_sub = names(ra.list_for_subscription(filter="atScope()"))
    assert a_sub in at_sub and not {a_rg, a_res, b_res} & at_sub

    # assignedTo() and principalId eq: the principal's assignments at, above and below the scope.
    assert names(ra.list_for_scope(rg, filter=f"assignedTo('{p}')")) == {a_sub, a_rg, a_res}
    assert names(ra.list_for_scope(rg, filter=f"principalId eq '{p}'")) == {a_sub, a_rg, a_res}
    assert names(ra.list_for_scope(rg, filter=f"principalid eq '{p.upper()}'")) == {a_sub, a_rg, a_res}
    assert names(ra.list_for_subscription(filter=f"principalId eq '{q}'")) == {b_res}
    # atScope() and assignedTo(): the principal's assignments at and above (the inherited ones).
    assert names(ra.list_for_scope(uai.id, filter=f"atScope() and assignedTo('{p}')")) == {a_sub, a_rg, a_res}
    assert names(ra.list_for_scope(rg, filter=f"atScope() and assignedTo('{p}')")) == {a_sub, a_rg}
    assert names(ra.list_for_scope(rg, filter=f"assignedTo('{p}') and atScope()")) == {a_sub, a_rg}

    # No filter: every assignment at, above and below the scope.
    everything = names(ra.list_for_resource_group(RG))
    assert {a_sub, a_rg, a_res, b_res} <= everything
    assert names(ra.list_for_scope(uai.id)) >= {a_sub, a_rg, a_res, b_res}
    for_resource = ra.list_for_resource(
        RG, "Microsoft.ManagedIdentity", "userAssignedIdentities", "uai-authz", filter=f"assignedTo('{q}')"
    )
    assert names(for_resource) == {b_res}
    other_rg = emulator.resources().resource_groups.create_or_update("rg-other", {"location": "westeurope"})
    assert not {a_rg, a_res, b_res} & names(ra.list_for_scope(other_rg.id))


def test_list_shape_and_paging_keep_the_filter(emulator, sub, rg, uai):
    below = assign(emulator, uai.id, seeded(emulator)["id"], READER).name
    for _ in range(105):
        emulator.ctl("POST", "/rbac", {"principal_id": str(uuid.uuid4()), "role": "Reader", "scope": rg})
    ra = emulator.authorization().role_assignments
    inherited = len(list(ra.list_for_subscription(filter="atScope()")))
    token = emulator.token(client_id=emulator.admin_client_id)
    with emulator.http() as http:
        first = http.get(
            f"{emulator.arm_endpoint}{rg}/providers/Microsoft.Authorization/roleAssignments",
            params={"api-version": "2022-04-01", "$filter": "atScope()"},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert first.status_code == 200
    page = first.json()
    assert_shape(load_example("authorization_RoleAssignments_ListForScope.json")["body"], page)
    assert len(page["value"]) == 100 and "atScope" in page["nextLink"]
    listed = list(ra.list_for_scope(rg, filter="atScope()"))
    assert len(listed) == 105 + inherited and below not in names(listed)


def test_assignments_seeded_through_the_control_api_are_listed_and_the_other_way_round(emulator, rg):
    target = seeded(emulator)
    emulator.ctl("POST", "/rbac", {"principal_id": target["id"], "role": "Reader", "scope": rg})
    ra = emulator.authorization().role_assignments
    [seeded_one] = ra.list_for_scope(rg, filter=f"atScope() and assignedTo('{target['id']}')")
    assert seeded_one.role_definition_id == role_id(emulator, READER) and seeded_one.scope == rg
    assert seeded_one.principal_type == "ServicePrincipal" and seeded_one.created_by is None

    created = assign(emulator, rg, target["id"], TAG_CONTRIBUTOR)
    [entry] = [p for p in emulator.principals() if p["id"] == target["id"]]
    assert {"role": "Tag Contributor", "scope": rg} in entry["armRoles"]
    emulator.ctl("DELETE", "/rbac", {"principal_id": target["id"], "role": "Tag Contributor"})
    with pytest.raises(ResourceNotFoundError):
        ra.get(rg, created.name)


# --------------------------------------------------------------------------------------------------
# authorization


def test_an_assignment_changes_what_the_principal_may_do(emulator, rg):
    # exomi's identity (Reader, Automation Contributor, Virtual Machine Contributor) may not write tags.
    tags = emulator.resources(credential=emulator.app_credential()).tags
    with pytest.raises(HttpResponseError) as info:
        tags.begin_create_or_update_at_scope(rg, {"properties": {"tags": {"a": "1"}}}).result()
    assert info.value.status_code == 403
    assignment = assign(emulator, rg, emulator.app_principal_id, TAG_CONTRIBUTOR)
    assert tags.begin_create_or_update_at_scope(rg, {"properties": {"tags": {"a": "1"}}}).result()
    emulator.authorization().role_assignments.delete(rg, assignment.name)
    with pytest.raises(HttpResponseError) as info:
        tags.begin_create_or_update_at_scope(rg, {"properties": {"tags": {"a": "2"}}}).result()
    assert info.value.status_code == 403


def test_reader_lists_contributor_cannot_assign_rbac_administrators_can(emulator, rg):
    target = seeded(emulator)["id"]
    existing = assign(emulator, rg, target, READER)
    app = emulator.authorization(credential=emulator.app_credential())
    assert existing.name in names(app.role_assignments.list_for_scope(rg, filter="atScope()"))
    assert app.role_definitions.get(rg, OWNER).role_name == "Owner"
    with pytest.raises(HttpResponseError) as info:
        assign(emulator, rg, target, TAG_CONTRIBUTOR, client=app)
    assert info.value.status_code == 403 and info.value.error.code == "AuthorizationFailed"
    assert "'Microsoft.Authorization/roleAssignments/write'" in info.value.error.message
    with pytest.raises(HttpResponseError) as info:
        app.role_assignments.delete(rg, existing.name)
    assert "'Microsoft.Authorization/roleAssignments/delete'" in info.value.error.message

    caller = seeded(emulator, "delegate")
    as_caller = emulator.authorization(credential=credential_of(caller))
    contributor = assign(emulator, rg, caller["id"], CONTRIBUTOR)
    with pytest.raises(HttpResponseError) as info:
        assign(emulator, rg, target, TAG_CONTRIBUTOR, client=as_caller)
    assert info.value.status_code == 403
    emulator.authorization().role_assignments.delete(rg, contributor.name)

    assign(emulator, rg, caller["id"], RBAC_ADMINISTRATOR)
    granted = assign(emulator, rg, target, TAG_CONTRIBUTOR, client=as_caller)
    assert granted.created_by == caller["id"]
    assert as_caller.role_assignments.delete(rg, granted.name).name == granted.name

    other = seeded(emulator, "uaa")
    assign(emulator, rg, other["id"], USER_ACCESS_ADMINISTRATOR)
    as_uaa = emulator.authorization(credential=credential_of(other))
    assert assign(emulator, rg, target, TAG_CONTRIBUTOR, client=as_uaa).scope == rg


# --------------------------------------------------------------------------------------------------
# errors


def test_unsupported_filters(emulator, rg):
    ra = emulator.authorization().role_assignments
    p = seeded(emulator)["id"]
    for bad in (
        f"principalId eq {p}",  # the value must be quoted
        f"atScope() and principalId eq '{p}'",
        f"principalId eq '{p}' and roleDefinitionId eq '{READER}'",
        "atScope() or assignedTo('x')",
        "assignedTo()",
        "atScope() and atScope()",
        "__import__('os')",
    ):
        with pytest.raises(HttpResponseError) as info:
            list(ra.list_for_scope(rg, filter=bad))
        assert info.value.status_code == 400, bad
        assert info.value.error.code == "UnsupportedQuery"
        assert info.value.error.message == UNSUPPORTED.format(bad)


def test_write_errors(emulator, sub, rg):
    ra = emulator.authorization().role_assignments
    target = seeded(emulator)["id"]
    existing = assign(emulator, rg, target, READER)

    with pytest.raises(ResourceExistsError) as info:
        assign(emulator, rg, target, READER)
    assert info.value.status_code == 409 and info.value.error.code == "RoleAssignmentExists"
    assert info.value.error.message == (
        "The role assignment already exists. The ID of the existing role assignment is "
        f"{existing.name.replace('-', '')}."
    )
    # Its name now stands for that assignment: another principal, role or scope is an update.
    for principal, role, scope in ((seeded(emulator, "other")["id"], READER, rg), (target, READER, sub)):
        with pytest.raises(HttpResponseError) as info:
            assign(emulator, scope, principal, role, name=existing.name)
        assert info.value.status_code == 400 and info.value.error.code == "RoleAssignmentUpdateNotPermitted"
        assert info.value.error.message == (
            "Tenant ID, application ID, principal ID, and scope are not allowed to be updated."
        )

    unknown_role = str(uuid.uuid4())
    with pytest.raises(HttpResponseError) as info:
        assign(emulator, rg, target, unknown_role)
    assert info.value.status_code == 400 and info.value.error.code == "RoleDefinitionDoesNotExist"
    assert info.value.error.message == (
        f"The specified role definition with ID '{unknown_role.replace('-', '')}' does not exist."
    )
    with pytest.raises(HttpResponseError) as info:
        ra.create(
            rg, str(uuid.uuid4()), {"properties": {"roleDefinitionId": "Reader", "principalId": target}}
        )
    assert info.value.status_code == 400 and info.value.error.code == "InvalidRoleDefinitionId"

    missing = str(uuid.uuid4())
    with pytest.raises(HttpResponseError) as info:
        assign(emulator, rg, missing, READER)
    assert info.value.status_code == 400 and info.value.error.code == "PrincipalNotFound"
    assert info.value.error.message.startswith(
        f"Principal {missing.replace('-', '')} does not exist in the directory {emulator.tenant_id}. "
    )
    with pytest.raises(HttpResponseError) as info:
        assign(emulator, rg, target, TAG_CONTRIBUTOR, principalType="User")
    assert info.value.status_code == 400 and info.value.error.code == "UnmatchedPrincipalType"
    assert info.value.error.message == (
        f"The PrincipalId '{target.replace('-', '')}' has type 'ServicePrincipal' , which is different from "
        "specified PrinciaplType 'User'."
    )
    with pytest.raises(HttpResponseError) as info:
        assign(emulator, rg, target, TAG_CONTRIBUTOR, name="not-a-guid")
    assert info.value.status_code == 400 and info.value.error.code == "InvalidRoleAssignmentId"


def test_scopes_that_do_not_exist(emulator, sub, rg):
    ra = emulator.authorization().role_assignments
    target = seeded(emulator)["id"]
    with pytest.raises(ResourceNotFoundError) as info:
        assign(emulator, f"{sub}/resourceGroups/nope", target, READER)
    assert info.value.error.code == "ResourceGroupNotFound"
    with pytest.raises(ResourceNotFoundError) as info:
        list(ra.list_for_resource_group("nope"))
    assert info.value.error.code == "ResourceGroupNotFound"
    missing_vm = f"{rg}/providers/Microsoft.Compute/virtualMachines/nope"
    with pytest.raises(ResourceNotFoundError) as info:
        assign(emulator, missing_vm, target, READER)
    assert info.value.error.code == "ResourceNotFound"
    assert "Microsoft.Compute/virtualMachines/nope" in info.value.error.message
    with pytest.raises(ResourceNotFoundError) as info:
        list(ra.list_for_scope(f"/subscriptions/{uuid.uuid4()}", filter="atScope()"))
    assert info.value.error.code == "SubscriptionNotFound"


def test_a_replicating_principal(emulator, rg):
    emulator.set_timings(replication_delay=600)
    fresh = seeded(emulator, "fresh-mi", visible=False)["id"]
    # Without principalType the directory is asked and does not know the principal yet.
    with pytest.raises(HttpResponseError) as info:
        assign(emulator, rg, fresh, READER)
    assert info.value.status_code == 400 and info.value.error.code == "PrincipalNotFound"
    # principalType ServicePrincipal is the documented way round the replication delay.
    created = assign(emulator, rg, fresh, READER, principalType="ServicePrincipal")
    assert created.principal_type == "ServicePrincipal" and created.principal_id == fresh
    ra = emulator.authorization().role_assignments
    assert names(ra.list_for_scope(rg, filter=f"principalId eq '{fresh}'")) == {created.name}


# --------------------------------------------------------------------------------------------------
# role definitions


def test_role_definitions(emulator, sub, rg):
    rd = emulator.authorization().role_definitions
    owner = rd.get_by_id(role_id(emulator, OWNER))
    assert owner.role_name == "Owner" and owner.role_type == "BuiltInRole" and owner.name == OWNER
    assert owner.id == role_id(emulator, OWNER) and owner.assignable_scopes == ["/"]
    assert owner.permissions[0].actions == ["*"] and owner.permissions[0].not_actions == []

    example = load_example("authorization_GetRoleDefinitionById.json")["body"]
    example["properties"]["permissions"][0]["dataActions"] = []  # no emulated built-in role has data actions
    assert_shape(example, body(rd.get_by_id(role_id(emulator, READER), cls=raw)))

    # At a resource group the id is still the subscription's.
    reader = rd.get(rg, READER)
    assert reader.id == role_id(emulator, READER) and reader.role_name == "Reader"
    assert reader.permissions[0].actions == ["*/read"]

    [by_name] = rd.list(sub, filter="roleName eq 'Owner'")
    assert by_name.name == OWNER
    assert [r.name for r in rd.list(rg, filter="roleName eq 'user access administrator'")] == [
        USER_ACCESS_ADMINISTRATOR
    ]
    every = {r.role_name: r for r in rd.list(sub)}
    assert every["Role Based Access Control Administrator"].name == RBAC_ADMINISTRATOR
    assert "Microsoft.Authorization/*/Write" in every["Contributor"].permissions[0].not_actions
    assert len(list(rd.list(sub, filter="type eq 'BuiltInRole'"))) == len(every)
    assert list(rd.list(sub, filter="type eq 'CustomRole'")) == []

    # What the app does: from an assignment to its role's name.
    assignment = assign(emulator, rg, seeded(emulator)["id"], TAG_CONTRIBUTOR)
    assert rd.get_by_id(assignment.role_definition_id).role_name == "Tag Contributor"

    unknown = str(uuid.uuid4())
    with pytest.raises(ResourceNotFoundError) as info:
        rd.get(sub, unknown)
    assert info.value.error.code == "RoleDefinitionDoesNotExist"
    assert info.value.error.message == f"The specified role definition with ID '{unknown}' does not exist."
    with pytest.raises(HttpResponseError) as info:
        list(rd.list(sub, filter="roleName ne 'Owner'"))
    assert info.value.status_code == 400 and info.value.error.code == "UnsupportedQuery"


RG_NAME = "rg-custom-role"


def test_a_custom_role_definition_is_created_listed_assigned_and_refused_twice_by_name(emulator):
    client = emulator.authorization()
    scope = f"/subscriptions/{emulator.subscription_id}"
    emulator.resources().resource_groups.create_or_update(RG_NAME, {"location": "westeurope"})
    guid = str(uuid.uuid4())
    body = {
        "properties": {
            "roleName": "runbook reader",
            "description": "reads runbooks",
            "type": "CustomRole",
            "permissions": [{"actions": ["Microsoft.Automation/automationAccounts/runbooks/read"]}],
            "assignableScopes": [scope],
        }
    }
    created = client.role_definitions.create_or_update(scope, guid, body)
    assert created.role_type == "CustomRole" and created.name == guid
    assert created.assignable_scopes == [scope]
    (listed,) = client.role_definitions.list(scope, filter="roleName eq 'runbook reader'")
    assert listed.permissions[0].actions == ["Microsoft.Automation/automationAccounts/runbooks/read"]
    with pytest.raises(HttpResponseError) as same_name:
        client.role_definitions.create_or_update(scope, str(uuid.uuid4()), body)
    assert (
        same_name.value.status_code == 409
        and same_name.value.error.code == "RoleDefinitionWithSameNameExists"
    )

    # Assigned, it lets its principal do exactly its actions.
    reader = emulator.seed_principal("custom-role-holder", visible=True)
    client.role_assignments.create(
        scope,
        str(uuid.uuid4()),
        {
            "properties": {
                "roleDefinitionId": f"{scope}/providers/Microsoft.Authorization/roleDefinitions/{guid}",
                "principalId": reader["id"],
                "principalType": "ServicePrincipal",
            }
        },
    )
    token = emulator.token(client_id=reader["appId"])
    account = f"{scope}/resourceGroups/{RG_NAME}/providers/Microsoft.Automation/automationAccounts/acct1"
    with emulator.http() as http:
        headers = {"Authorization": f"Bearer {token}"}
        runbooks = http.get(
            f"{emulator.arm_endpoint}{account}/runbooks?api-version=2024-10-23", headers=headers
        )
        read_account = http.get(f"{emulator.arm_endpoint}{account}?api-version=2024-10-23", headers=headers)
    assert runbooks.status_code == 404  # allowed by the custom role (the account just does not exist)
    assert read_account.status_code == 403 and read_account.json()["error"]["code"] == "AuthorizationFailed"
    with pytest.raises(HttpResponseError) as assigned:
        client.role_definitions.delete(scope, guid)
    assert assigned.value.status_code == 409
