"""The learner's whole footprint through the gateway, distributed and embedded: one zip from
`GET /api/auth/me/export` with every service's part (auth's account, catalog's enrollments, billing's
orders and invoice PDFs, playback's progress and sessions, an instructor's uploads), and nobody
else's data in it. The admin's evidence trail of the same order spans the services too."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import httpx

from .test_auth_tokens import new_account
from .test_certificates import _buy as buy
from .test_core_path import eventually, login

PAID_COURSE = "10000000-0000-4000-8000-000000000001"
FREE_COURSE = "10000000-0000-4000-8000-000000000002"
PAID_LESSON = "30000000-0000-4000-8000-000000000003"
DEMO_ADMIN = ("admin@triple.academy", "Admin-Demo-2026!")
DEMO_INSTRUCTOR = ("instructor@triple.academy", "Instructor-Demo-2026!")
PASSWORD = "a data export e2e passphrase"


def _buy(client: httpx.Client, learner: dict[str, str]) -> str:
    order_id = buy(client, learner).rsplit("/", 1)[-1]
    eventually(lambda: client.get(f"/api/billing/orders/{order_id}/invoices", headers=learner).json(),
               what="invoice issued")
    return order_id


def _watch(client: httpx.Client, learner: dict[str, str]) -> str:
    def token() -> dict[str, Any] | None:
        response = client.post("/api/playback/token", headers=learner, json={"lesson_id": PAID_LESSON})
        return response.json() if response.status_code == 200 else None

    issued = eventually(token, what="playback entitlement")
    session_id = str(issued["session_id"])
    assert client.get(issued["manifest_url"]).status_code == 200
    beat = client.post(f"/api/playback/sessions/{session_id}/heartbeat", headers=learner,
                       json={"position_seconds": 1.0})
    assert beat.status_code == 200, beat.text
    return session_id


def _export(client: httpx.Client, who: dict[str, str]) -> zipfile.ZipFile:
    response = client.get("/api/auth/me/export", headers=who)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    assert "attachment" in response.headers["content-disposition"]
    return zipfile.ZipFile(io.BytesIO(response.content))


def _json(archive: zipfile.ZipFile, name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(archive.read(name))
    return body


def test_the_export_holds_every_services_part_and_nobody_elses(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=20) as client:
        email, user_id, access = new_account(client, "exported", PASSWORD)
        learner = {"Authorization": f"Bearer {access}"}
        other_email, other_id, other_access = new_account(client, "bystander", PASSWORD)
        other = {"Authorization": f"Bearer {other_access}"}

        order_id = _buy(client, learner)
        other_order = _buy(client, other)
        assert client.post(f"/api/catalog/courses/{FREE_COURSE}/enroll", headers=learner).status_code in (200, 201)
        session_id = _watch(client, learner)
        other_session = _watch(client, other)

        archive = _export(client, learner)
        manifest = _json(archive, "manifest.json")
        assert manifest["complete"] is True and manifest["missing"] == [] and manifest["user_id"] == user_id
        names = set(archive.namelist())
        assert {"auth.json", "catalog.json", "billing.json", "playback.json"} <= names

        account = _json(archive, "auth.json")
        assert (account["account"]["id"], account["account"]["email"]) == (user_id, email)
        assert account["sessions"]
        catalog = _json(archive, "catalog.json")
        assert {PAID_COURSE, FREE_COURSE} <= {e["course_id"] for e in catalog["enrollments"]}
        billing = _json(archive, "billing.json")
        assert [o["id"] for o in billing["orders"]] == [order_id]
        [invoice] = billing["invoices"]
        assert invoice["order_id"] == order_id and invoice["pdf_file"] in names
        assert archive.read(invoice["pdf_file"]).startswith(b"%PDF")
        playback = _json(archive, "playback.json")
        assert session_id in {s["session_id"] for s in playback["playback_sessions"]}
        assert PAID_LESSON in {p["lesson_id"] for p in playback["watch_progress"]}

        # Nobody else's data: the bystander's ids and address appear in no file.
        text = b"".join(archive.read(name) for name in names if name.endswith(".json")).decode()
        for foreign in (other_id, other_email, other_order, other_session):
            assert foreign not in text

        # An instructor's uploads are part of their own export, never a learner's.
        instructor = login(client, *DEMO_INSTRUCTOR)
        asset = client.post("/api/playback/assets", headers=instructor, json={
            "filename": "export-check.mp4", "content_type": "video/mp4", "size_bytes": 1024,
            "title": "Export check"})
        assert asset.status_code == 201, asset.text
        asset_id = asset.json()["asset_id"]
        uploads = _json(_export(client, instructor), "playback.json")["uploaded_assets"]
        assert asset_id in {a["id"] for a in uploads}
        assert asset_id not in text

        # The admin's evidence trail of the learner's order: every service answered, in time order.
        admin = login(client, *DEMO_ADMIN)
        trail = client.get(f"/api/billing/admin/evidence/orders/{order_id}", headers=admin)
        assert trail.status_code == 200, trail.text
        body = trail.json()
        assert body["partial"] is False
        kinds = [entry["kind"] for entry in body["entries"]]
        assert {"order.checkout", "order.paid", "enrollment.granted", "playback.session_started",
                "playback.token_granted", "playback.manifest_granted"} <= set(kinds)
        started = [e for e in body["entries"] if e["kind"] == "playback.session_started"]
        assert {e["detail"]["session_id"] for e in started} == {session_id}
        assert all(e["request_id"] for e in body["entries"] if e["kind"] in ("order.checkout",
                                                                              "playback.session_started"))
        assert client.get(f"/api/billing/admin/evidence/orders/{order_id}", headers=learner).status_code == 403
