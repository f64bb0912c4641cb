"""``exomi doctor``: what exomi's identity can and cannot do right now, read-only, each line OK / MISSING /
WRONG / EXTRA with its fix: the Graph permissions and Azure roles of shared/permissions.py, the Event Grid
subscription per subscription in scope (what ``exomi bootstrap`` would change, shared/bootstrap.py), the
policy and storage.

Event Grid's last delivery is not part of ARM's event subscription resource (only Azure Monitor's
metrics on the system topic, e.g. ``DeliverySuccessCount``, show it), so doctor reports the
subscription's provisioning state, endpoint and filters, and says where the deliveries can be seen.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from shared.azure.clients import AzureClients, AzureEndpoints
from shared.bootstrap import Bootstrap, Item, Options
from shared.errors import ExomiError
from shared.policy import Policy, load_policy
from shared.settings import Settings

DELIVERY_NOTE = (
    "last delivery: not exposed by ARM's event subscription; see the system topic's metrics "
    "(DeliverySuccessCount, DeliveryAttemptFailCount, DeadLetteredCount) in Azure Monitor"
)


@dataclass
class DoctorReport:
    principal_id: str
    items: list[Item]

    @property
    def ok(self) -> bool:
        # "fallback": a write bootstrap makes only if the operator may not make the one before it.
        return all(i.verdict in ("ok", "skipped", "extra", "fallback") for i in self.items)

    def as_dict(self) -> dict[str, Any]:
        return {
            "principal_id": self.principal_id,
            "ok": self.ok,
            "checks": [
                {k: v for k, v in i.as_dict().items() if k not in ("action", "done")} for i in self.items
            ],
        }


def clients_for(settings: Settings) -> AzureClients:
    """The operator's own credential (DefaultAzureCredential) at the settings' endpoints."""
    return AzureClients(
        AzureEndpoints(
            arm_endpoint=settings.arm_endpoint,
            arm_scope=settings.arm_scope,
            graph_endpoint=settings.graph_endpoint,
            graph_scope=settings.graph_scope,
            ca_bundle=str(settings.ca_bundle) if settings.ca_bundle else None,
            managed_identity_client_id=settings.client_id,
        )
    )


async def _storage_item(settings: Settings) -> Item:
    from shared.service import ExomiApp, ExomiService

    try:
        async with await ExomiApp.open(settings) as app:
            await ExomiService(app).check_storage()
    except Exception as error:  # noqa: BLE001 - whatever it is, exomi cannot keep its state
        return Item(
            "storage",
            "state tables and work queue",
            "wrong",
            f"storage does not answer: {type(error).__name__}: {error}"[:400],
            fix="check AzureWebJobsStorage (or AzureWebJobsStorage__accountName and the identity's Storage "
            "Table/Queue Data Contributor roles, docs/PERMISSIONS.md)",
        )
    return Item("storage", "state tables and work queue", "ok", "reachable")


async def run(settings: Settings, options: Options) -> DoctorReport:
    items: list[Item] = []
    policy: Policy | None = None
    try:
        policy = load_policy(settings.policy_json, settings.policy_file)
    except ExomiError as error:
        items.append(
            Item(
                "policy",
                "policy",
                "wrong",
                error.message,
                fix="fix EXOMI_POLICY / EXOMI_POLICY_FILE (docs/POLICY.md)",
            )
        )
    else:
        items.append(Item("policy", "policy", "ok", f"loads; {len(policy.allowed_scopes)} allowed scope(s)"))
    if policy is not None:
        clients = clients_for(settings)
        try:
            checks = await Bootstrap(clients, policy, options, settings.graph_endpoint).inspect()
        except ExomiError as error:
            checks = [
                Item(
                    "graph",
                    "reading exomi's permissions",
                    "wrong",
                    error.message,
                    fix="run doctor as an administrator",
                )
            ]
        finally:
            with contextlib.suppress(Exception):
                await clients.close()
        for check in checks:
            check.write = None  # doctor never writes
            if (
                check.area == "eventgrid"
                and check.name.startswith("event subscription")
                and check.verdict == "ok"
            ):
                check.detail += f"; {DELIVERY_NOTE}"
        items += checks
    items.append(await _storage_item(settings))
    return DoctorReport(options.principal_id, items)
