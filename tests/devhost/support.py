"""Helpers for the devhost tests: the sample app, its keys, and what it recorded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

SAMPLE_APP = Path(__file__).parent / "sample_app"
MASTER_KEY = "test-master-key"  # the sample host's keys (DEVHOST_MASTER_KEY / DEVHOST_FUNCTION_KEY)
FUNCTION_KEY = "test-function-key"


class Records:
    """The JSON files the sample app's functions write under $SAMPLE_RECORD_DIR/<function>/."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def __call__(self, function: str, **match: Any) -> list[dict]:
        folder = self.root / function
        found = [json.loads(p.read_text()) for p in folder.glob("*.json")] if folder.exists() else []
        return [r for r in found if all(r.get(k) == v for k, v in match.items())]
