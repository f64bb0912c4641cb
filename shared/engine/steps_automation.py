"""Automation account steps: the pinned modules for the runbook's runtime (PowerShell 5.1 modules, or a
7.x runtime environment and its packages) and the published connect runbook."""

from __future__ import annotations

import asyncio
from typing import Any

from shared.azure.arm import ImportState
from shared.engine.context import Observation, StepContext, StepResult, Verdict
from shared.engine.step import Step
from shared.engine.waits import look_again, started_now, waited
from shared.errors import OperationFailed, PrerequisiteMissing
from shared.runbooks import connect_script, content_hash


def _environment(ctx: StepContext) -> str | None:
    """The 7.x runtime environment the runbook runs in, or None for PowerShell 5.1 (account modules)."""
    desired = ctx.desired
    return desired.runtime_environment if desired.runtime.uses_runtime_environment else None


class RuntimeEnvironment(Step):
    name = "runtime-environment"
    title = "Runtime environment for PowerShell 7.x"
    after = ("identity",)  # the account must exist, and the environment is created in its location

    async def observe(self, ctx: StepContext) -> Observation:
        environment = _environment(ctx)
        if environment is None:
            return Observation(Verdict.NOT_APPLICABLE, "PowerShell 5.1 uses the account's modules")
        env = await ctx.arm.get_runtime_environment(ctx.ref, environment)
        if env is None:
            return Observation(
                Verdict.MISSING,
                f"runtime environment {environment} does not exist",
                action=f"create runtime environment {environment} (PowerShell {ctx.desired.runtime.value})",
            )
        if env.get("language") != "PowerShell" or env.get("version") != ctx.desired.runtime.value:
            return Observation(
                Verdict.WRONG,
                f"runtime environment {environment} exists with {env.get('language')} {env.get('version')}, "
                f"not PowerShell {ctx.desired.runtime.value}",
                fix="name another runtime environment in the request (runtime_environment) or change the existing one",
            )
        return Observation(Verdict.OK, f"runtime environment {environment} (PowerShell {env.get('version')})")

    async def apply(self, ctx: StepContext) -> StepResult:
        environment = _environment(ctx)
        observation = await self.observe(ctx)
        action = f"create runtime environment {environment}"
        if observation.verdict in (Verdict.OK, Verdict.NOT_APPLICABLE):
            # Made by this request before a crash? Then it is exomi's, and revoke removes it.
            made = environment is not None and await ctx.audit.settle(
                0, action, {"runtime_environment": environment}
            )
            facts = {"runtime_environment_created": environment if made else None}
            return StepResult(done=True, message=observation.detail, facts=facts)
        if observation.verdict is Verdict.WRONG or environment is None:
            raise PrerequisiteMissing(
                "runtime environment", observation.detail + ".", observation.fix or "name another one"
            )
        version = ctx.desired.runtime.value
        await ctx.audit.intend(0, action, None)
        await ctx.arm.create_runtime_environment(ctx.ref, environment, version, ctx.fact("location"))
        await ctx.audit.done(0, action, None, {"runtime_environment": environment, "version": version})
        return StepResult(
            done=True,
            changed=True,
            message=f"created runtime environment {environment} (PowerShell {version})",
            facts={"runtime_environment_created": environment},
        )


class Modules(Step):
    """Every pinned module (or 7.x package) is looked at and imported at the same time; later looks read
    only the imports still running, on a schedule that fits an import (shared/engine/waits.py)."""

    name = "modules"
    title = "ExchangeOnlineManagement, PackageManagement and PowerShellGet for the runtime"
    after = ("runtime-environment",)

    async def _state(self, ctx: StepContext, environment: str | None, name: str) -> ImportState | None:
        if environment is None:
            return await ctx.arm.get_module(ctx.ref, name)
        return await ctx.arm.get_package(ctx.ref, environment, name)

    async def observe(self, ctx: StepContext) -> Observation:
        environment = _environment(ctx)
        where = f"runtime environment {environment}" if environment else "PowerShell 5.1 modules"
        wanted = {str(n): v for n, v in ctx.desired.module_versions.items()}
        if environment is not None and await ctx.arm.get_runtime_environment(ctx.ref, environment) is None:
            return Observation(
                Verdict.MISSING,
                f"{where}: the environment does not exist yet",
                action="import " + ", ".join(f"{n} {v}" for n, v in wanted.items()),
            )
        states = await asyncio.gather(*(self._state(ctx, environment, name) for name in wanted))
        problems, pending = [], []
        for (name, version), state in zip(wanted.items(), states, strict=True):
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
                action="import " + ", ".join(f"{n} {v}" for n, v in wanted.items()),
            )
        if pending:
            return Observation(Verdict.PENDING, f"{where}: " + "; ".join(pending))
        versions = ", ".join(f"{n} {v}" for n, v in wanted.items())
        return Observation(Verdict.OK, f"{where}: {versions} available")

    async def apply(self, ctx: StepContext) -> StepResult:
        environment = _environment(ctx)
        memo: dict[str, Any] = dict(ctx.memo)
        imported: dict[str, str] = dict(memo.get("imported", {}))
        wanted = {str(n): v for n, v in ctx.desired.module_versions.items()}
        # Modules seen done in an earlier look are not read again.
        settled = set(memo.get("settled", []))
        look_at = [(index, name) for index, name in enumerate(wanted, start=1) if name not in settled]
        accepted: list[str] = []  # when Azure accepted each import started in this look

        async def one(index: int, name: str) -> tuple[str, bool]:
            """Looks at one module and imports it if needed; returns (name, still importing)."""
            version = wanted[name]
            state = await self._state(ctx, environment, name)
            action = f"import {name} {version}" + (
                f" into {environment}" if environment else " (PowerShell 5.1)"
            )
            if state is not None and state.done and state.succeeded and state.version == version:
                await ctx.audit.settle(index, action, {"version": version, "state": "Succeeded"})
                return name, False
            if state is not None and not state.done:
                return name, True
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
            accepted.append(started_now())
            await ctx.audit.done(index, action, before, {"version": version, "state": "Creating"})
            imported[name] = version
            return name, True

        looks = await asyncio.gather(*(one(index, name) for index, name in look_at))
        waiting = [name for name, importing in looks if importing]
        changed = any(name in imported and name not in memo.get("imported", {}) for name, _ in looks)
        memo.update(imported=imported, settled=sorted(settled | {n for n, busy in looks if not busy}))
        facts = {
            "modules_imported": [
                {"name": n, "version": v, "runtime_environment": environment} for n, v in imported.items()
            ],
        }
        if waiting:
            since = memo.setdefault("since", min(accepted, default=started_now()))
            return StepResult(
                done=False,
                changed=changed,
                message="waiting for the import of " + ", ".join(waiting),
                check_again_in=look_again(ctx, since, ctx.timings.expected_import),
                memo=memo,
                facts=facts,
            )
        # How long an import takes here (shared/state/durations.py), when this request waited for one.
        took = {"expected_import": waited(memo["since"])} if "since" in memo else {}
        return StepResult(
            done=True,
            changed=changed,
            message="modules available: " + ", ".join(f"{n} {v}" for n, v in wanted.items()),
            facts=facts,
            memo=memo,
            took=took,
        )


class Runbook(Step):
    name = "runbook"
    title = "Connect runbook published"
    # Published while the modules import: only the verification job needs them.
    after = ("identity", "runtime-environment")

    def _script(self, ctx: StepContext) -> str:
        client_id = ctx.facts.get("client_id") if ctx.facts.get("identity") != "system" else None
        return connect_script(ctx.provision.organization, client_id, ctx.exchange_environment)

    async def observe(self, ctx: StepContext) -> Observation:
        name = ctx.desired.runbook_name
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
        environment = _environment(ctx)
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
        name = ctx.desired.runbook_name
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
            runtime_environment=_environment(ctx),
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
