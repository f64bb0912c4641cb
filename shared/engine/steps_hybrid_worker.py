"""An Automation account whose runbooks run on a Hybrid Runbook Worker group.

A job on a hybrid worker runs on one of the group's machines, not in Azure's sandbox: it uses the modules
installed on that machine (not the account's imports) and authenticates with the account's
system-assigned identity, never its user-assigned one (policy refuses that combination). Source:
Microsoft Learn, Azure Automation "Run runbooks on a Hybrid Runbook Worker" (Use runbook authentication
with managed identities) and "Migrate from Run As accounts to managed identities".

exomi grants the identity and hands back the lines to put in place on each worker machine, which it
names ("granted, not verified"), like a Function app. It does not install on the workers with Run
Command: they are other resources than the request's target (the policy allowed the requester the
Automation account, not its workers' machines, which other runbooks share), and a job on the group runs
on whichever worker takes it, so it would not test every machine. To have exomi install and verify on a
worker VM, provision that VM itself. A group with an Azure Arc-enabled server among its workers is
refused before any grant: the module cannot get a managed identity token there.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from shared.azure.arm import HybridWorker
from shared.engine.context import Observation, StepContext, Verdict, resource_ref
from shared.engine.step import Step
from shared.errors import ExomiError, PolicyRefusal, PrerequisiteMissing
from shared.function_apps import EXCHANGE_MODULE, OUTCOME
from shared.ids import TargetKind, parse_resource_id
from shared.runbooks import connect_line

ARC_MACHINE = "/providers/microsoft.hybridcompute/machines/"
NOT_VERIFIED = (
    "exomi does not run code on a group's workers, so the connection is not tested: start the runbook on the "
    "group once after installing the module (a new grant can take up to an hour to reach the identity's tokens)"
)
NO_WORKERS = (
    "the group has no worker machine yet: jobs on it stay queued until one joins; install the module on each "
    "machine that joins"
)


@dataclass(frozen=True)
class HybridWorkerSetup:
    outcome: str
    group: str
    install_module: str  # run once on every worker machine of the group, as an administrator
    connect_command: str  # the runbook's connect line (the account's system-assigned identity)
    note: str
    workers: list[str] = field(default_factory=list)  # the group's machines, by name
    worker_machines: list[str] = field(default_factory=list)  # their resource ids ("" for agent-based ones)
    gone: list[str] = field(default_factory=list)  # workers whose Azure VM no longer exists

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


async def _vm_is_gone(ctx: StepContext, worker: HybridWorker) -> bool:
    """A worker whose Azure VM was deleted stays registered in its group but takes no job (no Microsoft page
    says Azure removes it); anything exomi cannot read or parse counts as present."""
    if "/providers/microsoft.compute/virtualmachines/" not in worker.machine_id.lower():
        return False
    try:
        vm_id = parse_resource_id(worker.machine_id, "vmResourceId", kinds=[TargetKind.VIRTUAL_MACHINE])
        return await ctx.arm.get_virtual_machine(resource_ref(vm_id)) is None
    except ExomiError:
        return False


def hybrid_worker_setup(
    ctx: StepContext, group: str, workers: list[HybridWorker], gone: list[str]
) -> HybridWorkerSetup:
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
        workers=[w.name for w in workers],
        worker_machines=[w.machine_id for w in workers],
        gone=gone,
    )


def arc_refusal(group: str, workers: list[HybridWorker]) -> PolicyRefusal | None:
    """Why a group with Arc-enabled servers among its workers cannot work, and what would."""
    arc = [w for w in workers if ARC_MACHINE in w.machine_id.lower()]
    if not arc:
        return None
    return PolicyRefusal(
        "hosts",
        f"the Hybrid Runbook Worker group '{group}' has Azure Arc-enabled servers among its workers "
        f"({', '.join(w.name for w in arc)}), and a job on the group runs on any of its workers: on an Arc "
        "server Connect-ExchangeOnline -ManagedIdentity does not work (the module asks the Azure VM metadata "
        "endpoint 169.254.169.254 for its token, not the Arc agent's identity endpoint; "
        "MicrosoftDocs/office-docs-powershell#11440).",
        "move the Arc servers to a group of their own (Automation account > Hybrid worker groups, or "
        "POST …/hybridRunbookWorkers/{id}/move) and name a group of Azure VM workers; leave hybrid_worker_group "
        "out to run the runbooks in Azure; or use app-only authentication with a certificate on the Arc servers "
        "(Connect-ExchangeOnline -AppId <app id> -CertificateThumbprint <thumbprint>; https://aka.ms/exo-cba).",
        field="hybrid_worker_group",
    )


async def require_hybrid_worker_group(ctx: StepContext) -> str | None:
    """The request's hybrid worker group as Azure spells it (None when it names none); checked before any
    grant, so a typo or an Arc server among the workers ends the request with nothing granted."""
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
    refusal = arc_refusal(found, await ctx.arm.list_hybrid_workers(ctx.ref, found))
    if refusal is not None:
        raise refusal
    return found


class HybridWorkerSetupStep(Step):
    name = "hybrid-worker"
    title = "Hybrid Runbook Worker group: granted, not verified (the lines to use on each worker machine)"
    after = ("identity", "principal", "app-role", "entra-role")

    async def observe(self, ctx: StepContext) -> Observation:
        group = ctx.fact("hybrid_worker_group")
        workers = await ctx.arm.list_hybrid_workers(ctx.ref, group)
        gone = [w.name for w in workers if await _vm_is_gone(ctx, w)]
        setup = hybrid_worker_setup(ctx, group, workers, gone)
        where = (
            f"on each worker machine of group {setup.group} ({', '.join(setup.workers)}), run {setup.install_module}"
            if setup.workers
            else f"group {setup.group}: {NO_WORKERS} ({setup.install_module})"
        )
        stale = (
            f" The VM of worker {', '.join(gone)} no longer exists: it takes no job; remove it from the group."
            if gone
            else ""
        )
        return Observation(
            Verdict.OK,
            f"{setup.outcome}: {where}; the runbook connects with {setup.connect_command} (the account's "
            f"system-assigned identity). {setup.note}.{stale}",
            facts={"hybrid_worker": setup.to_dict()},
        )
