"""Runtime environments (``{AA}/runtimeEnvironments/{env}``) and their packages, and what a job's
sandbox has installed.

Every account has the system-generated environments (PowerShell-5.1, PowerShell-7.1, PowerShell-7.2,
Python-2.7, Python-3.8, Python-3.10); users add their own (e.g. PowerShell 7.4). The PowerShell-5.1
environment's packages *are* the account's ``modules`` collection plus the global (inbox) modules, which
is why Exchange Online's REST connections need newer PackageManagement / PowerShellGet imported there:
the inbox 1.0.0.1 versions are too old. PowerShell 7 ships recent ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from emulator.arm import api_versions
from emulator.arm.automation_common import (
    AA,
    ACCOUNT_TYPE,
    bad_request,
    check_name,
    child_not_found,
    object_property,
    parent_not_found,
    require_parent_account,
    route_args,
)
from emulator.arm.automation_imports import patch_importable, put_importable_request
from emulator.arm.router import ArmContext, ArmRouter, arm_json, paged, system_data, validate_tags
from emulator.arm.tracked import touch
from emulator.http import ArmError
from emulator.tenant import ArmResource, Tenant

RUNTIME_TYPE = f"{ACCOUNT_TYPE}/runtimeEnvironments"
PACKAGE_TYPE = f"{RUNTIME_TYPE}/packages"
MODULE_TYPE = f"{ACCOUNT_TYPE}/modules"
LEGACY_51 = "powershell-5.1"  # the environment whose packages are the ``modules`` collection
SUPPORTED = {
    "powershell": ("PowerShell", ("5.1", "7.1", "7.2", "7.4")),
    "python": ("Python", ("3.8", "3.10")),
}
SYSTEM_ENVIRONMENTS = {
    name.lower(): (name, language, version, packages)
    for name, language, version, packages in (
        ("PowerShell-5.1", "PowerShell", "5.1", {"Az": "8.0.0"}),
        ("PowerShell-7.1", "PowerShell", "7.1", {"Az": "6.2.0"}),
        ("PowerShell-7.2", "PowerShell", "7.2", {"Az": "8.0.0"}),
        ("Python-2.7", "Python", "2.7", {}),
        ("Python-3.8", "Python", "3.8", {}),
        ("Python-3.10", "Python", "3.10", {}),
    )
}
# Modules every PowerShell 5.1 sandbox has; listed as isGlobal modules of the account.
GLOBAL_MODULES_51 = {
    "Microsoft.PowerShell.Diagnostics": "3.0.0.0",
    "Microsoft.PowerShell.Management": "3.1.0.0",
    "Microsoft.PowerShell.Security": "3.0.0.0",
    "Microsoft.PowerShell.Utility": "3.1.0.0",
    "Microsoft.WSMan.Management": "3.0.0.0",
    "Orchestrator.AssetManagement.Cmdlets": "1.0",
    "PackageManagement": "1.0.0.1",
    "PowerShellGet": "1.0.0.1",
}
# What PowerShell 7 ships with (not listed as packages).
INBOX_MODULES_7 = {
    "Microsoft.PowerShell.Management": "7.0.0.0",
    "Microsoft.PowerShell.Security": "7.0.0.0",
    "Microsoft.PowerShell.Utility": "7.0.0.0",
    "PackageManagement": "1.4.8.1",
    "PowerShellGet": "2.2.5",
}
GLOBAL_STATE = "Created"  # provisioningState Azure shows for built-in modules
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass
class RuntimeEnv:
    name: str
    language: str
    version: str
    default_packages: dict[str, str]
    account: ArmResource
    resource: ArmResource | None = None  # None for the system-generated ones
    description: str | None = None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.resource.id if self.resource else f"{self.account.id}/runtimeEnvironments/{self.name}"

    @property
    def uses_modules_collection(self) -> bool:
        return self.resource is None and self.name.lower() == LEGACY_51

    @property
    def package_collection(self) -> str:
        return f"{self.account.id}/modules" if self.uses_modules_collection else f"{self.id}/packages"

    @property
    def label(self) -> str:
        return f"{self.language} {self.version}"


def find_runtime(tenant: Tenant, account: ArmResource, name: str) -> RuntimeEnv | None:
    system = SYSTEM_ENVIRONMENTS.get(name.lower())
    if system is not None:
        env_name, language, version, packages = system
        description = (
            f"System-generated Runtime Environment for your Automation account with Runtime language: {language} "
            f"and Runtime version: {version}"
        )
        return RuntimeEnv(env_name, language, version, dict(packages), account, description=description)
    resource = tenant.get_resource(f"{account.id}/runtimeEnvironments/{name}")
    if resource is None:
        return None
    props = resource.properties
    return RuntimeEnv(
        resource.name,
        props["language"],
        props["version"],
        dict(props.get("defaultPackages") or {}),
        account,
        resource=resource,
        description=props.get("description"),
        tags=resource.tags,
    )


def all_runtimes(tenant: Tenant, account: ArmResource) -> list[RuntimeEnv]:
    custom = [
        find_runtime(tenant, account, r.name) for r in tenant.children(f"{account.id}/runtimeEnvironments")
    ]
    system = [find_runtime(tenant, account, name) for name in SYSTEM_ENVIRONMENTS]
    return [env for env in system + custom if env is not None]


def host_modules(tenant: Tenant, env: RuntimeEnv, at: float) -> dict[str, str]:
    """Module name (lower) -> version a job of ``env`` starting at ``at`` can load."""
    if env.language != "PowerShell":
        base: dict[str, str] = {}
    elif env.version == "5.1":
        base = GLOBAL_MODULES_51
    else:
        base = INBOX_MODULES_7
    modules = {name.lower(): version for name, version in {**base, **env.default_packages}.items()}
    for resource in tenant.children(env.package_collection):
        version = resource.state["import"].available_version(at)
        if version:
            modules[resource.name.lower()] = version
    return modules


# --------------------------------------------------------------------------------------------------
# JSON


def runtime_json(env: RuntimeEnv) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": env.id,
        "name": env.name,
        "type": RUNTIME_TYPE,
        "location": (env.resource or env.account).location,
        "tags": env.tags,
        "properties": {
            "runtime": {"language": env.language, "version": env.version},
            "defaultPackages": env.default_packages,
            "description": env.description,
        },
    }
    body["systemData"] = system_data(env.resource or env.account)
    return body


def package_json(env: RuntimeEnv, name: str, resource: ArmResource | None) -> dict[str, Any]:
    """A stored package (or 5.1 module shown as a package), or a global module when ``resource`` is None."""
    if resource is None:
        properties: dict[str, Any] = {
            "default": True,
            "version": GLOBAL_MODULES_51[name],
            "sizeInBytes": 0,
            "provisioningState": GLOBAL_STATE,
            "error": {"code": None, "message": ""},
        }
        tags, holder = {}, env.account
    else:
        properties = {"default": False, **resource.state["import"].properties()}
        properties.pop("activityCount")
        tags, holder = resource.tags, resource
    return {
        "id": f"{env.id}/packages/{name}",
        "name": name,
        "type": PACKAGE_TYPE,
        "location": env.account.location,
        "tags": tags,
        "systemData": system_data(holder),
        "properties": {**properties, "contentLink": None},
    }


# --------------------------------------------------------------------------------------------------
# Runtime environment handlers


def _require_runtime(ctx: ArmContext, account: ArmResource) -> RuntimeEnv:
    env = find_runtime(ctx.tenant, account, ctx.params["runtimeEnvironmentName"])
    if env is None:
        raise child_not_found(ctx, account, "runtimeEnvironments", ctx.params["runtimeEnvironmentName"])
    return env


def _refuse_system(env: RuntimeEnv | None) -> None:
    if env is not None and env.resource is None:
        raise bad_request(
            f"Runtime environment '{env.name}' is system-generated and cannot be modified or deleted."
        )


def _runtime_of(properties: dict[str, Any]) -> tuple[str, str]:
    runtime = object_property(properties, "runtime", required=True)
    language, version = runtime.get("language"), runtime.get("version")
    supported = SUPPORTED.get(str(language).lower())
    if supported is None or str(version) not in supported[1]:
        choices = "; ".join(f"{lang} {', '.join(versions)}" for lang, versions in SUPPORTED.values())
        raise bad_request(
            f"Runtime language '{language}' with version '{version}' is not supported. Supported runtimes: {choices}."
        )
    return supported[0], str(version)


def _default_packages(properties: dict[str, Any]) -> dict[str, str] | None:
    packages = properties.get("defaultPackages")
    if packages is None:
        return None
    if not isinstance(packages, dict) or not all(isinstance(v, str) for v in packages.values()):
        raise bad_request("'properties.defaultPackages' must map package names to version strings.")
    return dict(packages)


async def put_runtime(ctx: ArmContext) -> web.Response:
    account = require_parent_account(ctx, "runtimeEnvironments")
    name = ctx.params["runtimeEnvironmentName"]
    check_name(name, NAME_RE, "runtime environment", "Use letters, digits, '.', '-' and '_' (at most 128).")
    existing = find_runtime(ctx.tenant, account, name)
    _refuse_system(existing)
    body = await ctx.json_object()
    properties = object_property(body, "properties", required=True)
    language, version = _runtime_of(properties)
    tags = validate_tags(body.get("tags"))
    location = body.get("location")
    if not location:
        raise ArmError(400, "LocationRequired", "The location property is required for this definition.")
    stored = {
        "language": language,
        "version": version,
        "defaultPackages": _default_packages(properties) or {},
        "description": properties.get("description"),
    }
    if existing is not None:
        if existing.language != language:
            raise bad_request(
                f"The runtime language of '{existing.name}' is {existing.language}; it cannot be changed to {language}."
            )
        existing.resource.properties = stored
        existing.resource.tags = tags
        touch(existing.resource, ctx)
        return arm_json(runtime_json(find_runtime(ctx.tenant, account, name)), 200)
    resource = ArmResource(
        id=f"{account.id}/runtimeEnvironments/{name}",
        type=RUNTIME_TYPE,
        name=name,
        location=str(location).replace(" ", "").lower(),
        tags=tags,
        properties=stored,
        created_by=ctx.caller.principal.app_id,
        modified_by=ctx.caller.principal.app_id,
    )
    ctx.tenant.put_resource(resource)
    return arm_json(runtime_json(find_runtime(ctx.tenant, account, name)), 201)


async def get_runtime(ctx: ArmContext) -> web.Response:
    account = require_parent_account(ctx, "runtimeEnvironments")
    return arm_json(runtime_json(_require_runtime(ctx, account)))


async def patch_runtime(ctx: ArmContext) -> web.Response:
    account = require_parent_account(ctx, "runtimeEnvironments")
    env = _require_runtime(ctx, account)
    _refuse_system(env)
    body = await ctx.json_object()
    properties = object_property(body, "properties")
    packages = _default_packages(properties)
    if packages is not None:
        env.resource.properties["defaultPackages"] = packages
    if "description" in properties:
        env.resource.properties["description"] = properties["description"]
    if "tags" in body:
        env.resource.tags = validate_tags(body["tags"])
    touch(env.resource, ctx)
    return arm_json(runtime_json(find_runtime(ctx.tenant, account, env.name)))


async def delete_runtime(ctx: ArmContext) -> web.Response:
    account = require_parent_account(ctx, "runtimeEnvironments")
    env = _require_runtime(ctx, account)
    _refuse_system(env)
    ctx.tenant.delete_resource_tree(env.resource.id)
    return web.Response(status=200)


async def list_runtimes(ctx: ArmContext) -> web.Response:
    account = require_parent_account(ctx, "runtimeEnvironments")
    return paged(ctx, [runtime_json(env) for env in all_runtimes(ctx.tenant, account)])


# --------------------------------------------------------------------------------------------------
# Package handlers


def _package_env(ctx: ArmContext) -> RuntimeEnv:
    account = require_parent_account(ctx, "runtimeEnvironments/packages")
    env = find_runtime(ctx.tenant, account, ctx.params["runtimeEnvironmentName"])
    if env is None:
        raise parent_not_found(
            ctx,
            "automationAccounts/runtimeEnvironments/packages",
            f"{account.id}/runtimeEnvironments/{ctx.params['runtimeEnvironmentName']}",
        )
    return env


def _global_name(env: RuntimeEnv, name: str) -> str | None:
    if not env.uses_modules_collection:
        return None
    return next((g for g in GLOBAL_MODULES_51 if g.lower() == name.lower()), None)


def _require_package(ctx: ArmContext, env: RuntimeEnv) -> tuple[str, ArmResource | None]:
    name = ctx.params["packageName"]
    resource = ctx.tenant.get_resource(f"{env.package_collection}/{name}")
    if resource is not None:
        return resource.name, resource
    global_name = _global_name(env, name)
    if global_name is None:
        raise child_not_found(ctx, env.account, f"runtimeEnvironments/{env.name}/packages", name)
    return global_name, None


async def put_package(ctx: ArmContext) -> web.Response:
    env = _package_env(ctx)
    name = ctx.params["packageName"]
    check_name(name, NAME_RE, "package", "Use letters, digits, '.', '-' and '_' (at most 128).")
    resource, created = await put_importable_request(
        ctx,
        resource_id=f"{env.package_collection}/{name}",
        resource_type=MODULE_TYPE if env.uses_modules_collection else PACKAGE_TYPE,
        name=name,
        location=env.account.location,
    )
    return arm_json(package_json(env, resource.name, resource), 201 if created else 200)


async def get_package(ctx: ArmContext) -> web.Response:
    env = _package_env(ctx)
    return arm_json(package_json(env, *_require_package(ctx, env)))


async def patch_package(ctx: ArmContext) -> web.Response:
    env = _package_env(ctx)
    name, resource = _require_package(ctx, env)
    if resource is None:
        raise bad_request(f"'{name}' is a default package of '{env.name}' and cannot be changed.")
    resource = patch_importable(ctx, resource, await ctx.json_object())
    return arm_json(package_json(env, resource.name, resource))


async def delete_package(ctx: ArmContext) -> web.Response:
    env = _package_env(ctx)
    name, resource = _require_package(ctx, env)
    if resource is None:
        raise bad_request(f"'{name}' is a default package of '{env.name}' and cannot be deleted.")
    ctx.tenant.delete_resource_tree(resource.id)
    return web.Response(status=200)


async def list_packages(ctx: ArmContext) -> web.Response:
    env = _package_env(ctx)
    stored = {r.name.lower(): r for r in ctx.tenant.children(env.package_collection)}
    globals_ = (
        [g for g in GLOBAL_MODULES_51 if g.lower() not in stored] if env.uses_modules_collection else []
    )
    items = [package_json(env, g, None) for g in globals_]
    items += [package_json(env, r.name, r) for r in stored.values()]
    return paged(ctx, sorted(items, key=lambda p: p["name"].lower()))


def register(router: ArmRouter) -> None:
    runtimes = f"{AA}/runtimeEnvironments"
    runtime = runtimes + "/{runtimeEnvironmentName}"
    packages = runtime + "/packages"
    package = packages + "/{packageName}"
    env_args = route_args(
        "automationAccounts/runtimeEnvironments", api_versions.AUTOMATION_RUNTIME_ENVIRONMENTS
    )
    pkg_args = route_args(
        "automationAccounts/runtimeEnvironments/packages", api_versions.AUTOMATION_RUNTIME_ENVIRONMENTS
    )
    action = RUNTIME_TYPE
    router.add("PUT", runtime, put_runtime, action=f"{action}/write", **env_args)
    router.add("GET", runtime, get_runtime, action=f"{action}/read", **env_args)
    router.add("PATCH", runtime, patch_runtime, action=f"{action}/write", **env_args)
    router.add("DELETE", runtime, delete_runtime, action=f"{action}/delete", **env_args)
    router.add("GET", runtimes, list_runtimes, action=f"{action}/read", **env_args)
    router.add("PUT", package, put_package, action=f"{action}/packages/write", **pkg_args)
    router.add("GET", package, get_package, action=f"{action}/packages/read", **pkg_args)
    router.add("PATCH", package, patch_package, action=f"{action}/packages/write", **pkg_args)
    router.add("DELETE", package, delete_package, action=f"{action}/packages/delete", **pkg_args)
    router.add("GET", packages, list_packages, action=f"{action}/packages/read", **pkg_args)
