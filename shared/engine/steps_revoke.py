"""Revocation: remove exactly what exomi granted for a target. Grants on a user-assigned identity
stay while another target of exomi still uses that identity."""

from __future__ import annotations

from shared.azure.failures import UpstreamRejected
from shared.engine.context import Observation, StepContext, StepResult, Verdict
from shared.engine.step import Step
from shared.ids import TargetKind
from shared.models import TargetStatus


class RevokeScope(Step):
    name = "revoke-scope"
    title = "What exomi granted for the target, and who else uses the identity"

    async def observe(self, ctx: StepContext) -> Observation:
        record = ctx.target_record
        if record is None or record.principal_id is None:
            return Observation(
                Verdict.NOT_APPLICABLE,
                "exomi has no record of granting anything for this target",
                facts={"shared_with": []},
            )
        others = [
            t.target
            for t in await ctx.state.targets.list_by_principal(record.principal_id)
            if t.target_key != record.target_key
            and t.status in (TargetStatus.PROVISIONED, TargetStatus.PROVISIONING)
        ]
        granted = record.granted
        parts = [
            f"app role assignment {granted.app_role_assignment_id}"
            if granted.app_role_assignment_id
            else None,
            f"role assignment {granted.role_assignment_id}" if granted.role_assignment_id else None,
            f"runbook {granted.runbook_name}" if granted.runbook_name else None,
        ]
        detail = "exomi granted: " + (", ".join(p for p in parts if p) or "nothing that needs removal")
        if others:
            detail += f"; the identity is also used by {', '.join(others)}"
        return Observation(
            Verdict.OK, detail, facts={"principal_id": record.principal_id, "shared_with": others}
        )


class RemoveRunbook(Step):
    name = "revoke-runbook"
    title = "Remove the runbook exomi published"
    after = ("revoke-scope",)

    async def observe(self, ctx: StepContext) -> Observation:
        name = ctx.target_record.granted.runbook_name if ctx.target_record else None
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

    async def apply(self, ctx: StepContext) -> StepResult:
        observation = await self.observe(ctx)
        name = ctx.target_record.granted.runbook_name if ctx.target_record else None
        action = f"delete runbook {name}"
        if observation.verdict is not Verdict.WRONG:
            if name:
                await ctx.audit.settle(0, action, {"deleted": True})
            return StepResult(done=True, message=observation.detail)
        await ctx.audit.intend(0, action, {"runbook": name})
        await ctx.arm.delete_runbook(ctx.ref, name)
        await ctx.audit.done(0, action, {"runbook": name}, {"deleted": True})
        return StepResult(done=True, changed=True, message=f"deleted runbook {name}")


class _RemoveGrant(Step):
    after = ("revoke-scope",)
    what = ""

    def _assignment_id(self, ctx: StepContext) -> str | None:
        raise NotImplementedError

    async def _exists(self, ctx: StepContext, assignment_id: str) -> bool:
        raise NotImplementedError

    async def _remove(self, ctx: StepContext, assignment_id: str) -> None:
        raise NotImplementedError

    async def observe(self, ctx: StepContext) -> Observation:
        assignment_id = self._assignment_id(ctx)
        if assignment_id is None:
            return Observation(Verdict.NOT_APPLICABLE, f"exomi did not grant the {self.what}")
        shared_with = ctx.facts.get("shared_with") or []
        if shared_with:
            return Observation(
                Verdict.OK, f"kept the {self.what}: the identity is also used by {', '.join(shared_with)}"
            )
        try:
            exists = await self._exists(ctx, assignment_id)
        except UpstreamRejected as error:
            if error.status != 404:
                raise
            exists = False  # the principal itself is gone (its resource was deleted): so are its grants
        if not exists:
            return Observation(Verdict.OK, f"the {self.what} ({assignment_id}) is gone")
        return Observation(
            Verdict.WRONG, f"the {self.what} ({assignment_id}) exists", action=f"remove the {self.what}"
        )

    async def apply(self, ctx: StepContext) -> StepResult:
        observation = await self.observe(ctx)
        assignment_id = self._assignment_id(ctx)
        action = f"remove the {self.what}"
        if observation.verdict is not Verdict.WRONG:
            if assignment_id and not ctx.facts.get("shared_with"):
                await ctx.audit.settle(0, action, {"removed": True})
            return StepResult(
                done=True, message=observation.detail, facts={"kept": bool(ctx.facts.get("shared_with"))}
            )
        before = {"assignment_id": assignment_id, "principal_id": ctx.fact("principal_id")}
        await ctx.audit.intend(0, action, before)
        await self._remove(ctx, assignment_id)
        await ctx.audit.done(0, action, before, {"removed": True})
        return StepResult(done=True, changed=True, message=f"removed the {self.what} ({assignment_id})")


class RemoveAppRole(_RemoveGrant):
    name = "revoke-app-role"
    title = "Remove the Exchange.ManageAsApp grant exomi made"
    what = "Exchange.ManageAsApp grant"

    def _assignment_id(self, ctx):
        return ctx.target_record.granted.app_role_assignment_id if ctx.target_record else None

    async def _exists(self, ctx, assignment_id):
        return any(g.id == assignment_id for g in await ctx.graph.app_role_grants(ctx.fact("principal_id")))

    async def _remove(self, ctx, assignment_id):
        await ctx.graph.revoke_app_role(ctx.fact("principal_id"), assignment_id)


class RemoveEntraRole(_RemoveGrant):
    name = "revoke-entra-role"
    title = "Remove the Entra role assignment exomi made"
    what = "Entra role assignment"

    def _assignment_id(self, ctx):
        return ctx.target_record.granted.role_assignment_id if ctx.target_record else None

    async def _exists(self, ctx, assignment_id):
        return any(g.id == assignment_id for g in await ctx.graph.role_grants(ctx.fact("principal_id")))

    async def _remove(self, ctx, assignment_id):
        await ctx.graph.remove_role(assignment_id)
