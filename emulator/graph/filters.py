"""A safe parser for the OData ``$filter`` subset Microsoft Graph accepts on directory resources.

No ``eval``: a tokenizer and a recursive-descent parser build a small syntax tree, which is then
checked against the resource's :class:`EntityType` and compiled into a plain Python predicate over the
resource's JSON. Errors follow the real service:

* malformed syntax, unknown properties or functions, mismatched literal types
  -> 400 ``BadRequest`` "Invalid filter clause: ..." (the OData parser's message);
* a real property the resource cannot filter on, or an operator it does not support there
  -> 400 ``Request_UnsupportedQuery``;
* ``ne`` / ``not`` / ``endsWith`` without the advanced query parameters -> 400 ``Request_UnsupportedQuery``.

String comparisons are case-insensitive, as they are in Entra ID.

Grammar (OData precedence, keywords case-insensitive as Graph accepts them)::

    or_expr    := and_expr ("or" and_expr)*
    and_expr   := unary ("and" unary)*
    unary      := "not" unary | comparison
    comparison := primary [(eq|ne|gt|ge|lt|le) primary | "in" "(" literal ("," literal)* ")"]
    primary    := "(" or_expr ")" | literal | name "(" args ")" | path ["/" (any|all) "(" [var ":" or_expr] ")"]
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from emulator.graph.schema import EntityType, unsupported
from emulator.http import GraphError

Predicate = Callable[[dict], bool]

NEEDS_ADVANCED = (
    "Operator '{op}' is not supported because the required parameters might be missing. Try adding "
    "$count=true query parameter and ConsistencyLevel:eventual header. Refer to "
    "https://aka.ms/graph-docs/advanced-queries for more information"
)
COMPARISONS = {
    "eq": "Equal",
    "ne": "NotEqual",
    "gt": "GreaterThan",
    "ge": "GreaterThanOrEqual",
    "lt": "LessThan",
    "le": "LessThanOrEqual",
}
# OData's built-in functions: known to the parser, mostly not supported by Entra ID.
CANONICAL_FUNCTIONS = {
    "startswith",
    "endswith",
    "contains",
    "length",
    "indexof",
    "substring",
    "tolower",
    "toupper",
    "trim",
    "concat",
    "year",
    "month",
    "day",
    "hour",
    "minute",
    "second",
    "date",
    "time",
    "now",
    "round",
    "floor",
    "ceiling",
    "cast",
    "isof",
}


def invalid(message: str) -> GraphError:
    return GraphError(400, "BadRequest", f"Invalid filter clause: {message}")


# --------------------------------------------------------------------------------------------------
# Tokens


@dataclass(frozen=True)
class Token:
    kind: str  # string guid datetime number bool null name ( ) , : / end
    value: Any
    pos: int


_SIMPLE_LITERALS = [
    (
        "guid",
        re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(?![\w-])"),
    ),
    (
        "datetime",
        re.compile(r"\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2}))?(?![\w:-])"),
    ),
    ("number", re.compile(r"-?\d+(?:\.\d+)?(?![\w.])")),
    ("name", re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")),
]


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        char = text[pos]
        if char.isspace():
            pos += 1
            continue
        if char in "(),:/":
            tokens.append(Token(char, char, pos))
            pos += 1
            continue
        if char == "'":
            value, pos = _read_string(text, pos)
            tokens.append(Token("string", value, pos))
            continue
        for kind, pattern in _SIMPLE_LITERALS:
            match = pattern.match(text, pos)
            if match:
                word = match.group(0)
                if kind == "name" and word.lower() in ("true", "false"):
                    tokens.append(Token("bool", word.lower() == "true", pos))
                elif kind == "name" and word.lower() == "null":
                    tokens.append(Token("null", None, pos))
                else:
                    tokens.append(Token(kind, word, pos))
                pos = match.end()
                break
        else:
            raise invalid(f"Syntax error: character '{char}' is not valid at position {pos} in '{text}'.")
    tokens.append(Token("end", None, len(text)))
    return tokens


def _read_string(text: str, start: int) -> tuple[str, int]:
    """A quoted literal with '' as the escaped quote; returns (value, position after it)."""
    value, pos = [], start + 1
    while pos < len(text):
        if text[pos] == "'":
            if text[pos + 1 : pos + 2] == "'":
                value.append("'")
                pos += 2
                continue
            return "".join(value), pos + 1
        value.append(text[pos])
        pos += 1
    raise invalid(f"There is an unterminated string literal at position {start} in '{text}'.")


# --------------------------------------------------------------------------------------------------
# Syntax tree


@dataclass(frozen=True)
class Literal:
    kind: str  # string guid datetime number bool null
    value: Any

    @property
    def edm(self) -> str | None:
        return {
            "string": "Edm.String",
            "guid": "Edm.Guid",
            "datetime": "Edm.DateTimeOffset",
            "number": "Edm.Int32",
            "bool": "Edm.Boolean",
        }.get(self.kind)


@dataclass(frozen=True)
class Path:
    segments: tuple[str, ...]


@dataclass(frozen=True)
class Lambda:
    path: Path
    kind: str  # any | all
    variable: str | None
    body: Any


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Any, ...]


@dataclass(frozen=True)
class Compare:
    op: str
    left: Any
    right: Any


@dataclass(frozen=True)
class In:
    left: Any
    values: tuple[Literal, ...]


@dataclass(frozen=True)
class BoolOp:
    op: str  # and | or
    left: Any
    right: Any


@dataclass(frozen=True)
class Not:
    operand: Any


class Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.index = 0

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def _keyword(self, *words: str) -> str | None:
        token = self.current
        if token.kind == "name" and token.value.lower() in words:
            self.index += 1
            return token.value.lower()
        return None

    def _expect(self, kind: str, message: str) -> Token:
        token = self.current
        if token.kind != kind:
            raise invalid(message.format(pos=token.pos, text=self.text))
        self.index += 1
        return token

    def parse(self) -> Any:
        if self.current.kind == "end":
            raise invalid(f"Expression expected at position 0 in '{self.text}'.")
        node = self.or_expr()
        if self.current.kind != "end":
            raise invalid(f"Syntax error at position {self.current.pos} in '{self.text}'.")
        return node

    def or_expr(self) -> Any:
        node = self.and_expr()
        while self._keyword("or"):
            node = BoolOp("or", node, self.and_expr())
        return node

    def and_expr(self) -> Any:
        node = self.unary()
        while self._keyword("and"):
            node = BoolOp("and", node, self.unary())
        return node

    def unary(self) -> Any:
        if self._keyword("not"):
            return Not(self.unary())
        return self.comparison()

    def comparison(self) -> Any:
        left = self.primary()
        op = self._keyword(*COMPARISONS)
        if op:
            return Compare(op, left, self.primary())
        if self._keyword("in"):
            self._expect("(", "'(' expected at position {pos} in '{text}'.")
            values = [self._literal()]
            while self.current.kind == ",":
                self.index += 1
                values.append(self._literal())
            self._expect(")", "')' or ',' expected at position {pos} in '{text}'.")
            return In(left, tuple(values))
        return left

    def _literal(self) -> Literal:
        token = self.current
        if token.kind not in ("string", "guid", "datetime", "number", "bool", "null"):
            raise invalid(f"Expression expected at position {token.pos} in '{self.text}'.")
        self.index += 1
        return Literal(token.kind, token.value)

    def primary(self) -> Any:
        token = self.current
        if token.kind == "(":
            self.index += 1
            node = self.or_expr()
            self._expect(")", "')' or operator expected at position {pos} in '{text}'.")
            return node
        if token.kind in ("string", "guid", "datetime", "number", "bool", "null"):
            return self._literal()
        if token.kind != "name":
            raise invalid(f"Expression expected at position {token.pos} in '{self.text}'.")
        self.index += 1
        if self.current.kind == "(":
            return self._call(token.value)
        segments = [token.value]
        while self.current.kind == "/":
            self.index += 1
            name = self._expect("name", "Expression expected at position {pos} in '{text}'.").value
            if name.lower() in ("any", "all") and self.current.kind == "(":
                return self._lambda(Path(tuple(segments)), name.lower())
            segments.append(name)
        return Path(tuple(segments))

    def _call(self, name: str) -> Call:
        self._expect("(", "'(' expected at position {pos} in '{text}'.")
        args = []
        if self.current.kind != ")":
            args.append(self.or_expr())
            while self.current.kind == ",":
                self.index += 1
                args.append(self.or_expr())
        self._expect(")", "')' or ',' expected at position {pos} in '{text}'.")
        return Call(name, tuple(args))

    def _lambda(self, path: Path, kind: str) -> Lambda:
        self._expect("(", "'(' expected at position {pos} in '{text}'.")
        if self.current.kind == ")":
            self.index += 1
            return Lambda(path, kind, None, None)
        variable = self._expect("name", "Expression expected at position {pos} in '{text}'.").value
        self._expect(":", "':' expected at position {pos} in '{text}'.")
        body = self.or_expr()
        self._expect(")", "')' or operator expected at position {pos} in '{text}'.")
        return Lambda(path, kind, variable, body)


# --------------------------------------------------------------------------------------------------
# Checking and compiling


class Compiler:
    """Turns a syntax tree into a predicate, raising the service's error for what it would refuse."""

    def __init__(self, entity: EntityType, advanced: bool) -> None:
        self.entity = entity
        self.advanced = advanced

    def unsupported_property(self, name: str) -> GraphError:
        return unsupported(
            f"Unsupported or invalid query filter clause specified for property '{name}' of resource "
            f"'{self.entity.resource}'."
        )

    def require_advanced(self, op: str) -> None:
        if not self.entity.directory_object:
            raise unsupported(f"Unsupported query operator '{op}'.")
        if not self.advanced:
            raise unsupported(NEEDS_ADVANCED.format(op=op))

    def boolean(self, node: Any, variable: str | None = None) -> Predicate:
        if isinstance(node, BoolOp):
            left, right = self.boolean(node.left, variable), self.boolean(node.right, variable)
            if node.op == "and":
                return lambda item: left(item) and right(item)
            return lambda item: left(item) or right(item)
        if isinstance(node, Not):
            self.require_advanced("not")
            operand = self.boolean(node.operand, variable)
            return lambda item: not operand(item)
        if isinstance(node, Compare):
            return self.compare(node, variable)
        if isinstance(node, In):
            return self.membership(node, variable)
        if isinstance(node, Call):
            return self.call(node, variable)
        if isinstance(node, Lambda):
            return self.lambda_(node)
        raise invalid("The $filter expression must evaluate to a single boolean value.")

    def operand(self, node: Any, variable: str | None, op: str) -> tuple[str, str]:
        """(property name or the lambda variable, its Edm type) for the left side of ``op``."""
        if not isinstance(node, Path):
            raise unsupported("Unsupported query.")
        advanced_only = op in ("ne", "not", "endsWith")
        if variable is not None and node.segments == (variable,):
            if advanced_only:
                self.require_advanced(op)
            return variable, "Edm.String"
        name = node.segments[0]
        canonical = self.entity.resolve(name)
        if canonical is None:
            raise invalid(
                f"Could not find a property named '{name}' on type 'microsoft.graph.{self.entity.name}'."
            )
        edm = self.entity.property_type(canonical)
        if len(node.segments) > 1 or edm is None or not edm.startswith("Edm."):
            raise self.unsupported_property(canonical)
        allowed = self.entity.filters.get(canonical, frozenset())
        if op in ("ne", "not"):
            supported = "eq" in allowed and canonical in self.entity.advanced_filters
        else:
            supported = op in allowed
        if not supported:
            raise self.unsupported_property(canonical)
        if advanced_only:
            self.require_advanced(op)
        return canonical, edm

    @staticmethod
    def check_types(edm: str, literal: Literal, op: str) -> None:
        if literal.kind != "null" and literal.edm != edm:
            raise invalid(
                "A binary operator with incompatible types was detected. Found operand types "
                f"'{edm}' and '{literal.edm}' for operator kind '{COMPARISONS[op]}'."
            )

    def value_of(self, name: str, variable: str | None) -> Callable[[Any], Any]:
        if name == variable:
            return lambda element: element
        return lambda item: item.get(name)

    def compare(self, node: Compare, variable: str | None) -> Predicate:
        if isinstance(node.left, Literal) and isinstance(node.right, Literal):
            raise unsupported("Unsupported query.")
        name, edm = self.operand(node.left, variable, node.op)
        if not isinstance(node.right, Literal):
            raise unsupported("Unsupported query.")
        self.check_types(edm, node.right, node.op)
        if node.right.kind == "null":
            raise self.unsupported_property(name)
        get = self.value_of(name, variable)
        wanted = normalize(node.right.value)
        # operand() has refused every operator but eq and ne (no resource here filters on gt/ge/lt/le).
        if node.op == "ne":
            return lambda item: normalize(get(item)) != wanted
        return lambda item: normalize(get(item)) == wanted

    def membership(self, node: In, variable: str | None) -> Predicate:
        name, edm = self.operand(node.left, variable, "in")
        for literal in node.values:
            self.check_types(edm, literal, "eq")
        get = self.value_of(name, variable)
        wanted = {normalize(literal.value) for literal in node.values}
        return lambda item: normalize(get(item)) in wanted

    def call(self, node: Call, variable: str | None) -> Predicate:
        function = node.name.lower()
        if function not in CANONICAL_FUNCTIONS:
            raise invalid(
                f"An unknown function with name '{node.name}' was found. This may also be a function import "
                "or a key lookup on a navigation property, which is not allowed."
            )
        if function == "contains":
            raise unsupported("Unsupported property filter clause operator 'Contains'.")
        if function not in ("startswith", "endswith"):
            raise unsupported("Unsupported query.")
        signature = (
            f"No function signature for the function with name '{node.name}' matches the specified "
            f"arguments. The function signatures considered are: {function}(Edm.String Nullable=true, "
            "Edm.String Nullable=true)."
        )
        if len(node.args) != 2 or not isinstance(node.args[1], Literal):
            raise invalid(signature)
        op = "startsWith" if function == "startswith" else "endsWith"
        name, edm = self.operand(node.args[0], variable, op)
        if edm != "Edm.String" or node.args[1].kind != "string":
            raise invalid(signature)
        get = self.value_of(name, variable)
        prefix = node.args[1].value.lower()
        if function == "startswith":
            return lambda item: str(get(item) or "").lower().startswith(prefix)
        return lambda item: str(get(item) or "").lower().endswith(prefix)

    def lambda_(self, node: Lambda) -> Predicate:
        name = node.path.segments[0]
        canonical = self.entity.resolve(name)
        if canonical is None:
            raise invalid(
                f"Could not find a property named '{name}' on type 'microsoft.graph.{self.entity.name}'."
            )
        if (
            len(node.path.segments) > 1
            or node.kind != "any"
            or "any" not in self.entity.filters.get(canonical, frozenset())
        ):
            raise unsupported(f"Complex query on property {canonical} is not supported.")
        if node.body is None:
            return lambda item: bool(item.get(canonical))
        inner = self.boolean(node.body, node.variable)
        return lambda item: any(inner(element) for element in item.get(canonical) or [])


def normalize(value: Any) -> Any:
    """Entra ID compares strings (and GUIDs) case-insensitively."""
    return value.lower() if isinstance(value, str) else value


def compile_filter(text: str, entity: EntityType, *, advanced: bool) -> Predicate:
    """The predicate for ``$filter=text`` on ``entity``, or the error the real service returns."""
    return Compiler(entity, advanced).boolean(Parser(text).parse())
