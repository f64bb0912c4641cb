"""An Automation account whose runbooks run on a Hybrid Runbook Worker group.

A job on a hybrid worker runs on the worker machine, not in Azure's sandbox: it uses the modules
installed on that machine (not the account's imports) and can authenticate with the account's
system-assigned identity, never its user-assigned one (policy refuses that combination). exomi cannot
run code on the workers, so it grants the identity and hands back the lines to put in place there,
like a Function app ("granted, not verified"). Source: Microsoft Learn, Azure Automation
"Run runbooks on a Hybrid Runbook Worker" and "Migrate from Run As accounts to managed identities".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from shared.engine.context import Observation, StepContext, Verdict
from shared.engine.step import Step
from shared.errors import PrerequisiteMissing
from shared.function_apps import EXCHANGE_MODULE, OUTCOME
from shared.runbooks import connect_line

NOT_VERIFIED = (
    "exomi cannot run code on a hybrid worker, so the connection is not tested: start the runbook on the "
    "group once after installing the module (a new grant can take up to an hour to reach the identity's tokens)"
)


@dataclass(frozen=True)
class HybridWorkerSetup:
    outcome: str
    group: str
    install_module: str  # run once on every worker machine of the group, as an administrator
    connect_command: str  # the runbook's connect line (the account's system-assigned identity)
    note: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def hybrid_worker_setup(ctx: StepContext, group: str) -> HybridWorkerSetup:
    version = ctx.desired.module_versions[EXCHANGE_MODULE]
    return HybridWorkerSetup(
        outcome=OUTCOME,
        group=group,
        # Jobs run as Local System on the worker, so the module goes where every account finds it.
        install_module=(
            f"Install-Module -Name {EXCHANGE_MODULE} -RequiredVersion {version} -Scope AllUsers -Force"
        ),
        connect_command=connect_line(ctx.provision.organization, None, ctx.exchange_environment),
        note=NOT_VERIFIED,
    )


async def require_hybrid_worker_group(ctx: StepContext) -> str | None:
    """The request's hybrid worker group as Azure spells it (None when it names none); checked before any
    grant, so a typo ends the request with nothing granted."""
    group = ctx.provision.hybrid_worker_group
    if group is None:
        return None
    found = await ctx.arm.get_hybrid_worker_group(ctx.ref, group)
    if found is None:
        raise PrerequisiteMissing(
            "Hybrid Runbook Worker group",
            f"The Automation account {ctx.target.name} has no Hybrid Runbook Worker group '{group}'.",
            "name an existing group (portal: Automation account > Hybrid worker groups), or leave "
            "hybrid_worker_group out to run the runbooks in Azure.",
        )
    return found


class HybridWorkerSetupStep(Step):
    name = "hybrid-worker"
    title = "Hybrid Runbook Worker group: granted, not verified (the lines to use)"
    after = ("identity", "principal", "app-role", "entra-role")

    async def observe(self, ctx: StepContext) -> Observation:
        setup = hybrid_worker_setup(ctx, ctx.fact("hybrid_worker_group"))
        return Observation(
            Verdict.OK,
            f"{setup.outcome}: on every worker of group {setup.group}, run {setup.install_module}; the runbook "
            f"connects with {setup.connect_command} (the account's system-assigned identity). {setup.note}.",
            facts={"hybrid_worker": setup.to_dict()},
        )
