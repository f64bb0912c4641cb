"""Reads what an identity holds right now (Microsoft Graph) and turns it into privilege findings
(shared/findings.py): for diagnose, the end of a provision request and reconciliation."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime

from shared.azure.graph import GraphGateway
from shared.findings import Finding, HeldAppRole, HeldEntraRole, privilege_findings
from shared.models import Role
from shared.ownership import Ledger
from shared.state.records import DriftFinding
from shared.state.store import StateStore


async def observe_privileges(
    graph: GraphGateway,
    state: StateStore,
    principal_id: str,
    desired_role: Role | None,
    *,
    ledger_of: Callable[[str], Awaitable[Ledger]] | None = None,
) -> list[Finding]:
    """``ledger_of`` reads what exomi owns on the identity (default: the stored ledger; an engine pass
    gives the one it has just written, saving a Table read)."""
    # Four independent reads, at once (this runs at the end of every provision).
    exchange, app_role_grants, role_grants, ledger = await asyncio.gather(
        graph.exchange_principal(),
        graph.app_role_grants(principal_id),
        graph.role_grants(principal_id),
        (ledger_of or state.ledger)(principal_id),
    )
    app_roles: list[HeldAppRole] = []
    if exchange is not None:
        values = {role.id.lower(): role.value for role in exchange.app_roles}
        app_roles = [
            HeldAppRole(
                assignment_id=g.id, app_role_id=g.app_role_id, value=values.get(g.app_role_id.lower())
            )
            for g in app_role_grants
            if g.resource_id.lower() == exchange.id.lower()
        ]
    entra = [
        HeldEntraRole(
            assignment_id=g.id,
            role_definition_id=g.role_definition_id,
            directory_scope_id=g.directory_scope_id,
        )
        for g in role_grants
    ]
    owned = {grant.assignment_id for grant in ledger.grants}
    return privilege_findings(
        principal_id=principal_id,
        desired_role=desired_role,
        exchange_app_roles=app_roles,
        entra_roles=entra,
        owned=owned,
    )


def drift_of(finding: Finding, now: datetime) -> DriftFinding:
    """A privilege finding as the target's record keeps it (kind ``extra``)."""
    return DriftFinding(
        kind="extra",
        what=finding.what,
        detail=finding.detail,
        found_at=now,
        category=finding.kind,
        severity=finding.severity.value,
        fix=finding.fix,
    )
