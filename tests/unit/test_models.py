"""The request models: defaults, normalisation, and a clear field-naming error for every bad input."""

from __future__ import annotations

import json

import pytest

from shared.errors import InputError
from shared.models import (
    SYSTEM_IDENTITY,
    Channel,
    ModuleName,
    ProvisionRequest,
    RequestStatus,
    RevokeRequest,
    Role,
    Runtime,
)

SUB = "6a2b5c1e-0d3f-4e8a-9b7c-1d2e3f4a5b6c"
RG = f"/subscriptions/{SUB}/resourceGroups/rg-exo"
AA = f"{RG}/providers/Microsoft.Automation/automationAccounts/aa-exo-01"
VM = f"{RG}/providers/Microsoft.Compute/virtualMachines/vm-01"
UAI = f"{RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/uai-01"
BASE = {
    "target": AA,
    "organization": "contoso.onmicrosoft.com",
    "requested_by": "alice@contoso.com",
    "channel": "http",
}


def test_a_minimal_request_gets_the_documented_defaults():
    request = ProvisionRequest.parse(BASE)
    assert request.identity == SYSTEM_IDENTITY
    assert request.identity_id is None
    assert request.role is None  # the policy's default role applies
    assert request.runtime is Runtime.PS51
    assert request.runtime_environment is None
    assert request.module_versions is None  # the policy's pinned versions apply
    assert request.runbook_name == "exomi-connect-exchange"
    assert request.verify is True
    assert request.external_reference is None and request.callback_url is None


def test_values_are_normalised():
    request = ProvisionRequest.parse(
        {
            **BASE,
            "target": AA.lower(),
            "organization": "Contoso.OnMicrosoft.COM",
            "role": "exchange   ADMINISTRATOR",
            "runtime": "7.4",
            "module_versions": {"exchangeonlinemanagement": "3.5.1"},
            "identity": UAI.replace(
                "Microsoft.ManagedIdentity/userAssignedIdentities",
                "microsoft.managedidentity/USERASSIGNEDIDENTITIES",
            ),
            "channel": "ticket",
            "external_reference": "  INC0012345  ",
        }
    )
    assert request.target == AA
    assert request.target_id.kind.label == "Automation account"
    assert request.organization == "contoso.onmicrosoft.com"
    assert request.role is Role.EXCHANGE_ADMINISTRATOR and request.role.template_id.startswith("29232cdf")
    assert request.module_versions == {ModuleName.EXCHANGE_ONLINE_MANAGEMENT: "3.5.1"}
    assert request.identity == UAI
    assert request.channel is Channel.TICKET
    assert request.external_reference == "INC0012345"


def test_for_a_user_assigned_identity_target_the_identity_is_the_target():
    request = ProvisionRequest.parse({**BASE, "target": UAI})
    assert request.identity == UAI
    assert ProvisionRequest.parse({**BASE, "target": UAI, "identity": UAI.lower()}).identity == UAI
    with pytest.raises(InputError) as caught:
        ProvisionRequest.parse({**BASE, "target": UAI, "identity": "system"})
    assert caught.value.field == "identity"


def test_a_vm_can_use_a_user_assigned_identity():
    request = ProvisionRequest.parse({**BASE, "target": VM, "identity": UAI})
    assert request.identity == UAI


def _field_of(**changes) -> InputError:
    with pytest.raises(InputError) as caught:
        ProvisionRequest.parse({**BASE, **changes})
    return caught.value


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        ({"target": "' or 1 eq 1"}, "target", "ARM resource id"),
        ({"target": f"{AA}' or '1' eq '1"}, "target", "Automation account name"),
        ({"target": AA.replace(SUB, "12345")}, "target", "GUID"),
        (
            {"target": f"{RG}/providers/Microsoft.Automation/automationAccounts/../../../x"},
            "target",
            "ARM resource id",
        ),
        ({"identity": VM}, "identity", "got the id of a virtual machine"),
        ({"identity": "$filter=principalId eq 'x'"}, "identity", "'system' or a user-assigned identity"),
        ({"identity": "System' or 1 eq 1"}, "identity", "'system' or a user-assigned identity"),
        ({"organization": "contoso.onmicrosoft.com' or 1 eq 1"}, "organization", "DNS domain"),
        ({"organization": "../contoso"}, "organization", "DNS domain"),
        ({"role": "Global Administrator' or 1 eq 1"}, "role", "Exchange Recipient Administrator"),
        ({"role": "Privileged Role Administrator"}, "role", "Input should be"),
        ({"runtime": "6.0"}, "runtime", "'5.1', '7.2' or '7.4'"),
        ({"runtime_environment": "exomi-ps"}, "runtime_environment", "runtime 7.2 or 7.4"),
        (
            {"runtime": "7.4", "runtime_environment": "../env"},
            "runtime_environment",
            "not a valid runtime environment",
        ),
        (
            {"target": VM, "runtime": "7.4", "runtime_environment": "env-1"},
            "runtime_environment",
            "Automation",
        ),
        (
            {"module_versions": {"Az.Accounts": "2.0.0"}},
            "module_versions.Az.Accounts",
            "ExchangeOnlineManagement",
        ),
        (
            {"module_versions": {"ExchangeOnlineManagement": "latest"}},
            "module_versions.ExchangeOnlineManagement",
            "exact module version",
        ),
        (
            {"module_versions": {"PowerShellGet": "2.*"}},
            "module_versions.PowerShellGet",
            "exact module version",
        ),
        ({"module_versions": ["3.5.1"]}, "module_versions", "dictionary"),
        ({"runbook_name": "../runbook"}, "runbook_name", "not a valid runbook name"),
        ({"runbook_name": "1runbook"}, "runbook_name", "starting with a letter"),
        ({"runbook_name": "r" * 64}, "runbook_name", "1-63"),
        ({"verify": "yes"}, "verify", "boolean"),
        ({"requested_by": "x" * 257}, "requested_by", "at most 256"),
        ({"requested_by": "alice\nINFO forged log line"}, "requested_by", "printable"),
        ({"requested_by": ""}, "requested_by", "must not be empty"),
        ({"channel": "email"}, "channel", "'tag', 'http'"),
        ({"external_reference": "T" * 129}, "external_reference", "at most 128"),
        ({"external_reference": "INC1\x00"}, "external_reference", "printable"),
        (
            {"callback_url": "http://prod-01.westeurope.logic.azure.com/workflows/x"},
            "callback_url",
            "https://",
        ),
        (
            {"callback_url": "https://user:secret@hooks.example.com/x"},
            "callback_url",
            "user names or passwords",
        ),
        ({"callback_url": "https://hooks.example.com/" + "a" * 2100}, "callback_url", "at most 2048"),
        ({"callback_url": "https://hooks.example.com/a b"}, "callback_url", "spaces"),
        ({"callback_url": "https://bad_host!/x"}, "callback_url", "valid DNS name"),
        ({"callback_url": "https://*.logic.azure.com/x"}, "callback_url", "valid DNS name"),
        ({"callback_url": "javascript:alert(1)"}, "callback_url", "https://"),
        ({"target": 17}, "target", "valid string"),
        ({"organization": ["contoso.com"]}, "organization", "valid string"),
        ({"$filter": "Status eq 'queued'"}, "$filter", "not a known field"),
        ({"PartitionKey": "x"}, "PartitionKey", "not a known field"),
    ],
)
def test_every_bad_field_is_named(changes, field, reason):
    error = _field_of(**changes)
    assert error.field == field
    assert reason in error.reason
    assert error.to_dict()["code"] == "InvalidInput"
    assert error.to_dict()["field"] == field
    assert error.message.startswith(f"{field}: ")


def test_all_missing_fields_are_reported():
    with pytest.raises(InputError) as caught:
        ProvisionRequest.parse({})
    assert [p["field"] for p in caught.value.problems] == [
        "target",
        "organization",
        "requested_by",
        "channel",
    ]
    assert all(p["message"] == "is required" for p in caught.value.problems)


@pytest.mark.parametrize(
    ("body", "reason"), [("[1, 2]", "JSON object"), ("{not json", "not valid JSON"), (b"null", "JSON object")]
)
def test_a_body_that_is_not_a_json_object_is_named_body(body, reason):
    with pytest.raises(InputError) as caught:
        ProvisionRequest.parse(body)
    assert caught.value.field == "body"
    assert reason in caught.value.reason


def test_json_text_is_accepted():
    assert ProvisionRequest.parse(json.dumps(BASE)).target == AA


def test_equivalent_requests_have_the_same_fingerprint_and_different_ones_do_not():
    a = ProvisionRequest.parse(BASE)
    b = ProvisionRequest.parse(
        {**BASE, "target": AA.lower(), "organization": "CONTOSO.onmicrosoft.com", "verify": True}
    )
    c = ProvisionRequest.parse({**BASE, "role": "Security Reader"})
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != c.fingerprint()


def test_revoke_requests():
    revoke = RevokeRequest.parse({"target": UAI, "requested_by": "tag-handler", "channel": "tag"})
    assert revoke.identity == UAI
    assert RevokeRequest.parse({"target": AA, "requested_by": "x", "channel": "cli"}).identity is None
    with pytest.raises(InputError) as caught:
        RevokeRequest.parse(
            {"target": AA, "requested_by": "x", "channel": "cli", "organization": "contoso.com"}
        )
    assert caught.value.field == "organization"
    with pytest.raises(InputError) as caught:
        RevokeRequest.parse({"target": AA, "requested_by": "x", "channel": "cli", "identity": VM})
    assert caught.value.field == "identity"


def test_active_statuses():
    assert {s for s in RequestStatus if s.active} == {
        RequestStatus.AWAITING_APPROVAL,
        RequestStatus.QUEUED,
        RequestStatus.RUNNING,
        RequestStatus.WAITING,
    }
    # A pass of the engine may be changing a running request: it cannot be cancelled at that moment.
    assert {s for s in RequestStatus if s.cancellable} == {
        RequestStatus.AWAITING_APPROVAL,
        RequestStatus.QUEUED,
        RequestStatus.WAITING,
    }
