"""The workbook (infra/workbook/exomi-workbook.json) and docs/OPERATIONS.md#telemetry show the same KQL,
over the dimensions and metrics exomi really emits (shared/telemetry.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
WORKBOOK = ROOT / "infra" / "workbook" / "exomi-workbook.json"


def queries() -> dict[str, str]:
    document = json.loads(WORKBOOK.read_text("utf-8"))
    assert document["version"] == "Notebook/1.0"
    return {item["name"]: item["content"]["query"] for item in document["items"] if item["type"] == 3}


def test_the_workbook_shows_requests_failures_findings_and_refusals():
    shown = queries()
    assert {"requests-by-outcome", "failed-requests", "failed-steps", "findings", "refusals"} <= set(shown)
    document = json.loads(WORKBOOK.read_text("utf-8"))
    for item in document["items"]:
        if item["type"] == 3:
            assert item["content"]["resourceType"] == "microsoft.insights/components"
            assert item["content"]["timeContextFromParameter"] == "TimeRange"


def test_the_operations_guide_has_every_query_of_the_workbook():
    guide = (ROOT / "docs" / "OPERATIONS.md").read_text("utf-8")
    for name, query in queries().items():
        assert f"```kusto\n{query}\n```" in guide, name


def test_the_queries_use_only_names_exomi_emits():
    source = (ROOT / "shared" / "telemetry.py").read_text("utf-8")
    emitted = set(re.findall(r'"(exomi\.[a-z_.]+)"', source)) - {"exomi.telemetry"}  # less its logger
    used = {name for query in queries().values() for name in re.findall(r'"(exomi\.[a-z_.]+)"', query)}
    spans = {"exomi.pass"}  # span names the queries name (the step spans by prefix)
    assert used - spans <= emitted, used - spans - emitted
    guide = (ROOT / "docs" / "OPERATIONS.md").read_text("utf-8")
    for name in emitted:
        assert f"`{name}`" in guide, f"{name} is not documented"
