"""Pieces every part of the emulated Microsoft.Automation provider shares: route templates, lookups that
fail with ARM's not-found errors, Automation's timestamp format, name rules, a tiny ``$filter`` parser
and paging that keeps the query.

The provider itself is split by resource: automation_accounts.py, automation_runtimes.py (runtime
environments, packages and what a job's sandbox has installed), automation_modules.py (PowerShell 5.1
modules), automation_imports.py (the module/package import state machine), automation_runbooks.py
(runbooks, drafts, publishing) and automation_jobs.py (jobs, output, streams).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from emulator.arm import api_versions, tracked
from emulator.arm.router import ArmContext, arm_json, not_found, require_resource_group
from emulator.http import ArmError
from emulator.tenant import ArmResource, iso

PROVIDER = "Microsoft.Automation"
ACCOUNT_TYPE = "Microsoft.Automation/automationAccounts"
# Route template of one account; handlers find its parts in ctx.params.
AA = (
    "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}"
    "/providers/Microsoft.Automation/automationAccounts/{automationAccountName}"
)


def route_args(resource_type: str, versions: frozenset[str] | None = None) -> dict[str, Any]:
    """A route's version list: ``versions``, else the type's own (api_versions.AUTOMATION_BY_TYPE)."""
    if versions is None:
        versions = api_versions.AUTOMATION_BY_TYPE.get(resource_type, api_versions.AUTOMATION)
    return {"api_versions": versions, "provider": PROVIDER, "resource_type": resource_type}


def aa_time(ts: float | None) -> str | None:
    """Automation's timestamps: ``2018-02-07T02:33:18.1232703+00:00``."""
    return None if ts is None else iso(ts)[:-1] + "+00:00"


def account_path(ctx: ArmContext, rg_id: str) -> str:
    return tracked.resource_id(ctx, rg_id, ACCOUNT_TYPE, "automationAccountName")


def find_account(ctx: ArmContext) -> ArmResource | None:
    """The request's Automation account (404 ResourceGroupNotFound when its resource group is missing)."""
    return tracked.find(ctx, ACCOUNT_TYPE, "automationAccountName")


def require_account(ctx: ArmContext) -> ArmResource:
    return tracked.require(ctx, ACCOUNT_TYPE, "automationAccountName")


def _verb(method: str) -> str:
    return {"GET": "read", "HEAD": "read", "PUT": "write", "PATCH": "write", "DELETE": "delete"}.get(
        method, "action"
    )


def parent_not_found(ctx: ArmContext, child_type: str, parent_id: str) -> ArmError:
    """ARM's answer for a nested resource whose parent does not exist."""
    return ArmError(
        404,
        "ParentResourceNotFound",
        f"Failed to perform '{_verb(ctx.request.method)}' on resource(s) of type '{child_type}', because the parent "
        f"resource '{parent_id}' could not be found.",
    )


def require_parent_account(ctx: ArmContext, child_type: str) -> ArmResource:
    """The account a child resource lives in; 404 ParentResourceNotFound when it is missing."""
    rg_id = require_resource_group(ctx)
    account = ctx.tenant.get_resource(account_path(ctx, rg_id))
    if account is None:
        raise parent_not_found(ctx, f"automationAccounts/{child_type}", account_path(ctx, rg_id))
    return account


def child_not_found(ctx: ArmContext, account: ArmResource, collection: str, name: str) -> ArmError:
    """ResourceNotFound for e.g. ``Microsoft.Automation/automationAccounts/aa/runbooks/rb``."""
    return not_found(f"{ACCOUNT_TYPE}/{account.name}/{collection}", name, ctx.params["resourceGroupName"])


def bad_request(message: str, code: str = "BadRequest") -> ArmError:
    return ArmError(400, code, message)


def check_name(name: str, pattern: re.Pattern[str], kind: str, rule: str) -> None:
    if not pattern.match(name):
        raise bad_request(f"Invalid {kind} name '{name}'. {rule}")


def object_property(body: dict[str, Any], name: str, *, required: bool = False) -> dict[str, Any]:
    """``body[name]`` as an object ({} when absent and optional); 400 when it has the wrong kind."""
    value = body.get(name)
    if value is None:
        if required:
            raise bad_request(f"The '{name}' property is required.")
        return {}
    if not isinstance(value, dict):
        raise ArmError(
            400,
            "InvalidRequestContent",
            f"The request content was invalid and could not be deserialized: '{name}' must be an object.",
        )
    return value


def optional_bool(properties: dict[str, Any], name: str, default: bool | None) -> bool | None:
    value = properties.get(name, default)
    if value is not None and not isinstance(value, bool):
        raise ArmError(
            400,
            "InvalidRequestContent",
            f"The request content was invalid and could not be deserialized: '{name}' must be a boolean.",
        )
    return value


def text_response(text: str, content_type: str = "text/plain") -> web.Response:
    return web.Response(text=text, content_type=content_type, charset="utf-8")


def paged_keeping_query(ctx: ArmContext, items: list[dict], page_size: int = 100) -> web.Response:
    """An ARM list page whose nextLink keeps the request's other query parameters (``$filter``)."""
    try:
        start = int(ctx.request.query.get("$skiptoken", "0"))
    except ValueError as exc:
        raise ArmError(400, "InvalidSkipToken", "The skip token is invalid.") from exc
    next_link = None
    if start + page_size < len(items):
        query = {k: v for k, v in ctx.request.query.items() if k not in ("api-version", "$skiptoken")}
        query.update({"api-version": ctx.api_version, "$skiptoken": str(start + page_size)})
        next_link = ctx.absolute(f"{ctx.request.path}?{urlencode(query)}")
    return arm_json({"value": items[start : start + page_size], "nextLink": next_link})


# --------------------------------------------------------------------------------------------------
# $filter: the subset Automation clients send, e.g. "properties/streamType eq 'Error'" or
# "properties/runbook/name eq 'rb' and properties/creationTime ge 2024-01-01T00:00:00Z".

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
}
_CLAUSE = re.compile(
    r"^\s*properties/([\w/]+)\s+(eq|ne|gt|ge|lt|le)\s+('(?:[^']|'')*'|\S+)\s*$", re.IGNORECASE
)


def _literal(raw: str) -> Any:
    if raw.startswith("'"):
        return raw[1:-1].replace("''", "'")
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise bad_request(f"Invalid filter value '{raw}'.") from None


def parse_filter(text: str | None, fields: dict[str, Callable[[Any], Any]]) -> Callable[[Any], bool]:
    """A predicate for ``$filter``; ``fields`` maps a property path (lower case) to a getter whose value is a
    string (compared case-insensitively) or a timestamp. 400 for anything else."""
    if not text:
        return lambda item: True
    checks = []
    for clause in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE):
        match = _CLAUSE.match(clause)
        if not match or match.group(1).lower() not in fields:
            raise bad_request(f"Invalid $filter '{text}'.")
        getter, compare, wanted = (
            fields[match.group(1).lower()],
            _COMPARE[match.group(2).lower()],
            _literal(match.group(3)),
        )
        checks.append((getter, compare, wanted))

    def predicate(item: Any) -> bool:
        for getter, compare, wanted in checks:
            value = getter(item)
            if value is None:
                return False
            if isinstance(wanted, str):
                if not isinstance(value, str) or not compare(value.lower(), wanted.lower()):
                    return False
            elif isinstance(value, str) or not compare(value, wanted):
                return False
        return True

    return predicate
