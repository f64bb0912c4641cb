"""Microsoft Graph ``/organization``: the tenant itself, with its verified domains (exomi reads the
initial ``*.onmicrosoft.com`` domain, which Exchange Online PowerShell wants as ``-Organization``)."""

from __future__ import annotations

from aiohttp import web

from emulator.graph import directory as d
from emulator.graph.query import parse_collection_query, parse_item_query, respond_collection, respond_entity
from emulator.graph.router import GraphContext, GraphRouter
from emulator.graph.schema import EntityType
from emulator.tenant import Tenant

ORGANIZATION = EntityType(
    name="organization",
    resource="Organization",
    properties={
        "id": "Edm.String",
        "deletedDateTime": "Edm.DateTimeOffset",
        "assignedPlans": "Collection(microsoft.graph.assignedPlan)",
        "businessPhones": "Collection(Edm.String)",
        "city": "Edm.String",
        "country": "Edm.String",
        "countryLetterCode": "Edm.String",
        "createdDateTime": "Edm.DateTimeOffset",
        "defaultUsageLocation": "Edm.String",
        "displayName": "Edm.String",
        "marketingNotificationEmails": "Collection(Edm.String)",
        "onPremisesLastSyncDateTime": "Edm.DateTimeOffset",
        "onPremisesSyncEnabled": "Edm.Boolean",
        "postalCode": "Edm.String",
        "preferredLanguage": "Edm.String",
        "privacyProfile": "microsoft.graph.privacyProfile",
        "provisionedPlans": "Collection(microsoft.graph.provisionedPlan)",
        "securityComplianceNotificationMails": "Collection(Edm.String)",
        "securityComplianceNotificationPhones": "Collection(Edm.String)",
        "state": "Edm.String",
        "street": "Edm.String",
        "technicalNotificationMails": "Collection(Edm.String)",
        "tenantType": "Edm.String",
        "verifiedDomains": "Collection(microsoft.graph.verifiedDomain)",
    },
    navigations=frozenset({"branding", "certificateBasedAuthConfiguration", "extensions"}),
)
# A fresh tenant's creation time is not modelled; any fixed past instant will do.
CREATED = "2020-01-01T00:00:00Z"


def _domain(name: str, *, initial: bool, default: bool) -> dict:
    return {
        "capabilities": "Email, OfficeCommunicationsOnline",
        "isDefault": default,
        "isInitial": initial,
        "name": name,
        "type": "Managed",
    }


def organization_json(tenant: Tenant) -> dict:
    """The initial domain is ``tenant.domain``; the first custom domain (if any) is the default, as
    in most real tenants, so code that wants the initial domain must look for ``isInitial``."""
    label = tenant.domain.split(".", 1)[0]
    default = tenant.extra_domains[0] if tenant.extra_domains else tenant.domain
    domains = [_domain(tenant.domain, initial=True, default=default == tenant.domain)]
    domains += [_domain(name, initial=False, default=name == default) for name in tenant.extra_domains]
    return {
        "id": tenant.tenant_id,
        "deletedDateTime": None,
        "businessPhones": [],
        "city": None,
        "country": None,
        "countryLetterCode": "US",
        "createdDateTime": CREATED,
        "defaultUsageLocation": None,
        "displayName": label[:1].upper() + label[1:],
        "marketingNotificationEmails": [],
        "onPremisesLastSyncDateTime": None,
        "onPremisesSyncEnabled": None,
        "postalCode": None,
        "preferredLanguage": "en",
        "securityComplianceNotificationMails": [],
        "securityComplianceNotificationPhones": [],
        "state": None,
        "street": None,
        "technicalNotificationMails": [],
        "tenantType": "AAD",
        "assignedPlans": [],
        "privacyProfile": None,
        "provisionedPlans": [],
        "verifiedDomains": domains,
    }


async def list_organization(ctx: GraphContext) -> web.Response:
    options = parse_collection_query(ctx, ORGANIZATION)
    return respond_collection(ctx, [organization_json(ctx.tenant)], options, "organization")


async def get_organization(ctx: GraphContext) -> web.Response:
    options = parse_item_query(ctx, ORGANIZATION)
    organization_id = d.require_guid(ctx.params["id"])
    if organization_id.lower() != ctx.tenant.tenant_id.lower():
        raise d.not_found(organization_id)
    return respond_entity(ctx, organization_json(ctx.tenant), options, "organization")


def register(router: GraphRouter) -> None:
    router.add("GET", "/organization", list_organization, permissions=d.READ_ORGANIZATION)
    router.add("GET", rf"/organization/(?P<id>{d.ID})", get_organization, permissions=d.READ_ORGANIZATION)
