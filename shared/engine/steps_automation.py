"""Automation account steps: the pinned modules for the runbook's runtime (PowerShell 5.1 modules, or a
7.x runtime environment and its packages) and the published connect runbook."""

from __future__ import annotations

from typing import Any

from shared.engine.context import Observation, StepContext, StepResult, Verdict
from shared.engine.step import Step, backoff
from shared.errors import OperationFailed, PrerequisiteMissing
from shared.runbooks import connect_script, content_hash


class Modules(Step):
    name = "modules"
    title = "ExchangeOnlineManagement, PackageManagement and PowerShellGet for the runtime"
    after = ("identity",)  # the account must exist (and its location is needed for a runtime environment)

    def _environment(self, ctx: StepContext) -> str | None:
        return ctx.decision.runtime_environment if ctx.decision.runtime.uses_runtime_environment else None

    async def _state(self, ctx: StepContext, environment: str | None, name: str):
        if environment is None:
            return await ctx.arm.get_module(ctx.ref, name)
        return await ctx.arm.get_package(ctx.ref, environment, name)

    async def observe(self, ctx: StepContext) -> Observation:
        environment = self._environment(ctx)
        where = f"runtime environment {environment}" if environment else "PowerShell 5.1 modules"
        if environment is not None:
            env = await ctx.arm.get_runtime_environment(ctx.ref, environment)
            if env is None:
                return Observation(
                    Verdict.MISSING,
                    f"runtime environment {environment} does not exist",
                    action=f"create runtime environment {environment} (PowerShell {ctx.decision.runtime.value}) and import the modules",
                )
        problems, pending = [], []
        for name, version in ctx.decision.module_versions.items():
            state = await self._state(ctx, environment, str(name))
            if state is None:
                problems.append(f"{name} missing")
            elif not state.done:
                pending.append(f"{name} {state.version or version} importing ({state.provisioning_state})")
            elif not state.succeeded:
                problems.append(f"{name} import {state.provisioning_state}: {state.error}")
            elif state.version != version:
                problems.append(f"{name} is {state.version}, pinned {version}")
        if problems:
            return Observation(
                Verdict.MISSING if all(p.endswith("missing") for p in problems) else Verdict.WRONG,
                f"{where}: " + "; ".join(problems + pending),
                fix="exomi imports the pinned versions from the PowerShell Gallery",
                action="import " + ", ".join(f"{n} {v}" for n, v in ctx.decision.module_versions.items()),
            )
        if pending:
            return Observation(Verdict.PENDING, f"{where}: " + "; ".join(pending))
        versions = ", ".join(f"{n} {v}" for n, v in ctx.decision.module_versions.items())
        return Observation(Verdict.OK, f"{where}: {versions} available")

    async def apply(self, ctx: StepContext) -> StepResult:
        environment = self._environment(ctx)
        memo: dict[str, Any] = dict(ctx.memo)
        imported: dict[str, str] = dict(memo.get("imported", {}))
        changed = False
        if environment is not None:
            env = await ctx.arm.get_runtime_environment(ctx.ref, environment)
            action = f"create runtime environment {environment}"
            if env is None:
                await ctx.audit.intend(0, action, None)
                await ctx.arm.create_runtime_environment(
                    ctx.ref, environment, ctx.decision.runtime.value, ctx.fact("location")
                )
                await ctx.audit.done(
                    0,
                    action,
                    None,
                    {"runtime_environment": environment, "version": ctx.decision.runtime.value},
                )
                memo["created_environment"] = environment
                changed = True
            elif env.get("language") != "PowerShell" or env.get("version") != ctx.decision.runtime.value:
                raise PrerequisiteMissing(
                    "runtime environment",
                    f"Runtime environment {environment} exists with {env.get('language')} {env.get('version')}, "
                    f"not PowerShell {ctx.decision.runtime.value}.",
                    "name another runtime environment in the request (runtime_environment) or change the existing one.",
                )
            else:
                await ctx.audit.settle(0, action, {"runtime_environment": environment})
        waiting: list[str] = []
        for index, (name, version) in enumerate(ctx.decision.module_versions.items(), start=1):
            name = str(name)
            state = await self._state(ctx, environment, name)
            action = f"import {name} {version}" + (
                f" into {environment}" if environment else " (PowerShell 5.1)"
            )
            if state is not None and state.done and state.succeeded and state.version == version:
                await ctx.audit.settle(index, action, {"version": version, "state": "Succeeded"})
                continue
            if state is not None and not state.done:
                waiting.append(name)
                continue
            if state is not None and imported.get(name) == version:
                # Our own import of the pinned version failed: Azure's error text says why.
                raise OperationFailed(
                    "module import",
                    f"Importing {name} {version} into the {environment or 'PowerShell 5.1'} runtime failed: {state.error}",
                    "check that the version exists in the PowerShell Gallery and that the account can reach it; "
                    "pin another version in the policy if this one is broken.",
                )
            before = None if state is None else {"version": state.version, "state": state.provisioning_state}
            await ctx.audit.intend(index, action, before)
            if environment is None:
                await ctx.arm.import_module(ctx.ref, name, version)
            else:
                await ctx.arm.import_package(ctx.ref, environment, name, version)
            await ctx.audit.done(index, action, before, {"version": version, "state": "Creating"})
            imported[name] = version
            waiting.append(name)
            changed = True
        memo["imported"] = imported
        facts = {
            "modules_imported": [
                {"name": n, "version": v, "runtime_environment": environment} for n, v in imported.items()
            ],
            "runtime_environment_created": memo.get("created_environment"),
        }
        if waiting:
            polls = int(memo.get("polls", 0))
            memo["polls"] = polls + 1
            return StepResult(
                done=False,
                changed=changed,
                message="waiting for the import of " + ", ".join(waiting),
                check_again_in=backoff(ctx, polls),
                memo=memo,
                facts=facts,
            )
        return StepResult(
            done=True,
            changed=changed,
            message="modules available: "
            + ", ".join(f"{n} {v}" for n, v in ctx.decision.module_versions.items()),
            facts=facts,
            memo=memo,
        )


class Runbook(Step):
    name = "runbook"
    title = "Connect runbook published"
    after = ("identity", "modules")

    def _script(self, ctx: StepContext) -> str:
        client_id = ctx.facts.get("client_id") if ctx.facts.get("identity") != "system" else None
        return connect_script(ctx.request.request.organization, client_id)

    def _environment(self, ctx: StepContext) -> str | None:
        return ctx.decision.runtime_environment if ctx.decision.runtime.uses_runtime_environment else None

    async def observe(self, ctx: StepContext) -> Observation:
        name = ctx.decision.runbook_name
        runbook = await ctx.arm.get_runbook(ctx.ref, name)
        facts = {"runbook_name": name}
        if runbook is None:
            return Observation(
                Verdict.MISSING,
                f"runbook {name} does not exist",
                action=f"create and publish runbook {name}",
                facts=facts,
            )
        wanted = content_hash(self._script(ctx))
        have = content_hash(runbook.published_content) if runbook.published_content else None
        environment = self._environment(ctx)
        # A 5.1 runbook reports the system environment "PowerShell-5.1" (or none, from older API versions).
        have_environment = (
            None
            if (runbook.runtime_environment or "PowerShell-5.1") == "PowerShell-5.1"
            else runbook.runtime_environment
        )
        if have == wanted and have_environment == environment:
            return Observation(
                Verdict.OK, f"runbook {name} is published with the right connect line", facts=facts
            )
        if not runbook.managed_by_exomi:
            return Observation(
                Verdict.WRONG,
                f"runbook {name} exists but was not created by exomi",
                fix="name another runbook in the request (runbook_name), or delete that runbook",
                facts=facts,
            )
        return Observation(
            Verdict.WRONG,
            f"runbook {name} differs from the desired connect runbook",
            action=f"update and publish runbook {name}",
            facts=facts,
        )

    async def apply(self, ctx: StepContext) -> StepResult:
        observation = await self.observe(ctx)
        name = ctx.decision.runbook_name
        action = f"publish runbook {name}"
        if observation.verdict is Verdict.OK:
            await ctx.audit.settle(0, action, {"runbook": name})
            return StepResult(done=True, message=observation.detail, facts=observation.facts)
        if observation.fix and observation.verdict is Verdict.WRONG:
            raise PrerequisiteMissing("runbook", observation.detail + ".", observation.fix)
        script = self._script(ctx)
        before = {"runbook": name, "state": observation.verdict.value}
        await ctx.audit.intend(0, action, before)
        await ctx.arm.put_runbook(
            ctx.ref,
            name,
            location=ctx.fact("location"),
            runtime_environment=self._environment(ctx),
            description="Connects to Exchange Online PowerShell with the managed identity (managed by exomi).",
        )
        await ctx.arm.publish_runbook_content(ctx.ref, name, script)
        await ctx.audit.done(0, action, before, {"runbook": name, "content_sha256": content_hash(script)})
        return StepResult(
            done=True,
            changed=True,
            message=f"published runbook {name}",
            facts={"runbook_name": name, "runbook_by_exomi": True},
        )
