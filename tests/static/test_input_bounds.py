"""Every integer and string a request can carry has bounds (common.bounds says why).

Walks each service's OpenAPI document (parameters in path, query, header and cookie, and every
request body, through $ref, anyOf and arrays): a string needs `maxLength`, an integer or number a
minimum and a maximum, an array `maxItems`. An enum or const is bounded by its values; a UUID,
date or date-time by its grammar (pydantic cannot put a length on those, and parses them in
bounded time).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

import pytest
from fastapi import FastAPI, Query
from pydantic import BaseModel, Field

import auth.main
import billing.main
import catalog.main
import playback.main

SERVICES = {"auth": auth.main, "catalog": catalog.main, "billing": billing.main, "playback": playback.main}
SELF_BOUNDED_FORMATS = {"uuid", "date", "date-time"}


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def unbounded(document: dict[str, Any], schema: dict[str, Any], where: str) -> Iterator[str]:
    """The places under `schema` (named from `where`) that accept values without a bound."""
    schema = _resolve(document, schema)
    for key in ("anyOf", "oneOf", "allOf"):
        for option in schema.get(key, []):
            yield from unbounded(document, option, where)
    if "enum" in schema or "const" in schema:
        return
    kind = schema.get("type")
    if kind == "string" and "maxLength" not in schema and schema.get("format") not in SELF_BOUNDED_FORMATS:
        yield f"{where}: string without maxLength"
    elif kind in ("integer", "number"):
        if not {"minimum", "exclusiveMinimum"} & schema.keys() or not {"maximum", "exclusiveMaximum"} & schema.keys():
            yield f"{where}: {kind} without a minimum and a maximum"
    elif kind == "array":
        if "maxItems" not in schema:
            yield f"{where}: array without maxItems"
        yield from unbounded(document, schema.get("items", {}), f"{where}[]")
    for name, field in schema.get("properties", {}).items():
        yield from unbounded(document, field, f"{where}.{name}")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from unbounded(document, schema["additionalProperties"], f"{where}{{*}}")


def request_inputs(document: dict[str, Any]) -> Iterator[str]:
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            route = f"{method.upper()} {path}"
            for parameter in operation.get("parameters", []):
                yield from unbounded(document, parameter.get("schema", {}),
                                     f"{route} {parameter['in']} {parameter['name']}")
            for media_type, content in operation.get("requestBody", {}).get("content", {}).items():
                yield from unbounded(document, content.get("schema", {}), f"{route} body {media_type}")


@pytest.mark.parametrize("name", SERVICES)
def test_every_request_field_is_bounded(name: str) -> None:
    document = SERVICES[name].create_app().openapi()
    assert document["paths"], "the document lists the routes"
    assert list(request_inputs(document)) == []


class Line(BaseModel):
    note: str
    quantity: int | None = None


class Order(BaseModel):
    lines: list[Line]
    coupon: str = Field(max_length=20)


def test_the_check_finds_unbounded_fields() -> None:
    """The walk sees into bodies, nested models, lists and parameters (so the test above can fail)."""
    app = FastAPI()

    @app.post("/orders/{order_id}")
    async def create(order_id: int, body: Order, page: Annotated[int, Query(ge=1)] = 1) -> None:
        return None

    assert sorted(request_inputs(app.openapi())) == [
        "POST /orders/{order_id} body application/json.lines: array without maxItems",
        "POST /orders/{order_id} body application/json.lines[].note: string without maxLength",
        "POST /orders/{order_id} body application/json.lines[].quantity: integer without a minimum and a maximum",
        "POST /orders/{order_id} path order_id: integer without a minimum and a maximum",
        "POST /orders/{order_id} query page: integer without a minimum and a maximum",
    ]
