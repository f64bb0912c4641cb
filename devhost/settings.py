"""The app's configuration as the Functions host reads it: ``host.json`` and ``local.settings.json``."""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ConfigError(Exception):
    """host.json or an app setting is invalid; the real host refuses to start (or to index) too."""


_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d{1,7}))?$")


def parse_timespan(text: str) -> float:
    """Seconds in a .NET TimeSpan string: ``hh:mm:ss``, ``hh:mm:ss.fff`` or ``d.hh:mm:ss``."""
    match = _TIMESPAN.match(text.strip())
    if not match:
        raise ConfigError(f"'{text}' is not a valid TimeSpan (expected hh:mm:ss)")
    days, hours, minutes, seconds, fraction = match.groups()
    total = int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + int(seconds)
    return total + (float(f"0.{fraction}") if fraction else 0.0)


def _lower_keys(value: Any) -> dict[str, Any]:
    # The host binds host.json through .NET configuration, which ignores the case of keys.
    return {str(k).lower(): v for k, v in value.items()} if isinstance(value, dict) else {}


@dataclass(frozen=True)
class QueueOptions:
    """``extensions.queues`` with the Storage Queues extension 5.x defaults."""

    batch_size: int = 16
    new_batch_threshold: int = 8
    max_polling_interval: float = 60.0
    visibility_timeout: float = 0.0
    max_dequeue_count: int = 5
    message_encoding: str = "base64"

    @classmethod
    def from_json(cls, section: Any) -> QueueOptions:
        raw = _lower_keys(section)
        batch_size = int(raw.get("batchsize", 16))
        if not 1 <= batch_size <= 32:
            raise ConfigError(f"extensions.queues.batchSize must be between 1 and 32, not {batch_size}")
        threshold = int(raw.get("newbatchthreshold", batch_size // 2))
        max_polling = parse_timespan(raw["maxpollinginterval"]) if "maxpollinginterval" in raw else 60.0
        if max_polling < 0.1:
            raise ConfigError("extensions.queues.maxPollingInterval must be at least 00:00:00.1")
        max_dequeue = int(raw.get("maxdequeuecount", 5))
        if max_dequeue < 1:
            raise ConfigError("extensions.queues.maxDequeueCount must be at least 1")
        encoding = str(raw.get("messageencoding", "base64")).lower()
        if encoding not in ("base64", "none"):
            raise ConfigError(f"extensions.queues.messageEncoding must be base64 or none, not {encoding!r}")
        return cls(
            batch_size=batch_size,
            new_batch_threshold=threshold,
            max_polling_interval=max_polling,
            visibility_timeout=parse_timespan(raw["visibilitytimeout"])
            if "visibilitytimeout" in raw
            else 0.0,
            max_dequeue_count=max_dequeue,
            message_encoding=encoding,
        )


@dataclass(frozen=True)
class HostConfig:
    route_prefix: str = "api"
    # None = unbounded. 30 minutes is the default of the Flex Consumption, Premium and Dedicated plans.
    function_timeout: float | None = 1800.0
    queues: QueueOptions = field(default_factory=QueueOptions)
    extension_bundle: dict | None = None

    @classmethod
    def from_json(cls, document: Any) -> HostConfig:
        raw = _lower_keys(document)
        if "version" not in raw:
            raise ConfigError("The host.json file is missing the required 'version' property.")
        if str(raw["version"]) != "2.0":
            raise ConfigError(f"'{raw['version']}' is an invalid value for host.json 'version' property.")
        extensions = _lower_keys(raw.get("extensions"))
        http = _lower_keys(extensions.get("http"))
        timeout_text = raw.get("functiontimeout")
        if timeout_text is None:
            timeout = cls.function_timeout
        elif str(timeout_text).strip() == "-1":
            timeout = None
        else:
            timeout = parse_timespan(str(timeout_text))
        bundle = raw.get("extensionbundle")
        return cls(
            route_prefix=str(http.get("routeprefix", "api")).strip("/"),
            function_timeout=timeout,
            queues=QueueOptions.from_json(extensions.get("queues")),
            extension_bundle=bundle if isinstance(bundle, dict) else None,
        )


HOST_OVERRIDE_PREFIX = "AzureFunctionsJobHost__"


def apply_host_overrides(document: Any, environ: Mapping[str, str]) -> Any:
    """host.json with app-setting overrides applied, as the host's .NET configuration does it: a setting
    ``AzureFunctionsJobHost__extensions__queues__visibilityTimeout`` sets ``extensions.queues.visibilityTimeout``
    (``__`` separates the levels, keys match case-insensitively, missing sections are created, values are
    strings). The document itself is not changed."""
    result = copy.deepcopy(document) if isinstance(document, dict) else {}
    prefix = HOST_OVERRIDE_PREFIX.lower()
    for name in sorted(environ):
        if not name.lower().startswith(prefix) or len(name) == len(prefix):
            continue
        *sections, leaf = name[len(prefix) :].split("__")
        node = result
        for part in sections:
            key = _matching_key(node, part)
            if not isinstance(node.get(key), dict):
                node[key] = {}  # a value where a section is needed: the setting's section wins
            node = node[key]
        node[_matching_key(node, leaf)] = environ[name]
    return result


def _matching_key(section: dict, name: str) -> str:
    """The existing key that ``name`` addresses ignoring case, else ``name`` itself."""
    return next((key for key in section if str(key).lower() == name.lower()), name)


def load_host_config(app_dir: Path, environ: Mapping[str, str] = os.environ) -> HostConfig:
    """host.json of ``app_dir`` with the ``AzureFunctionsJobHost__*`` settings of ``environ`` applied."""
    path = app_dir / "host.json"
    if not path.is_file():
        raise ConfigError(f"Unable to find project root. Expecting to find host.json in {app_dir}")
    try:
        document = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as error:
        raise ConfigError(f"host.json is not valid JSON: {error}") from None
    return HostConfig.from_json(apply_host_overrides(document, environ))


def apply_local_settings(app_dir: Path, environ: MutableMapping[str, str]) -> dict[str, str]:
    """Copy local.settings.json "Values" into ``environ`` where not already set (the environment wins,
    as with Core Tools). Returns the values that were applied."""
    path = app_dir / "local.settings.json"
    if not path.is_file():
        return {}
    try:
        values = json.loads(path.read_text(encoding="utf-8-sig")).get("Values") or {}
    except (json.JSONDecodeError, AttributeError) as error:
        raise ConfigError(f"local.settings.json is not valid: {error}") from None
    applied = {str(k): str(v) for k, v in values.items() if str(k) not in environ and v is not None}
    environ.update(applied)
    return applied


_SETTING_REF = re.compile(r"%([^%]+)%")


def resolve_setting_refs(text: str, environ: Mapping[str, str] = os.environ) -> str:
    """Binding expressions like ``%QUEUE_NAME%`` are app-setting lookups, resolved at indexing time."""

    def lookup(match: re.Match) -> str:
        if match.group(1) not in environ:
            raise ConfigError(f"'{match.group(0)}' does not resolve to a value.")
        return environ[match.group(1)]

    return _SETTING_REF.sub(lookup, text)
