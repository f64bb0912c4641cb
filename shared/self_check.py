"""exomi's own Microsoft Graph permissions as ``/api/health`` reports them: the app role assignments on
its own service principal, read at most once per ``CACHE_SECONDS`` so that health probes do not turn
into Graph traffic (Graph throttles per app, and exomi's real work shares that budget)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared import permissions
from shared.errors import ExomiError

if TYPE_CHECKING:
    from shared.service import ExomiService

CACHE_SECONDS = 300.0


@dataclass(frozen=True)
class GraphPermissionCheck:
    ok: bool
    missing: tuple[str, ...] = ()  # required permissions exomi's identity lacks
    detail: str | None = None  # why, for the health document (never a secret)


_cache: dict[str, tuple[float, GraphPermissionCheck]] = {}


async def graph_permissions(service: ExomiService, now: float | None = None) -> GraphPermissionCheck:
    now = time.monotonic() if now is None else now
    own = await service.own_object_id()
    if own is None:
        return GraphPermissionCheck(
            False, (), "not checked: exomi's object id is unknown (set EXOMI_PRINCIPAL_ID)"
        )
    cached = _cache.get(own)
    if cached is not None and now - cached[0] < CACHE_SECONDS:
        return cached[1]
    check, final = await _read(service, own)
    if final:  # a Graph that did not answer is asked again by the next probe
        _cache[own] = (now, check)
    return check


async def _read(service: ExomiService, own: str) -> tuple[GraphPermissionCheck, bool]:
    """The check, and whether it is an answer worth caching."""
    try:
        grants = await service.app.graph.app_role_grants(own)
    except ExomiError as error:
        if error.code == "PermissionMissing":
            # Reading its own assignments needs Application.Read.All: a refusal means that one is missing.
            name = permissions.APPLICATION_READ.name
            return GraphPermissionCheck(False, (name,), f"exomi's identity lacks {name}"), True
        return GraphPermissionCheck(False, (), f"exomi cannot read its own permissions ({error.code})"), False
    # Graph's app role ids are the same in every tenant and unique, so the id alone names the permission.
    held = {
        permissions.BY_APP_ROLE_ID[g.app_role_id].name
        for g in grants
        if g.app_role_id in permissions.BY_APP_ROLE_ID
    }
    lacking = tuple(permissions.missing_for_health(held))
    if not lacking:
        return GraphPermissionCheck(True), True
    detail = (
        f"exomi's identity lacks {', '.join(lacking)} (run exomi doctor; exomi bootstrap --apply grants them)"
    )
    return GraphPermissionCheck(False, lacking, detail), True
