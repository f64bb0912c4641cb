"""The inventory's classification (shared/inventory.py), without Graph."""

from __future__ import annotations

from shared.inventory import Holder, HolderStatus, classify, resource_of, to_csv
from shared.models import Role

MANAGE = "dc50a0fb-09a3-484d-be87-e023b12c6440"
V2 = "11111111-0000-4000-8000-000000000002"
NAMES = {MANAGE: "Exchange.ManageAsApp", V2: "Exchange.ManageAsAppV2"}
AA = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Automation/automationAccounts/aa1"


def holder(**changes) -> Holder:
    values = {
        "principal_id": "p",
        "display_name": "aa1",
        "principal_type": "ManagedIdentity",
        "resource_id": AA,
        "resource_exists": True,
        "exchange_app_role_ids": [MANAGE],
        "exchange_app_role_names": NAMES,
        "role_definition_ids": [Role.EXCHANGE_RECIPIENT_ADMINISTRATOR.template_id],
        "targets": [],
        "owned": False,
    }
    return classify(**{**values, **changes})


def test_managed_unmanaged_and_orphaned():
    assert holder(targets=[(AA, Role.EXCHANGE_RECIPIENT_ADMINISTRATOR)]).status is HolderStatus.MANAGED
    assert holder(owned=True).status is HolderStatus.MANAGED
    assert holder().status is HolderStatus.UNMANAGED
    assert holder(resource_exists=False, targets=[(AA, None)]).status is HolderStatus.ORPHANED


def test_over_privilege():
    assert not holder(targets=[(AA, Role.EXCHANGE_RECIPIENT_ADMINISTRATOR)]).over_privileged
    assert holder(role_definition_ids=[Role.GLOBAL_ADMINISTRATOR.template_id]).over_privileged
    assert holder(exchange_app_role_ids=[MANAGE, V2]).over_privileged
    above = holder(
        targets=[(AA, Role.GLOBAL_READER)], role_definition_ids=[Role.EXCHANGE_ADMINISTRATOR.template_id]
    )
    assert above.over_privileged and above.entra_roles == ["Exchange Administrator"]


def test_the_resource_comes_from_alternative_names_and_csv_has_a_row_each():
    assert resource_of(["isExplicit=False", AA]) == AA and resource_of(["isExplicit=True"]) is None
    text = to_csv([holder(), holder(principal_id="q")])
    assert text.splitlines()[0].startswith("principal_id,display_name") and len(text.splitlines()) == 3
