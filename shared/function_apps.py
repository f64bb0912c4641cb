"""What a PowerShell Function app needs to connect with its managed identity, as exact lines.

exomi cannot run code inside a Function app (no Run Command, no jobs), so it grants the identity and
hands back the lines the app's author puts in place: ``requirements.psd1`` (managed dependencies), the
connect line for ``profile.ps1`` or the function itself, and the Flex Consumption caveat (no managed
dependencies there: the module ships in the app's ``Modules`` folder). Sources: docs/COMPATIBILITY.md.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from shared.runbooks import connect_line
from shared.settings import ExchangeEnvironment

HOST = "functions-7.4"  # the compatibility matrix's host: the PowerShell 7.4 worker of Azure Functions
EXCHANGE_MODULE = "ExchangeOnlineManagement"
OUTCOME = "granted, not verified"
NOT_VERIFIED = (
    "exomi cannot run code inside a Function app, so the connection is not tested: call the function once "
    "after deploying these lines (a new grant can take up to an hour to reach the identity's tokens)"
)
FLEX_CONSUMPTION = (
    "Flex Consumption does not support managed dependencies: save the module into the app's Modules folder "
    "instead (Save-Module -Name ExchangeOnlineManagement -RequiredVersion {version} -Path ./Modules) and "
    "deploy it with the app"
)


@dataclass(frozen=True)
class FunctionAppSetup:
    outcome: str
    requirements_psd1: str  # the line of requirements.psd1 (host.json: managedDependency.enabled true)
    connect_command: str  # for profile.ps1 or the function's run.ps1
    flex_consumption: str
    note: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def function_app_setup(
    organization: str,
    user_assigned_client_id: str | None,
    environment: ExchangeEnvironment,
    exchange_version: str,
) -> FunctionAppSetup:
    return FunctionAppSetup(
        outcome=OUTCOME,
        requirements_psd1=f"@{{ '{EXCHANGE_MODULE}' = '{exchange_version}' }}",
        connect_command=connect_line(organization, user_assigned_client_id, environment),
        flex_consumption=FLEX_CONSUMPTION.format(version=exchange_version),
        note=NOT_VERIFIED,
    )
