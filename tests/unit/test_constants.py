"""The well-known identifiers exomi relies on agree with the tenant emulator's directory."""

from __future__ import annotations

from emulator.directory_data import EXCHANGE_SUPPORTED_ROLES
from shared.constants import EXCHANGE_MANAGE_AS_APP_ROLE_ID, EXO_APP_ID, MODULE_NAMES, SUPPORTED_ROLES
from shared.models import ModuleName, Role


def test_roles_and_their_template_ids_match_the_directory():
    assert SUPPORTED_ROLES == EXCHANGE_SUPPORTED_ROLES
    assert {role.value: role.template_id for role in Role} == SUPPORTED_ROLES


def test_exchange_identifiers_and_module_names():
    assert EXO_APP_ID == "00000002-0000-0ff1-ce00-000000000000"
    assert EXCHANGE_MANAGE_AS_APP_ROLE_ID == "dc50a0fb-09a3-484d-be87-e023b12c6440"
    assert (
        [m.value for m in ModuleName]
        == list(MODULE_NAMES)
        == ["PackageManagement", "PowerShellGet", "ExchangeOnlineManagement"]
    )
