"""Renders the PowerShell that exomi publishes (Automation runbooks) or runs (VM Run Command), and the
bash that runs it under pwsh on a Linux VM, from ``runbook_templates/``. Every value put into a script
is validated first: a script is code."""

from __future__ import annotations

import hashlib
import re
import uuid
from pathlib import Path

from shared.errors import InputError
from shared.settings import ExchangeEnvironment

TEMPLATES = Path(__file__).resolve().parent.parent / "runbook_templates"
DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$")
MODULE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9.]{0,63}$")
VERSION_RE = re.compile(r"^\d+(\.\d+){1,3}$")
# The PowerShell exomi installs on a Linux VM (compatibility host "linux-7.4", docs/COMPATIBILITY.md):
# Microsoft's .deb of that release, for Debian and Ubuntu.
PWSH_VERSION = "7.4.6"
PWSH_HOST = "linux-7.4"
PWSH_DEB_URL = "https://github.com/PowerShell/PowerShell/releases/download/v{version}/powershell_{version}-1.deb_amd64.deb"


def _template(name: str) -> str:
    return (TEMPLATES / name).read_text(encoding="utf-8")


def connect_line(
    organization: str, user_assigned_client_id: str | None, environment: ExchangeEnvironment
) -> str:
    """``Connect-ExchangeOnline -ManagedIdentity`` for the organization, with ``-ManagedIdentityAccountId
    <client id>`` for a user-assigned identity (the client id, never the object id: the mix-up in
    Microsoft's procedure) and, outside the commercial cloud, ``-ExchangeEnvironmentName`` (without it a
    GCC High, DoD or China identity would ask the commercial service)."""
    if not DOMAIN_RE.match(organization):
        raise InputError("organization", f"{organization!r} is not a domain name")
    line = f"Connect-ExchangeOnline -ManagedIdentity -Organization {organization}"
    if user_assigned_client_id is not None:
        line += f" -ManagedIdentityAccountId {uuid.UUID(user_assigned_client_id)}"
    if environment is not ExchangeEnvironment.DEFAULT:
        line += f" -ExchangeEnvironmentName {environment.value}"
    return line


def connect_script(
    organization: str, user_assigned_client_id: str | None, environment: ExchangeEnvironment
) -> str:
    """The verification script: the connect line, then ``Get-AcceptedDomain``."""
    connect = connect_line(organization, user_assigned_client_id, environment)
    return _template("connect-exchange-online.ps1").replace("{{CONNECT}}", connect)


def _install_lines(modules: dict[str, str]) -> list[str]:
    lines = []
    for name, version in modules.items():
        if not MODULE_RE.match(name) or not VERSION_RE.match(version):
            raise InputError("module_versions", f"{name} {version} is not a module name and version")
        lines.append(
            f"Install-Module -Name {name} -RequiredVersion {version} -Force -AllowClobber -Scope AllUsers"
        )
    return lines


def install_modules_script(modules: dict[str, str]) -> str:
    """Run Command script that installs ``modules`` (name -> exact version) in the given order."""
    return (
        _template("install-modules.ps1")
        .replace("{{INSTALL_LINES}}", "\n".join(_install_lines(modules)))
        .replace("{{MODULE_NAMES}}", ",".join(modules))
    )


def install_modules_shell_script(modules: dict[str, str], pwsh_version: str = PWSH_VERSION) -> str:
    """RunShellScript script for a Linux VM: installs pwsh ``pwsh_version`` unless that release is there,
    then ``modules`` with Install-Module under pwsh. The PowerShell goes through a quoted here-document,
    so bash expands nothing in it."""
    if not re.fullmatch(r"\d+\.\d+\.\d+", pwsh_version):
        raise InputError("pwsh_version", f"{pwsh_version!r} is not a PowerShell release such as 7.4.6")
    return (
        _template("install-modules.sh")
        .replace("{{PWSH_URL}}", PWSH_DEB_URL.format(version=pwsh_version))
        .replace("{{PWSH_VERSION}}", pwsh_version)
        .replace("{{INSTALL_LINES}}", "\n".join(_install_lines(modules)))
        .replace("{{MODULE_NAMES}}", ",".join(modules))
    )


def connect_shell_script(
    organization: str, user_assigned_client_id: str | None, environment: ExchangeEnvironment
) -> str:
    """The verification script for a Linux VM: the same connect line and test, run by pwsh."""
    connect = connect_line(organization, user_assigned_client_id, environment)
    return _template("connect-exchange-online.sh").replace("{{CONNECT}}", connect)


def content_hash(script: str) -> str:
    return hashlib.sha256(script.replace("\r\n", "\n").encode()).hexdigest()
