"""Importing a PowerShell module (5.1 ``modules``) or a runtime-environment package: fire-and-forget, the
caller polls the resource's ``provisioningState``.

The import's outcome is decided when it starts, from the content link: the emulator's "PowerShell
Gallery" is ``emulator.powershell.GALLERY``, so a package or version it does not list fails the way a
404 from the gallery fails in Azure. Tests can also make a known-good module fail through
``POST /_control/automation/module-failures``. The state then advances lazily with time: Creating, the
intermediate ModuleProvisioningState values, and Succeeded or Failed after ``timings.module_import``.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlparse

from emulator.arm.automation_common import bad_request, object_property
from emulator.arm.router import ArmContext, validate_tags
from emulator.arm.tracked import touch
from emulator.powershell import GALLERY, latest_release
from emulator.tenant import ArmResource, Tenant
from emulator.throttling import module_import_check

EXCEPTION = "Orchestrator.Shared.AsyncModuleImport.ModuleImportException"
# What GET shows while an import runs (ModuleProvisioningState values, in Azure's order).
PHASES = (
    "Creating",
    "StartingImportModuleRunbook",
    "RunningImportModuleRunbook",
    "ContentDownloaded",
    "ContentValidated",
    "ModuleDataStored",
    "ActivitiesStored",
    "ModuleImportRunbookComplete",
)
# Package size and exported cmdlet count once imported (what Get-AzAutomationModule shows).
MODULE_FACTS = {
    "exchangeonlinemanagement": (9_487_521, 17),
    "packagemanagement": (1_089_436, 15),
    "powershellget": (241_573, 29),
    "az.accounts": (3_871_954, 38),
}

_API_PACKAGE = re.compile(r"/api/v2/package/(?P<name>[^/]+)(?:/(?P<version>[^/]+))?/?$", re.IGNORECASE)
_WEB_PACKAGE = re.compile(r"/packages/(?P<name>[^/]+)(?:/(?P<version>[^/]+))?/?$", re.IGNORECASE)
_NUPKG = re.compile(r"/(?P<name>[^/]+?)\.(?P<version>\d+(?:\.\d+)+(?:-[\w.]+)?)\.nupkg$", re.IGNORECASE)


@dataclass
class ModuleImport:
    """One import of a module or package; kept in the resource's ``state["import"]``."""

    started_at: float
    finishes_at: float
    version: str | None  # what the runtime gets if the import succeeds
    error: str | None  # why it fails (decided up front)
    previous_version: str | None  # what the runtime keeps using until this import succeeds
    package: str | None  # the gallery package's name, when the link names one the gallery has

    def provisioning_state(self, now: float | None = None) -> str:
        now = time.time() if now is None else now
        if now >= self.finishes_at:
            return "Failed" if self.error else "Succeeded"
        duration = max(self.finishes_at - self.started_at, 1e-9)
        index = int((now - self.started_at) / duration * len(PHASES))
        return PHASES[min(max(index, 0), len(PHASES) - 1)]

    def last_change(self, since: float, now: float | None = None) -> float:
        """When the resource last changed: ``since`` or, once the import has finished, its end."""
        now = time.time() if now is None else now
        return max(since, self.finishes_at) if now >= self.finishes_at else since

    def available_version(self, at: float) -> str | None:
        """The version a job starting at ``at`` can load (the previous one while this import runs)."""
        if at >= self.finishes_at and not self.error:
            return self.version
        return self.previous_version

    def properties(self, now: float | None = None) -> dict[str, Any]:
        """The import-dependent part of a module's / package's ``properties``."""
        state = self.provisioning_state(now)
        done = state == "Succeeded"
        size, activities = MODULE_FACTS.get((self.package or "").lower(), (250_000, 10))
        return {
            "version": self.version if done else None,
            "sizeInBytes": size if done else 0,
            "activityCount": activities if done else 0,
            "provisioningState": state,
            "error": {"code": None, "message": self.error if state == "Failed" else ""},
        }


def content_link_of(properties: dict[str, Any]) -> dict[str, Any]:
    """``properties.contentLink`` with a usable absolute ``uri``; 400 otherwise."""
    link = object_property(properties, "contentLink")
    uri = link.get("uri")
    if not isinstance(uri, str) or not uri:
        raise bad_request("The 'properties.contentLink.uri' property is required to import a module.")
    parsed = urlparse(uri)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise bad_request(f"The content link URI '{uri}' is not a valid absolute http or https URI.")
    return {"uri": uri, "version": link.get("version")}


def _gallery_package(uri: str) -> tuple[str, str | None] | None:
    path = unquote(urlparse(uri).path)
    for pattern in (_NUPKG, _API_PACKAGE, _WEB_PACKAGE):
        match = pattern.search(path)
        if match:
            return match.group("name"), match.group("version")
    return None


def _download_error(reason: str) -> str:
    return f"{EXCEPTION}: Failure processing module import runbook while getting module content. Error: {reason}."


def start_import(
    tenant: Tenant, module_name: str, link: dict[str, Any], previous_version: str | None
) -> ModuleImport:
    """Begins importing ``link`` as module ``module_name``; the outcome is fixed now, revealed later."""
    now = time.time()
    version: str | None = None
    error: str | None = None
    canonical: str | None = None
    package = _gallery_package(link["uri"])
    if package is None:
        # Whatever the URL serves, it is not a module package the emulator's gallery knows.
        error = _download_error("End of Central Directory record could not be found.")
    else:
        name, version = package
        version = version or link.get("version")
        known = GALLERY.get(name.lower())
        if known is None or (version is not None and version not in known[1]):
            error = _download_error("The remote server returned an error: (404) Not Found.")
        else:
            version = version or latest_release(known[1])
            canonical = known[0]
            if known[0].lower() != module_name.lower():
                error = (
                    f"{EXCEPTION}: Cannot import the module of name {module_name}, as the module structure was "
                    "invalid."
                )
    forced = tenant.module_import_failures.get(module_name.lower())
    if forced is not None and error is None:
        error = forced if forced.startswith("Orchestrator.") else f"{EXCEPTION}: {forced}"
    return ModuleImport(
        started_at=now,
        finishes_at=now + tenant.timings.module_import,
        version=version if error is None else None,
        error=error,
        previous_version=previous_version,
        package=canonical,
    )


def put_importable(
    ctx: ArmContext,
    *,
    resource_id: str,
    resource_type: str,
    name: str,
    location: str | None,
    tags: dict[str, str],
    link: dict[str, Any],
) -> tuple[ArmResource, bool]:
    """Creates or re-imports a module / package resource; returns it and whether it is new."""
    # /subscriptions/{s}/resourceGroups/{g}/providers/Microsoft.Automation/automationAccounts/{name}/...
    account_id = "/".join(resource_id.split("/")[:9])
    module_import_check(ctx.runtime.rate_limits, account_id, account_id.rsplit("/", 1)[-1])
    existing = ctx.tenant.get_resource(resource_id)
    previous = existing.state["import"].available_version(time.time()) if existing else None
    new_import = start_import(ctx.tenant, name, link, previous)
    if existing is not None:
        existing.state["import"] = new_import
        existing.tags = tags
        touch(existing, ctx)
        return existing, False
    resource = ArmResource(
        id=resource_id,
        type=resource_type,
        name=name,
        location=location,
        tags=tags,
        created_by=ctx.caller.principal.app_id,
        modified_by=ctx.caller.principal.app_id,
        state={"import": new_import},
    )
    ctx.tenant.put_resource(resource)
    return resource, True


async def put_importable_request(
    ctx: ArmContext, *, resource_id: str, resource_type: str, name: str, location: str | None
) -> tuple[ArmResource, bool]:
    """PUT of a module / package: imports the body's ``properties.contentLink``, with the body's tags."""
    body = await ctx.json_object()
    link = content_link_of(object_property(body, "properties", required=True))
    return put_importable(
        ctx,
        resource_id=resource_id,
        resource_type=resource_type,
        name=name,
        location=location,
        tags=validate_tags(body.get("tags")),
        link=link,
    )


def patch_importable(ctx: ArmContext, resource: ArmResource, body: dict[str, Any]) -> ArmResource:
    """PATCH of a stored module / package: a new ``contentLink`` re-imports it, ``tags`` replace its tags."""
    properties = object_property(body, "properties")
    if "contentLink" in properties:
        resource, _ = put_importable(
            ctx,
            resource_id=resource.id,
            resource_type=resource.type,
            name=resource.name,
            location=resource.location,
            tags=resource.tags,
            link=content_link_of(properties),
        )
    if "tags" in body:
        resource.tags = validate_tags(body["tags"])
    touch(resource, ctx)
    return resource
