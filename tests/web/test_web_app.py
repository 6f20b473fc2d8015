"""The web app's own checks inside `make test`: its OpenAPI client matches the services, its
TypeScript type-checks, its unit tests (Vitest) pass, and it builds to hashed static files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jsonschema
from web_testkit import WEB_DIR, build, run_node, run_tool

from gateway.distributed import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "scripts"))
import openapi_dump

SERVICES = ("auth", "catalog", "billing", "playback")


def test_checked_in_openapi_documents_match_the_services() -> None:
    stale = [name for name, doc in openapi_dump.documents().items()
             if (WEB_DIR / "openapi" / f"{name}.json").read_text() != openapi_dump.render(doc)]
    assert not stale, f"the API changed: run `make web-client` and commit web/openapi and web/src/api ({stale})"


def test_generated_client_matches_the_documents(tmp_path: Path) -> None:
    run_node("scripts/client.mjs", str(tmp_path))
    for name in SERVICES:
        checked_in = WEB_DIR / "src" / "api" / f"{name}.d.ts"
        fresh = (tmp_path / f"{name}.d.ts").read_text()
        assert fresh == checked_in.read_text(), f"{checked_in} is stale: run make web-client"


def test_public_documents_tell_the_truth() -> None:
    """One Problem schema with `code`, the 422 really sent, readable ids, no internal routes, and
    no bearer required where anonymous callers are welcome."""
    docs = {name: json.loads((WEB_DIR / "openapi" / f"{name}.json").read_text()) for name in SERVICES}
    for name, doc in docs.items():
        schemas = doc["components"]["schemas"]
        assert "code" in schemas["Problem"]["properties"] and "HTTPValidationError" not in schemas
        for path, operations in doc["paths"].items():
            assert not path.startswith("/internal"), f"{name} {path} is internal"
            for method, op in operations.items():
                assert "_" not in op["operationId"] or not op["operationId"].endswith(f"_{method}"), op["operationId"]
                errors = {s: r for s, r in op["responses"].items() if s.isdigit() and int(s) >= 400}
                assert errors, f"{name} {method} {path} lists no error response"
                for status, response in errors.items():
                    schema = response["content"]["application/problem+json"]["schema"]["$ref"]
                    assert schema.endswith("ValidationProblem" if status == "422" else "/Problem"), (path, status)
    catalog = docs["catalog"]["paths"]
    assert catalog["/courses"]["get"]["security"] == [{}, {"HTTPBearer": []}], "anonymous catalog reads"
    assert "security" not in docs["auth"]["paths"]["/login"]["post"]
    assert docs["auth"]["paths"]["/me"]["get"]["security"] == [{"HTTPBearer": []}]
    assert docs["playback"]["paths"]["/token"]["post"]["operationId"] == "issue_token"


def test_core_path_examples_match_their_schemas() -> None:
    """Every example in a public document is valid against its own schema."""
    shown = 0
    for name in SERVICES:
        doc = json.loads((WEB_DIR / "openapi" / f"{name}.json").read_text())
        for schema_name, schema in doc["components"]["schemas"].items():
            for example in schema.get("examples", []):
                root = {"$ref": f"#/components/schemas/{schema_name}", "components": doc["components"]}
                jsonschema.Draft202012Validator(root).validate(example)
                shown += 1
    assert shown >= 10


def test_typescript_type_checks() -> None:
    run_tool("tsc", "--noEmit", "-p", ".")


def test_unit_tests_pass() -> None:
    out = run_tool("vitest", "run", "--reporter=dot")
    assert "passed" in out


def test_build_has_hashed_assets_and_no_inline_script(tmp_path: Path) -> None:
    dist = build(tmp_path / "dist")
    index = (dist / "index.html").read_text()
    assets = sorted(p.name for p in (dist / "assets").iterdir())
    assert any(name.startswith("index-") and name.endswith(".js") for name in assets)
    # script-src 'self' (the CSP): every script is a file.
    assert "<script>" not in index and 'src="/assets/index-' in index
