"""What a runbook job or a VM Run Command does with the scripts exomi generates.

This is not a PowerShell interpreter. It understands the handful of statements these scripts use
(variable assignments, ``$ErrorActionPreference``, ``Import-Module``, ``Install-Module``,
``Connect-ExchangeOnline``, ``Get-AcceptedDomain``, ``Write-Output``, ``Disconnect-ExchangeOnline``)
and decides the outcome from the tenant's real state, failing with the message a user of the real
service sees when a prerequisite is missing. A cmdlet's own errors are non-terminating (the script goes
on unless ``$ErrorActionPreference = 'Stop'``), but Connect-ExchangeOnline rethrows every failure with
``throw``, which stops the script, so the seed runbook's job fails on them as real jobs do:

* the ExchangeOnlineManagement module (and, for REST connections, PackageManagement and
  PowerShellGet) must be available to the job's runtime;
* the identity must exist on the host: system-assigned, or the user-assigned identity whose *client
  id* is passed in ``-ManagedIdentityAccountId`` (an object id does not work);
* the identity must hold ``Exchange.ManageAsApp`` (the real role id, not a look-alike) and one of the
  supported Entra roles, each granted longer ago than the propagation delay;
* ``-Organization`` must be a domain of the tenant.
"""

from __future__ import annotations

import re
import shlex
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NoReturn

from emulator import directory_data as dd
from emulator.clouds import CLOUDS, EXCHANGE_ENVIRONMENTS, resource_not_found
from emulator.tenant import Tenant

# The module versions this emulator knows (what PowerShell Gallery would serve).
GALLERY = {
    "exchangeonlinemanagement": (
        "ExchangeOnlineManagement",
        {
            "3.0.0",
            "3.1.0",
            "3.2.0",
            "3.3.0",
            "3.4.0",
            "3.5.0",
            "3.5.1",
            "3.6.0",
            "3.7.0",
            "3.7.1",
            "3.7.2",
            "3.8.0",
            "3.9.0",
            "3.9.2",
            "3.10.0",
        },
    ),
    "packagemanagement": ("PackageManagement", {"1.4.7", "1.4.8.1"}),
    # 3.0.x-beta are prereleases: the Gallery serves them when asked by version, never as the latest.
    "powershellget": ("PowerShellGet", {"2.2.4", "2.2.5", "3.0.17-beta17", "3.0.19-beta19"}),
    "az.accounts": ("Az.Accounts", {"2.19.0", "3.0.0", "4.0.0"}),
}
# Inbox versions that are too old for the module's REST connections.
MIN_REST_DEPENDENCIES = {"packagemanagement": (1, 4, 7), "powershellget": (2, 2, 4)}
# ExchangeOnlineManagement on PowerShell 7 (.NET): the first version built for a newer .NET, the
# System.Runtime version it then loads, and the PowerShell release that first ships that .NET.
# Windows PowerShell 5.1 (.NET Framework) loads every 3.x version. Sources in emulator/README.md.
EXO_DOTNET_FLOORS = (((3, 10, 0), "10.0.0.0", (7, 6)), ((3, 5, 0), "8.0.0.0", (7, 4)))
ASSEMBLY_NOT_FOUND = (
    "Could not load file or assembly 'System.Runtime, Version={version}, Culture=neutral, "
    "PublicKeyToken=b03f5f7f11d50a3a'. The system cannot find the file specified."
)
# A prerelease PowerShellGet (3.0.x-beta) breaks the module's temporary manifest: in an Automation
# sandbox, and on Windows PowerShell 5.1 elsewhere (sources in emulator/README.md).
SANDBOX_TEMP_MANIFEST_MISSING = (
    "Could not find file 'C:\\Users\\Client\\Temp\\{session}\\tmpEXO_{name}.psd1'."
)
UPDATE_MANIFEST_PARAMETER = "Update-ModuleManifest : A parameter cannot be found that matches parameter name 'RequireLicenseAcceptance'."

NOT_RECOGNIZED = (
    "The term '{name}' is not recognized as the name of a cmdlet, function, script file, or operable program. "
    "Check the spelling of the name, or if a path was included, verify that the path is correct and try again."
)
UNAUTHORIZED = "UnAuthorized"
# What IMDS answers a VM that asks for an identity it does not have (system- or user-assigned).
IMDS_IDENTITY_NOT_FOUND = 'Failed to acquire managed identity token: {"error":"invalid_request","error_description":"Identity not found"}'
ROLE_NOT_SUPPORTED = (
    "The role assigned to application {app_id} isn't supported in this scenario. Please check online documentation "
    "for assigning correct Directory Roles to Azure AD Application for EXO App-Only Authentication."
)


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version))


def is_prerelease(version: str) -> bool:
    return "-" in version


def latest_release(versions: set[str]) -> str:
    """What the Gallery serves when no version is asked for: the newest that is not a prerelease."""
    return max((v for v in versions if not is_prerelease(v)), key=version_tuple)


@dataclass
class ScriptHost:
    """Where the script runs: an Automation job's sandbox or a VM."""

    description: str  # e.g. "Automation account 'aa' (PowerShell 5.1)"
    # The Automation account's GUID (named in its identity endpoint's messages); None on a VM, whose
    # tokens come from IMDS.
    automation_account_guid: str | None
    system_principal_id: str | None
    system_client_id: str | None
    user_assigned: dict[str, str]  # client id (lower) -> principal id
    modules: dict[str, str]  # module name (lower) -> version available to this runtime
    powershell: str = "5.1"  # the PowerShell version that runs the script: "5.1" (Windows PowerShell), "7.4"
    # Called for Install-Module (VMs); None where modules cannot be installed from a script.
    install_module: Callable[[str, str], None] | None = None


@dataclass
class ScriptOutcome:
    succeeded: bool
    output: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    exception: str | None = None


class _Stop(Exception):
    """A terminating error under ``$ErrorActionPreference = 'Stop'`` (or ``-ErrorAction Stop``)."""


@dataclass
class _Session:
    principal_id: str
    organization: str


def _logical_lines(script: str) -> list[str]:
    text = re.sub(r"<#.*?#>", "", script, flags=re.DOTALL)
    text = re.sub(r"`\r?\n", " ", text)  # backtick line continuation
    lines = []
    for raw in re.split(r"[\r\n;]+", text):
        line = raw.strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def _tokens(line: str, variables: dict[str, str]) -> list[str]:
    try:
        tokens = shlex.split(line, posix=True)
    except ValueError:
        tokens = line.split()
    return [
        variables.get(t[1:].lower(), t) if t.startswith("$") and t[1:].lower() in variables else t
        for t in tokens
    ]


def _parameters(tokens: list[str]) -> tuple[dict[str, str | bool], list[str]]:
    named: dict[str, str | bool] = {}
    positional: list[str] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token.startswith("-") and len(token) > 1 and not token[1].isdigit():
            name, _, inline = token[1:].partition(":")
            name = name.lower()
            if inline:
                named[name] = inline.lower() not in ("$false", "false")
            elif index + 1 < len(tokens) and not tokens[index + 1].startswith("-"):
                named[name] = tokens[index + 1]
                index += 1
            else:
                named[name] = True
        else:
            positional.append(token)
        index += 1
    return named, positional


class ScriptRun:
    def __init__(self, tenant: Tenant, host: ScriptHost, *, now: float | None = None) -> None:
        self.tenant = tenant
        self.host = host
        self.now = now or time.time()
        self.variables: dict[str, str] = {}
        self.stop_on_error = False
        self.session: _Session | None = None
        self.outcome = ScriptOutcome(succeeded=True)

    # ------------------------------------------------------------------ driver

    def run(self, script: str) -> ScriptOutcome:
        try:
            for line in _logical_lines(script):
                self._statement(line)
        except _Stop as stop:
            self.outcome.succeeded = False
            self.outcome.exception = str(stop)
            self.outcome.errors.append(str(stop))
        return self.outcome

    def _throw(self, message: str) -> NoReturn:
        """A script-terminating error: ``throw`` in a module function (Connect-ExchangeOnline rethrows
        every failure this way), which stops the script whatever ``$ErrorActionPreference`` says."""
        raise _Stop(message)

    def _fail(self, message: str, params: dict[str, str | bool]) -> None:
        if self.stop_on_error or str(params.get("erroraction", "")).lower() == "stop":
            raise _Stop(message)
        self.outcome.errors.append(message)

    def _statement(self, line: str) -> None:
        assignment = re.match(r"^\$([A-Za-z_][\w:]*)\s*=\s*(.+)$", line)
        if assignment:
            name, value = assignment.group(1).lower(), assignment.group(2).strip()
            literal = value.strip("'\"")
            if name == "erroractionpreference":
                self.stop_on_error = literal.lower() == "stop"
            else:
                self.variables[name] = literal
            return
        pipeline = [part.strip() for part in line.split("|")]
        tokens = _tokens(pipeline[0], self.variables)
        if not tokens:
            return
        command, (params, positional) = tokens[0], _parameters(tokens[1:])
        handler = {
            "connect-exchangeonline": self._connect,
            "get-accepteddomain": self._get_accepted_domain,
            "write-output": self._write_output,
            "write-host": self._write_output,
            "import-module": self._import_module,
            "install-module": self._install_module,
            "get-installedmodule": self._get_installed_module,
            "disconnect-exchangeonline": self._disconnect,
            "set-strictmode": lambda p, a: None,
        }.get(command.lower())
        if handler is None:
            if command.startswith(("'", '"')) or not re.match(r"^[A-Za-z]+-[A-Za-z0-9]+$", command):
                self.outcome.output.append(command.strip("'\""))
                return
            self._fail(NOT_RECOGNIZED.format(name=command), params)
            return
        handler(params, positional)

    # ------------------------------------------------------------------ cmdlets

    def _has_module(self, name: str) -> bool:
        return name.lower() in self.host.modules

    def _write_output(self, params, positional) -> None:
        self.outcome.output.append(" ".join(positional))

    def _import_module(self, params, positional) -> None:
        name = str(params.get("name") or (positional[0] if positional else ""))
        if not self._has_module(name):
            self._fail(
                f"The specified module '{name}' was not loaded because no valid module file was found in any module directory.",
                params,
            )

    def _install_module(self, params, positional) -> None:
        name = str(params.get("name") or (positional[0] if positional else ""))
        version = str(params.get("requiredversion") or "")
        if self.host.install_module is None:
            self._fail(
                "Install-Module is not available in this sandbox; import modules through the Automation account.",
                params,
            )
            return
        known = GALLERY.get(name.lower())
        if known is None or (version and version not in known[1]):
            self._fail(
                f"No match was found for the specified search criteria and module name '{name}'. Try Get-PSRepository "
                "to see all available registered module repositories.",
                params,
            )
            return
        chosen = version or latest_release(known[1])
        self.host.install_module(known[0], chosen)
        self.host.modules[name.lower()] = chosen

    def _get_installed_module(self, params, positional) -> None:
        names = [n for n in str(params.get("name") or ",".join(positional)).split(",") if n]
        for name in names or list(self.host.modules):
            version = self.host.modules.get(name.lower())
            if version is None:
                self._fail(
                    f"No match was found for the specified search criteria and module names '{name}'.", params
                )
            else:
                self.outcome.output.append(f"{version} {GALLERY.get(name.lower(), (name,))[0]}")

    def _disconnect(self, params, positional) -> None:
        self.session = None

    def _get_accepted_domain(self, params, positional) -> None:
        if self.session is None:
            self._fail(NOT_RECOGNIZED.format(name="Get-AcceptedDomain"), params)
            return
        self.outcome.output.extend(["Name", "----", *self.tenant.accepted_domains])

    def _connect(self, params, positional) -> None:
        if not self._has_module("ExchangeOnlineManagement"):
            self._fail(NOT_RECOGNIZED.format(name="Connect-ExchangeOnline"), params)
            return
        missing = [
            GALLERY[name][0]
            for name, minimum in MIN_REST_DEPENDENCIES.items()
            if version_tuple(self.host.modules.get(name, "0")) < minimum
        ]
        if missing:
            self._throw(
                "Connect-ExchangeOnline: REST based connections require the PowerShellGet and PackageManagement modules "
                f"(PackageManagement 1.4.7 or later, PowerShellGet 2.2.4 or later). Missing or too old: {', '.join(missing)}. "
                "See https://aka.ms/exov3-module (PowerShellGet for REST-based connections)."
            )
        environment = self._exchange_environment(params)
        self._check_module_loads()
        if not params.get("managedidentity"):
            self._throw(
                "Connect-ExchangeOnline: an unattended session needs -ManagedIdentity (or app-only certificate "
                "authentication); interactive sign-in is not possible here. Unable to open a browser window."
            )
        organization = params.get("organization")
        if not isinstance(organization, str) or not organization:
            self._throw(
                "Connect-ExchangeOnline: the -Organization parameter is required with -ManagedIdentity."
            )
        principal_id = self._resolve_identity(params)
        if principal_id is None:
            return  # a parameter binding error, already reported
        wanted = CLOUDS.get(environment)
        if wanted is not self.tenant.cloud:
            # The module asks the identity endpoint for that environment's Exchange resource, which this
            # tenant's cloud does not know (e.g. commercial Exchange from a GCC High tenant).
            resource = wanted.exchange_resource if wanted else "https://outlook.office.de"
            self._throw(
                "ManagedIdentityCredential authentication failed: "
                + resource_not_found(resource, self.tenant.tenant_id)
            )
        if organization.lower() not in {d.lower() for d in self.tenant.accepted_domains}:
            self._throw(
                f"AADSTS90002: Tenant '{organization}' not found. Check to make sure you have the correct tenant ID and "
                "are signing into the correct cloud."
            )
        principal = self.tenant.principal(principal_id)
        # Exchange judges the token, which the host may have cached before the grants propagated.
        token = self.tenant.exchange_token(principal_id, self.now)
        if principal is None or not token.has_exchange_app_role:
            self._throw(UNAUTHORIZED)
        supported = {v.lower() for v in dd.EXCHANGE_SUPPORTED_ROLES.values()}
        if not token.role_template_ids & supported:
            self._throw(ROLE_NOT_SUPPORTED.format(app_id=principal.app_id))
        self.session = _Session(principal_id, organization)

    def _exchange_environment(self, params) -> str:
        """-ExchangeEnvironmentName, bound to the module's ExchangeEnvironment enum (default O365Default)."""
        value = params.get("exchangeenvironmentname")
        if not isinstance(value, str) or not value:
            return "O365Default"
        match = next((name for name in EXCHANGE_ENVIRONMENTS if name.lower() == value.lower()), None)
        if match is None:
            self._throw(
                f"Cannot bind parameter 'ExchangeEnvironmentName'. Cannot convert value \"{value}\" to type "
                '"Microsoft.Exchange.Management.RestApiClient.ExchangeEnvironment". Error: "Unable to match the '
                f"identifier name {value} to a valid enumerator name. Specify one of the following enumerator "
                f'names and try again: {", ".join(EXCHANGE_ENVIRONMENTS)}"'
            )
        return match

    def _check_module_loads(self) -> None:
        """Connect-ExchangeOnline loads the module's .NET assemblies and writes a temporary module
        manifest: the host's .NET and a prerelease PowerShellGet can make either fail."""
        host = self.host
        exo = version_tuple(host.modules.get("exchangeonlinemanagement", "0"))
        if host.powershell != "5.1":
            for first, runtime, needs in EXO_DOTNET_FLOORS:
                if exo >= first and version_tuple(host.powershell) < needs:
                    self._throw(ASSEMBLY_NOT_FOUND.format(version=runtime))
        if is_prerelease(host.modules.get("powershellget", "")):
            if host.automation_account_guid is None and host.powershell == "5.1":
                self._throw(UPDATE_MANIFEST_PARAMETER)
            random_name = uuid.uuid4().hex  # like Path.GetRandomFileName(): 8.3 characters
            self._throw(
                SANDBOX_TEMP_MANIFEST_MISSING.format(
                    session=uuid.uuid4(), name=f"{random_name[:8]}.{random_name[8:11]}"
                )
            )

    def _resolve_identity(self, params) -> str | None:
        """The principal id the connection would authenticate as; None after a parameter binding error."""
        account_id = params.get("managedidentityaccountid")
        host = self.host
        if isinstance(account_id, str) and account_id:
            principal_id = host.user_assigned.get(account_id.lower())
            if principal_id is None:  # e.g. the identity's object id instead of its client id
                self._token_failure(
                    "ManagedIdentityCredential authentication failed: No User Assigned or Delegated Managed "
                    "Identity found for specified ClientId/ResourceId/PrincipalId. Status: 400 (Bad Request)"
                )
            return principal_id
        if account_id is True:
            self._fail(
                "Missing an argument for parameter 'ManagedIdentityAccountId'. Specify a parameter of type 'System.String' and try again.",
                params,
            )
            return None
        if host.system_principal_id is None:
            self._token_failure(
                f'{{"Message":"No managed System identity was found for Automation account {host.automation_account_guid}."}}'
            )
        return host.system_principal_id

    def _token_failure(self, automation_reason: str) -> NoReturn:
        """The identity's token request failed: the Automation sandbox's endpoint says what it could
        not find; IMDS on a VM answers "Identity not found" to any identity the VM does not have."""
        if self.host.automation_account_guid is None:
            self._throw(IMDS_IDENTITY_NOT_FOUND)
        self._throw(f"Failed to acquire managed identity token: {automation_reason}")


def run_script(tenant: Tenant, script: str, host: ScriptHost, *, now: float | None = None) -> ScriptOutcome:
    """Runs ``script`` on ``host`` against the tenant's state at ``now`` (default: the current time)."""
    return ScriptRun(tenant, host, now=now).run(script)
