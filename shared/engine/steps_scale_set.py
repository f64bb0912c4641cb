"""VM scale set steps: install the pinned modules on every instance with Run Command (each instance is
a machine of its own: what one has installed, another has not), and verify where they were installed.

Every instance uses the set's identity (one principal), so the grants are the directory steps' as for a
VM. Modules are per instance: the target record keeps, per instance name, what exomi installed there, and
an instance the set gained later (scale out) shows up as MISSING in ``plan`` / ``diagnose`` (and so in
the reconcile pass); provisioning again installs on the new instances only. An instance the set no longer
has (scale in) leaves the record when the step next runs (``modules_dropped``): a Uniform set may reuse its
instance id, and so its name, for a new machine that has nothing installed. Instances run in parallel,
each Run Command looked at by the engine (one look each), not through the SDK's polling loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

from shared.azure.arm import ResourceRef, RunCommandOutcome, ScaleSetInstance
from shared.engine.context import Observation, StepContext, StepResult, Verdict
from shared.engine.step import Step
from shared.engine.steps_verify import Verify
from shared.engine.steps_vm import is_linux, linux_incompatibility, run_command_id
from shared.engine.waits import look_again
from shared.errors import ExomiError, OperationFailed
from shared.runbooks import (
    PWSH_VERSION,
    connect_script,
    connect_shell_script,
    install_modules_script,
    install_modules_shell_script,
)

T = TypeVar("T")


class Gone:
    """An instance that left the set while exomi worked on it."""


GONE = Gone()
INSTANCE_RUNTIME = "vmss-instance:"  # ModuleGrant.runtime_environment prefix: modules on one instance
NO_INSTANCES = (
    "the scale set has no instances: the grants are made, there is nothing to install modules on or verify "
    "with; instances it gains later show up as MISSING in exomi diagnose, and exomi provision installs on them"
)


def dropped_instances(ctx: StepContext, current: list[str]) -> list[str]:
    """The record's places (``runtime_environment``) of instances the set no longer has."""
    return [INSTANCE_RUNTIME + name for name in installed_on(ctx) if name not in current]


def _listing(modules: dict[str, str]) -> str:
    return ", ".join(f"{n} {v}" for n, v in modules.items())


def installed_on(ctx: StepContext) -> dict[str, dict[str, str]]:
    """What exomi installed, per instance name (from the target record)."""
    record = ctx.target_record
    found: dict[str, dict[str, str]] = {}
    for module in record.granted.modules if record is not None else []:
        where = module.runtime_environment or ""
        if where.startswith(INSTANCE_RUNTIME):
            found.setdefault(where[len(INSTANCE_RUNTIME) :], {})[module.name] = module.version
    return found


async def list_instances(ctx: StepContext) -> list[ScaleSetInstance]:
    return await ctx.arm.scale_set_instances(ctx.ref, str(ctx.facts.get("orchestration_mode") or "Uniform"))


def _instance_of(item: dict[str, Any]) -> ScaleSetInstance:
    """An instance back from a step's memo."""
    vm = item.get("vm")
    return ScaleSetInstance(
        item["name"], item.get("instance_id"), ResourceRef(**vm) if isinstance(vm, dict) else None
    )


def _memo_of(instance: ScaleSetInstance, token: str) -> dict[str, Any]:
    vm = instance.vm
    return {
        "name": instance.name,
        "instance_id": instance.instance_id,
        "vm": None
        if vm is None
        else {"subscription_id": vm.subscription_id, "resource_group": vm.resource_group, "name": vm.name},
        "token": token,
    }


async def _unless_gone(ctx: StepContext, name: str, call: Awaitable[T]) -> T | Gone:
    """The call's answer, or GONE when it failed because the instance left the set meanwhile (a scale in
    or an autoscale rule): a failure on an instance the set still has is the failure it is."""
    try:
        return await call
    except ExomiError:
        if name in {i.name for i in await list_instances(ctx)}:
            raise
        return GONE


async def start_on(
    ctx: StepContext, instances: list[ScaleSetInstance], script: str
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Starts the same script on each instance at once; returns the runs by instance name (for the memo)
    and the instances that left the set before their command could start."""
    tokens = await asyncio.gather(
        *(
            _unless_gone(
                ctx,
                i.name,
                ctx.arm.start_instance_run_command(ctx.ref, i, script.splitlines(), run_command_id(ctx)),
            )
            for i in instances
        )
    )
    runs = {i.name: _memo_of(i, t) for i, t in zip(instances, tokens, strict=True) if isinstance(t, str)}
    return runs, [i.name for i, t in zip(instances, tokens, strict=True) if t is GONE]


async def look_at(
    ctx: StepContext, runs: dict[str, dict[str, Any]]
) -> tuple[dict[str, RunCommandOutcome | None], list[str]]:
    """One look at each run (in parallel): None for those still running; and the instances that left the
    set while their command ran."""
    names = list(runs)
    outcomes = await asyncio.gather(
        *(
            _unless_gone(
                ctx, n, ctx.arm.instance_run_command_status(ctx.ref, _instance_of(runs[n]), runs[n]["token"])
            )
            for n in names
        )
    )
    looked = {n: o for n, o in zip(names, outcomes, strict=True) if not isinstance(o, Gone)}
    return looked, [n for n, o in zip(names, outcomes, strict=True) if isinstance(o, Gone)]


class ScaleSetModules(Step):
    name = "vmss-modules"
    title = "ExchangeOnlineManagement and its dependencies installed on every instance of the scale set"
    after = ("identity",)

    def _wanted(self, ctx: StepContext) -> dict[str, str]:
        return {str(name): version for name, version in ctx.desired.module_versions.items()}

    async def _lacking(self, ctx: StepContext) -> tuple[list[ScaleSetInstance], list[ScaleSetInstance]]:
        """The set's instances now, and those without the pinned modules from exomi."""
        wanted = self._wanted(ctx)
        refusal = linux_incompatibility(wanted) if is_linux(ctx) else None
        if refusal is not None:
            raise refusal
        instances = await list_instances(ctx)
        installed = installed_on(ctx)
        return instances, [i for i in instances if installed.get(i.name) != wanted]

    async def observe(self, ctx: StepContext) -> Observation:
        return self._observation(ctx, *await self._lacking(ctx))

    def _observation(
        self, ctx: StepContext, instances: list[ScaleSetInstance], lacking: list[ScaleSetInstance]
    ) -> Observation:
        wanted = self._wanted(ctx)
        facts: dict[str, Any] = {"scale_set_instances": [i.name for i in instances]}
        if not instances:
            return Observation(Verdict.OK, NO_INSTANCES, facts=facts)
        missing = [i.name for i in lacking]
        if not missing:
            return Observation(
                Verdict.OK,
                f"modules installed by exomi on all {len(instances)} instances: {_listing(wanted)}",
                facts=facts,
            )
        how = (
            f"exomi installs pwsh {PWSH_VERSION} if missing, then the modules, with Run Command RunShellScript"
            if is_linux(ctx)
            else "exomi installs them with Run Command (Install-Module -RequiredVersion)"
        )
        return Observation(
            Verdict.MISSING,
            f"exomi has not installed the pinned modules on {len(missing)} of {len(instances)} instances: "
            + ", ".join(f"instance {name}" for name in missing),
            action=f"install {_listing(wanted)} with Run Command on " + ", ".join(missing),
            fix=f"run exomi provision again: it installs them on these instances only ({how})",
            facts=facts,
        )

    async def apply(self, ctx: StepContext) -> StepResult:
        wanted = self._wanted(ctx)
        action = "install modules on scale set instances with Run Command"
        memo = dict(ctx.memo)
        if "runs" not in memo:
            instances, todo = await self._lacking(ctx)
            observation = self._observation(ctx, instances, todo)
            names = observation.facts["scale_set_instances"]
            if observation.verdict is Verdict.OK:
                return StepResult(
                    done=True,
                    message=observation.detail,
                    facts={
                        "scale_set_instances": names,
                        "instances_installed": [],
                        "modules_dropped": dropped_instances(ctx, names),
                    },
                )
            await ctx.audit.intend(0, action, {"installed_by_exomi": installed_on(ctx)})
            script = install_modules_shell_script(wanted) if is_linux(ctx) else install_modules_script(wanted)
            runs, gone = await start_on(ctx, todo, script)
            memo.update(runs=runs, instances=names, installed=[], gone=gone, since=ctx.now.isoformat())
        pending = {n: r for n, r in memo["runs"].items() if n not in memo["installed"]}
        outcomes, gone = await look_at(ctx, pending)
        if gone:  # no longer in the set: nothing to install there
            memo["runs"] = {n: r for n, r in memo["runs"].items() if n not in gone}
            memo["gone"] = [*memo["gone"], *gone]
        for name, outcome in outcomes.items():
            if outcome is None:
                continue
            if outcome.stderr.strip():
                raise OperationFailed(
                    "module install",
                    f"Installing the modules on instance {name} failed: {outcome.stderr.strip()}",
                    (
                        "check that the scale set's image is Debian or Ubuntu (exomi installs Microsoft's pwsh .deb) "
                        "and that its instances can reach github.com and the PowerShell Gallery; then provision again "
                        "(instances that have the modules are not run again)."
                    )
                    if is_linux(ctx)
                    else "check that the instances can reach the PowerShell Gallery; then provision again (instances "
                    "that have the modules are not run again).",
                )
            memo["installed"] = [*memo["installed"], name]
        if len(memo["installed"]) < len(memo["runs"]):
            return StepResult(
                done=False,
                changed=True,
                message=f"installing modules with Run Command on {len(memo['runs'])} instances "
                f"({len(memo['installed'])} done)",
                check_again_in=look_again(ctx, memo["since"], ctx.timings.expected_run_command),
                memo=memo,
            )
        done, gone = list(memo["installed"]), list(memo["gone"])
        after = {"installed": wanted, "on": done, "left_the_set": gone}
        await ctx.audit.done(0, action, {"installed_by_exomi": installed_on(ctx)}, after)
        left = f"; {', '.join(gone)} left the scale set meanwhile" if gone else ""
        current = [n for n in memo["instances"] if n not in gone]
        return StepResult(
            done=True,
            changed=True,
            message=f"installed {_listing(wanted)} on {', '.join(done) or 'no instance'}{left}",
            facts={
                "scale_set_instances": current,
                "instances_installed": done,
                "modules_dropped": dropped_instances(ctx, current),
                "modules_imported": [
                    {"name": n, "version": v, "runtime_environment": INSTANCE_RUNTIME + instance}
                    for instance in done
                    for n, v in wanted.items()
                ],
            },
        )


class ScaleSetVerify(Verify):
    """The connect test on the instances this request installed the modules on (each installed on its
    own, so each is tested), or, when it installed none, on the first instance: every instance uses the
    same principal, so one test shows the grants work. A set without instances is granted, not verified."""

    async def observe(self, ctx: StepContext) -> Observation:
        observation = await super().observe(ctx)
        if observation.verdict is Verdict.MISSING:
            observation.action = "run the connect test with Run Command on the scale set's instances"
        return observation

    async def apply(self, ctx: StepContext) -> StepResult:
        if ctx.provision.verify and not ctx.facts.get("scale_set_instances"):
            return StepResult(done=True, message=f"granted, not verified: {NO_INSTANCES}")
        return await super().apply(ctx)

    async def _run_command(self, ctx: StepContext, memo: dict[str, Any]) -> StepResult:
        if "runs" not in memo:
            passed = memo.setdefault("passed", [])
            current = [i for i in await list_instances(ctx) if i.name not in memo.get("gone", [])]
            installed = set(ctx.facts.get("instances_installed") or [])
            # The instances this request installed on (those still in the set), else the first one.
            targets = [i for i in current if i.name in installed] or current[:1]
            targets = [i for i in targets if i.name not in passed]
            if not targets and not passed:
                return StepResult(done=True, message=f"granted, not verified: {NO_INSTANCES}")
            client_id = ctx.facts.get("client_id") if ctx.facts.get("identity") != "system" else None
            render = connect_shell_script if is_linux(ctx) else connect_script
            script = render(ctx.provision.organization, client_id, ctx.exchange_environment)
            runs, gone = await start_on(ctx, targets, script)
            memo.update(runs=runs, gone=[*memo.get("gone", []), *gone], since=ctx.now.isoformat())
        pending = {n: r for n, r in memo["runs"].items() if n not in memo["passed"]}
        outcomes, gone = await look_at(ctx, pending)
        if gone or not memo["runs"] and not memo["passed"]:
            # Instances left the set while being tested: test again where the set still has instances.
            memo = {k: v for k, v in memo.items() if k not in ("runs", "since")}
            memo["gone"] = [*memo.get("gone", []), *gone]
            return StepResult(
                done=False,
                message=f"{', '.join(memo['gone'])} left the scale set during the connect test; testing again",
                check_again_in=0,
                memo=memo,
            )
        if any(outcome is None for outcome in outcomes.values()):
            return self._waiting(
                ctx,
                memo,
                f"verification Run Command is running on {len(memo['runs'])} instances",
                ctx.timings.expected_run_command,
            )
        failures = {n: o.stderr.strip() for n, o in outcomes.items() if o is not None and o.stderr.strip()}
        for name, outcome in outcomes.items():
            if name not in failures and outcome is not None:
                self._judge_success(ctx, outcome.stdout, f"Run Command on instance {name}")
                memo.update(passed=[*memo["passed"], name], output=outcome.stdout)
        if failures:
            name, text = next(iter(failures.items()))
            # A new attempt runs again on the instances that did not pass only.
            retry = {k: v for k, v in memo.items() if k != "runs"}
            return self._judge_failure(ctx, retry, f"instance {name}: {text}")
        result = self._judge_success(ctx, memo["output"], "Run Command")
        result.facts["verified_instances"] = list(memo["passed"])
        result.message = f"{result.message} (on {', '.join(memo['passed'])})"
        return result
