"""Runbooks: the resource, its draft and its published version (``{AA}/runbooks/{name}``).

Replacing the draft content and publishing are long-running operations: the call answers 202 with an
absolute ``Location`` (``…/operationResults/{id}``) that answers 202 + ``Retry-After`` until
``timings.lro`` has passed, then 200. The change itself lands when the operation completes (applied
lazily, in order, whenever the runbook is next read), so a job started before its publish finished
still sees the previous version.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from emulator.arm.automation_common import (
    AA,
    ACCOUNT_TYPE,
    aa_time,
    bad_request,
    check_name,
    child_not_found,
    object_property,
    optional_bool,
    require_parent_account,
    route_args,
    text_response,
)
from emulator.arm.automation_runtimes import RuntimeEnv, find_runtime
from emulator.arm.router import ArmContext, ArmRouter, arm_json, paged, system_data, validate_tags
from emulator.arm.tracked import touch
from emulator.http import ArmError
from emulator.tenant import ArmResource

RUNBOOK_TYPE = f"{ACCOUNT_TYPE}/runbooks"
JSON_TYPE = "Microsoft.Automation/AutomationAccounts/Runbooks"
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,62}$")
# runbookType -> (canonical spelling, language, runtime versions it runs on (None: any), default environment)
RUNBOOK_TYPES: dict[str, tuple[str, str, tuple[str, ...] | None, str]] = {
    name.lower(): (name, language, versions, default)
    for name, language, versions, default in (
        ("Script", "PowerShell", None, "PowerShell-5.1"),
        ("Graph", "PowerShell", ("5.1",), "PowerShell-5.1"),
        ("PowerShellWorkflow", "PowerShell", ("5.1",), "PowerShell-5.1"),
        ("PowerShell", "PowerShell", None, "PowerShell-5.1"),
        ("GraphPowerShellWorkflow", "PowerShell", ("5.1",), "PowerShell-5.1"),
        ("GraphPowerShell", "PowerShell", None, "PowerShell-5.1"),
        ("Python2", "Python", ("2.7",), "Python-2.7"),
        ("Python3", "Python", ("3.8", "3.10"), "Python-3.8"),
        ("Python", "Python", None, "Python-3.8"),
        ("PowerShell72", "PowerShell", ("7.1", "7.2", "7.4"), "PowerShell-7.2"),
    )
}


@dataclass
class RunbookOperation:
    """A pending or finished draft-content replacement or publish."""

    kind: str  # "content" | "publish"
    done_at: float
    content: str | None = None
    applied: bool = False
    error: str | None = None


def _ticks(ts: float) -> int:
    """.NET ticks, which Automation uses for etags and stream ids."""
    return int(ts * 10_000_000) + 621_355_968_000_000_000


def settle(runbook: ArmResource, now: float | None = None) -> ArmResource:
    """Applies the runbook's operations that have completed by ``now``, in completion order."""
    now = time.time() if now is None else now
    state = runbook.state
    due = [op for op in state["operations"].values() if not op.applied and op.done_at <= now]
    for op in sorted(due, key=lambda o: o.done_at):
        op.applied = True
        if op.kind == "content":
            state["draft"] = op.content
            state["in_edit"] = True
            state["draft_modified_at"] = op.done_at
            if runbook.properties["state"] == "Published":
                runbook.properties["state"] = "Edit"
        elif state["draft"] is None:
            op.error = f"The runbook '{runbook.name}' has no draft content to publish."
            continue
        else:
            state["published"] = state["draft"]
            state["in_edit"] = False
            runbook.properties["state"] = "Published"
        runbook.modified_at = op.done_at
    return runbook


def find_runbook(ctx: ArmContext, account: ArmResource, name: str) -> ArmResource | None:
    runbook = ctx.tenant.get_resource(f"{account.id}/runbooks/{name}")
    return settle(runbook) if runbook is not None else None


def runbook_runtime(ctx: ArmContext, account: ArmResource, runbook: ArmResource) -> RuntimeEnv | None:
    return find_runtime(ctx.tenant, account, runbook.properties["runtimeEnvironment"])


def _draft_json(runbook: ArmResource) -> dict[str, Any]:
    state = runbook.state
    return {
        "inEdit": state["in_edit"],
        "draftContentLink": None,
        "creationTime": aa_time(runbook.created_at),
        "lastModifiedTime": aa_time(state["draft_modified_at"]),
        "parameters": {},
        "outputTypes": [],
    }


def runbook_json(runbook: ArmResource) -> dict[str, Any]:
    props = runbook.properties
    return {
        "id": runbook.id,
        "name": runbook.name,
        "type": JSON_TYPE,
        "location": runbook.location,
        "tags": runbook.tags,
        "etag": f'"{_ticks(runbook.modified_at)}"',
        "systemData": system_data(runbook),
        "properties": {
            "runbookType": props["runbookType"],
            "runtimeEnvironment": props["runtimeEnvironment"],
            "state": props["state"],
            "logVerbose": props["logVerbose"],
            "logProgress": props["logProgress"],
            "logActivityTrace": props["logActivityTrace"],
            "jobCount": props["jobCount"],
            "parameters": {},
            "outputTypes": [],
            "draft": _draft_json(runbook),
            "publishContentLink": None,
            "provisioningState": "Succeeded",
            "creationTime": aa_time(runbook.created_at),
            "lastModifiedTime": aa_time(runbook.modified_at),
            "lastModifiedBy": runbook.modified_by,
            "description": props.get("description"),
        },
    }


def _require_runbook(ctx: ArmContext) -> tuple[ArmResource, ArmResource]:
    account = require_parent_account(ctx, "runbooks")
    runbook = find_runbook(ctx, account, ctx.params["runbookName"])
    if runbook is None:
        raise child_not_found(ctx, account, "runbooks", ctx.params["runbookName"])
    return account, runbook


def _log_settings(properties: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    trace = properties.get("logActivityTrace", current.get("logActivityTrace", 0))
    if not isinstance(trace, int) or isinstance(trace, bool):
        raise bad_request("'properties.logActivityTrace' must be an integer.")
    return {
        "logVerbose": optional_bool(properties, "logVerbose", current.get("logVerbose", False)),
        "logProgress": optional_bool(properties, "logProgress", current.get("logProgress", False)),
        "logActivityTrace": trace,
        "description": properties.get("description", current.get("description")),
    }


def _type_and_runtime(ctx: ArmContext, account: ArmResource, properties: dict[str, Any]) -> tuple[str, str]:
    raw_type = properties.get("runbookType")
    if not raw_type:
        raise bad_request("The 'properties.runbookType' property is required.")
    known = RUNBOOK_TYPES.get(str(raw_type).lower())
    if known is None:
        choices = ", ".join(t[0] for t in RUNBOOK_TYPES.values())
        raise bad_request(f"Invalid runbook type '{raw_type}'. The supported runbook types are: {choices}.")
    runbook_type, language, versions, default = known
    env_name = properties.get("runtimeEnvironment") or default
    env = find_runtime(ctx.tenant, account, str(env_name))
    if env is None:
        raise bad_request(
            f"Runtime environment '{env_name}' does not exist in Automation account '{account.name}'."
        )
    if env.language != language or (versions is not None and env.version not in versions):
        raise bad_request(
            f"Runbook type '{runbook_type}' cannot run on runtime environment '{env.name}' ({env.label})."
        )
    return runbook_type, env.name


def _refuse_content_links(properties: dict[str, Any]) -> None:
    """The emulator cannot download scripts; Azure fails the same way for links it cannot read."""
    links = [object_property(properties, "publishContentLink").get("uri")]
    links.append(object_property(object_property(properties, "draft"), "draftContentLink").get("uri"))
    for uri in filter(None, links):
        raise bad_request(
            f"Unable to download the runbook content from '{uri}'. Check that the link is reachable."
        )


async def put_runbook(ctx: ArmContext) -> web.Response:
    account = require_parent_account(ctx, "runbooks")
    name = ctx.params["runbookName"]
    check_name(
        name,
        NAME_RE,
        "runbook",
        "The name must start with a letter and contain only letters, digits, '-' and '_' (at most 63).",
    )
    body = await ctx.json_object()
    properties = object_property(body, "properties", required=True)
    runbook_type, env_name = _type_and_runtime(ctx, account, properties)
    _refuse_content_links(properties)
    tags = validate_tags(body.get("tags"))
    existing = find_runbook(ctx, account, name)
    settings = _log_settings(properties, existing.properties if existing else {})
    if existing is not None:
        existing.properties.update(settings, runbookType=runbook_type, runtimeEnvironment=env_name)
        existing.tags = tags
        touch(existing, ctx)
        return arm_json(runbook_json(existing), 200)
    runbook = ArmResource(
        id=f"{account.id}/runbooks/{name}",
        type=RUNBOOK_TYPE,
        name=name,
        location=str(body.get("location") or account.location).replace(" ", "").lower(),
        tags=tags,
        properties={
            **settings,
            "runbookType": runbook_type,
            "runtimeEnvironment": env_name,
            "state": "New",
            "jobCount": 0,
        },
        created_by=ctx.caller.principal.app_id,
        modified_by=ctx.caller.principal.app_id,
    )
    runbook.state = {
        "draft": None,
        "in_edit": True,
        "draft_modified_at": runbook.created_at,
        "published": None,
        "operations": {},
    }
    ctx.tenant.put_resource(runbook)
    return arm_json(runbook_json(runbook), 201)


async def get_runbook(ctx: ArmContext) -> web.Response:
    return arm_json(runbook_json(_require_runbook(ctx)[1]))


async def patch_runbook(ctx: ArmContext) -> web.Response:
    _, runbook = _require_runbook(ctx)
    body = await ctx.json_object()
    settings = _log_settings(object_property(body, "properties"), runbook.properties)
    tags = validate_tags(body["tags"]) if "tags" in body else runbook.tags
    runbook.properties.update(settings)
    runbook.tags = tags
    touch(runbook, ctx)
    return arm_json(runbook_json(runbook))


async def delete_runbook(ctx: ArmContext) -> web.Response:
    _, runbook = _require_runbook(ctx)
    ctx.tenant.delete_resource_tree(runbook.id)
    return web.Response(status=200)


async def list_runbooks(ctx: ArmContext) -> web.Response:
    account = require_parent_account(ctx, "runbooks")
    runbooks = [settle(r) for r in ctx.tenant.children(f"{account.id}/runbooks")]
    return paged(ctx, [runbook_json(r) for r in runbooks])


async def get_published_content(ctx: ArmContext) -> web.Response:
    _, runbook = _require_runbook(ctx)
    if runbook.state["published"] is None:
        raise ArmError(404, "NotFound", f"The runbook '{runbook.name}' has no published content.")
    return text_response(runbook.state["published"], "text/powershell")


async def get_draft(ctx: ArmContext) -> web.Response:
    return arm_json(_draft_json(_require_runbook(ctx)[1]))


async def get_draft_content(ctx: ArmContext) -> web.Response:
    _, runbook = _require_runbook(ctx)
    if runbook.state["draft"] is None:
        raise ArmError(404, "NotFound", f"The runbook '{runbook.name}' has no draft content.")
    return text_response(runbook.state["draft"], "text/powershell")


def _start_operation(
    ctx: ArmContext, runbook: ArmResource, kind: str, content: str | None = None
) -> web.Response:
    operation_id = str(uuid.uuid4())
    runbook.state["operations"][operation_id] = RunbookOperation(
        kind, time.time() + ctx.runtime.timings.lro, content
    )
    ctx.event_resource_id = runbook.id
    location = ctx.absolute(
        f"{ctx.request.path}/operationResults/{operation_id}?api-version={ctx.api_version}"
    )
    return web.Response(
        status=202, headers={"Location": location, "Retry-After": str(ctx.runtime.timings.retry_after)}
    )


async def put_draft_content(ctx: ArmContext) -> web.Response:
    _, runbook = _require_runbook(ctx)
    content = await ctx.request.text()
    return _start_operation(ctx, runbook, "content", content)


async def publish(ctx: ArmContext) -> web.Response:
    _, runbook = _require_runbook(ctx)
    pending_content = any(
        op.kind == "content" and not op.applied for op in runbook.state["operations"].values()
    )
    if runbook.state["draft"] is None and not pending_content:
        raise bad_request(
            f"The runbook '{runbook.name}' has no draft content to publish. Replace the draft content first."
        )
    return _start_operation(ctx, runbook, "publish")


async def operation_result(ctx: ArmContext) -> web.Response:
    _, runbook = _require_runbook(ctx)
    operation = runbook.state["operations"].get(ctx.params["operationId"].lower())
    if operation is None:
        raise ArmError(404, "NotFound", f"The operation '{ctx.params['operationId']}' was not found.")
    if not operation.applied:
        return web.Response(
            status=202,
            headers={
                "Location": ctx.absolute(ctx.request.path_qs),
                "Retry-After": str(ctx.runtime.timings.retry_after),
            },
        )
    if operation.error:
        raise bad_request(operation.error)
    return arm_json({})


async def undo_edit(ctx: ArmContext) -> web.Response:
    _, runbook = _require_runbook(ctx)
    state = runbook.state
    if state["published"] is None:
        raise bad_request(f"The runbook '{runbook.name}' has never been published; there is no edit to undo.")
    state.update(draft=state["published"], in_edit=False, draft_modified_at=time.time())
    runbook.properties["state"] = "Published"
    touch(runbook, ctx)
    ctx.event_resource_id = runbook.id
    return arm_json({"statusCode": "OK", "requestId": str(uuid.uuid4())})


def register(router: ArmRouter) -> None:
    collection = f"{AA}/runbooks"
    item = collection + "/{runbookName}"
    args = route_args("automationAccounts/runbooks")
    action = "Microsoft.Automation/automationAccounts/runbooks"
    router.add("PUT", item, put_runbook, action=f"{action}/write", **args)
    router.add("GET", item, get_runbook, action=f"{action}/read", **args)
    router.add("PATCH", item, patch_runbook, action=f"{action}/write", **args)
    router.add("DELETE", item, delete_runbook, action=f"{action}/delete", **args)
    router.add("GET", collection, list_runbooks, action=f"{action}/read", **args)
    router.add("GET", item + "/content", get_published_content, action=f"{action}/content/read", **args)
    router.add("GET", item + "/draft", get_draft, action=f"{action}/draft/read", **args)
    router.add("GET", item + "/draft/content", get_draft_content, action=f"{action}/draft/read", **args)
    router.add(
        "PUT", item + "/draft/content", put_draft_content, action=f"{action}/draft/content/write", **args
    )
    router.add(
        "GET",
        item + "/draft/content/operationResults/{operationId}",
        operation_result,
        action=f"{action}/draft/operationResults/read",
        **args,
    )
    router.add("POST", item + "/draft/undoEdit", undo_edit, action=f"{action}/draft/undoEdit/action", **args)
    router.add("POST", item + "/publish", publish, action=f"{action}/publish/action", **args)
    router.add(
        "GET",
        item + "/publish/operationResults/{operationId}",
        operation_result,
        action=f"{action}/read",
        **args,
    )
