"""Resolve the identity: for a system-assigned identity the service principal is the resource's
``identity.principalId``; for a user-assigned one, two different ids matter: ``principalId`` (every
Graph assignment) and ``clientId`` (only ``-ManagedIdentityAccountId``). Mixing them up is the bug in
Microsoft's procedure; exomi keeps them apart by name."""

from __future__ import annotations

from typing import Any

from shared.engine.context import Observation, StepContext, Verdict, resource_ref
from shared.engine.step import Step
from shared.engine.steps_hybrid_worker import require_hybrid_worker_group
from shared.engine.steps_vm import LINUX, linux_incompatibility
from shared.errors import NotFound, PrerequisiteMissing
from shared.ids import TargetKind
from shared.models import SYSTEM_IDENTITY


class ResolveIdentity(Step):
    name = "identity"
    title = "Target and its managed identity"

    async def observe(self, ctx: StepContext) -> Observation:
        target = await ctx.arm.get_target(ctx.kind, ctx.ref)
        label = ctx.kind.label
        if target is None:
            raise NotFound(label, ctx.target.canonical)
        identity = ctx.provision.identity
        facts: dict[str, Any] = {"location": target.location, "target_name": target.name}
        if (group := await require_hybrid_worker_group(ctx)) is not None:
            facts["hybrid_worker_group"] = group
        if target.os_type is not None:
            facts["os_type"] = target.os_type
            # Modules that cannot run on a Linux VM's pwsh end the request here, before any grant is made.
            refusal = linux_incompatibility(ctx.desired.module_versions) if target.os_type == LINUX else None
            if refusal is not None:
                raise refusal
        if target.orchestration_mode is not None:
            facts["orchestration_mode"] = target.orchestration_mode
        if target.site_kind is not None:
            facts["site_kind"] = target.site_kind
            # Microsoft.Web/sites are web apps too; only a function app's kind names "functionapp".
            if "functionapp" not in target.site_kind.split(","):
                raise PrerequisiteMissing(
                    "Function app",
                    f"The site {target.name} is not a Function app (its kind is '{target.site_kind}').",
                    "name a Function app (kind 'functionapp' or 'functionapp,linux'); for a web app, use an "
                    "Automation account or a VM to run Exchange Online scripts.",
                )
        if ctx.kind is TargetKind.USER_ASSIGNED_IDENTITY:
            info = next(iter(target.user_assigned.values()))
            facts.update(principal_id=info.principal_id, client_id=info.client_id, identity=target.id)
            return Observation(
                Verdict.OK,
                f"user-assigned identity {target.name}: object id {info.principal_id}, client id {info.client_id}",
                facts=facts,
            )
        if identity == SYSTEM_IDENTITY or identity is None:
            if target.system_identity is None:
                raise PrerequisiteMissing(
                    "system-assigned identity",
                    f"The {label} {target.name} has no system-assigned managed identity.",
                    f"enable it (portal: {label} > Identity > System assigned > On), or name a user-assigned identity "
                    "attached to it in the request.",
                )
            facts.update(
                principal_id=target.system_identity.principal_id, client_id=None, identity=SYSTEM_IDENTITY
            )
            return Observation(
                Verdict.OK,
                f"{label} {target.name}: system-assigned identity, object id {target.system_identity.principal_id}",
                facts=facts,
            )
        uai_id = ctx.provision.identity_id
        if uai_id is None:  # the request names "system", nothing, or a valid identity id (models.py)
            raise RuntimeError(f"request {ctx.request.id} names no user-assigned identity")
        uai = await ctx.arm.get_user_assigned_identity(resource_ref(uai_id))
        if uai is None:
            raise NotFound("user-assigned identity", uai_id.canonical)
        info = next(iter(uai.user_assigned.values()))
        if uai_id.canonical.lower() not in target.user_assigned:
            raise PrerequisiteMissing(
                "user-assigned identity attachment",
                f"The user-assigned identity {uai.name} is not attached to the {label} {target.name}.",
                f"attach it (portal: {label} > Identity > User assigned > Add), then send the request again.",
            )
        facts.update(principal_id=info.principal_id, client_id=info.client_id, identity=uai.id)
        return Observation(
            Verdict.OK,
            f"{label} {target.name}: user-assigned identity {uai.name}, object id {info.principal_id}, client id {info.client_id}",
            facts=facts,
        )
