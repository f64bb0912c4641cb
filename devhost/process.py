"""Start ``python -m devhost`` as a child process and read its ready line (for tests and the demo).

The child's environment is explicit: a few basics (PATH, HOME, temp and locale variables) plus exactly
the ``env`` you pass, typically ``AzureWebJobsStorage`` and the app's own settings. Nothing else leaks
in from the parent; local.settings.json in the app folder still fills in settings you did not pass.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

BASE_VARIABLES = ("PATH", "HOME", "TMPDIR", "TEMP", "TMP", "LANG", "LC_ALL", "SYSTEMROOT", "VIRTUAL_ENV")


class DevHostError(RuntimeError):
    """The host exited (e.g. the app failed to load) or printed no ready line in time."""


class DevHostProcess:
    def __init__(
        self,
        app_dir: str | Path,
        module: str = "function_app",
        *,
        env: Mapping[str, str] | None = None,
        args: list[str] | None = None,
        log_file: str | Path | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        self.app_dir = Path(app_dir).resolve()
        self.module = module
        self.env = {k: os.environ[k] for k in BASE_VARIABLES if k in os.environ}
        self.env.update(env or {})
        self.env["PYTHONUNBUFFERED"] = "1"
        self.args = list(args or [])
        self.log_file = Path(log_file) if log_file else None
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen | None = None
        self.info: dict[str, Any] = {}

    @property
    def url(self) -> str:
        return self.info["url"]

    def start(self) -> dict[str, Any]:
        command = [
            sys.executable,
            "-m",
            "devhost",
            "--app-dir",
            str(self.app_dir),
            "--module",
            self.module,
            "--port",
            "0",
            *self.args,
        ]
        stderr = self.log_file.open("ab") if self.log_file else None
        try:
            self.process = subprocess.Popen(
                command, cwd=self.app_dir, env=self.env, stdout=subprocess.PIPE, stderr=stderr, text=True
            )
        finally:
            if stderr is not None:
                stderr.close()
        deadline = time.monotonic() + self.startup_timeout
        assert self.process.stdout is not None
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.process.stdout], [], [], 0.2)
            if ready:
                line = self.process.stdout.readline()
                if line.strip().startswith("{"):
                    self.info = json.loads(line)
                    return self.info
            if self.process.poll() is not None:
                raise DevHostError(
                    f"devhost exited with code {self.process.returncode} before it was ready{self._log_tail()}"
                )
        self.stop()
        raise DevHostError(f"devhost printed no ready line within {self.startup_timeout}s{self._log_tail()}")

    def _log_tail(self) -> str:
        if self.log_file and self.log_file.exists():
            return ":\n" + "\n".join(self.log_file.read_text(errors="replace").splitlines()[-20:])
        return " (see its stderr)"

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process and self.process.stdout:
            self.process.stdout.close()

    def client(self, **kwargs: Any) -> httpx.Client:
        """An httpx client for the host's base URL."""
        return httpx.Client(base_url=self.url, timeout=kwargs.pop("timeout", 30), **kwargs)

    def __enter__(self) -> DevHostProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
