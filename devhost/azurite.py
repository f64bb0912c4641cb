"""Start Azurite (Table, Queue and Blob Storage emulator, from node_modules) on free ports."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key (public, documented by Microsoft; not a secret).
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, deadline: float, process: subprocess.Popen) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Azurite exited with code {process.returncode} before opening port {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"Azurite did not open port {port} in time")


def connection_string(blob_port: int, queue_port: int, table_port: int) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
        f"BlobEndpoint=http://127.0.0.1:{blob_port}/{ACCOUNT};"
        f"QueueEndpoint=http://127.0.0.1:{queue_port}/{ACCOUNT};"
        f"TableEndpoint=http://127.0.0.1:{table_port}/{ACCOUNT};"
    )


class AzuriteProcess:
    def __init__(self, startup_timeout: float = 30.0) -> None:
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen | None = None
        self.workdir: str | None = None
        self.connection_string = ""

    def start(self) -> str:
        binary = ROOT / "node_modules" / ".bin" / "azurite"
        if not binary.exists():
            raise FileNotFoundError(f"{binary} is missing: run scripts/setup.sh (npm ci) first")
        blob, queue, table = free_port(), free_port(), free_port()
        self.workdir = tempfile.mkdtemp(prefix="exomi-azurite-")
        self.process = subprocess.Popen(
            [
                str(binary),
                "--silent",
                "--disableTelemetry",
                "--skipApiVersionCheck",
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                str(blob),
                "--queueHost",
                "127.0.0.1",
                "--queuePort",
                str(queue),
                "--tableHost",
                "127.0.0.1",
                "--tablePort",
                str(table),
            ],
            # --location cannot be combined with --inMemoryPersistence (Azurite 3.35 exits); run in a
            # scratch folder instead so nothing lands in the caller's working directory.
            cwd=self.workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + self.startup_timeout
        for port in (blob, queue, table):
            _wait_for_port(port, deadline, self.process)
        self.connection_string = connection_string(blob, queue, table)
        return self.connection_string

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
