"""OP#7 relationship resolution: the graph of what a GTS entity refers to, and broken links.

A type schema refers to its parent type (the ``$id`` chain), to every GTS ``$ref`` target and to
every concrete ``x-gts-ref`` operand; an instance refers to its type and to every string value
that is a GTS identifier. Each node is expanded once (a repeated or cyclic reference appears as
a bare ``{"id": ...}`` node). A reference to an entity that is not registered is a broken
reference: its node carries ``errors`` and it is listed in ``broken_references``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from hyperspot.platform.gts import refs
from hyperspot.platform.gts.ids import GTS_URI_PREFIX, GtsError, is_valid_id
from hyperspot.platform.gts.store import GtsEntity, GtsStore
from hyperspot.platform.gts.validation import dialect_of, iter_schema_nodes

_MAX_NODES = 10_000


def _schema_links(content: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(source path, target id) for the GTS ``$ref`` targets and concrete x-gts-ref operands."""
    try:
        dialect = dialect_of(content)
    except GtsError:
        dialect = "2020-12"
    for path, node in iter_schema_nodes(content, dialect):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(GTS_URI_PREFIX):
            target = ref[len(GTS_URI_PREFIX) :].partition("#")[0]
            if is_valid_id(target):
                yield f"{path}/$ref", target
        operand = node.get(refs.KEYWORD)
        if isinstance(operand, str) and is_valid_id(operand):
            yield f"{path}/{refs.KEYWORD}", operand


def _instance_links(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(JSON Pointer, identifier) for every string value of a document that is a GTS id."""
    if isinstance(value, str):
        if is_valid_id(value):
            yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            token = str(key).replace("~", "~0").replace("/", "~1")
            yield from _instance_links(item, f"{path}/{token}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _instance_links(item, f"{path}/{index}")


class _Graph:
    def __init__(self, store: GtsStore) -> None:
        self.store = store
        self.seen: set[str] = set()
        self.broken: list[dict[str, str]] = []

    def node(self, gts_id: str) -> dict[str, Any]:
        node: dict[str, Any] = {"id": gts_id}
        if gts_id in self.seen or len(self.seen) >= _MAX_NODES:
            return node
        self.seen.add(gts_id)
        entity = self.store.get(gts_id)
        if entity is None:
            node["errors"] = ["Entity not found"]
            return node
        node["entity_type"] = "schema" if entity.is_type else "instance"
        if entity.type_id is not None:
            node["type_id"] = self.link(gts_id, "type_id", entity.type_id)
        links: dict[str, Any] = {}
        for path, target in self._links(entity):
            if target not in (gts_id, entity.type_id):
                links[path] = self.link(gts_id, path, target)
        if links:
            node["refs"] = links
        return node

    def link(self, source: str, path: str, target: str) -> dict[str, Any]:
        child = self.node(target)
        if child.get("errors"):
            self.broken.append({"from": source, "path": path, "to": target})
        return child

    @staticmethod
    def _links(entity: GtsEntity) -> Iterator[tuple[str, str]]:
        if entity.is_type:
            return _schema_links(entity.content)
        return _instance_links(entity.content)


def resolve_relationships(store: GtsStore, gts_id: str) -> dict[str, Any]:
    """OP#7 ``/resolve-relationships`` body.

    ``{"id", "entity_type"?, "type_id"?: node, "refs"?: {path: node}, "errors"?: [...],
    "broken_references": [{"from", "path", "to"}], "ok"}`` where a node has the same shape
    (without the last two members); ``ok`` is false when the entity or a reference is missing.
    """
    graph = _Graph(store)
    root = graph.node(gts_id)
    root["broken_references"] = graph.broken
    root["ok"] = not graph.broken and "errors" not in root
    return root
