"""JSON Pointer fragments of ``$ref`` values (RFC 6901 inside a URI fragment), resolved in place.

One resolver for the library: validation, derivation and compatibility follow the same local
references the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

NOT_FOUND = object()


def resolve_pointer(root: Any, fragment: str) -> Any:
    """The node ``fragment`` (``/a/0/b``, without ``#``) names in ``root``; ``NOT_FOUND`` if none.

    Each token is URI-decoded (a fragment is part of a URI) and then ``~1``/``~0`` unescaped.
    """
    node = root
    if not fragment:
        return node
    if not fragment.startswith("/"):
        return NOT_FOUND
    for raw in fragment[1:].split("/"):
        token = unquote(raw).replace("~1", "/").replace("~0", "~")
        if isinstance(node, Mapping) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return NOT_FOUND
    return node
