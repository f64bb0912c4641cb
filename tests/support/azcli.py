"""The Azure CLI (``.venv-azcli/bin/az``, installed by scripts/setup.sh) run against the emulator as a
user would: a cloud registered for it, a managed-identity login, one process per command.

Each ``AzCli`` has its own ``AZURE_CONFIG_DIR``, so tests share nothing. The emulator's CA is trusted
through ``REQUESTS_CA_BUNDLE`` (no verification is turned off), and a proxy that refuses every
connection catches any call az would make outside the machine (127.0.0.1 is exempt), so such a call
fails fast instead of leaving the sandbox.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.emulator import Emulator

ROOT = Path(__file__).resolve().parents[2]
AZ = ROOT / ".venv-azcli" / "bin" / "az"
CLOUD = "ExomiEmulator"
GRAPH = "https://graph.microsoft.com"  # the token audience for Graph calls (``az rest --resource``)
COMMAND_TIMEOUT = 60.0


class AzError(AssertionError):
    def __init__(self, args: list[str], result: subprocess.CompletedProcess[str]) -> None:
        super().__init__(f"az {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
        self.returncode = result.returncode
        self.stderr = result.stderr


@dataclass
class AzCli:
    emulator: Emulator
    config_dir: Path
    commands: int = 0  # how many az processes this test ran

    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AZURE_", "MSI_", "IDENTITY_", "IMDS_")) and k.lower() not in PROXY_VARS
        }
        env.update(
            AZURE_CONFIG_DIR=str(self.config_dir),
            REQUESTS_CA_BUNDLE=self.emulator.ca_bundle,
            # App Service's managed-identity endpoint: what msal (az login --identity) looks for first.
            IDENTITY_ENDPOINT=self.emulator.identity_endpoint,
            IDENTITY_HEADER=self.emulator.identity_header,
            AZURE_CORE_COLLECT_TELEMETRY="false",
            AZURE_CORE_SURVEY_MESSAGE="false",
            AZURE_CORE_NO_COLOR="true",
            AZURE_EXTENSION_USE_DYNAMIC_INSTALL="no",
            HTTP_PROXY="http://127.0.0.1:9",
            HTTPS_PROXY="http://127.0.0.1:9",
            NO_PROXY="127.0.0.1,localhost",
        )
        return env

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(AZ), *args]
        self.commands += 1
        result = subprocess.run(
            command, capture_output=True, text=True, env=self.env(), timeout=COMMAND_TIMEOUT, check=False
        )
        if check and result.returncode != 0:
            raise AzError(list(args), result)
        return result

    def json(self, *args: str) -> Any:
        """The command's JSON output (``-o json``); None when it printed nothing."""
        out = self.run(*args, "-o", "json").stdout
        return json.loads(out) if out.strip() else None

    def text(self, *args: str) -> str:
        """What the command printed (``az rest`` prints a response that is not JSON as it came)."""
        return self.run(*args).stdout

    def tsv(self, *args: str) -> str:
        return self.run(*args, "-o", "tsv").stdout.strip()

    def fails(self, *args: str) -> AzError:
        """Runs a command that must fail; its error (exit code and stderr)."""
        result = self.run(*args, check=False)
        assert result.returncode != 0, f"az {' '.join(args)} succeeded:\n{result.stdout}"
        return AzError(list(args), result)

    # ------------------------------------------------------------------ the user's first steps

    def register_cloud(self) -> None:
        """``az cloud register`` with only the ARM endpoint: az discovers the rest from
        ``{arm}/metadata/endpoints``, then makes it the active cloud."""
        self.run(
            "cloud", "register", "--name", CLOUD, "--endpoint-resource-manager", self.emulator.arm_endpoint
        )
        self.run("cloud", "set", "--name", CLOUD)

    def login(self, client_id: str | None = None, *extra: str) -> Any:
        """``az login --identity`` (exomi's identity, or the one ``client_id`` selects)."""
        selector = ("--client-id", client_id) if client_id else ()
        return self.json("login", "--identity", *selector, *extra)

    # ------------------------------------------------------------------ REST through az

    @property
    def arm(self) -> str:
        return self.emulator.arm_endpoint

    @property
    def graph(self) -> str:
        return self.emulator.graph_endpoint

    def rest(self, method: str, url: str, body: Any = None, *extra: str) -> Any:
        args = ["rest", "--method", method, "--url", url]
        if body is not None:
            args += ["--body", body if isinstance(body, str) else json.dumps(body)]
        return self.json(*args, *extra)

    def graph_rest(self, method: str, path: str, body: Any = None, *extra: str) -> Any:
        """``az rest`` on Graph: the emulator serves Graph on ARM's host, so az would ask for an ARM
        token by the URL; ``--resource`` asks for a Graph one, as for any Graph URL az does not know."""
        return self.rest(method, self.graph + path, body, "--resource", GRAPH, *extra)


PROXY_VARS = {"http_proxy", "https_proxy", "no_proxy", "all_proxy"}


def poll(read: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 30.0) -> Any:
    """``read()`` until ``done`` holds (a user re-running a show command)."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value) or time.monotonic() > deadline:
            assert done(value), value
            return value
        time.sleep(0.2)
