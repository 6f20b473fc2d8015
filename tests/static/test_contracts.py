"""docs/contracts.md and the models of libs/contracts say the same thing, and the services speak
to each other only through those models.

The tables of docs/contracts.md are parsed: every documented routing key has a model in
`contracts.EVENTS` with exactly the documented payload fields (and the other way round), every
documented `/internal/` route a model in `contracts.peers.PEER_ANSWERS` with exactly the documented
answer fields, and the answering route's response model has those fields. Then the code: each
handler map consumes only registered routing keys, each event model is published by a producer,
and no service builds or indexes a payload by hand.
"""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest
from fastapi import APIRouter
from fastapi.routing import APIRoute
from pydantic import BaseModel

import auth.api.internal
import auth.events
import billing.api.evidence
import billing.events
import catalog.api.evidence
import catalog.api.internal
import catalog.events
import playback.api.evidence
import playback.api.routes
import playback.events
from contracts.events import EVENTS
from contracts.peers import PEER_ANSWERS, PeerAnswer

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs/contracts.md").read_text()
SOURCES = {path: path.read_text() for path in sorted(ROOT.glob("services/*/src/**/*.py"))}
# Where each service answers its internal routes.
ANSWERING: dict[str, list[APIRouter]] = {"auth": [auth.api.internal.router],
                                         "catalog": [catalog.api.internal.internal_router,
                                                     catalog.api.evidence.internal_router],
                                         "playback": [playback.api.routes.router, playback.api.evidence.router],
                                         "billing": [billing.api.evidence.internal_router]}
HANDLER_MAPS = {"auth": auth.events.HANDLERS, "billing": billing.events.HANDLERS,
                "catalog": catalog.events.HANDLERS, "playback": playback.events.HANDLERS}

Fields = dict[str, "Fields | None"]


def _section(title: str) -> str:
    start = DOC.index(f"\n## {title}\n")
    end = DOC.find("\n## ", start + 1)
    return DOC[start:end if end != -1 else None]


def _rows(section: str) -> list[list[str]]:
    """The body rows of the section's first table, as stripped cells."""
    lines = [line for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def _documented_fields(cell: str) -> Fields:
    """`a, b, c: [d, e]` (the code spans of a cell, outside parenthesised notes) -> {a, b, c: {d, e}}."""
    previous = None
    while previous != cell:  # innermost parentheses first: notes nest
        previous, cell = cell, re.sub(r"\([^()]*\)", "", cell)
    spans = ", ".join(re.findall(r"`([^`]*)`", cell))
    fields: Fields = {}
    for name, _, nested in re.findall(r"(\w+)(\s*:\s*(\[[^\]]*\]|\w+))?", spans):
        fields[name] = {inner: None for inner in re.findall(r"\w+", nested)} if nested.startswith("[") else None
    return fields


def _model_fields(model: type[BaseModel]) -> Fields:
    fields: Fields = {}
    for name, info in model.model_fields.items():
        args = typing.get_args(info.annotation)
        item = args[0] if typing.get_origin(info.annotation) is list and args else None
        fields[name] = _model_fields(item) if isinstance(item, type) and issubclass(item, BaseModel) else None
    return fields


def _documented_events() -> dict[str, Fields]:
    documented = {row[0].strip("`"): _documented_fields(row[1]) for row in _rows(_section("Events"))}
    # Events documented in prose after the table: "`<routing key>` `{fields}`".
    for key, names in re.findall(r"`([a-z_.]+\.v\d+)` `\{([^}]*)\}`", _section("Events")):
        documented[key] = _documented_fields(f"`{names}`")
    return documented


def _documented_routes() -> dict[tuple[str, str], Fields]:
    routes = {}
    section = _section("Internal HTTP (service token with the target as audience)")
    for service, route, _callers, answer in _rows(section):
        route = route.strip("`").split("?", 1)[0]
        if "/internal/" in route:
            routes[(service, route)] = _documented_fields(answer)
    return routes


def test_the_parser_reads_nested_answers_and_skips_notes() -> None:
    assert _documented_fields("`a, b: [c, d]` (note `x`, (inner `y`)), `e: bool`") == {
        "a": None, "b": {"c": None, "d": None}, "e": None}


def test_every_documented_event_is_a_model_and_every_model_is_documented() -> None:
    assert sorted(_documented_events()) == sorted(EVENTS)


@pytest.mark.parametrize("key", sorted(EVENTS))
def test_the_documented_payload_is_the_models(key: str) -> None:
    assert _documented_events().get(key) == _model_fields(EVENTS[key]), (
        f"docs/contracts.md and contracts.events disagree on {key}")


def test_every_documented_internal_route_has_its_answer_model() -> None:
    models = {(model.service, model.route): model for model in PEER_ANSWERS}
    documented = _documented_routes()
    assert sorted(documented) == sorted(models)
    for route, fields in documented.items():
        assert fields == _model_fields(models[route]), f"docs/contracts.md and contracts.peers disagree on {route}"


@pytest.mark.parametrize("model", PEER_ANSWERS, ids=[model.route for model in PEER_ANSWERS])
def test_the_answering_route_declares_the_contracts_fields(model: type[PeerAnswer]) -> None:
    """The answering service keeps its own, stricter response model; its fields are the contract's."""
    method, path = model.route.split(" ", 1)
    [route] = [r for router in ANSWERING[model.service] for r in router.routes
               if isinstance(r, APIRoute) and r.path == path and method in (r.methods or ())]
    assert route.response_model is not None
    assert _model_fields(route.response_model) == _model_fields(model)


def test_consumers_handle_only_registered_events() -> None:
    for service, handlers in HANDLER_MAPS.items():
        unknown = set(handlers) - set(EVENTS)
        assert not unknown, f"{service} handles events that have no contract: {unknown}"


def test_every_event_model_has_a_producer() -> None:
    code = "\n".join(SOURCES.values())
    for key, model in EVENTS.items():
        assert re.search(rf"add_event\([^()]*,\s*{model.__name__}\(", code), f"nothing publishes {key}"


def test_services_neither_build_nor_index_payloads_by_hand() -> None:
    """Producers hand a model to add_event; consumers validate `envelope.payload` with one."""
    for path, text in SOURCES.items():
        for banned in ("add_raw_event", "Envelope.new(", ".payload["):
            assert banned not in text, f"{path.relative_to(ROOT)} uses {banned}: use the contracts models"
