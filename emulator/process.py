"""Start ``python -m emulator`` as a child process and read its ready line (for tests, the demo and
benchmarks)."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class EmulatorInfo:
    """The ready line, with attribute access to the fields other tools rely on."""

    raw: dict[str, Any]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.raw[name]
        except KeyError:
            raise AttributeError(name) from None

    def identity_env(self) -> dict[str, str]:
        """Environment that makes azure-identity's managed-identity credential use the emulator."""
        return {"IDENTITY_ENDPOINT": self.identity_endpoint, "IDENTITY_HEADER": self.identity_header}


class EmulatorProcess:
    def __init__(self, *args: str, state_dir: Path | None = None, startup_timeout: float = 30.0) -> None:
        self.args = list(args)
        self.state_dir = state_dir
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen | None = None
        self.info: EmulatorInfo | None = None

    def start(self) -> EmulatorInfo:
        command = [sys.executable, "-m", "emulator", *self.args]
        if self.state_dir is not None:
            command += ["--state-dir", str(self.state_dir)]
        root = Path(__file__).resolve().parent.parent
        self.process = subprocess.Popen(
            command,
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=None,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        deadline = time.monotonic() + self.startup_timeout
        assert self.process.stdout is not None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the emulator exited with code {self.process.returncode} before it was ready"
                )
            ready, _, _ = select.select([self.process.stdout], [], [], 0.2)
            if ready:
                line = self.process.stdout.readline()
                if line.strip().startswith("{"):
                    self.info = EmulatorInfo(json.loads(line))
                    return self.info
        self.stop()
        raise TimeoutError("the emulator printed no ready line in time")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> EmulatorInfo:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
