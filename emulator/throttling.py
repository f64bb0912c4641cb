"""What each service answers under its rate limits: which buckets a request draws from, the headers on
every answer and the 429s. The buckets themselves are in emulator/ratelimits.py; the sources of every
code, text and header are in emulator/README.md ("Rate limits")."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

from emulator.http import ArmError, GraphError
from emulator.ratelimits import Charge, RateLimiter, Verdict

# --------------------------------------------------------------------------------------------------
# Azure Resource Manager

_ARM_KIND = {"GET": "reads", "HEAD": "reads", "DELETE": "deletes"}  # anything else is a write
_ARM_HEADER = {
    **{f"arm_{k}": f"x-ms-ratelimit-remaining-subscription-{k}" for k in ("reads", "writes", "deletes")},
    **{
        f"arm_global_{k}": f"x-ms-ratelimit-remaining-subscription-global-{k}"
        for k in ("reads", "writes", "deletes")
    },
    **{f"arm_tenant_{k}": f"x-ms-ratelimit-remaining-tenant-{k}" for k in ("reads", "writes", "deletes")},
}


def arm_check(
    limiter: RateLimiter, method: str, subscription_id: str | None, tenant_id: str, principal_id: str
) -> dict[str, str]:
    """The remaining-request headers for this ARM answer; raises the 429 when a bucket is empty."""
    if not limiter.enabled:
        return {}
    kind = _ARM_KIND.get(method.upper(), "writes")
    if subscription_id:
        sub = subscription_id.lower()
        charges = [Charge(f"arm_{kind}", f"{sub}/{principal_id}"), Charge(f"arm_global_{kind}", sub)]
    else:
        charges = [Charge(f"arm_tenant_{kind}", f"{tenant_id}/{principal_id}")]
    verdict = limiter.take(charges)
    headers = {_ARM_HEADER[limit]: str(left) for limit, left in verdict.remaining.items()}
    if verdict.allowed:
        return headers
    headers["Retry-After"] = str(verdict.retry_after)
    operation = kind[:-1]  # read | write | delete
    where = f"subscription '{subscription_id}'" if subscription_id else f"tenant '{tenant_id}'"
    raise ArmError(
        429,
        "SubscriptionRequestsThrottled" if subscription_id else "TenantRequestsThrottled",
        f"Number of '{operation}' requests for {where} actor '{principal_id}' exceeded. Please try again after "
        f"'{verdict.retry_after}' seconds after additional tokens are available. Refer to "
        "https://aka.ms/arm-throttling for additional information.",
        headers=headers,
    )


# --------------------------------------------------------------------------------------------------
# Microsoft Graph, identity and access

# Base resource-unit costs that differ from 1, for the paths the emulator serves (regex over the path
# after /v1.0, lower-cased).
_GRAPH_COSTS = ((("get", "/serviceprincipals/[^/]+/approleassignments"), 2),)
_GRAPH_SCOPE = {
    "graph_resource_units": ("Tenant_Application/ReadWrite", "ResourceUnitLimitExceeded"),
    "graph_writes": ("Tenant_Application/Write", "WriteLimitExceeded"),
    "graph_tenant_writes": ("Tenant/Write", "WriteLimitExceeded"),
}


def graph_cost(method: str, path: str, query: dict[str, str]) -> int:
    """A request's resource units: the base cost, -1 for $select, +1 for $expand, -1 for $top < 20."""
    lower = path.lower().rstrip("/")
    cost = next(
        (c for (m, pattern), c in _GRAPH_COSTS if m == method.lower() and re.fullmatch(pattern, lower)), 1
    )
    keys = {k.lower(): v for k, v in query.items()}
    if "$select" in keys:
        cost -= 1
    if "$expand" in keys:
        cost += 1
    top = keys.get("$top", "")
    if top.isdigit() and int(top) < 20:
        cost -= 1
    return max(1, cost)


def graph_check(
    limiter: RateLimiter, method: str, path: str, query: dict[str, str], app_id: str, tenant_id: str
) -> dict[str, str]:
    """The headers for this Graph answer; raises the 429 when a bucket is empty."""
    if not limiter.enabled:
        return {}
    cost = graph_cost(method, path, query)
    pair = f"{app_id}/{tenant_id}"
    charges = [Charge("graph_resource_units", pair, cost)]
    if method.upper() in ("POST", "PATCH", "PUT", "DELETE"):
        charges += [Charge("graph_writes", pair), Charge("graph_tenant_writes", tenant_id)]
    verdict = limiter.take(charges)
    if not verdict.remaining:  # every Graph limit is switched off
        return {}
    if verdict.allowed:
        headers = {"x-ms-resource-unit": str(cost)}
        used = max(verdict.used.values())
        if used > 0.8:
            headers["x-ms-throttle-limit-percentage"] = f"{used:.1f}"
        return headers
    scope, information = _GRAPH_SCOPE[verdict.exhausted[0]]
    raise GraphError(
        429,
        "TooManyRequests",
        "Too many requests. Please try again later.",
        headers={
            "Retry-After": str(verdict.retry_after),
            "x-ms-throttle-scope": f"{scope}/{app_id}/{tenant_id}",
            "x-ms-throttle-information": information,
        },
    )


# --------------------------------------------------------------------------------------------------
# Azure Automation (per account)


def _throttled(verdict: Verdict, message: str) -> ArmError:
    return ArmError(429, "TooManyRequests", message, headers={"Retry-After": str(verdict.retry_after)})


def module_import_check(limiter: RateLimiter, account_id: str, account_name: str) -> None:
    """A module or package import (PUT, or PATCH with a new content link) of the account."""
    if not limiter.enabled:
        return
    verdict = limiter.take([Charge("automation_module_imports", account_id.lower())])
    if not verdict.allowed:
        raise _throttled(
            verdict,
            f"The number of module imports for the Automation account '{account_name}' exceeded the limit. "
            f"Please retry after '{verdict.retry_after}' seconds.",
        )


def job_submission_check(limiter: RateLimiter, account_id: str) -> None:
    """A new job of the account."""
    if not limiter.enabled:
        return
    verdict = limiter.take([Charge("automation_job_submissions", account_id.lower())])
    if not verdict.allowed:
        retry_at = datetime.fromtimestamp(time.time() + verdict.retry_after, UTC)
        when = (
            f"{retry_at.month}/{retry_at.day}/{retry_at.year} {retry_at.strftime('%I:%M:%S %p').lstrip('0')}"
        )
        raise _throttled(
            verdict,
            f"You have reached the limit of allowed JobsByName API calls. Please retry after {when} UTC",
        )


def concurrent_jobs_check(
    limiter: RateLimiter, account_name: str, running_until: list[float], now: float
) -> None:
    """Refuses a new job while the account already runs its limit (``running_until``: when each job
    that is New, Activating or Running ends)."""
    limit = limiter.config.automation_concurrent_jobs if limiter.enabled else None
    if limit is None or len(running_until) < limit:
        return
    retry_after = max(1, int(min(running_until) - now + 0.999))
    limiter.count_refusal("automation_concurrent_jobs")
    raise ArmError(
        429,
        "TooManyRequests",
        f"The Automation account '{account_name}' already runs {len(running_until)} jobs, its limit of concurrent "
        f"running jobs. Please retry after '{retry_after}' seconds.",
        headers={"Retry-After": str(retry_after)},
    )
