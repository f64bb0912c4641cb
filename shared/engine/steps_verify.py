"""Verification: run the connect script where the identity lives (an Automation job, or Run Command
on a VM) and read its output. Grants reach the identity's tokens late, so an authorization failure
soon after granting means "waiting for propagation", not "failed"."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from shared.engine.context import Observation, StepContext, StepResult, Verdict
from shared.engine.step import Step
from shared.engine.steps_vm import is_linux, run_command_id
from shared.engine.waits import look_again, started_now, waited
from shared.errors import OperationFailed
from shared.ids import TargetKind
from shared.runbooks import connect_script, connect_shell_script

AUTHORIZATION_FAILURES = ("UnAuthorized", "isn't supported in this scenario")
HINTS = [
    (
        "is not recognized",
        "the ExchangeOnlineManagement module is not available to the runtime the script ran in.",
    ),
    (
        "PowerShellGet and PackageManagement",
        "import current PackageManagement and PowerShellGet for the runtime.",
    ),
    ("No managed System identity", "enable the system-assigned identity of the resource."),
    ("No User Assigned", "attach the user-assigned identity to the resource and use its client id."),
    (
        "Identity not found",
        "enable the VM's system-assigned identity, or attach the user-assigned identity and use its client id.",
    ),
    ("AADSTS90002", "use a domain of your tenant as the organization (e.g. contoso.onmicrosoft.com)."),
    (
        "pwsh: command not found",
        "PowerShell (pwsh) is no longer on the Linux VM: provision the target again to reinstall it.",
    ),
]
JOB_NAMESPACE = uuid.UUID("6f0f3c1e-8b0a-4c5e-9a53-0e5f1d2a7c11")


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s" if seconds >= 1 else f"{seconds:.1f} s"
    return f"{seconds / 60:.0f} min"


def _hint(text: str) -> str | None:
    return next((fix for needle, fix in HINTS if needle in text), None)


class Verify(Step):
    name = "verify"
    title = "Verified: Connect-ExchangeOnline and Get-AcceptedDomain succeed"
    # Everything the connect test needs: the grants, and where it runs (modules, runbook). A plan keeps
    # the ones it has (shared/engine/plan.py).
    after = (
        "identity",
        "principal",
        "app-role",
        "entra-role",
        "modules",
        "runbook",
        "vm-modules",
        "vmss-modules",
    )

    async def observe(self, ctx: StepContext) -> Observation:
        record = ctx.target_record
        if (
            not ctx.facts.get("changed")
            and record is not None
            and record.last_verified_at is not None
            and record.status == "provisioned"
        ):
            return Observation(
                Verdict.OK,
                f"verified at {record.last_verified_at.isoformat(timespec='seconds')} and unchanged since",
            )
        where = "an Automation job" if ctx.kind is TargetKind.AUTOMATION_ACCOUNT else "Run Command on the VM"
        return Observation(
            Verdict.MISSING, "not verified since the last change", action=f"run the connect test with {where}"
        )

    async def apply(self, ctx: StepContext) -> StepResult:
        if not ctx.provision.verify:
            return StepResult(done=True, message="verification skipped (verify: false)")
        memo: dict[str, Any] = dict(ctx.memo)
        if "attempt" not in memo:
            observation = await self.observe(ctx)
            if observation.verdict is Verdict.OK:
                return StepResult(done=True, message=observation.detail)
            # Grants reach the identity's Exchange token a while after they are made: a test that
            # connects before that only fails for authorization and has to run again. The test starts
            # as long before that as it takes to reach Connect-ExchangeOnline.
            settled_at = self._grants_settle_at(ctx)
            start_at = None if settled_at is None else settled_at - timedelta(seconds=self._lead(ctx))
            if start_at is not None and ctx.now < start_at:
                return StepResult(
                    done=False,
                    message="waiting for the grants to reach the identity's token",
                    check_again_in=(start_at - ctx.now).total_seconds(),
                    memo=memo,
                )
            memo["attempt"] = 0
        if ctx.kind is TargetKind.AUTOMATION_ACCOUNT:
            return await self._job(ctx, memo)
        return await self._run_command(ctx, memo)

    @staticmethod
    def _lead(ctx: StepContext) -> float:
        """How long after it starts the connect test's script connects (a job's start, or the end of a
        Run Command: the emulator's model, and Azure's as far as anyone has written it down)."""
        if ctx.kind is TargetKind.AUTOMATION_ACCOUNT:
            return ctx.timings.expected_job_start
        return ctx.timings.expected_run_command

    @staticmethod
    def _grants_settle_at(ctx: StepContext) -> datetime | None:
        """When the latest grant this request made is expected to have propagated, if it made one."""
        made = [ctx.facts.get("app_role_granted_at"), ctx.facts.get("role_granted_at")]
        latest = max((datetime.fromisoformat(t) for t in made if t), default=None)
        return None if latest is None else latest + timedelta(seconds=ctx.timings.propagation)

    def _waiting(
        self, ctx: StepContext, memo: dict[str, Any], message: str, expected: float = 0.0
    ) -> StepResult:
        since = memo.setdefault("since", started_now())
        return StepResult(
            done=False, message=message, check_again_in=look_again(ctx, since, expected), memo=memo
        )

    async def _job(self, ctx: StepContext, memo: dict[str, Any]) -> StepResult:
        runbook = ctx.fact("runbook_name")
        if "job" not in memo:
            # The job name follows from the request and attempt: a crash after starting it finds it again.
            job = str(uuid.uuid5(JOB_NAMESPACE, f"{ctx.request.id}/{memo['attempt']}"))
            if await ctx.arm.get_job(ctx.ref, job) is None:
                await ctx.arm.start_job(ctx.ref, job, runbook)
            memo.update(job=job, since=started_now())
            return self._waiting(
                ctx, memo, f"verification job {job} started (runbook {runbook})", ctx.timings.expected_job
            )
        state = await ctx.arm.get_job(ctx.ref, memo["job"])
        if state is None or not state.done:
            return self._waiting(
                ctx,
                memo,
                f"verification job {memo['job']} is {state.status if state else 'starting'}",
                ctx.timings.expected_job,
            )
        # How long a job takes here (shared/state/durations.py): the next one is looked at near its end.
        took = {"expected_job": waited(memo["since"])}
        if state.status.lower() == "completed":
            return replace(self._judge_success(ctx, state.output or "", f"job {memo['job']}"), took=took)
        return replace(self._judge_failure(ctx, memo, state.exception or f"job {state.status}"), took=took)

    async def _run_command(self, ctx: StepContext, memo: dict[str, Any]) -> StepResult:
        if "token" not in memo:
            client_id = ctx.facts.get("client_id") if ctx.facts.get("identity") != "system" else None
            render = connect_shell_script if is_linux(ctx) else connect_script
            script = render(ctx.provision.organization, client_id, ctx.exchange_environment)
            token = await ctx.arm.start_run_command(ctx.ref, script.splitlines(), run_command_id(ctx))
            memo.update(token=token, since=started_now())
            return self._waiting(
                ctx, memo, "verification Run Command started", ctx.timings.expected_run_command
            )
        outcome = await ctx.arm.run_command_status(ctx.ref, memo["token"])
        if outcome is None:
            return self._waiting(
                ctx, memo, "verification Run Command is running", ctx.timings.expected_run_command
            )
        if outcome.stderr.strip():
            return self._judge_failure(ctx, memo, outcome.stderr.strip())
        return self._judge_success(ctx, outcome.stdout, "Run Command")

    def _judge_success(self, ctx: StepContext, output: str, where: str) -> StepResult:
        organization = ctx.provision.organization.lower()
        if organization not in output.lower():
            raise OperationFailed(
                "verification",
                f"The verification {where} completed, but its output does not list {organization}: {output[:500]!r}",
            )
        domains = [line.strip() for line in output.splitlines() if "." in line and " " not in line.strip()]
        return StepResult(
            done=True,
            changed=True,
            message=f"verified: Get-AcceptedDomain lists {', '.join(domains) or organization}",
            facts={"verified_at": ctx.now.isoformat(), "accepted_domains": domains},
        )

    def _judge_failure(self, ctx: StepContext, memo: dict[str, Any], text: str) -> StepResult:
        if any(needle in text for needle in AUTHORIZATION_FAILURES):
            first = datetime.fromisoformat(
                memo.setdefault("first_authorization_failure", ctx.now.isoformat())
            )
            waited = ctx.now - first
            window = timedelta(seconds=ctx.timings.propagation_window)
            if waited < window:
                attempt = int(memo["attempt"]) + 1
                memo = {k: v for k, v in memo.items() if k not in ("job", "token", "since")}
                memo["attempt"] = attempt
                # How much longer propagation takes is unknown: each new test waits twice as long, up
                # to verify_max_poll (every attempt is a job or a Run Command).
                delay = min(ctx.timings.poll * 2 ** (attempt - 1), ctx.timings.verify_max_poll)
                return StepResult(
                    done=False,
                    message=(
                        f"pending propagation: Exchange Online refused the identity ({text.splitlines()[0][:200]}). "
                        "Exchange honours a new grant 10 to 60 minutes after it is made, and a token the identity "
                        "took before that stays cached for up to 24 hours; verification attempt "
                        f"{attempt + 1} in {_duration(delay)}, until "
                        f"{(first + window).isoformat(timespec='minutes')}"
                    ),
                    check_again_in=delay,
                    memo=memo,
                )
            raise OperationFailed(
                "verification",
                f"Exchange Online still refuses the identity {int(waited.total_seconds() // 60)} minutes after the first "
                f"refusal, longer than a cached token lives: {text[:500]}",
                "check the Exchange.ManageAsApp grant and the Entra role in the target's diagnosis; some tenants also "
                "need the identity registered in Exchange (New-ServicePrincipal).",
            )
        raise OperationFailed("verification", f"The verification failed: {text[:1000]}", _hint(text))
