"""Virtual machine steps: install the pinned modules with Run Command (a VM has no modules API). A
Windows VM runs them with Windows PowerShell 5.1 (``RunPowerShellScript``); a Linux VM with the pwsh
exomi installs (``RunShellScript``), so its modules are checked against that host of the matrix."""

from __future__ import annotations

from collections.abc import Mapping

from shared.compatibility import load_matrix
from shared.engine.context import Observation, StepContext, StepResult, Verdict
from shared.engine.step import Step
from shared.engine.waits import look_again, started_now
from shared.errors import OperationFailed, PolicyRefusal
from shared.runbooks import PWSH_HOST, PWSH_VERSION, install_modules_script, install_modules_shell_script

VM_RUNTIME = "vm"  # ModuleGrant.runtime_environment marker for modules installed on a VM
LINUX = "Linux"


def is_linux(ctx: StepContext) -> bool:
    """The identity step read the VM's OS (``os_type``); a VM read before exomi knew Linux is Windows."""
    return ctx.facts.get("os_type") == LINUX


def run_command_id(ctx: StepContext) -> str:
    return "RunShellScript" if is_linux(ctx) else "RunPowerShellScript"


def linux_incompatibility(modules: Mapping[str, str]) -> PolicyRefusal | None:
    """Why ``modules`` cannot work under the pwsh exomi installs on a Linux VM, with what would. The policy
    checked them for Windows PowerShell 5.1: it runs before exomi has read the VM's OS."""
    problems = load_matrix().problems(PWSH_HOST, modules)
    if not problems:
        return None
    problem = problems[0]
    return PolicyRefusal(
        "compatibility",
        f"the VM runs Linux, where exomi runs the modules with PowerShell {PWSH_VERSION} (pwsh): "
        f"{problem.message} (source: {problem.source}).",
        f"ask for a version that works on a Linux VM: {problem.works}; or change pinned_module_versions in the "
        "exomi policy (docs/COMPATIBILITY.md, host linux-7.4).",
        field=f"module_versions.{problem.module}",
    )


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
        refusal = linux_incompatibility(wanted) if is_linux(ctx) else None
        if refusal is not None:
            raise refusal
        if installed_by_exomi(ctx) == wanted:
            return Observation(
                Verdict.OK, "modules installed by exomi: " + ", ".join(f"{n} {v}" for n, v in wanted.items())
            )
        return Observation(
            Verdict.MISSING,
            "exomi has not installed the pinned modules on this VM",
            action="install " + ", ".join(f"{n} {v}" for n, v in wanted.items()) + " with Run Command",
            fix=(
                f"exomi installs pwsh {PWSH_VERSION} if missing, then the modules, with Run Command RunShellScript"
                if is_linux(ctx)
                else "exomi installs them with Run Command (Install-Module -RequiredVersion)"
            ),
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
            script = install_modules_shell_script(wanted) if is_linux(ctx) else install_modules_script(wanted)
            memo["token"] = await ctx.arm.start_run_command(ctx.ref, script.splitlines(), run_command_id(ctx))
            memo["since"] = started_now()
        # A Run Command just started is not looked at before its first scheduled look.
        outcome = (
            None if "since" not in ctx.memo else await ctx.arm.run_command_status(ctx.ref, memo["token"])
        )
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
                (
                    "check that the VM runs Debian or Ubuntu (exomi installs Microsoft's pwsh .deb) and can reach "
                    "github.com and the PowerShell Gallery."
                )
                if is_linux(ctx)
                else "check that the VM can reach the PowerShell Gallery and runs Windows PowerShell 5.1 or PowerShell 7.",
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
