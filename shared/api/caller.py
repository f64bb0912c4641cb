"""Who is calling the HTTP API, as recorded in ``requested_by`` and matched by the policy's rules.

With App Service Authentication (EasyAuth) in front of the app, Azure authenticates the caller and
passes its principal in ``X-MS-CLIENT-PRINCIPAL-ID``/``-NAME``/``-IDP`` and ``X-MS-CLIENT-PRINCIPAL``
(base64 JSON with the claims), and removes any such header the client sent. Without EasyAuth a
client could send them itself, so they are read only when the operator says EasyAuth is on
(``EXOMI_TRUST_APP_SERVICE_AUTH=true``); otherwise every caller is the "function-key caller", which a
rule admits only by naming it. Claims only identify the caller here: nothing but the name and the
object id is recorded, nothing is logged.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from shared.api.http import ApiRequest
from shared.errors import InputError, NotAuthenticated
from shared.ids import validate_guid
from shared.models import FUNCTION_KEY_CALLER, Requester, RequesterKind
from shared.settings import Settings

ON_BEHALF_OF = "X-Exomi-On-Behalf-Of"  # a name the caller asserts it acts for (recorded, marked as asserted)
MAX_ASSERTED = 100
MAX_PRINCIPAL_TEXT = 128
_OBJECT_ID_CLAIMS = ("http://schemas.microsoft.com/identity/claims/objectidentifier", "oid")


def identify(request: ApiRequest, settings: Settings, *, asserted: bool = True) -> Requester:
    """The caller of ``request``: 401 when trusted EasyAuth did not identify it, 422 for a bad
    X-Exomi-On-Behalf-Of (read only when ``asserted``). What it may do is the policy's business."""
    asserted_name = _asserted(request) if asserted else None
    if not settings.trust_app_service_auth:
        return Requester(kind=RequesterKind.FUNCTION_KEY, name=_recorded(FUNCTION_KEY_CALLER, asserted_name))
    principal_id, name = _principal(request)
    if principal_id is None and name is None:
        raise NotAuthenticated(
            "App Service Authentication did not identify the caller: call with a token it accepts "
            "(for Logic Apps: the HTTP action's managed identity authentication)."
        )
    return Requester(
        kind=RequesterKind.APP_SERVICE_AUTH,
        name=_recorded(name or principal_id or "", asserted_name),
        principal_id=_object_id(principal_id),
        principal_name=name,
    )


def _object_id(value: str | None) -> str | None:
    """An object id as policy rules and ARM look-ups use it (lower case, with dashes); other text: None."""
    if value is None:
        return None
    try:
        return validate_guid(value, "principal id")
    except InputError:
        return None


def _recorded(who: str, asserted: str | None) -> str:
    return f"{who} (asserted: {asserted})" if asserted else who


def _asserted(request: ApiRequest) -> str | None:
    value = request.header(ON_BEHALF_OF)
    if value is None:
        return None
    value = value.strip()
    if not value or len(value) > MAX_ASSERTED or not value.isprintable():
        raise InputError(ON_BEHALF_OF, f"must be 1-{MAX_ASSERTED} printable characters")
    return value


def _principal(request: ApiRequest) -> tuple[str | None, str | None]:
    """The principal's object id and name, from the headers or else from the claims."""
    principal_id = _usable(request.header("x-ms-client-principal-id"))
    name = _usable(request.header("x-ms-client-principal-name"))
    if principal_id is None or name is None:
        claims, name_type = _claims(request.header("x-ms-client-principal"))
        principal_id = principal_id or next(
            (_usable(claims.get(kind)) for kind in _OBJECT_ID_CLAIMS if claims.get(kind)), None
        )
        name = name or (_usable(claims.get(name_type)) if name_type else None)
    return principal_id, name


def _usable(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value if value and len(value) <= MAX_PRINCIPAL_TEXT and value.isprintable() else None


def _claims(encoded: str | None) -> tuple[dict[str, str], str | None]:
    """The claims of X-MS-CLIENT-PRINCIPAL ({"auth_typ", "name_typ", "claims": [{"typ", "val"}]})."""
    if not encoded:
        return {}, None
    try:
        data = json.loads(base64.b64decode(encoded, validate=False))
    except (binascii.Error, ValueError):
        return {}, None
    if not isinstance(data, dict) or not isinstance(data.get("claims"), list):
        return {}, None
    claims = {
        item["typ"]: item["val"]
        for item in data["claims"]
        if isinstance(item, dict) and isinstance(item.get("typ"), str) and isinstance(item.get("val"), str)
    }
    name_type = data.get("name_typ") if isinstance(data.get("name_typ"), str) else None
    return claims, name_type
