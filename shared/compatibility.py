"""Which module versions work on which PowerShell host: the compatibility matrix (compatibility.json).

Pure domain rules, no I/O beyond reading the packaged data file once. The policy checks its pins against
the matrix when it loads, and every request's module versions before anything is written, so a
combination that real jobs are known to fail with (ExchangeOnlineManagement 3.5.1 on PowerShell 7.2, a
prerelease PowerShellGet, ...) is refused with the reason, its source and the versions that would work.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache, total_ordering
from importlib import resources
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.constants import MODULE_NAMES

_VERSION = re.compile(r"^(?P<numbers>\d+(?:\.\d+){0,3})(?:-(?P<label>[A-Za-z0-9.]+))?$")


@total_ordering
@dataclass(frozen=True)
class ModuleVersion:
    """A PowerShell module version: up to four numbers and an optional prerelease label (3.0.19-beta19).
    A prerelease sorts before its release, as in PowerShell Gallery."""

    numbers: tuple[int, int, int, int]
    label: str | None

    @classmethod
    def parse(cls, text: str) -> ModuleVersion:
        match = _VERSION.fullmatch(text)
        if match is None:
            raise ValueError(f"'{text}' is not a module version such as 3.5.1, 1.4.8.1 or 3.0.19-beta19")
        numbers = [int(part) for part in match["numbers"].split(".")]
        padded = (*numbers, 0, 0, 0)[:4]
        return cls((padded[0], padded[1], padded[2], padded[3]), match["label"])

    @property
    def prerelease(self) -> bool:
        return self.label is not None

    def _key(self) -> tuple[tuple[int, int, int, int], int, str]:
        return self.numbers, 0 if self.prerelease else 1, self.label or ""

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, ModuleVersion):
            return NotImplemented
        return self._key() < other._key()


class _Host(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    description: str
    powershell: str
    source: str


class _Rule(BaseModel):
    """One known-bad range of one module on some hosts; exactly one of below/from/exactly/prerelease."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    module: str
    below: str | None = None
    from_: str | None = Field(default=None, alias="from")
    exactly: str | None = None
    prerelease: Literal[True] | None = None
    hosts: Literal["*"] | list[str]
    reason: str
    source: str

    @field_validator("module")
    @classmethod
    def _known_module(cls, module: str) -> str:
        if module not in MODULE_NAMES:
            raise ValueError(f"'{module}' is not one of {', '.join(MODULE_NAMES)}")
        return module

    @model_validator(mode="after")
    def _one_condition(self) -> _Rule:
        conditions = [self.below, self.from_, self.exactly, self.prerelease]
        if sum(condition is not None for condition in conditions) != 1:
            raise ValueError(f"rule for {self.module}: give exactly one of below, from, exactly, prerelease")
        for version in (self.below, self.from_, self.exactly):
            if version is not None:
                ModuleVersion.parse(version)
        return self

    def applies_to(self, host: str) -> bool:
        return self.hosts == "*" or host in self.hosts

    def matches(self, version: ModuleVersion) -> bool:
        if self.prerelease:
            return version.prerelease
        if self.exactly is not None:
            return version == ModuleVersion.parse(self.exactly)
        if self.below is not None:
            return version < ModuleVersion.parse(self.below)
        assert self.from_ is not None
        return version >= ModuleVersion.parse(self.from_)


class _MatrixFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    about: str
    hosts: dict[str, _Host]
    rules: list[_Rule]
    defaults: dict[str, dict[str, str]]
    sources: dict[str, str]

    @model_validator(mode="after")
    def _references_resolve(self) -> _MatrixFile:
        for name, host in self.hosts.items():
            _check_sources(host.source, self.sources, f"hosts.{name}")
        for index, rule in enumerate(self.rules):
            _check_sources(rule.source, self.sources, f"rules[{index}]")
            unknown = [] if rule.hosts == "*" else [h for h in rule.hosts if h not in self.hosts]
            if unknown:
                raise ValueError(f"rules[{index}]: unknown hosts {unknown}")
        if set(self.defaults) != set(self.hosts):
            raise ValueError("defaults must name a version set for every host")
        return self


def _check_sources(names: str, sources: Mapping[str, str], where: str) -> None:
    missing = [name.strip() for name in names.split(",") if name.strip() not in sources]
    if missing:
        raise ValueError(f"{where}: unknown sources {missing}")


@dataclass(frozen=True)
class Incompatibility:
    """Why one module version does not work on one host, and what would."""

    module: str
    version: str
    host: str
    reason: str
    source: str
    works: str  # e.g. "ExchangeOnlineManagement 3.0.0 or later, before 3.5.0 (default 3.4.0)"

    @property
    def message(self) -> str:
        return f"{self.module} {self.version} does not work on PowerShell {self.host}: {self.reason}"


class CompatibilityMatrix:
    def __init__(self, data: _MatrixFile) -> None:
        self._data = data

    @property
    def hosts(self) -> list[str]:
        return list(self._data.hosts)

    def defaults(self, host: str) -> dict[str, str]:
        return dict(self._data.defaults[host])

    def source(self, name: str) -> str:
        return self._data.sources[name]

    def problems(self, host: str, modules: Mapping[str, str]) -> list[Incompatibility]:
        """Every module version in ``modules`` that is known not to work on ``host`` (empty: all work)."""
        if host not in self._data.hosts:
            raise KeyError(f"no compatibility facts for PowerShell host '{host}'")
        found = []
        for module, text in modules.items():
            version = ModuleVersion.parse(text)
            rule = next((r for r in self._rules(host, module) if r.matches(version)), None)
            if rule is not None:
                found.append(
                    Incompatibility(
                        module=module,
                        version=text,
                        host=host,
                        reason=rule.reason,
                        source=rule.source,
                        works=self.what_works(host, module),
                    )
                )
        return found

    def what_works(self, host: str, module: str) -> str:
        """The versions of ``module`` that work on ``host``, in words."""
        rules = list(self._rules(host, module))
        floors = [ModuleVersion.parse(r.below) for r in rules if r.below]
        ceilings = [ModuleVersion.parse(r.from_) for r in rules if r.from_]
        exceptions = [r.exactly for r in rules if r.exactly]
        bounds = []
        if floors:
            bounds.append(f"{_text(max(floors))} or later")
        if ceilings:
            bounds.append(f"before {_text(min(ceilings))}")
        words = f"{module} {', '.join(bounds) if bounds else '(any release)'}"
        if exceptions:
            words += f" except {', '.join(exceptions)}"
        if any(r.prerelease for r in rules):
            words += ", no prerelease"
        default = self._data.defaults[host].get(module)
        return f"{words} (default {default})" if default else words

    def _rules(self, host: str, module: str) -> list[_Rule]:
        return [r for r in self._data.rules if r.module == module and r.applies_to(host)]


def _text(version: ModuleVersion) -> str:
    numbers = list(version.numbers)
    while len(numbers) > 3 and numbers[-1] == 0:
        numbers.pop()
    return ".".join(map(str, numbers)) + (f"-{version.label}" if version.label else "")


@cache
def load_matrix() -> CompatibilityMatrix:
    """The packaged matrix (shared/compatibility.json), validated once per process."""
    text = resources.files("shared").joinpath("compatibility.json").read_text("utf-8")
    return CompatibilityMatrix(_MatrixFile.model_validate(json.loads(text)))
