"""The tenant inventory: every principal that holds Exchange.ManageAsApp (or a look-alike) on Office 365
Exchange Online, or one of the Entra roles Exchange Online PowerShell supports, classified from live
state. Pure rules; ``ExomiService.inventory`` reads Graph, ARM and exomi's state for them.

* managed: exomi provisioned it for a target it still holds (or its ledger owns one of its grants);
* unmanaged: somebody else gave it the access;
* orphaned: a managed identity whose Azure resource is gone (its grants serve nobody);
* over-privileged (a flag on any of them): Global Administrator, a look-alike app role, or, for a
  managed one, an Entra role above every role its targets asked for.
"""

from __future__ import annotations

import csv
import io
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from shared import constants
from shared.findings import PRIVILEGE
from shared.models import Role

_ROLE_BY_TEMPLATE = {role.template_id.lower(): role for role in Role}


class HolderStatus(StrEnum):
    MANAGED = "managed"
    UNMANAGED = "unmanaged"
    ORPHANED = "orphaned"


class Holder(BaseModel):
    """A principal that holds Exchange Online rights: an app role on Office 365 Exchange Online or a
    supported Entra role."""

    model_config = ConfigDict(extra="forbid")

    principal_id: str
    display_name: str | None
    principal_type: str | None  # ManagedIdentity, Application, ...
    resource_id: str | None  # a managed identity's Azure resource (from its alternativeNames)
    exchange_app_roles: list[str]  # values of its app roles on Office 365 Exchange Online
    entra_roles: list[str]  # display names of its supported Entra roles
    status: HolderStatus
    over_privileged: bool
    targets: list[str]  # the targets exomi provisioned with this identity
    detail: str


def resource_of(alternative_names: tuple[str, ...] | list[str]) -> str | None:
    """A managed identity's Azure resource id: the alternativeNames entry that is one."""
    return next((name for name in alternative_names if name.lower().startswith("/subscriptions/")), None)


def classify(
    *,
    principal_id: str,
    display_name: str | None,
    principal_type: str | None,
    resource_id: str | None,
    resource_exists: bool | None,  # None: not an Azure resource exomi can look at
    exchange_app_role_ids: list[str],
    exchange_app_role_names: dict[str, str],
    role_definition_ids: list[str],
    targets: list[tuple[str, Role | None]],  # exomi's targets of this identity, with the role each asked for
    owned: bool,
) -> Holder:
    app_roles = sorted(exchange_app_role_names.get(i.lower(), i) for i in exchange_app_role_ids)
    roles = [_ROLE_BY_TEMPLATE[r.lower()] for r in role_definition_ids if r.lower() in _ROLE_BY_TEMPLATE]
    if resource_exists is False:
        status, detail = HolderStatus.ORPHANED, f"its resource {resource_id} is gone: its grants serve nobody"
    elif targets or owned:
        status, detail = (
            HolderStatus.MANAGED,
            "exomi provisioned it for " + (", ".join(t for t, _ in targets) or "a target"),
        )
    else:
        status, detail = HolderStatus.UNMANAGED, "exomi did not give it this access"
    look_alike = any(i.lower() != constants.EXCHANGE_MANAGE_AS_APP_ROLE_ID for i in exchange_app_role_ids)
    asked = max((PRIVILEGE[role] for _, role in targets if role is not None), default=0)
    above = status is HolderStatus.MANAGED and any(PRIVILEGE[role] > asked for role in roles)
    over = Role.GLOBAL_ADMINISTRATOR in roles or look_alike or above
    return Holder(
        principal_id=principal_id,
        display_name=display_name,
        principal_type=principal_type,
        resource_id=resource_id,
        exchange_app_roles=app_roles,
        entra_roles=sorted(str(role) for role in roles),
        status=status,
        over_privileged=over,
        targets=sorted(t for t, _ in targets),
        detail=detail,
    )


CSV_COLUMNS = (
    "principal_id",
    "display_name",
    "principal_type",
    "resource_id",
    "status",
    "over_privileged",
    "exchange_app_roles",
    "entra_roles",
    "targets",
    "detail",
)


def to_csv(holders: list[Holder]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for holder in holders:
        row = holder.model_dump(mode="json")
        writer.writerow(
            ";".join(row[c]) if isinstance(row[c], list) else ("" if row[c] is None else row[c])
            for c in CSV_COLUMNS
        )
    return out.getvalue()
