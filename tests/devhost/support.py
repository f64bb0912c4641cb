"""Helpers for the devhost tests: poll with a deadline, read what the sample app recorded."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

SAMPLE_APP = Path(__file__).parent / "sample_app"
MASTER_KEY = "test-master-key"  # the sample host's keys (DEVHOST_MASTER_KEY / DEVHOST_FUNCTION_KEY)
FUNCTION_KEY = "test-function-key"


def eventually(probe: Callable[[], T], *, timeout: float = 20.0, what: str = "condition") -> T:
    """Call ``probe`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last value: {value!r}")
        time.sleep(0.05)


class Records:
    """The JSON files the sample app's functions write under $SAMPLE_RECORD_DIR/<function>/."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def __call__(self, function: str, **match: Any) -> list[dict]:
        folder = self.root / function
        found = [json.loads(p.read_text()) for p in folder.glob("*.json")] if folder.exists() else []
        return [r for r in found if all(r.get(k) == v for k, v in match.items())]
