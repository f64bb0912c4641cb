"""Access tokens: JWT-shaped, signed with a per-run secret so that only tokens this emulator minted
are accepted. SDKs treat tokens as opaque strings; the claims tell the emulator who is calling and
for which audience, as they do for the real services.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

TOKEN_LIFETIME_SECONDS = 3600


def normalize_audience(resource: str) -> str:
    """``https://management.azure.com/`` and ``https://management.azure.com`` are the same audience."""
    resource = resource.strip()
    if resource.endswith("/.default"):
        resource = resource[: -len("/.default")]
    return resource.rstrip("/")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class TokenClaims:
    audience: str
    object_id: str
    app_id: str
    tenant_id: str
    issued_at: int
    expires_at: int
    mi_resource_id: str | None = None

    def as_jwt_claims(self) -> dict[str, object]:
        """The claim names Azure uses (ARM copies these into Event Grid's ``data.claims``)."""
        claims: dict[str, object] = {
            "aud": self.audience + "/" if self.audience.startswith("https://management") else self.audience,
            "iss": f"https://sts.windows.net/{self.tenant_id}/",
            "iat": str(self.issued_at),
            "nbf": str(self.issued_at),
            "exp": str(self.expires_at),
            "appid": self.app_id,
            "appidacr": "2",
            "idtyp": "app",
            "http://schemas.microsoft.com/identity/claims/objectidentifier": self.object_id,
            "http://schemas.microsoft.com/identity/claims/tenantid": self.tenant_id,
            "ver": "1.0",
        }
        if self.mi_resource_id:
            claims["xms_mirid"] = self.mi_resource_id
        return claims


class TokenIssuer:
    def __init__(self) -> None:
        self._secret = secrets.token_bytes(32)

    def mint(self, claims: TokenClaims) -> str:
        header = _b64(json.dumps({"typ": "JWT", "alg": "HS256", "kid": "exomi-emulator"}).encode())
        body = {
            "aud": claims.audience,
            "oid": claims.object_id,
            "appid": claims.app_id,
            "tid": claims.tenant_id,
            "iat": claims.issued_at,
            "nbf": claims.issued_at,
            "exp": claims.expires_at,
            "xms_mirid": claims.mi_resource_id,
        }
        payload = _b64(json.dumps(body, separators=(",", ":")).encode())
        signature = _b64(hmac.new(self._secret, f"{header}.{payload}".encode(), hashlib.sha256).digest())
        return f"{header}.{payload}.{signature}"

    def verify(self, token: str) -> TokenClaims | None:
        """Returns the claims of a token this emulator minted and that has not expired, else None."""
        try:
            header, payload, signature = token.split(".")
            expected = _b64(hmac.new(self._secret, f"{header}.{payload}".encode(), hashlib.sha256).digest())
            if not hmac.compare_digest(expected, signature):
                return None
            body = json.loads(_unb64(payload))
        except (ValueError, json.JSONDecodeError):
            return None
        if int(body["exp"]) < time.time():
            return None
        return TokenClaims(
            audience=body["aud"],
            object_id=body["oid"],
            app_id=body["appid"],
            tenant_id=body["tid"],
            issued_at=int(body["iat"]),
            expires_at=int(body["exp"]),
            mi_resource_id=body.get("xms_mirid"),
        )
