"""Property-based API tests: schemathesis against every service's OpenAPI document, both modes.

Each operation gets generated requests, valid and invalid (a fixed seed, derandomized, a few
examples each: `FUZZ_EXAMPLES` raises the budget for a deeper local run), sent through the gateway
like the frontend's. Every answer must be no server error, and a documented answer must match its
documented schema. Requests carry a real access token (an admin's or a learner's, accounts of the
run's own, so the fuzzer gets past 401 into the routes' logic and its data stays apart from the
other tests').
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from fastapi import FastAPI
from requests.adapters import HTTPAdapter
from schemathesis import Case
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import response_schema_conformance

import auth.main
import billing.main
import catalog.main
import playback.main

from .test_core_path import DEMO_ADMIN, login

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "10"))
SEED = 14
FUZZ_CLIENT_ADDRESS = "127.0.0.9"
# Routes that would end the fuzz account's own session: fuzzed without its token (anonymous).
SESSION_ENDING = {("POST", "/logout-all"), ("DELETE", "/me"), ("POST", "/password/change")}


@pytest.fixture(scope="session")
def fuzz_accounts(base_url: str) -> list[dict[str, str]]:
    """Two new accounts of the run's own: an admin (given the role by the demo admin; its token
    passes every role check) and a learner (who meets the ownership checks)."""
    password = "fuzz passphrase long enough"
    accounts = []
    with httpx.Client(base_url=base_url, timeout=30) as client:
        for roles in (["student", "admin"], ["student"]):
            email = f"fuzz-{uuid.uuid4().hex[:10]}@example.com"
            created = client.post("/api/auth/register", json={"email": email, "password": password,
                                                              "full_name": "Fuzz Account"})
            assert created.status_code == 201, created.text
            if "admin" in roles:
                granted = client.put(f"/api/auth/admin/users/{created.json()['id']}/roles",
                                     headers=login(client, *DEMO_ADMIN), json={"roles": roles})
                assert granted.status_code == 200, granted.text
            accounts.append(login(client, email, password))
    return accounts


class _FromFuzzAddress(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (FUZZ_CLIENT_ADDRESS, 0)
        super().init_poolmanager(*args, **kwargs)


@pytest.fixture(scope="module")
def http_session() -> Iterator[requests.Session]:
    """One keep-alive session for every generated request (as a browser would), from a loopback
    address of its own: the failed logins it makes throttle that address, not the other tests'."""
    with requests.Session() as session:
        session.mount("http://", _FromFuzzAddress())
        yield session


def fuzz_test(service: str, app: FastAPI) -> Callable[..., None]:
    """The test of one service: its document, as `/api/<service>/openapi.json` serves it."""
    config = SchemathesisConfig.from_dict({
        "seed": SEED,
        "generation": {"mode": "all", "max-examples": EXAMPLES, "deterministic": True, "database": "none"},
        "phases": {"coverage": {"enabled": False}, "stateful": {"enabled": False}},
    })
    # The services' own APIs are not public: the edge answers 404 before any of their code runs.
    schema = schemathesis.openapi.from_dict(app.openapi(), config=config).exclude(path_regex="^/internal/")

    callers = itertools.count()

    @schema.parametrize()
    def test(case: Case, base_url: str, fuzz_accounts: list[dict[str, str]], http_session: requests.Session) -> None:
        # The admin and the learner take turns (deterministic: the examples are derandomized).
        account = fuzz_accounts[next(callers) % len(fuzz_accounts)]
        headers = {} if (case.method.upper(), case.path) in SESSION_ENDING else dict(account)
        response = case.call(base_url=f"{base_url}/api/{service}", session=http_session, headers=headers,
                             timeout=30)
        checks: list[Callable[..., bool | None]] = [not_a_server_error]
        # An answer is checked against the schema documented for its status and media type;
        # problem+json errors once an operation documents them (they are not HTTPValidationError).
        documented = case.operation.schema.get_content_types(case.operation, response)
        media_type = (response.headers.get("content-type") or [""])[0].split(";")[0].strip()
        if media_type != "application/problem+json" or media_type in documented:
            checks.append(response_schema_conformance)
        case.validate_response(response, checks=checks)

    return test


APPS = {"auth": auth.main.create_app(), "catalog": catalog.main.create_app(),
        "billing": billing.main.create_app(), "playback": playback.main.create_app()}
test_auth_api = fuzz_test("auth", APPS["auth"])
test_catalog_api = fuzz_test("catalog", APPS["catalog"])
test_billing_api = fuzz_test("billing", APPS["billing"])
test_playback_api = fuzz_test("playback", APPS["playback"])


@pytest.mark.parametrize("service", APPS)
def test_the_fuzzed_documents_are_the_served_ones(base_url: str, service: str) -> None:
    served = httpx.get(f"{base_url}/api/{service}/openapi.json", timeout=30)
    assert served.status_code == 200
    assert {**served.json(), "servers": None} == {**APPS[service].openapi(), "servers": None}
