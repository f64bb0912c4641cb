"""Compare a response with an example from azure-rest-api-specs: every key of the example must be
present with a value of the same JSON kind (values themselves differ: ids, GUIDs, timestamps)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parent.parent / "emulator" / "spec_examples"


def load_example(name: str) -> dict[str, Any]:
    """An example file copied from azure-rest-api-specs (its source path is in ``_source``)."""
    return json.loads((EXAMPLES / name).read_text())


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


# Maps whose keys are data (tag names, resource ids), not schema: only their kind is compared.
FREE_FORM = {"tags", "userAssignedIdentities", "parameters", "defaultPackages"}


def assert_shape(example: Any, actual: Any, path: str = "$") -> None:
    if example is None:
        return
    assert actual is not None, f"{path}: missing (example has {example!r})"
    assert _kind(example) == _kind(actual), f"{path}: {_kind(actual)} where the example has {_kind(example)}"
    if isinstance(example, dict) and path.rsplit(".", 1)[-1] not in FREE_FORM:
        for key, value in example.items():
            assert key in actual, f"{path}: key {key!r} of the example is missing"
            assert_shape(value, actual[key], f"{path}.{key}")
    elif isinstance(example, list) and example:
        assert actual, f"{path}: empty list where the example has items"
        assert_shape(example[0], actual[0], f"{path}[0]")
