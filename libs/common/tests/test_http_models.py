"""ServiceClient.get_model: an internal answer read into its contract model; whatever the peer
gets wrong (a refusal, a shape outside the model) is a 503 for the caller, never a 500."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Response
from pydantic import BaseModel, Field

from common.errors import NotFound, UpstreamUnavailable
from common.http import ServiceClient


class Thing(BaseModel):
    thing_id: int
    share: float = Field(ge=0, le=1)


class Gone(Exception):
    pass


def peer() -> FastAPI:
    app = FastAPI()
    answers: dict[str, Any] = {
        "good": {"thing_id": 7, "share": 0.5, "added_later": "ignored"},
        "out_of_range": {"thing_id": 7, "share": 3},
        "missing_field": {"share": 0.5},
        "wrong_type": {"thing_id": "seven", "share": 0.5},
        "not_an_object": [1, 2],
    }

    @app.get("/things/{name}")
    async def thing(name: str, echo: str | None = None) -> Any:
        if name == "echo":
            return {"thing_id": int(echo or 0), "share": 0}
        if name == "html":
            return Response("<html>oops</html>", media_type="text/html")
        if name == "broken":
            return Response(status_code=500)
        if name == "forbidden":
            return Response(status_code=403)
        if name not in answers:
            return Response(status_code=404)
        return answers[name]

    return app


async def _client(http: httpx.AsyncClient) -> ServiceClient:
    return ServiceClient(http, "http://peer", "peer", None, retries=0)


async def test_a_valid_answer_becomes_the_model_and_unknown_fields_are_ignored() -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=peer()), base_url="http://peer") as http:
        client = await _client(http)
        assert await client.get_model("/things/good", Thing) == Thing(thing_id=7, share=0.5)
        assert (await client.get_model("/things/echo", Thing, params={"echo": "42"})).thing_id == 42


@pytest.mark.parametrize("name", ["out_of_range", "missing_field", "wrong_type", "not_an_object", "html",
                                  "broken", "forbidden", "unknown"])
async def test_an_answer_outside_the_contract_is_the_peers_failure(name: str) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=peer()), base_url="http://peer") as http:
        with pytest.raises(UpstreamUnavailable) as raised:
            await (await _client(http)).get_model(f"/things/{name}", Thing)
    assert raised.value.code == "peer_unavailable" and raised.value.status == 503


async def test_a_404_raises_what_the_caller_named() -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=peer()), base_url="http://peer") as http:
        client = await _client(http)
        with pytest.raises(Gone):
            await client.get_model("/things/unknown", Thing, missing=Gone())
        with pytest.raises(NotFound):
            await client.get_model("/things/unknown", Thing, missing=NotFound("thing not found"))
        # `missing` is only for 404: a valid answer still comes back.
        assert (await client.get_model("/things/good", Thing, missing=Gone())).thing_id == 7
