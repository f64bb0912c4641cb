"""Steps in the directory (Microsoft Graph): the identity's service principal, the "Office 365
Exchange Online" principal, the Exchange.ManageAsApp grant and the Entra role."""

from __future__ import annotations

from functools import partial

from shared import constants
from shared.engine.context import Observation, StepContext, StepResult, Verdict
from shared.engine.step import Step
from shared.engine.waits import started_now
from shared.errors import AlreadyExists, PrerequisiteMissing, ReplicationPending, UpstreamRejected
from shared.ownership import GrantKind, Ledger, OwnedGrant


def _replication_or(error: UpstreamRejected, principal_id: str) -> Exception:
    """Graph answers 404 for a principal that has not replicated yet, even right after a GET found it."""
    if error.status == 404:
        return ReplicationPending(principal_id)
    return error


class PrincipalVisible(Step):
    name = "principal"
    title = "Service principal visible in the directory"
    after = ("identity",)

    async def observe(self, ctx: StepContext) -> Observation:
        principal_id = ctx.fact("principal_id")
        principal = await ctx.graph.get_principal(principal_id)
        if principal is None:
            return Observation(
                Verdict.PENDING,
                f"service principal {principal_id} is not visible in Microsoft Graph yet (replication after the identity was created)",
                fix="wait a few minutes; exomi retries by itself",
            )
        client_id = ctx.facts.get("client_id")
        if client_id and principal.app_id.lower() != client_id.lower():
            return Observation(
                Verdict.WRONG,
                f"service principal {principal_id} has appId {principal.app_id}, not the identity's client id {client_id}",
            )
        return Observation(
            Verdict.OK, f"service principal {principal_id} ({principal.display_name}) is visible"
        )

    async def apply(self, ctx: StepContext) -> StepResult:
        observation = await self.observe(ctx)
        if observation.verdict is Verdict.PENDING:
            raise ReplicationPending(ctx.fact("principal_id"))
        if observation.verdict is Verdict.WRONG:
            raise PrerequisiteMissing(
                "service principal", observation.detail + ".", "check which identity the target uses."
            )
        return StepResult(done=True, message=observation.detail)


class ExchangePrincipal(Step):
    name = "exchange-sp"
    title = "Office 365 Exchange Online service principal and its Exchange.ManageAsApp role"

    async def observe(self, ctx: StepContext) -> Observation:
        # Read once per process (a tenant fact, shared/azure/tenant_facts.py); a kept one that looks
        # wrong is read again before anything is concluded from it.
        principal = await ctx.graph.exchange_principal()
        if principal is not None and not _has_manage_as_app(principal):
            principal = await ctx.graph.exchange_principal(fresh=True)
        if principal is None:
            return Observation(
                Verdict.MISSING,
                'the tenant has no "Office 365 Exchange Online" service principal',
                fix="exomi creates it (POST /servicePrincipals with its appId)",
                action="create the service principal",
            )
        right = [r for r in principal.app_roles if r.value == constants.EXCHANGE_MANAGE_AS_APP_VALUE]
        if not any(r.id.lower() == constants.EXCHANGE_MANAGE_AS_APP_ROLE_ID for r in right):
            look_alikes = sorted(
                r.value or "?" for r in principal.app_roles if r.value and "ManageAsApp" in r.value
            )
            return Observation(
                Verdict.WRONG,
                f"service principal {principal.id} has no app role {constants.EXCHANGE_MANAGE_AS_APP_VALUE} with id "
                f"{constants.EXCHANGE_MANAGE_AS_APP_ROLE_ID} (found: {', '.join(look_alikes) or 'none'})",
                fix="this is not the real Office 365 Exchange Online principal; contact Microsoft support",
            )
        return Observation(
            Verdict.OK,
            f'"Office 365 Exchange Online" is {principal.id} with {constants.EXCHANGE_MANAGE_AS_APP_VALUE} '
            f"({constants.EXCHANGE_MANAGE_AS_APP_ROLE_ID})",
            facts={"exchange_sp_id": principal.id},
        )

    async def apply(self, ctx: StepContext) -> StepResult:
        observation = await self.observe(ctx)
        if observation.verdict is Verdict.OK:
            await ctx.audit.settle(
                0, "create Office 365 Exchange Online service principal", observation.facts
            )
            return StepResult(done=True, message=observation.detail, facts=observation.facts)
        if observation.verdict is Verdict.WRONG:
            raise PrerequisiteMissing(
                "Office 365 Exchange Online", observation.detail + ".", observation.fix or ""
            )
        action = "create Office 365 Exchange Online service principal"
        await ctx.audit.intend(0, action, None)
        created = await ctx.graph.create_principal(constants.EXO_APP_ID)
        await ctx.audit.done(0, action, None, {"id": created.id, "appId": created.app_id})
        observation = await self.observe(ctx)
        if observation.verdict is not Verdict.OK:
            raise PrerequisiteMissing(
                "Office 365 Exchange Online", observation.detail + ".", observation.fix or ""
            )
        return StepResult(
            done=True, changed=True, message=f"created {observation.detail}", facts=observation.facts
        )


def _has_manage_as_app(principal) -> bool:
    return any(
        r.value == constants.EXCHANGE_MANAGE_AS_APP_VALUE
        and r.id.lower() == constants.EXCHANGE_MANAGE_AS_APP_ROLE_ID
        for r in principal.app_roles
    )


class AppRoleGrant(Step):
    name = "app-role"
    title = "Exchange.ManageAsApp granted to the identity"
    after = ("principal", "exchange-sp")

    async def _existing(self, ctx: StepContext):
        grants = await ctx.graph.app_role_grants(ctx.fact("principal_id"))
        exchange = ctx.fact("exchange_sp_id").lower()
        return next(
            (
                g
                for g in grants
                if g.resource_id.lower() == exchange
                and g.app_role_id.lower() == constants.EXCHANGE_MANAGE_AS_APP_ROLE_ID
            ),
            None,
        )

    async def observe(self, ctx: StepContext) -> Observation:
        grant = await self._existing(ctx)
        if grant is None:
            return Observation(
                Verdict.MISSING,
                f"identity {ctx.fact('principal_id')} does not hold {constants.EXCHANGE_MANAGE_AS_APP_VALUE}",
                fix="exomi grants it (app role assignment on Office 365 Exchange Online)",
                action=f"grant {constants.EXCHANGE_MANAGE_AS_APP_VALUE}",
            )
        return Observation(
            Verdict.OK,
            f"identity holds {constants.EXCHANGE_MANAGE_AS_APP_VALUE} (assignment {grant.id})",
            facts={"app_role_assignment_id": grant.id},
        )

    async def apply(self, ctx: StepContext) -> StepResult:
        action = f"grant {constants.EXCHANGE_MANAGE_AS_APP_VALUE}"
        observation = await self.observe(ctx)
        if observation.verdict is Verdict.OK:
            made = await ctx.audit.settle(0, action, observation.facts)
            await own(
                ctx, GrantKind.APP_ROLE, observation.facts["app_role_assignment_id"], made_by_exomi=made
            )
            return StepResult(done=True, message=observation.detail, facts=observation.facts)
        principal_id = ctx.fact("principal_id")
        before = {"principal_id": principal_id, "granted": False}
        await ctx.audit.intend(0, action, before)
        try:
            grant, request_id = await ctx.graph.grant_app_role(
                principal_id, ctx.fact("exchange_sp_id"), constants.EXCHANGE_MANAGE_AS_APP_ROLE_ID
            )
        except AlreadyExists:  # granted meanwhile (a concurrent run): that is done too
            return await self.apply(ctx)
        except UpstreamRejected as error:
            raise _replication_or(error, principal_id) from error
        granted_at = started_now()  # propagation runs from Graph's answer, not from this step's start
        await ctx.audit.done(0, action, before, {"assignment_id": grant.id, "granted": True}, request_id)
        await own(ctx, GrantKind.APP_ROLE, grant.id, made_by_exomi=True)
        return StepResult(
            done=True,
            changed=True,
            message=f"granted {constants.EXCHANGE_MANAGE_AS_APP_VALUE} (assignment {grant.id})",
            # Verification waits a propagation time from the latest grant (steps_verify.py).
            facts={"app_role_assignment_id": grant.id, "app_role_granted_at": granted_at},
        )


class EntraRole(Step):
    name = "entra-role"
    title = "Entra role assigned to the identity"
    after = ("principal",)

    def _wanted(self, ctx: StepContext) -> tuple[str, str]:
        decision = ctx.desired
        return str(decision.role.value), decision.role_template_id.lower()

    async def _earlier(self, ctx: StepContext, keep: str | None, *, fresh: bool = False) -> list[OwnedGrant]:
        """Roles exomi assigned earlier for this target that it no longer asks for (another role).
        ``fresh``: the ledger as stored now (it decides removals), not as this pass last saw it."""
        principal_id = ctx.fact("principal_id")
        ledger = await (ctx.ledgers.fresh(principal_id) if fresh else ctx.ledgers.known(principal_id))
        return [g for g in ledger.needed_by(ctx.target.key, GrantKind.ENTRA_ROLE) if g.assignment_id != keep]

    async def observe(self, ctx: StepContext) -> Observation:
        role_name, role_id = self._wanted(ctx)
        grants = await ctx.graph.role_grants(ctx.fact("principal_id"))
        held = next(
            (g for g in grants if g.role_definition_id.lower() == role_id and g.directory_scope_id == "/"),
            None,
        )
        present = {g.id for g in grants}
        earlier = [
            g
            for g in await self._earlier(ctx, held.id if held else None)
            if g.assignment_id in present and not g.needed_by_others(ctx.target.key)
        ]
        facts = {"role_assignment_id": held.id} if held else {}
        removal = "".join(f" and remove the earlier assignment {g.assignment_id} ({g.name})" for g in earlier)
        if held and not earlier:
            return Observation(
                Verdict.OK, f"identity holds the Entra role {role_name} (assignment {held.id})", facts=facts
            )
        if held:
            return Observation(
                Verdict.WRONG,
                f"identity holds {role_name} and also a role exomi assigned earlier for this target "
                f"({', '.join(g.name for g in earlier)})",
                action=removal.removeprefix(" and "),
                facts=facts,
            )
        return Observation(
            Verdict.MISSING,
            f"identity does not hold the Entra role {role_name}",
            fix="exomi assigns it (directory scope /)",
            action=f"assign {role_name}{removal}",
        )

    async def apply(self, ctx: StepContext) -> StepResult:
        role_name, role_id = self._wanted(ctx)
        principal_id = ctx.fact("principal_id")
        action = f"assign Entra role {role_name}"
        observation = await self.observe(ctx)
        facts = dict(observation.facts)
        changed = False
        if "role_assignment_id" not in facts:
            before = {"principal_id": principal_id, "role": None}
            await ctx.audit.intend(0, action, before)
            try:
                grant, request_id = await ctx.graph.assign_role(principal_id, role_id)
            except AlreadyExists:  # assigned meanwhile (a concurrent run)
                return await self.apply(ctx)
            except UpstreamRejected as error:
                raise _replication_or(error, principal_id) from error
            granted_at = started_now()
            await ctx.audit.done(
                0, action, before, {"assignment_id": grant.id, "role": role_name}, request_id
            )
            facts = {"role_assignment_id": grant.id, "role_granted_at": granted_at}
            await own(ctx, GrantKind.ENTRA_ROLE, grant.id, made_by_exomi=True)
            changed = True
        else:
            made = await ctx.audit.settle(0, action, facts)
            await own(ctx, GrantKind.ENTRA_ROLE, facts["role_assignment_id"], made_by_exomi=made)
        # A role exomi assigned earlier for this target: no longer needed by it, removed unless another
        # target sharing the identity still needs it (the assignments are listed only when there is one).
        # Which roles this target needs only this request changes (the ledger as the pass has it says);
        # who else needs one decides its removal, and is read as stored now.
        earlier_grants = await self._earlier(ctx, facts["role_assignment_id"])
        if earlier_grants:
            earlier_grants = await self._earlier(ctx, facts["role_assignment_id"], fresh=True)
        present = {g.id for g in await ctx.graph.role_grants(principal_id)} if earlier_grants else set()
        for index, earlier in enumerate(earlier_grants, start=1):
            removal = f"remove earlier Entra role assignment {earlier.assignment_id}"
            if earlier.needed_by_others(ctx.target.key):
                await ctx.ledgers.update(
                    principal_id,
                    partial(Ledger.release, target_key=ctx.target.key, assignment_id=earlier.assignment_id),
                )
                continue
            if earlier.assignment_id in present:
                await ctx.audit.intend(index, removal, {"assignment_id": earlier.assignment_id})
                await ctx.graph.remove_role(earlier.assignment_id)
                await ctx.audit.done(
                    index, removal, {"assignment_id": earlier.assignment_id}, {"removed": True}
                )
                changed = True
            else:
                await ctx.audit.settle(index, removal, {"removed": True})
            await ctx.ledgers.update(
                principal_id, partial(Ledger.forget, assignment_id=earlier.assignment_id)
            )
        message = f"assigned {role_name}" if changed else observation.detail
        return StepResult(done=True, changed=changed, message=message, facts=facts)


async def own(ctx: StepContext, kind: GrantKind, assignment_id: str, *, made_by_exomi: bool) -> None:
    """Record in the identity's ledger that this target needs the grant (and that exomi owns it, when
    exomi made it): what revoke and rollback remove rests on this (shared/ownership.py)."""
    name = constants.EXCHANGE_MANAGE_AS_APP_VALUE if kind is GrantKind.APP_ROLE else str(ctx.desired.role)

    def change(ledger: Ledger) -> Ledger:
        return ledger.record(
            kind,
            assignment_id,
            name,
            target_key=ctx.target.key,
            target=ctx.target.canonical,
            request_id=ctx.request.id,
            made_by_exomi=made_by_exomi,
        )

    await ctx.ledgers.update(ctx.fact("principal_id"), change)
