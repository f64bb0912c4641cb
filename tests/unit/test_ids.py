"""ARM resource ids, GUIDs and domains: what is accepted, how it is normalised, what is refused."""

from __future__ import annotations

import base64
import json
import uuid

import pytest

from shared.errors import InputError
from shared.ids import (
    TargetKind,
    domain_matches,
    object_id_of,
    oid_claim,
    parse_resource_id,
    validate_domain,
    validate_domain_pattern,
    validate_guid,
)

SUB = "6a2b5c1e-0d3f-4e8a-9b7c-1d2e3f4a5b6c"
RG = f"/subscriptions/{SUB}/resourceGroups/rg-exo"
AA = f"{RG}/providers/Microsoft.Automation/automationAccounts/aa-exo-01"
VM = f"{RG}/providers/Microsoft.Compute/virtualMachines/vm-01"
UAI = f"{RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/uai-01"
FUNC = f"{RG}/providers/Microsoft.Web/sites/func-exo-01"
VMSS = f"{RG}/providers/Microsoft.Compute/virtualMachineScaleSets/vmss-exo-01"


@pytest.mark.parametrize(
    ("value", "kind", "name"),
    [
        (AA, TargetKind.AUTOMATION_ACCOUNT, "aa-exo-01"),
        (VM, TargetKind.VIRTUAL_MACHINE, "vm-01"),
        (UAI, TargetKind.USER_ASSIGNED_IDENTITY, "uai-01"),
        (FUNC, TargetKind.FUNCTION_APP, "func-exo-01"),
        (VMSS, TargetKind.SCALE_SET, "vmss-exo-01"),
    ],
)
def test_the_target_kinds_are_recognised(value, kind, name):
    resource = parse_resource_id(value)
    assert (resource.kind, resource.name, resource.resource_group) == (kind, name, "rg-exo")
    assert resource.canonical == value
    assert resource.resource_group_id == RG


def test_casing_does_not_matter_and_yields_one_canonical_form_and_one_key():
    shouted = AA.replace("resourceGroups", "RESOURCEGROUPS").replace(
        "Microsoft.Automation", "microsoft.automation"
    )
    shouted = shouted.replace(SUB, SUB.upper()).replace("automationAccounts", "AutomationAccounts")
    other_name_casing = AA.replace("aa-exo-01", "AA-EXO-01")
    parsed = parse_resource_id(shouted)
    assert parsed.canonical == AA
    assert parsed.subscription_id == SUB
    assert parsed.key == parse_resource_id(AA).key == parse_resource_id(other_name_casing).key
    assert len(parsed.key) == 64 and set(parsed.key) <= set("0123456789abcdef")


def test_keys_differ_between_resources():
    assert parse_resource_id(AA).key != parse_resource_id(AA.replace("aa-exo-01", "aa-exo-02")).key


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("' or 1 eq 1", "ARM resource id of the form"),
        (AA + "' or PartitionKey ne '", "Automation account name"),
        (AA.replace("aa-exo-01", "aa'exo"), "Automation account name"),
        (f"{AA}?$filter=Status eq 'x'", "Automation account name"),
        (AA.replace("rg-exo", "rg exo"), "resource group name"),
        (AA.replace("rg-exo", ".."), "resource group name"),
        (f"{RG}/providers/Microsoft.Automation/automationAccounts/../../x", "ARM resource id of the form"),
        (AA + "/", "ARM resource id of the form"),
        (AA.replace("aa-exo-01", "aa%2Fexo"), "Automation account name"),
        (AA.replace(SUB, "not-a-guid"), "must be a GUID"),
        (AA.replace(SUB, SUB[:-1] + "g"), "must be a GUID"),
        (AA.replace(SUB, "{" + SUB + "}"), "must be a GUID"),
        (f"{RG}/providers/Microsoft.Storage/storageAccounts/st01", "is not supported"),
        (AA.replace("aa-exo-01", "aa1"), "6-50 characters"),
        (AA.replace("aa-exo-01", "1aa-exo"), "6-50 characters"),
        (VM.replace("vm-01", "vm-01-"), "virtual machine name"),
        (UAI.replace("uai-01", "_uai"), "user-assigned identity name"),
        (AA[1:], "ARM resource id of the form"),
        (AA.replace("/providers/", "/provider/"), "ARM resource id of the form"),
        (f"{RG}/providers/Microsoft.Automation/automationAccounts/" + "a" * 600, "at most 512"),
        ("", "ARM resource id of the form"),
        (42, "must be an ARM resource id string"),
    ],
)
def test_hostile_or_malformed_ids_are_refused_naming_the_field(value, reason):
    with pytest.raises(InputError) as caught:
        parse_resource_id(value, "target")
    assert caught.value.field == "target"
    assert reason in caught.value.reason


def test_a_vm_id_where_a_user_assigned_identity_is_expected_is_refused():
    with pytest.raises(InputError) as caught:
        parse_resource_id(VM, "identity", kinds=[TargetKind.USER_ASSIGNED_IDENTITY])
    assert caught.value.field == "identity"
    assert "got the id of a virtual machine" in caught.value.reason


def test_guids_are_validated_and_lowercased():
    assert validate_guid(SUB.upper(), "principal_id") == SUB
    for bad in ["", "x", SUB + "0", SUB.replace("-", ""), "' or 1 eq 1", None, 7]:
        with pytest.raises(InputError) as caught:
            validate_guid(bad, "principal_id")
        assert caught.value.field == "principal_id"


def test_domains_are_validated_and_lowercased():
    assert validate_domain("Contoso.OnMicrosoft.com") == "contoso.onmicrosoft.com"
    assert validate_domain("xn--bcher-kva.example") == "xn--bcher-kva.example"


@pytest.mark.parametrize(
    "bad",
    [
        "contoso",
        "-contoso.com",
        "contoso-.com",
        "conto..so.com",
        "contoso.com'",
        "contoso.com' or 1 eq 1",
        "contoso.com/../x",
        "con toso.com",
        "bücher.example",
        ("a" * 60 + ".") * 5 + "com",
        "",
        3,
    ],
)
def test_bad_domains_are_refused_naming_the_field(bad):
    with pytest.raises(InputError) as caught:
        validate_domain(bad)
    assert caught.value.field == "organization"


def test_suffix_patterns_match_names_below_them_only():
    pattern = validate_domain_pattern("*.OnMicrosoft.com", "allowed_organizations")
    assert pattern == "*.onmicrosoft.com"
    assert domain_matches("contoso.onmicrosoft.com", pattern)
    assert not domain_matches("onmicrosoft.com", pattern)
    assert not domain_matches("evilonmicrosoft.com", pattern)
    assert domain_matches("contoso.com", "contoso.com")
    assert not domain_matches("sub.contoso.com", "contoso.com")


def test_object_ids_are_read_with_or_without_dashes_and_nothing_else_is():
    dashed = "8e4138ec-1bc2-4884-a7f0-9cd94ebc740c"
    assert object_id_of(dashed.replace("-", "").upper()) == dashed
    assert object_id_of(dashed) == dashed
    assert [object_id_of(v) for v in ("", "not-a-guid", "8e4138ec1bc24884a7f0", None, 42)] == [None] * 5


def test_the_oid_claim_of_exomis_own_token_is_read_and_a_token_without_one_gives_none():
    def token(claims: object) -> str:
        payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
        return f"e30.{payload}.signature"

    oid = "6c079d23-4c4a-4261-8c02-a0b1c2d3e4f5"
    assert oid_claim(token({"oid": oid, "tid": "x"})) == oid
    assert oid_claim(token({"sub": "x"})) is None
    assert oid_claim(token(["not", "an", "object"])) is None
    assert oid_claim("not a jwt") is None
    assert oid_claim("a.%%%.c") is None


def test_an_arc_server_is_refused_with_the_reason_and_what_to_use_instead():
    arc = (
        f"/subscriptions/{uuid.uuid4()}/resourceGroups/rg/providers/Microsoft.HybridCompute/machines/onprem1"
    )
    with pytest.raises(InputError) as caught:
        parse_resource_id(arc)
    assert caught.value.field == "target"
    assert "Azure Arc-enabled server" in caught.value.reason
    assert "169.254.169.254" in caught.value.reason and "-CertificateThumbprint" in caught.value.reason


@pytest.mark.parametrize("name", ["-func", "func-", "f", "a" * 61, "func_1", "func.1"])
def test_a_function_app_name_follows_the_site_naming_rule(name):
    with pytest.raises(InputError, match="Function app name"):
        parse_resource_id(f"{RG}/providers/Microsoft.Web/sites/{name}")


@pytest.mark.parametrize("name", ["-vmss", "vmss-", "a" * 65, "vmss_1", "vmss.1", "_vmss", "vm ss"])
def test_a_scale_set_name_follows_the_naming_rule(name):
    with pytest.raises(InputError, match="virtual machine scale set name"):
        parse_resource_id(f"{RG}/providers/Microsoft.Compute/virtualMachineScaleSets/{name}")


def test_a_scale_sets_instance_is_not_a_target_of_its_own():
    instance = f"{VMSS}/virtualMachines/0"
    with pytest.raises(
        InputError, match="is an instance of the VM scale set 'vmss-exo-01': name the scale set"
    ):
        parse_resource_id(instance)
