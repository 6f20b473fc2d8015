"""Protected playback through the gateway. Distributed (Nginx secure_link, PostgreSQL, Redis,
RabbitMQ): every signed URI fetches, edited or foreign credentials are refused. Both modes: the third
stream ends the oldest, heartbeats feed progress, a revoked enrollment cuts tokens and manifests."""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt

from gateway.distributed import Topology
from playback import signing

from .test_core_path import DEMO_ADMIN, DEMO_ASSET, DEMO_INSTRUCTOR, HLS, eventually, login, media_uris


def _free_course(client: httpx.Client) -> tuple[str, str]:
    """A published free course with one non-preview video lesson: (course id, lesson id)."""
    instructor = login(client, *DEMO_INSTRUCTOR)
    created = client.post("/api/catalog/courses", headers=instructor, json={
        "title": f"E2E playback {uuid.uuid4().hex[:6]}", "subtitle": "protected playback",
        "description": "signed HLS through the edge", "price_amount": 0, "currency": "EUR",
        "sections": [{"title": "Only section", "lessons": [
            {"title": "Members only", "kind": "video", "asset_id": DEMO_ASSET, "is_preview": False}]}]})
    assert created.status_code == 201, created.text
    course_id = created.json()["id"]
    assert client.post(f"/api/catalog/courses/{course_id}/publish", headers=instructor).status_code == 200
    detail = client.get(f"/api/catalog/courses/{course_id}").json()
    return course_id, detail["sections"][0]["lessons"][0]["id"]


def _learner(client: httpx.Client) -> tuple[str, dict[str, str]]:
    email, password = f"viewer-{uuid.uuid4().hex[:8]}@example.com", "a long enough passphrase"
    registered = client.post("/api/auth/register", json={"email": email, "password": password,
                                                          "full_name": "E2E Viewer"})
    assert registered.status_code == 201, registered.text
    return registered.json()["id"], login(client, email, password)


def _token(client: httpx.Client, headers: dict[str, str], lesson_id: str) -> dict[str, Any]:
    response = client.post("/api/playback/token", headers=headers, json={"lesson_id": lesson_id})
    assert response.status_code == 200, response.text
    return response.json()


def _with_token(manifest_url: str, token: str) -> str:
    return manifest_url.split("token=")[0] + "token=" + token


def _all_uris(playlist: str) -> list[str]:
    """Every URI a player would fetch: the URI lines and the URI="..." attributes of tags."""
    found = []
    for line in playlist.splitlines():
        if line.startswith("#"):
            found += re.findall(r'URI="([^"]+)"', line)
        elif line.strip():
            found.append(line.strip())
    return found


def test_protected_playback_through_nginx(distributed: Topology) -> None:
    key = signing.token_key_from_pem(Path(distributed.secrets["playback_token_key_file"]).read_bytes())
    with httpx.Client(base_url=distributed.gateway_url, timeout=15) as client:
        course_id, lesson_id = _free_course(client)
        _, learner = _learner(client)
        _, stranger = _learner(client)
        assert client.post("/api/playback/token", headers=learner,
                           json={"lesson_id": lesson_id}).status_code == 403  # not enrolled
        assert client.post(f"/api/catalog/courses/{course_id}/enroll", headers=learner).status_code == 201

        # Enrolled: every URI of the manifest (each variant, and each URI in each variant, tag
        # attributes included) fetches through Nginx.
        issued = _token(client, learner, lesson_id)
        assert len(issued["watermark"]) == 16 and issued["heartbeat_interval_seconds"] <= 60
        master = client.get(issued["manifest_url"])
        assert master.status_code == 200 and master.headers["content-type"].startswith(HLS)
        variants = _all_uris(master.text)
        assert variants and len(variants) == len(media_uris(master.text))
        segments: list[str] = []
        for variant_uri in variants:
            assert variant_uri.startswith(f"{distributed.gateway_url}/api/playback/manifests/")
            variant = client.get(variant_uri)
            assert variant.status_code == 200 and variant.headers["content-type"].startswith(HLS)
            signed = _all_uris(variant.text)
            assert signed and len({urlsplit(uri).query for uri in signed}) == 1, "one signature per manifest"
            segments += signed
        for uri in segments:
            assert uri.startswith(f"{distributed.gateway_url}/media/{DEMO_ASSET}/")
            fetched = client.get(uri)
            assert fetched.status_code == 200, uri
            assert fetched.headers["content-type"] == "video/mp2t" and fetched.content[0] == 0x47  # TS sync

        # The edge refuses edited signatures and expiries, other assets and expired links.
        parts = urlsplit(segments[0])
        query = parse_qs(parts.query)
        md5, expires = query["md5"][0], int(query["expires"][0])
        edited = ("A" if md5[0] != "A" else "B") + md5[1:]
        assert client.get(f"{parts.path}?md5={edited}&expires={expires}").status_code == 403
        assert client.get(f"{parts.path}?md5={md5}&expires={expires + 60}").status_code == 403
        assert client.get(parts.path).status_code == 403
        other_asset = parts.path.replace(DEMO_ASSET, str(uuid.uuid4()))
        assert client.get(f"{other_asset}?md5={md5}&expires={expires}").status_code == 403
        secret = distributed.secrets["secure_link_secret"]
        past = int(time.time()) - 5
        late = signing.media_signature(secret, DEMO_ASSET, past)
        assert client.get(f"{parts.path}?md5={late}&expires={past}").status_code == 410

        # Playback tokens: another user's session, another asset, the wrong audience are refused.
        foreign = client.post("/api/playback/token", headers=stranger, json={"lesson_id": lesson_id})
        assert foreign.status_code == 403  # not enrolled
        assert client.post(f"/api/catalog/courses/{course_id}/enroll", headers=stranger).status_code == 201
        theirs = _token(client, stranger, lesson_id)
        # The stranger's own valid token does not open the learner's session, nor a heartbeat on it.
        hijack = client.get(_with_token(issued["manifest_url"], theirs["token"]))
        assert hijack.status_code == 403 and hijack.json()["code"] == "session_mismatch"
        assert client.post(f"/api/playback/sessions/{issued['session_id']}/heartbeat", headers=stranger,
                           json={"position_seconds": 1}).status_code == 404
        claims = jwt.decode(issued["token"], options={"verify_signature": False})
        # Even a correctly signed token naming the learner's session but another user is refused.
        stranger_sub = jwt.decode(theirs["token"], options={"verify_signature": False})["sub"]
        other_user = jwt.encode({**claims, "sub": stranger_sub}, key.private_key, algorithm="EdDSA",
                                headers={"kid": key.kid})
        refused = client.get(_with_token(issued["manifest_url"], other_user))
        assert refused.status_code == 403 and refused.json()["code"] == "unknown_session"
        other = jwt.encode({**claims, "aid": str(uuid.uuid4())}, key.private_key, algorithm="EdDSA",
                           headers={"kid": key.kid})
        other_asset_refused = client.get(_with_token(issued["manifest_url"], other))
        assert other_asset_refused.status_code == 403 and other_asset_refused.json()["code"] == "unknown_session"
        wrong_aud = jwt.encode({**claims, "aud": "triple-api"}, key.private_key, algorithm="EdDSA",
                               headers={"kid": key.kid})
        assert client.get(_with_token(issued["manifest_url"], wrong_aud)).status_code == 401
        user_token = learner["Authorization"].split()[1]
        assert client.get(_with_token(issued["manifest_url"], user_token)).status_code == 401



def test_streams_progress_and_revocation(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=15) as client:
        course_id, lesson_id = _free_course(client)
        user_id, learner = _learner(client)
        assert client.post(f"/api/catalog/courses/{course_id}/enroll", headers=learner).status_code == 201
        first = _token(client, learner, lesson_id)

        # Heartbeats keep the stream and feed progress.
        beat = client.post(f"/api/playback/sessions/{first['session_id']}/heartbeat", headers=learner,
                           json={"position_seconds": 1.5})
        assert beat.status_code == 200, beat.text
        assert beat.json()["watermark"] == first["watermark"]
        progress = client.get("/api/playback/progress", params={"course_id": course_id}, headers=learner)
        assert progress.status_code == 200, progress.text
        assert progress.json()["lessons"][0]["position_seconds"] == 1.5
        # Not public: Nginx hides /internal (404); embedded, a service token is required (401).
        assert client.get("/api/playback/internal/progress",
                          params={"user_id": user_id, "course_id": course_id}).status_code in (401, 404)

        # Default policy end_oldest: the third stream ends the least recently active one.
        second, third = _token(client, learner, lesson_id), _token(client, learner, lesson_id)
        ended = client.get(first["manifest_url"])
        assert ended.status_code == 410 and ended.json()["end_reason"] == "replaced"
        assert client.get(third["manifest_url"]).status_code == 200
        fourth = _token(client, learner, lesson_id)  # ends `second`, the least recently active now
        assert fourth["resume_position_seconds"] == 1.5
        replaced = client.post(f"/api/playback/sessions/{second['session_id']}/heartbeat", headers=learner,
                               json={"position_seconds": 1})
        assert replaced.status_code == 410 and replaced.json()["end_reason"] == "replaced"

        # An admin revokes the enrollment: running streams end, new tokens and manifests are refused.
        admin = login(client, *DEMO_ADMIN)
        revoked = client.post("/api/catalog/admin/enrollments/revoke", headers=admin, json={
            "user_id": user_id, "course_id": course_id, "reason": "e2e: access withdrawn"})
        assert revoked.status_code == 200, revoked.text

        def stream_ended_by_revocation() -> bool:
            beat = client.post(f"/api/playback/sessions/{fourth['session_id']}/heartbeat", headers=learner,
                               json={"position_seconds": 2})
            return beat.status_code == 410 and beat.json()["end_reason"] == "enrollment_revoked"

        eventually(stream_ended_by_revocation, what="revoked enrollment ends the running stream")
        assert client.post("/api/playback/token", headers=learner, json={"lesson_id": lesson_id}).status_code == 403
        assert client.get(fourth["manifest_url"]).status_code == 403
