"""Rollback: a provision request that ends failed or cancelled takes back what it granted that no other
target needs (policy ``on_failure``: ``rollback``, the default, or ``keep``).

What the request added to the identity's ownership ledger (shared/ownership.py) is released: a grant
no other target needs is removed (and forgotten), one another target still needs stays; the runbook the
request created is deleted. Modules stay (other runbooks of the account may use them). Each removal is
an audit record of the request (step ``rollback``). A removal that fails leaves the grant in the ledger,
needed by the target, so that revoking the target removes it later; the summary says so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import partial

from shared.azure.arm import ArmGateway
from shared.azure.graph import GraphGateway
from shared.engine.context import resource_ref
from shared.errors import ExomiError
from shared.ids import ResourceId, TargetKind
from shared.ownership import GrantKind, Ledger, OwnedGrant
from shared.state.records import AuditRecord, RequestRecord
from shared.state.store import StateStore

log = logging.getLogger("exomi.engine")
STEP = "rollback"


@dataclass
class Rollback:
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # still needed by another target
    failed: list[str] = field(default_factory=list)  # could not be removed now; revoke removes them

    def summary(self) -> str:
        parts = []
        if self.removed:
            parts.append("rolled back: " + "; ".join(self.removed))
        if self.kept:
            parts.append("kept: " + "; ".join(self.kept))
        if self.failed:
            parts.append("not rolled back (revoke the target to remove them): " + "; ".join(self.failed))
        return ". ".join(parts) if parts else "nothing to roll back"


async def roll_back(
    state: StateStore,
    graph: GraphGateway,
    arm: ArmGateway,
    request: RequestRecord,
    target: ResourceId,
    principal_id: str | None,
) -> Rollback:
    result = Rollback()
    audit = await state.audit.list_for_request(request.id)
    sequence = 0

    async def audited(action: str, before: object) -> None:
        nonlocal sequence
        await state.audit.append(
            AuditRecord(
                request_id=request.id,
                step=STEP,
                sequence=sequence,
                action=action,
                target=request.target,
                before=before,
                after={"removed": True},
                requested_by=request.requested_by,
                channel=request.channel,
            )
        )
        sequence += 1

    if principal_id is not None:
        ledger = await state.ledger(principal_id)
        for grant in ledger.added_by(target.key, request.id):
            others = grant.needed_by_others(target.key)
            if others:
                await state.update_ledger(
                    principal_id,
                    partial(Ledger.release, target_key=target.key, assignment_id=grant.assignment_id),
                )
                result.kept.append(f"{grant.name} (also needed by {', '.join(others)})")
                continue
            try:
                await _remove(graph, principal_id, grant)
            except ExomiError as error:
                log.warning(
                    "request %s could not roll back %s: %s", request.id, grant.assignment_id, error.message
                )
                result.failed.append(f"{grant.name} ({grant.assignment_id}): {error.message}")
                continue
            await audited(
                f"roll back: remove the {grant.kind.value} {grant.name}",
                {"assignment_id": grant.assignment_id},
            )
            await state.update_ledger(principal_id, partial(Ledger.forget, assignment_id=grant.assignment_id))
            result.removed.append(f"{grant.kind.value} {grant.name} ({grant.assignment_id})")
    runbook = _runbook_created(audit, request)
    if runbook is not None and target.kind is TargetKind.AUTOMATION_ACCOUNT:
        try:
            await arm.delete_runbook(resource_ref(target), runbook)
        except ExomiError as error:
            result.failed.append(f"runbook {runbook}: {error.message}")
        else:
            await audited(f"roll back: delete runbook {runbook}", {"runbook": runbook})
            result.removed.append(f"runbook {runbook}")
    return result


async def _remove(graph: GraphGateway, principal_id: str, grant: OwnedGrant) -> None:
    """Remove the grant (already gone is fine)."""
    if grant.kind is GrantKind.APP_ROLE:
        await graph.revoke_app_role(principal_id, grant.assignment_id)
    else:
        await graph.remove_role(grant.assignment_id)


def _runbook_created(audit: list[AuditRecord], request: RequestRecord) -> str | None:
    """The runbook this request created (it did not exist before), if it did."""
    for record in audit:
        before = record.before if isinstance(record.before, dict) else {}
        if (
            record.step == "runbook"
            and record.action.startswith("publish runbook ")
            and not record.action.endswith("(started)")
            and before.get("state") == "missing"
        ):
            return str(before.get("runbook"))
    return None
