"""Revocation: remove exactly what exomi granted for a target. Grants on a user-assigned identity
stay while another target of exomi still uses that identity."""

from __future__ import annotations

from functools import partial

from shared.engine.context import Observation, StepContext, StepResult, Verdict
from shared.engine.step import Step
from shared.errors import UpstreamRejected
from shared.ids import TargetKind
from shared.ownership import GrantKind, Ledger, OwnedGrant


class RevokeScope(Step):
    name = "revoke-scope"
    title = "What exomi granted for the target, and who else needs it"

    async def observe(self, ctx: StepContext) -> Observation:
        record = ctx.target_record
        if record is None or record.principal_id is None:
            return Observation(
                Verdict.NOT_APPLICABLE, NOTHING, facts={"principal_id": None, "shared_with": []}
            )
        ledger = await ctx.state.ledger(record.principal_id)
        needs = ledger.needed_by(ctx.target.key)
        parts = []
        for grant in needs:
            others = grant.needed_by_others(ctx.target.key)
            kept = f" (kept: also needed by {', '.join(others)})" if others else ""
            parts.append(f"{grant.kind.value} {grant.name} ({grant.assignment_id}){kept}")
        if record.granted.runbook_name:
            parts.append(f"runbook {record.granted.runbook_name}")
        shared_with = sorted({t for g in needs for t in g.needed_by_others(ctx.target.key)})
        if not parts:
            return Observation(
                Verdict.NOT_APPLICABLE,
                NOTHING,
                facts={"principal_id": record.principal_id, "shared_with": []},
            )
        detail = "exomi granted: " + ", ".join(parts)
        if shared_with:
            detail += f"; the identity is also used by {', '.join(shared_with)}"
        return Observation(
            Verdict.OK, detail, facts={"principal_id": record.principal_id, "shared_with": shared_with}
        )

    async def apply(self, ctx: StepContext) -> StepResult:
        observation = await self.observe(ctx)
        if observation.verdict is Verdict.NOT_APPLICABLE:
            # Nothing of exomi's here (never provisioned, or revoked already): the revocation ends now.
            await ctx.audit.done(0, NOTHING, None, {"removed": []})
        return StepResult(done=True, message=observation.detail, facts=observation.facts)


NOTHING = "nothing of exomi's to revoke for this target"


class _DeleteOwn(Step):
    """Delete one Automation account resource exomi created for the target (its name is in the target's
    record), unless ``observe`` says it is gone or must stay; the deletion is audited."""

    label: str  # what people read, e.g. "runbook"
    audit_key: str  # the audit record's field for its name

    def _own(self, ctx: StepContext) -> str | None:
        """The name exomi recorded for it, None when exomi created none."""
        raise NotImplementedError

    async def _delete(self, ctx: StepContext, name: str) -> None:
        raise NotImplementedError

    async def apply(self, ctx: StepContext) -> StepResult:
        observation = await self.observe(ctx)
        name = self._own(ctx)
        action = f"delete {self.label} {name}"
        if observation.verdict is not Verdict.WRONG or name is None:
            if name:
                await ctx.audit.settle(0, action, {"deleted": True})
            return StepResult(done=True, message=observation.detail)
        await ctx.audit.intend(0, action, {self.audit_key: name})
        await self._delete(ctx, name)
        await ctx.audit.done(0, action, {self.audit_key: name}, {"deleted": True})
        return StepResult(done=True, changed=True, message=f"deleted {self.label} {name}")


class RemoveRunbook(_DeleteOwn):
    name = "revoke-runbook"
    title = "Remove the runbook exomi published"
    after = ("revoke-scope",)
    label = "runbook"
    audit_key = "runbook"

    def _own(self, ctx: StepContext) -> str | None:
        return ctx.target_record.granted.runbook_name if ctx.target_record else None

    async def _delete(self, ctx: StepContext, name: str) -> None:
        await ctx.arm.delete_runbook(ctx.ref, name)

    async def observe(self, ctx: StepContext) -> Observation:
        name = self._own(ctx)
        if ctx.kind is not TargetKind.AUTOMATION_ACCOUNT or not name:
            return Observation(Verdict.NOT_APPLICABLE, "no runbook of exomi's to remove")
        runbook = (
            await ctx.arm.get_runbook(ctx.ref, name)
            if await ctx.arm.get_automation_account(ctx.ref)
            else None
        )
        if runbook is None:
            return Observation(Verdict.OK, f"runbook {name} is gone")
        return Observation(Verdict.WRONG, f"runbook {name} exists", action=f"delete runbook {name}")


class RemoveRuntimeEnvironment(_DeleteOwn):
    """The runtime environment exomi created for its runbook goes when no runbook runs in it any more
    (modules imported into the account's PowerShell 5.1 space stay: other runbooks may use them)."""

    name = "revoke-runtime-environment"
    title = "Remove the runtime environment exomi created, once no runbook uses it"
    after = ("revoke-runbook",)
    label = "runtime environment"
    audit_key = "runtime_environment"

    def _own(self, ctx: StepContext) -> str | None:
        return ctx.target_record.granted.runtime_environment if ctx.target_record else None

    async def _delete(self, ctx: StepContext, name: str) -> None:
        await ctx.arm.delete_runtime_environment(ctx.ref, name)

    async def observe(self, ctx: StepContext) -> Observation:
        environment = self._own(ctx)
        if ctx.kind is not TargetKind.AUTOMATION_ACCOUNT or not environment:
            return Observation(Verdict.NOT_APPLICABLE, "no runtime environment of exomi's to remove")
        if await ctx.arm.get_automation_account(ctx.ref) is None:
            return Observation(Verdict.OK, f"runtime environment {environment} is gone with the account")
        if await ctx.arm.get_runtime_environment(ctx.ref, environment) is None:
            return Observation(Verdict.OK, f"runtime environment {environment} is gone")
        users = await ctx.arm.runbooks_using(ctx.ref, environment)
        if users:
            return Observation(
                Verdict.OK, f"kept runtime environment {environment}: runbooks {', '.join(users)} use it"
            )
        return Observation(
            Verdict.WRONG,
            f"runtime environment {environment} exists",
            action=f"delete runtime environment {environment}",
        )


class _RemoveGrants(Step):
    """Remove the grants of one kind exomi made that this target needs and no other target needs;
    release the target from those another target still needs (shared/ownership.py)."""

    after = ("revoke-scope",)
    kind: GrantKind
    what = ""

    async def _present(self, ctx: StepContext) -> set[str]:
        raise NotImplementedError

    async def _remove(self, ctx: StepContext, assignment_id: str) -> None:
        raise NotImplementedError

    async def _needs(self, ctx: StepContext) -> list[OwnedGrant]:
        principal_id = ctx.facts.get("principal_id")
        if principal_id is None:
            return []
        return (await ctx.state.ledger(principal_id)).needed_by(ctx.target.key, self.kind)

    async def _present_or_none(self, ctx: StepContext) -> set[str]:
        try:
            return await self._present(ctx)
        except UpstreamRejected as error:
            if error.status != 404:
                raise
            return set()  # the principal itself is gone (its resource was deleted): so are its grants

    async def observe(self, ctx: StepContext) -> Observation:
        needs = await self._needs(ctx)
        if not needs:
            return Observation(Verdict.NOT_APPLICABLE, f"exomi did not grant the {self.what}")
        present = await self._present_or_none(ctx)
        kept = [g for g in needs if g.needed_by_others(ctx.target.key)]
        removable = [g for g in needs if g not in kept and g.assignment_id in present]
        detail = "; ".join(
            [
                f"kept the {self.what} {g.name}: also needed by {', '.join(g.needed_by_others(ctx.target.key))}"
                for g in kept
            ]
            + [
                f"the {self.what} {g.name} ({g.assignment_id}) is gone"
                for g in needs
                if g not in kept and g not in removable
            ]
        )
        if not removable:
            return Observation(Verdict.OK, detail or f"no {self.what} to remove")
        names = ", ".join(f"{g.name} ({g.assignment_id})" for g in removable)
        return Observation(
            Verdict.WRONG, f"the {self.what} {names} exists", action=f"remove the {self.what} {names}"
        )

    async def apply(self, ctx: StepContext) -> StepResult:
        needs = await self._needs(ctx)
        if not needs:
            return StepResult(done=True, message=f"exomi did not grant the {self.what}")
        principal_id = ctx.fact("principal_id")
        present = await self._present_or_none(ctx)
        target_key = ctx.target.key
        messages: list[str] = []
        changed = False
        for index, grant in enumerate(needs):
            others = grant.needed_by_others(target_key)
            if others:
                await ctx.state.update_ledger(
                    principal_id,
                    partial(Ledger.release, target_key=target_key, assignment_id=grant.assignment_id),
                )
                messages.append(f"kept the {self.what} {grant.name}: also needed by {', '.join(others)}")
                continue
            action = f"remove the {self.what} {grant.name}"
            before = {"assignment_id": grant.assignment_id, "principal_id": principal_id}
            if grant.assignment_id in present:
                await ctx.audit.intend(index, action, before)
                await self._remove(ctx, grant.assignment_id)
                await ctx.audit.done(index, action, before, {"removed": True})
                changed = True
                messages.append(f"removed the {self.what} {grant.name} ({grant.assignment_id})")
            else:
                await ctx.audit.settle(index, action, {"removed": True})
                messages.append(f"the {self.what} {grant.name} ({grant.assignment_id}) is gone")
            # Removed first, forgotten after: a crash in between finds it gone and forgets it then.
            await ctx.state.update_ledger(
                principal_id, partial(Ledger.forget, assignment_id=grant.assignment_id)
            )
        return StepResult(done=True, changed=changed, message="; ".join(messages))


class RemoveAppRole(_RemoveGrants):
    name = "revoke-app-role"
    title = "Remove the Exchange.ManageAsApp grant exomi made"
    kind = GrantKind.APP_ROLE
    what = "app role"

    async def _present(self, ctx):
        return {g.id for g in await ctx.graph.app_role_grants(ctx.fact("principal_id"))}

    async def _remove(self, ctx, assignment_id):
        await ctx.graph.revoke_app_role(ctx.fact("principal_id"), assignment_id)


class RemoveEntraRole(_RemoveGrants):
    name = "revoke-entra-role"
    title = "Remove the Entra role assignments exomi made"
    kind = GrantKind.ENTRA_ROLE
    what = "Entra role"

    async def _present(self, ctx):
        return {g.id for g in await ctx.graph.role_grants(ctx.fact("principal_id"))}

    async def _remove(self, ctx, assignment_id):
        await ctx.graph.remove_role(assignment_id)
