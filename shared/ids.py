"""Strict parsing of the identifiers users send: ARM resource ids, GUIDs and DNS names.

Everything a request names goes through here before it is used anywhere else, so later code can put
these values in URLs, Table keys or log lines without further checks. Anything unexpected (quotes,
OData operators, path traversal, percent-encoding, wrong types) is refused with an `InputError`
that names the field.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import re
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from shared.errors import InputError

MAX_RESOURCE_ID_LENGTH = 512
_GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# Azure naming rules (learn.microsoft.com "Naming rules and restrictions for Azure resources").
_RESOURCE_GROUP_RE = re.compile(r"^[-\w.()]{1,90}$")  # \w is Unicode-aware, as Azure allows
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN_RE = re.compile(rf"^(?:{_LABEL}\.)+[a-z](?:[a-z0-9-]{{0,61}}[a-z0-9])?$")
_ID_SHAPE = (
    "/subscriptions/<subscription id>/resourceGroups/<resource group>/providers/<namespace>/<type>/<name>"
)


class TargetKind(StrEnum):
    """The resource types exomi can give Exchange Online access to (canonical ARM casing)."""

    AUTOMATION_ACCOUNT = "Microsoft.Automation/automationAccounts"
    VIRTUAL_MACHINE = "Microsoft.Compute/virtualMachines"
    USER_ASSIGNED_IDENTITY = "Microsoft.ManagedIdentity/userAssignedIdentities"
    FUNCTION_APP = "Microsoft.Web/sites"  # a site whose kind is a function app (the identity step checks)
    SCALE_SET = "Microsoft.Compute/virtualMachineScaleSets"  # Uniform or Flexible

    @property
    def label(self) -> str:
        return _KIND_LABELS[self]


_KIND_LABELS = {
    TargetKind.AUTOMATION_ACCOUNT: "Automation account",
    TargetKind.VIRTUAL_MACHINE: "virtual machine",
    TargetKind.USER_ASSIGNED_IDENTITY: "user-assigned identity",
    TargetKind.FUNCTION_APP: "Function app",
    TargetKind.SCALE_SET: "virtual machine scale set",
}
_NAME_RULES: dict[TargetKind, tuple[re.Pattern[str], str]] = {
    TargetKind.AUTOMATION_ACCOUNT: (
        re.compile(r"^[A-Za-z][A-Za-z0-9-]{4,48}[A-Za-z0-9]$"),
        "6-50 characters: letters, digits and hyphens, starting with a letter and ending with a letter or digit",
    ),
    TargetKind.VIRTUAL_MACHINE: (
        re.compile(r"^(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9._-]{0,62}[A-Za-z0-9_])$"),
        "1-64 characters: letters, digits, '.', '_' and '-', starting with a letter or digit and not ending with '.' or '-'",
    ),
    TargetKind.USER_ASSIGNED_IDENTITY: (
        re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{2,127}$"),
        "3-128 characters: letters, digits, '_' and '-', starting with a letter or digit",
    ),
    TargetKind.FUNCTION_APP: (
        re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,58}[A-Za-z0-9])$"),
        "2-60 characters: letters, digits and hyphens, not starting or ending with a hyphen",
    ),
    # The naming rules page forbids spaces, control characters and ~!@#$%^&*()=+_[]{}\|;:.'",<>/? in a
    # scale set's name (1-64; a Windows set's computer name prefix has at most 15).
    TargetKind.SCALE_SET: (
        re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?$"),
        "1-64 characters: letters, digits and hyphens, starting with a letter or digit and not ending with '-'",
    ),
}


def show(value: object, limit: int = 60) -> str:
    """A short, quoted rendering of a rejected value for error messages (never the whole payload)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class ResourceId:
    """A validated ARM resource id of one of the supported target kinds."""

    subscription_id: str  # lowercase GUID
    resource_group: str  # as given (ARM treats it case-insensitively)
    kind: TargetKind
    name: str  # as given

    @property
    def canonical(self) -> str:
        """The id with canonical segment and type casing; names keep the casing they were given."""
        return f"{self.resource_group_id}/providers/{self.kind.value}/{self.name}"

    @property
    def resource_group_id(self) -> str:
        return f"{self.subscription_scope}/resourceGroups/{self.resource_group}"

    @property
    def subscription_scope(self) -> str:
        return f"/subscriptions/{self.subscription_id}"

    @property
    def key(self) -> str:
        """A stable key for the resource, the same for every casing of its id: safe as a Table key."""
        return hashlib.sha256(self.canonical.lower().encode()).hexdigest()

    def __str__(self) -> str:
        return self.canonical


def validate_guid(value: object, field: str) -> str:
    """A GUID in its lowercase canonical form."""
    if not isinstance(value, str) or not _GUID_RE.fullmatch(value):
        raise InputError(
            field, f"must be a GUID like 00000000-0000-0000-0000-000000000000, got {show(value)}"
        )
    return value.lower()


def validate_resource_group_name(value: str, field: str) -> str:
    if not _RESOURCE_GROUP_RE.fullmatch(value) or value.endswith("."):
        raise InputError(
            field,
            f"resource group name {show(value)} is invalid: use 1-90 letters, digits, '_', '-', '.', '(' "
            "or ')', not ending with '.'",
        )
    return value


# Hosts where Connect-ExchangeOnline -ManagedIdentity cannot work, with the reason and what to do instead.
UNSUPPORTED_HOSTS = {
    "microsoft.hybridcompute/machines": (
        "is an Azure Arc-enabled server: Connect-ExchangeOnline -ManagedIdentity does not work there (the module "
        "asks the Azure VM metadata endpoint 169.254.169.254 for its token, which an Arc server does not serve; "
        "MicrosoftDocs/office-docs-powershell#11440). Use app-only authentication with a certificate instead "
        "(Connect-ExchangeOnline -AppId <app id> -CertificateThumbprint <thumbprint> -Organization <domain>; "
        "https://aka.ms/exo-cba), or run the script in an Azure VM or an Automation account that exomi can set up"
    ),
}


def parse_resource_id(
    value: object, field: str = "target", *, kinds: Collection[TargetKind] | None = None
) -> ResourceId:
    """Parse an ARM resource id of a supported kind (restricted to `kinds` when given)."""
    allowed = tuple(kinds) if kinds else tuple(TargetKind)
    expected = " or ".join(f"{kind.label} ({kind.value})" for kind in allowed)
    if not isinstance(value, str):
        raise InputError(field, f"must be an ARM resource id string, got {type(value).__name__}")
    if len(value) > MAX_RESOURCE_ID_LENGTH:
        raise InputError(
            field, f"is {len(value)} characters long; an ARM resource id has at most {MAX_RESOURCE_ID_LENGTH}"
        )
    segments = value.split("/")
    if len(segments) == 11 and "/".join(segments[6:8]).lower() == TargetKind.SCALE_SET.value.lower():
        # A Uniform scale set's instance (.../virtualMachineScaleSets/<set>/virtualMachines/<id>).
        raise InputError(
            field,
            f"{show(value)} is an instance of the VM scale set {show(segments[8])}: name the scale set (its id ends "
            "at /virtualMachineScaleSets/<name>); exomi installs the modules on every instance of it",
        )
    if len(segments) != 9 or segments[0] != "":
        raise InputError(field, f"must be an ARM resource id of the form {_ID_SHAPE}, got {show(value)}")
    _, subscriptions, subscription, groups, group, providers, namespace, type_, name = segments
    for literal, actual in (
        ("subscriptions", subscriptions),
        ("resourceGroups", groups),
        ("providers", providers),
    ):
        if actual.lower() != literal.lower():
            raise InputError(field, f"must be an ARM resource id of the form {_ID_SHAPE}, got {show(value)}")
    subscription_id = validate_guid(subscription, field)
    validate_resource_group_name(group, field)
    kind = _kind_of(f"{namespace}/{type_}")
    if kind is None:
        why = UNSUPPORTED_HOSTS.get(f"{namespace}/{type_}".lower())
        raise InputError(
            field,
            why or f"resource type {show(f'{namespace}/{type_}')} is not supported; expected {expected}",
        )
    if kind not in allowed:
        raise InputError(
            field, f"expected the id of a {expected}, got the id of a {kind.label} ({kind.value})"
        )
    pattern, rule = _NAME_RULES[kind]
    if not pattern.fullmatch(name):
        raise InputError(field, f"{kind.label} name {show(name)} is invalid: {rule}")
    return ResourceId(subscription_id, group, kind, name)


def _kind_of(resource_type: str) -> TargetKind | None:
    return next((kind for kind in TargetKind if kind.value.lower() == resource_type.lower()), None)


def validate_domain(value: object, field: str = "organization") -> str:
    """A DNS domain name such as contoso.onmicrosoft.com, lowercased."""
    if not isinstance(value, str):
        raise InputError(field, f"must be a DNS domain name string, got {type(value).__name__}")
    domain = value.lower()
    if not value.isascii():
        raise InputError(field, f"{show(value)} is not ASCII: use the punycode (xn--) form of the domain")
    if len(domain) > 253 or not _DOMAIN_RE.fullmatch(domain):
        raise InputError(
            field,
            f"{show(value)} is not a DNS domain name like contoso.onmicrosoft.com (labels of letters, digits "
            "and hyphens, separated by dots)",
        )
    return domain


def validate_domain_pattern(value: object, field: str) -> str:
    """An exact domain, or '*.' followed by a domain meaning any name below it ('*.onmicrosoft.com')."""
    if isinstance(value, str) and value.startswith("*."):
        return "*." + validate_domain(value[2:], field)
    return validate_domain(value, field)


def domain_matches(domain: str, pattern: str) -> bool:
    """Does a validated domain match an exact or '*.suffix' pattern? ('*.x.com' does not match 'x.com')."""
    domain = domain.lower()
    if pattern.startswith("*."):
        return domain.endswith(pattern[1:])
    return domain == pattern


def validate_host(value: object, field: str) -> str:
    """A host: a DNS name (lowercased) or an IP address literal."""
    if isinstance(value, str):
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            pass
    return validate_domain(value, field)


def validate_host_pattern(value: object, field: str) -> str:
    """A host (see validate_host) or a '*.suffix' pattern (see validate_domain_pattern)."""
    if isinstance(value, str) and value.startswith("*."):
        return validate_domain_pattern(value, field)
    return validate_host(value, field)


def object_id_of(value: Any) -> str | None:
    """An object id with dashes, lower case, from one with or without them (ARM writes an event's
    evidence.principalId without dashes); None for anything else."""
    if not isinstance(value, str):
        return None
    hexdigits = value.replace("-", "")
    try:
        return str(uuid.UUID(hex=hexdigits)) if len(hexdigits) == 32 else None
    except ValueError:
        return None


def oid_claim(jwt: str) -> str | None:
    """The ``oid`` claim of a JWT, read without checking it (exomi's own token, just received from its
    identity endpoint); None when there is none."""
    try:
        payload = jwt.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return None
    return object_id_of(claims.get("oid")) if isinstance(claims, dict) else None
