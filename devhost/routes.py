"""ASP.NET Core route templates as the Functions host matches them for HTTP triggers.

Supported: literal segments (case-insensitive), ``{name}``, ``{name?}`` (optional), ``{name=default}``,
``{*rest}`` (catch-all), inline constraints ``{id:int}``, ``{id:guid}``, ``{n:int:min(1)}``, ... and
several parameters in one segment (``{file}.{ext}``). A request whose method is not among the function's
methods does not match at all: the host answers 404, not 405 (azure-functions-host#10098).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

_PARAM = re.compile(r"\{([^{}]+)\}")


def _is_int(value: str, bits: int) -> bool:
    return bool(re.fullmatch(r"-?\d+", value)) and -(2 ** (bits - 1)) <= int(value) < 2 ** (bits - 1)


def _is_float(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return value.strip().lower() not in ("nan", "inf", "-inf", "infinity", "-infinity")


def _is_guid(value: str) -> bool:
    try:
        uuid.UUID(value.strip("{}()"))
    except ValueError:
        return False
    return True


def _is_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


_SIMPLE_CONSTRAINTS: dict[str, Callable[[str], bool]] = {
    "int": lambda v: _is_int(v, 32),
    "long": lambda v: _is_int(v, 64),
    "bool": lambda v: v.lower() in ("true", "false"),
    "guid": _is_guid,
    "alpha": lambda v: bool(re.fullmatch(r"[A-Za-z]+", v)),
    "double": _is_float,
    "float": _is_float,
    "decimal": _is_float,
    "datetime": _is_datetime,
}


def _constraint(text: str) -> Callable[[str], bool]:
    match = re.fullmatch(r"(\w+)(?:\((.*)\))?", text, re.S)
    if not match:
        raise ValueError(f"invalid route constraint '{text}'")
    name, arg = match.group(1).lower(), match.group(2)
    if arg is None and name in _SIMPLE_CONSTRAINTS:
        return _SIMPLE_CONSTRAINTS[name]
    if arg is not None:
        if name == "regex":
            pattern = re.compile(arg, re.IGNORECASE)
            return lambda v: bool(pattern.search(v))
        numbers = [int(n) for n in arg.split(",")]
        checks: dict[str, Callable[[str], bool]] = {
            "min": lambda v: _is_int(v, 64) and int(v) >= numbers[0],
            "max": lambda v: _is_int(v, 64) and int(v) <= numbers[0],
            "range": lambda v: _is_int(v, 64) and numbers[0] <= int(v) <= numbers[-1],
            "minlength": lambda v: len(v) >= numbers[0],
            "maxlength": lambda v: len(v) <= numbers[0],
            "length": lambda v: (
                (len(v) == numbers[0]) if len(numbers) == 1 else numbers[0] <= len(v) <= numbers[1]
            ),
        }
        if name in checks:
            return checks[name]
    raise ValueError(f"unknown route constraint '{text}'")


@dataclass
class _Parameter:
    name: str
    optional: bool = False
    default: str | None = None
    catch_all: bool = False
    constraints: list[Callable[[str], bool]] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str) -> _Parameter:
        catch_all = text.startswith("*")
        text = text.lstrip("*")
        default = None
        if "=" in text:
            text, default = text.split("=", 1)
        parts = re.split(r":(?![^(]*\))", text)  # colons outside constraint arguments
        name, constraint_texts = parts[0], parts[1:]
        optional = name.endswith("?") or (constraint_texts and constraint_texts[-1].endswith("?"))
        name = name.rstrip("?")
        constraint_texts = [c.rstrip("?") for c in constraint_texts]
        return cls(name, bool(optional), default, catch_all, [_constraint(c) for c in constraint_texts])


@dataclass
class RouteTemplate:
    template: str
    pattern: re.Pattern
    parameters: dict[str, _Parameter]
    precedence: tuple[int, ...]

    @classmethod
    def compile(cls, template: str) -> RouteTemplate:
        segments = [s for s in template.strip("/").split("/")] if template.strip("/") else []
        regex, parameters, precedence = "", {}, []
        for segment in segments:
            pieces = _PARAM.split(segment)  # literal, param, literal, param, ...
            params_here = [_Parameter.parse(p) for p in pieces[1::2]]
            for param in params_here:
                parameters[param.name] = param
            if len(pieces) == 1:
                precedence.append(1)  # ASP.NET inbound precedence: literal segments first
                regex += "/" + re.escape(segment)
                continue
            if len(pieces) == 3 and pieces[0] == pieces[2] == "":
                param = params_here[0]
                precedence.append(5 if param.catch_all else 3 if param.constraints else 4)
                body = ".*" if param.catch_all else "[^/]+"
                optional = param.optional or param.default is not None or param.catch_all
                regex += f"(?:/(?P<{param.name}>{body}))?" if optional else f"/(?P<{param.name}>{body})"
                continue
            precedence.append(2)  # a complex segment such as {file}.{ext}
            regex += "/" + "".join(
                re.escape(piece) if i % 2 == 0 else f"(?P<{params_here[i // 2].name}>[^/]+?)"
                for i, piece in enumerate(pieces)
            )
        return cls(template, re.compile(f"^{regex}/?$", re.IGNORECASE), parameters, tuple(precedence))

    def match(self, path: str) -> dict[str, str] | None:
        found = self.pattern.match("/" + path.strip("/") if path.strip("/") else "")
        if not found:
            return None
        values: dict[str, str] = {}
        for name, param in self.parameters.items():
            value = found.group(name)
            if value is None:
                if param.default is not None:
                    values[name] = param.default
                continue
            if not all(check(value) for check in param.constraints):
                return None
            values[name] = value
        return values
