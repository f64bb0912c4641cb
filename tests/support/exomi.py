"""Run the real ``exomi`` command (and the in-process service) against the emulator and Azurite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from tests.support.emulator import Emulator

ROOT = Path(__file__).resolve().parent.parent.parent
EXOMI = str(Path(sys.executable).parent / "exomi")


def policy_for(emulator: Emulator, **overrides: Any) -> dict[str, Any]:
    """A policy that allows the emulated tenant: its organization and its subscriptions."""
    policy: dict[str, Any] = {
        "allowed_organizations": [emulator.organization],
        "allowed_scopes": [f"/subscriptions/{s}" for s in emulator.subscription_ids],
        "allowed_roles": [
            "Exchange Recipient Administrator",
            "Exchange Administrator",
            "Global Reader",
            "Security Reader",
        ],
        # Who may ask: the admin who writes tags in the tests, and callers holding the function key.
        "rules": [
            {"name": "test-admin", "channels": ["tag"], "principals": [emulator.admin_principal_id]},
            {
                "name": "test-function-key",
                "channels": ["http", "logicapps", "ticket"],
                "principals": ["function-key caller"],
            },
        ],
    }
    policy.update(overrides)
    return policy


@dataclass
class ExomiRunner:
    emulator: Emulator
    storage: str
    table_prefix: str = field(default_factory=lambda: "t" + uuid.uuid4().hex[:12])
    policy: dict[str, Any] | None = None
    # The key callback URLs are kept encrypted with (one per app: its host and its exomi command share it).
    callback_key: str = field(default_factory=lambda: Fernet.generate_key().decode())

    def env(self) -> dict[str, str]:
        """Exactly the settings a Function app in Azure would have, pointed at the emulator."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("EXOMI_", "AZURE_"))}
        env.update(
            {
                "IDENTITY_ENDPOINT": self.emulator.identity_endpoint,
                "IDENTITY_HEADER": self.emulator.identity_header,
                "EXOMI_CLOUD": self.emulator.cloud,
                "EXOMI_EXCHANGE_ENVIRONMENT": self.emulator.exchange_environment,
                "EXOMI_ARM_ENDPOINT": self.emulator.arm_endpoint,
                "EXOMI_GRAPH_ENDPOINT": self.emulator.graph_endpoint,
                "EXOMI_CA_BUNDLE": self.emulator.ca_bundle,
                "AzureWebJobsStorage": self.storage,
                "EXOMI_TABLE_PREFIX": self.table_prefix,
                "EXOMI_POLICY": json.dumps(self.policy or policy_for(self.emulator)),
                "EXOMI_CALLBACK_KEY": self.callback_key,
                "EXOMI_POLL_SECONDS": "0.2",
                "EXOMI_MAX_POLL_SECONDS": "1",
                "EXOMI_VERIFY_MAX_POLL_SECONDS": "1",
                # fast_timings(): grants propagate after 0.5 s
                "EXOMI_PROPAGATION_SECONDS": "0.5",
                # The checkout's code, not whichever one the venv's editable install points at.
                "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
            }
        )
        return env

    def start(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(
            [EXOMI, "--json", *args],
            cwd=ROOT,
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run_text(self, *args: str, timeout: float = 120) -> str:
        """Runs ``exomi <args>`` (no --json) and returns what it printed; it must succeed."""
        completed = subprocess.run(
            [EXOMI, *args],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )
        return completed.stdout

    def run(self, *args: str, timeout: float = 120, as_admin: bool = False) -> tuple[int, Any, str]:
        """Runs ``exomi --json <args>``; returns (exit code, parsed JSON output or None, stderr).
        ``as_admin``: with the emulator admin's identity (an operator's own rights: bootstrap)."""
        env = self.env()
        if as_admin:
            env["AZURE_CLIENT_ID"] = self.emulator.admin_client_id
        completed = subprocess.run(
            [EXOMI, "--json", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        try:
            output = json.loads(completed.stdout) if completed.stdout.strip() else None
        except json.JSONDecodeError:
            output = completed.stdout
        return completed.returncode, output, completed.stderr
