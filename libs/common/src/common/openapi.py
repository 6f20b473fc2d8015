"""The public OpenAPI document every service publishes, told truthfully for the typed web client.

FastAPI's default document lists a 422 body the services never send, marks every route using the
optional bearer as needing one, names operations after their paths and shows internal routes.
This fixes those in one place: one `Problem` schema (RFC 9457 with `code`), the `ValidationProblem`
the error handlers really send for 422, error responses on every operation, operationIds from the
route names, internal routes left out, anonymous routes without a security requirement.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from common.errors import PROBLEM_JSON

BEARER = "HTTPBearer"
# The scheme name of the optional bearer (common.security), folded into `[{}, {HTTPBearer}]` here.
OPTIONAL_BEARER = "OptionalBearer"

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details; `code` is the stable machine-readable reason.",
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string", "example": "https://errors.triple.academy/not_enrolled"},
        "title": {"type": "string", "example": "Forbidden"},
        "status": {"type": "integer", "example": 403},
        "detail": {"type": "string", "example": "you are not enrolled in this course"},
        "code": {"type": "string", "example": "not_enrolled"},
        "instance": {"type": "string", "example": "/token"},
        "request_id": {"type": "string"},
    },
    "additionalProperties": True,
}
VALIDATION_PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "ValidationProblem",
    "description": "The 422 answer: a Problem with code `validation` and one entry per invalid field.",
    "allOf": [{"$ref": "#/components/schemas/Problem"}, {
        "type": "object",
        "required": ["errors"],
        "properties": {"errors": {"type": "array", "items": {
            "type": "object", "required": ["loc", "msg", "type"],
            "properties": {"loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
                           "msg": {"type": "string"}, "type": {"type": "string"}}}}},
    }],
}
ERROR_TITLES = {400: "Invalid input", 401: "Missing, expired or revoked token", 403: "Forbidden",
                404: "Not found", 409: "Conflict", 422: "Validation failed", 429: "Too many requests",
                503: "A dependency is unavailable (retry after `Retry-After`)"}


def route_operation_id(route: APIRoute) -> str:
    """The route's function name (`list_courses`, `issue_token`): what the typed client calls."""
    return route.name


def _error(status: int, schema: str = "Problem") -> dict[str, Any]:
    return {"description": ERROR_TITLES.get(status, "Error"),
            "content": {PROBLEM_JSON: {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


def public_openapi(generate: Callable[[], dict[str, Any]], examples: Mapping[str, Any]) -> dict[str, Any]:
    """FastAPI's document (`generate`), corrected; cached by FastAPI like its own."""
    doc = generate()
    if doc.get("x-public"):
        return doc
    doc["x-public"] = True
    doc["paths"] = {path: ops for path, ops in doc.get("paths", {}).items() if not path.startswith("/internal")}
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["Problem"] = PROBLEM_SCHEMA
    schemas["ValidationProblem"] = VALIDATION_PROBLEM_SCHEMA
    for name, example in examples.items():
        if name in schemas:
            schemas[name]["examples"] = [example]
    components.get("securitySchemes", {}).pop(OPTIONAL_BEARER, None)
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            _correct(operation, path=path, method=method.upper())
    return doc


def _correct(operation: dict[str, Any], *, path: str, method: str) -> None:
    schemes = {name for requirement in operation.get("security", []) for name in requirement}
    statuses = {400, 429, 503}
    if schemes - {OPTIONAL_BEARER}:
        operation["security"] = [{BEARER: []}]
        statuses |= {401, 403}
    elif schemes:  # only the optional bearer: anonymous callers welcome, a token adds to the answer
        operation["security"] = [{}, {BEARER: []}]
        statuses.add(401)
    else:
        operation.pop("security", None)
    if "{" in path:
        statuses.add(404)
    if method in {"POST", "PUT", "PATCH", "DELETE"}:
        statuses.add(409)
    responses = operation.setdefault("responses", {})
    for status in sorted(statuses):
        responses.setdefault(str(status), _error(status))
    for status, response in responses.items():
        if status.isdigit() and int(status) >= 400:
            response["content"] = _error(int(status), "ValidationProblem" if status == "422" else "Problem")["content"]
            if status == "422":
                response["description"] = ERROR_TITLES[422]


def install_openapi(app: FastAPI, examples: Mapping[str, Any]) -> None:
    """Serve `public_openapi` instead of FastAPI's default document."""
    generate = app.openapi
    app.openapi = lambda: public_openapi(generate, examples)  # type: ignore[method-assign]
