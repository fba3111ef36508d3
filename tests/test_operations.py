"""The operation builder refuses incomplete or colliding declarations, naming them."""

from __future__ import annotations

import re

import pytest
from pydantic import BaseModel

from hyperspot.platform import Call, OperationError, RestApi
from hyperspot.platform.gateway.operations import check_unique


class Item(BaseModel):
    id: str


class ItemPath(BaseModel):
    item_id: str


async def handler(call: Call) -> Item:
    return Item(id="1")


def complete(
    api: RestApi, method: str = "GET", path: str = "/items/v1/items", op_id: str = "items.list"
) -> None:
    api.operation(method, path, op_id).response(200, Item).public().handler(handler)


@pytest.mark.parametrize(
    ("declare", "message"),
    [
        (
            lambda api: api.operation("GET", "/items/v1/x", "items.x").response(200, Item).public(),
            "no handler",
        ),
        (
            lambda api: api.operation("GET", "/items/v1/x", "items.x").public().handler(handler),
            "no response declared",
        ),
        (
            lambda api: (
                api.operation("GET", "/items/v1/x", "items.x").response(200, Item).handler(handler)
            ),
            "no access decision",
        ),
        (
            lambda api: (
                api.operation("TRACE", "/items/v1/x", "items.x")
                .response(200)
                .public()
                .handler(handler)
            ),
            "method must be one of",
        ),
        (
            lambda api: (
                api.operation("GET", "items", "items.x").response(200).public().handler(handler)
            ),
            "path must be",
        ),
        (
            lambda api: (
                api.operation("GET", "/items/v1/x", "List").response(200).public().handler(handler)
            ),
            "operation id must be",
        ),
        (
            lambda api: (
                api.operation("GET", "/items/v1/{item_id}", "items.get")
                .response(200)
                .public()
                .handler(handler)
            ),
            r"path parameters \['item_id'\] do not match",
        ),
        (
            lambda api: (
                api.operation("DELETE", "/items/v1/x", "items.x")
                .body(Item)
                .response(204)
                .public()
                .handler(handler)
            ),
            "DELETE operations take no body",
        ),
        (
            lambda api: (
                api.operation("GET", "/items/v1/x", "items.x")
                .response(404)
                .public()
                .handler(handler)
            ),
            "first declared response must be the 2xx",
        ),
    ],
)
def test_incomplete_operations_are_refused(declare: object, message: str) -> None:
    api = RestApi("items")
    declare(api)  # type: ignore[operator]
    with pytest.raises(OperationError, match=message) as caught:
        api.build()
    assert "module 'items'" in str(caught.value)


def test_builder_argument_errors() -> None:
    builder = RestApi("items").operation("GET", "/items/v1/x", "items.x")
    with pytest.raises(OperationError, match="'everything' must look like 'resource:action'"):
        builder.require("everything")
    with pytest.raises(OperationError, match="700 is not an HTTP status"):
        builder.response(700)
    with pytest.raises(OperationError, match="error\\(\\) takes 4xx and 5xx"):
        builder.error(200, "fine")
    builder.public()
    with pytest.raises(OperationError, match="access was already decided"):
        builder.require("items:read")


def test_path_parameters_match_model() -> None:
    api = RestApi("items")
    api.operation("GET", "/items/v1/{item_id}", "items.get").path_params(ItemPath).response(
        200, Item
    ).public().handler(handler)
    (op,) = api.build()
    assert op.path_model is ItemPath and op.success.status == 200


def test_duplicate_routes_and_ids_are_refused() -> None:
    first, second = RestApi("items"), RestApi("other")
    complete(first)
    complete(second, path="/items/v1/items", op_id="other.list")
    with pytest.raises(
        OperationError,
        match=r"duplicate route GET /items/v1/items: declared by 'items.list' .* and 'other.list'",
    ):
        check_unique(first.build() + second.build())
    third = RestApi("other")
    complete(third, path="/other/v1/items", op_id="items.list")
    with pytest.raises(OperationError, match=r"duplicate operation id 'items.list'"):
        check_unique(first.build() + third.build())
    by_x, by_y = RestApi("x"), RestApi("y")
    for api, param in ((by_x, "a"), (by_y, "b")):
        path_model = type(f"P{param}", (BaseModel,), {"__annotations__": {param: str}})
        op = api.operation("GET", f"/items/v1/{{{param}}}", f"{api.module}.get")
        op.path_params(path_model).response(200, Item).public().handler(handler)
    with pytest.raises(OperationError, match=re.escape("duplicate route GET /items/v1/{b}")):
        check_unique(by_x.build() + by_y.build())


class ItemError(Exception):
    """A contract's base error."""


class ItemGoneError(ItemError):
    pass


def test_a_modules_errors_answer_as_the_problems_it_declared() -> None:
    from hyperspot.platform import Problem
    from hyperspot.platform.db import ListQueryError

    api = RestApi("items")
    api.problems(ItemError, lambda error: Problem(409, f"conflict: {error}"))
    api.problems(ItemGoneError, lambda error: Problem(404, f"no item {error}"))
    complete(api)
    (op,) = api.build()
    # The most specific declared class wins, whatever the order of declaration.
    gone = op.problem_for(ItemGoneError("7"))
    assert gone is not None and (gone.status_code, gone.description) == (404, "no item 7")
    other = op.problem_for(ItemError("x"))
    assert other is not None and other.status_code == 409
    # The platform's own errors that know their problem need no declaration.
    listed = op.problem_for(ListQueryError("limit", "too big"))
    assert listed is not None and (listed.status_code, listed.kind) == (400, "validation-error")
    # Anything else stays unexpected: a 500 the gateway logs.
    assert op.problem_for(RuntimeError("a bug")) is None
    with pytest.raises(OperationError, match="problems\\(\\) takes an exception class"):
        api.problems(int, lambda error: Problem(400))  # type: ignore[type-var]
