"""How a Graph resource type looks to the query engine: its properties, navigation properties and
which ``$filter`` operators the real service accepts on which property."""

from __future__ import annotations

from dataclasses import dataclass, field

from emulator.http import GraphError

SELECT_EXPAND_FAILED = "Parsing OData Select and Expand failed: "


@dataclass(frozen=True)
class EntityType:
    """What a Graph resource type looks like to the query engine."""

    name: str  # OData name after "microsoft.graph.", e.g. "servicePrincipal"
    resource: str  # the name directory errors use, e.g. "ServicePrincipal"
    properties: dict[
        str, str
    ]  # structural property -> Edm type ("Edm.String", "Collection(Edm.String)", ...)
    navigations: frozenset[str] = frozenset()
    # property -> $filter operators supported by default ("eq", "in", "startsWith", "any")
    filters: dict[str, frozenset[str]] = field(default_factory=dict)
    # properties that also take ne / not in advanced queries (directory objects only)
    advanced_filters: frozenset[str] = frozenset()
    # properties $orderby accepts (in advanced queries for directory objects)
    orderby: frozenset[str] = frozenset()
    # properties $search looks into (directory objects, advanced queries only)
    search: frozenset[str] = frozenset()
    directory_object: bool = True
    default_page_size: int = 100

    def resolve(self, name: str) -> str | None:
        """The canonical spelling of a property or navigation property (Graph is case-insensitive)."""
        wanted = name.lower()
        for candidate in (*self.properties, *self.navigations):
            if candidate.lower() == wanted:
                return candidate
        return None

    def property_type(self, name: str) -> str | None:
        return self.properties.get(name)

    def unknown_property(self, name: str, context: str) -> GraphError:
        return GraphError(
            400,
            "BadRequest",
            f"{context}Could not find a property named '{name}' on type 'microsoft.graph.{self.name}'.",
        )


def unsupported(message: str) -> GraphError:
    return GraphError(400, "Request_UnsupportedQuery", message)
