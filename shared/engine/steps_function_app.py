"""The last step of a Function app: exomi cannot run code there, so it reports the grants as
"granted, not verified" with the exact lines the app needs (shared/function_apps.py)."""

from __future__ import annotations

from shared.engine.context import Observation, StepContext, Verdict
from shared.engine.step import Step
from shared.function_apps import EXCHANGE_MODULE, HOST, function_app_setup


class FunctionAppSetupStep(Step):
    name = "function-app"
    title = "Function app: granted, not verified (the lines to use)"
    after = ("identity", "principal", "app-role", "entra-role")

    async def observe(self, ctx: StepContext) -> Observation:
        setup = function_app_setup(
            ctx.provision.organization,
            ctx.fact("client_id"),
            ctx.exchange_environment,
            ctx.desired.module_versions[EXCHANGE_MODULE],
        )
        return Observation(
            Verdict.OK,
            f"{setup.outcome}: requirements.psd1 {setup.requirements_psd1} (for the PowerShell 7.4 worker, "
            f"compatibility host {HOST}); connect with "
            f"{setup.connect_command}. {setup.flex_consumption}. {setup.note}.",
            facts={"function_app": setup.to_dict()},
        )
