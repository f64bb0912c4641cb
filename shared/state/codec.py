"""Table entity property helpers that respect the Table Storage limits.

A string property holds at most 64 KiB (32,768 UTF-16 code units) and an entity at most 1 MiB. JSON
blobs are written as ASCII (json.dumps escapes everything else), so one character is one code unit:
a blob up to MAX_PROPERTY_CHARS goes into one property, a larger one is split over `Name`,
`Name__1`, ... with the part count in `Name__parts`, and a blob larger than MAX_JSON_PARTS parts is
replaced by a truncation note. No entity here has more than two blobs that can grow large (an audit
record's before and after), so 2 x 375 KiB plus the small properties stays under 1 MiB.
Free text (messages) is cut to MAX_TEXT_CHARS with a note saying how long it was.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, MutableMapping
from datetime import datetime
from typing import Any

MAX_PROPERTY_CHARS = 32_000  # < 32,768 UTF-16 code units = 64 KiB
MAX_JSON_PARTS = 6  # 6 x 32,000 characters x 2 bytes = 375 KiB per blob at most
MAX_TEXT_CHARS = 8_000  # <= 16,000 code units even for characters outside the BMP
TRUNCATED = "_exomi_truncated"
_PREVIEW_CHARS = 4_000


def put_json(entity: MutableMapping[str, Any], name: str, value: Any) -> None:
    """Store a JSON-serialisable value (None stores nothing), split or truncated to fit."""
    if value is None:
        return
    text = json.dumps(value, separators=(",", ":"), sort_keys=True, default=_json_default)
    parts = [text[i : i + MAX_PROPERTY_CHARS] for i in range(0, len(text), MAX_PROPERTY_CHARS)]
    if len(parts) > MAX_JSON_PARTS:
        note = {
            TRUNCATED: True,
            "note": f"the value was {len(text)} characters of JSON, more than Table Storage can hold in one "
            "entity; only its beginning is kept",
            "preview": text[:_PREVIEW_CHARS],
        }
        parts = [json.dumps(note, separators=(",", ":"))]
    entity[name] = parts[0]
    if len(parts) > 1:
        entity[f"{name}__parts"] = len(parts)
        for index, part in enumerate(parts[1:], start=1):
            entity[f"{name}__{index}"] = part


def get_json(entity: Mapping[str, Any], name: str) -> Any:
    """Read a value written by put_json (None when absent); a truncated value reads as the note dict."""
    first = entity.get(name)
    if first is None:
        return None
    count = int(entity.get(f"{name}__parts", 1))
    text = first + "".join(entity[f"{name}__{index}"] for index in range(1, count))
    return json.loads(text)


def put_text(entity: MutableMapping[str, Any], name: str, value: str | None) -> None:
    if value is None:
        return
    if len(value) > MAX_TEXT_CHARS:
        suffix = f" ... [truncated: {len(value)} characters in total]"
        value = value[: MAX_TEXT_CHARS - len(suffix)] + suffix
    entity[name] = value


def is_truncated(value: Any) -> bool:
    return isinstance(value, dict) and value.get(TRUNCATED) is True


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    raise TypeError(f"cannot store a {type(value).__name__} as JSON")
