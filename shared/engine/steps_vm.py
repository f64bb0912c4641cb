"""Virtual machine steps: install the pinned modules with Run Command (a VM has no modules API)."""

from __future__ import annotations

from shared.engine.context import Observation, StepContext, StepResult, Verdict
from shared.engine.step import Step
from shared.engine.waits import look_again
from shared.errors import OperationFailed
from shared.runbooks import install_modules_script

VM_RUNTIME = "vm"  # ModuleGrant.runtime_environment marker for modules installed on a VM


def installed_by_exomi(ctx: StepContext) -> dict[str, str]:
    record = ctx.target_record
    if record is None:
        return {}
    return {m.name: m.version for m in record.granted.modules if m.runtime_environment == VM_RUNTIME}


class VmModules(Step):
    name = "vm-modules"
    title = "ExchangeOnlineManagement and its dependencies installed on the VM"
    after = ("identity",)

    def _wanted(self, ctx: StepContext) -> dict[str, str]:
        return {str(name): version for name, version in ctx.desired.module_versions.items()}

    async def observe(self, ctx: StepContext) -> Observation:
        wanted = self._wanted(ctx)
        if installed_by_exomi(ctx) == wanted:
            return Observation(
                Verdict.OK, "modules installed by exomi: " + ", ".join(f"{n} {v}" for n, v in wanted.items())
            )
        return Observation(
            Verdict.MISSING,
            "exomi has not installed the pinned modules on this VM",
            action="install " + ", ".join(f"{n} {v}" for n, v in wanted.items()) + " with Run Command",
            fix="exomi installs them with Run Command (Install-Module -RequiredVersion)",
        )

    async def apply(self, ctx: StepContext) -> StepResult:
        wanted = self._wanted(ctx)
        facts = {
            "modules_imported": [
                {"name": n, "version": v, "runtime_environment": VM_RUNTIME} for n, v in wanted.items()
            ]
        }
        action = "install modules with Run Command"
        memo = dict(ctx.memo)
        if "token" not in memo:
            observation = await self.observe(ctx)
            if observation.verdict is Verdict.OK:
                return StepResult(done=True, message=observation.detail, facts=facts)
            await ctx.audit.intend(0, action, {"installed_by_exomi": installed_by_exomi(ctx)})
            memo["token"] = await ctx.arm.start_run_command(
                ctx.ref, install_modules_script(wanted).splitlines()
            )
            memo["since"] = ctx.now.isoformat()
        outcome = await ctx.arm.run_command_status(ctx.ref, memo["token"])
        if outcome is None:
            return StepResult(
                done=False,
                changed=True,
                message="installing modules with Run Command",
                check_again_in=look_again(ctx, memo["since"], ctx.timings.expected_run_command),
                memo=memo,
            )
        if outcome.stderr.strip():
            raise OperationFailed(
                "module install",
                f"Installing the modules on the VM failed: {outcome.stderr.strip()}",
                "check that the VM can reach the PowerShell Gallery and runs Windows PowerShell 5.1 or PowerShell 7.",
            )
        await ctx.audit.done(
            0,
            action,
            {"installed_by_exomi": installed_by_exomi(ctx)},
            {"installed": wanted, "stdout": outcome.stdout[-2000:]},
        )
        return StepResult(
            done=True,
            changed=True,
            message="installed " + ", ".join(f"{n} {v}" for n, v in wanted.items()),
            facts=facts,
        )
