"""Principals of the emulated tenant that act with their own token and Azure roles: a person with Tag
Contributor, an app team's Owner, a Logic App, an approver. Tests use them to write tags (through
the real SDKs, so Event Grid's evidence names their role) and to call the HTTP API as App Service
Authentication would present them."""

from __future__ import annotations

from dataclasses import dataclass

from azure.identity import ManagedIdentityCredential

from tests.support.emulator import Emulator


@dataclass(frozen=True)
class Actor:
    object_id: str
    client_id: str
    name: str  # the name App Service Authentication passes on (a UPN for people)

    @property
    def credential(self) -> ManagedIdentityCredential:
        return ManagedIdentityCredential(client_id=self.client_id)

    def easy_auth(self) -> dict[str, str]:
        """The headers App Service Authentication adds for this caller (exomi trusts them only with
        EXOMI_TRUST_APP_SERVICE_AUTH=true)."""
        return {"X-MS-CLIENT-PRINCIPAL-ID": self.object_id, "X-MS-CLIENT-PRINCIPAL-NAME": self.name}


def actor(
    emulator: Emulator,
    name: str,
    role: str | None = None,
    scope: str | None = None,
    domain: str = "contoso.com",
) -> Actor:
    """A principal named ``name`` (``name@domain`` to App Service Authentication), holding ``role`` at ``scope``."""
    seeded = emulator.seed_principal(name, visible=True)
    if role is not None:
        emulator.ctl("POST", "/rbac", {"principal_id": seeded["id"], "role": role, "scope": scope})
    return Actor(seeded["id"], seeded["appId"], f"{name}@{domain}")
