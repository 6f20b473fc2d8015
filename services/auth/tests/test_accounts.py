"""Accounts: password policy, email verification, reset, change, email change, profile,
erasure and export, with the real mail read from a local SMTP server."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import uuid
import zipfile
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from auth_testkit import BILLING_SECRET, PASSWORD, Auth, bearer, random_ip

from auth import service
from auth.audit import RequestContext
from auth.models import EmailToken, User
from common.db import utcnow
from common.events.tables import outbox


async def test_password_policy(auth: Auth) -> None:
    async def attempt(password: str) -> tuple[int, str | None]:
        response = await auth.client.post("/register", json={
            "email": f"p-{uuid.uuid4().hex[:8]}@example.com", "password": password, "full_name": "P"})
        return response.status_code, response.json().get("code")

    assert await attempt("short") == (422, "validation")
    assert await attempt("password1") == (422, "password_too_common")
    assert await attempt("Baseball1") == (422, "password_too_common")  # case does not help
    assert await attempt("x" * 257) == (422, "password_too_long")
    assert (await attempt("x" * 256))[0] == 201
    # Long passphrases, spaces and any Unicode are welcome; no composition rules.
    assert (await attempt("the quick brown fox jumps over the lazy dog " * 3))[0] == 201
    assert (await attempt("пароль для академии"))[0] == 201
    email = f"self-{uuid.uuid4().hex[:6]}@example.com"
    same = await auth.client.post("/register", json={"email": email, "password": email, "full_name": "S"})
    assert same.status_code == 422 and same.json()["code"] == "password_is_email"
    # Nothing half-written by refusals: the address is still free.
    assert (await auth.client.post("/register", json={"email": email, "password": PASSWORD,
                                                      "full_name": "S"})).status_code == 201


async def test_email_is_normalised_and_validated(auth: Auth) -> None:
    user = await auth.register("  Mixed.Case@EXAMPLE.org ")
    assert user["email"] == "mixed.case@example.org"
    tokens = await auth.login("MIXED.case@example.ORG")
    assert (await auth.client.get("/me", headers=bearer(tokens))).json()["id"] == user["id"]
    for bad in ("no-at-sign", "two@@example.com", "a@b", "spaces in@example.com"):
        response = await auth.client.post("/register", json={"email": bad, "password": PASSWORD, "full_name": "x"})
        assert response.status_code == 422, bad


async def test_email_verification_single_use_and_resend(auth: Auth) -> None:
    user = await auth.register()
    first = await auth.code_from_mail(user["email"], "Confirm your email")
    tokens = await auth.login(user["email"])
    resend = await auth.client.post("/verify-email/resend", headers=bearer(tokens))
    assert resend.status_code == 202
    second = await auth.code_from_mail(user["email"], "Confirm your email")
    assert second != first
    # The resend voided the first code; the code is stored hashed, never in clear.
    assert (await auth.client.post("/verify-email", json={"code": first})).status_code == 400
    async with auth.runtime.db.session() as session:
        stored = (await session.scalars(sa.select(EmailToken.token_hash).where(
            EmailToken.user_id == uuid.UUID(user["id"])))).all()
    assert stored and second not in stored and first not in stored
    assert (await auth.client.post("/verify-email", json={"code": second})).status_code == 204
    assert (await auth.client.post("/verify-email", json={"code": second})).status_code == 400  # single use
    assert (await auth.client.get("/me", headers=bearer(tokens))).json()["email_verified"] is True
    assert await auth.audit("email_verify", user["id"])


async def test_expired_codes_are_refused(auth: Auth) -> None:
    user = await auth.register()
    code = await auth.code_from_mail(user["email"], "Confirm your email")
    async with auth.runtime.db.transaction() as session:
        await session.execute(sa.update(EmailToken).where(EmailToken.user_id == uuid.UUID(user["id"]))
                              .values(expires_at=utcnow() - dt.timedelta(seconds=1)))
    refused = await auth.client.post("/verify-email", json={"code": code})
    assert refused.status_code == 400 and refused.json()["code"] == "invalid_code"


async def test_forgot_and_reset_password(auth: Auth) -> None:
    user = await auth.register()
    laptop = await auth.login(user["email"])
    phone = await auth.login(user["email"])

    unknown = await auth.client.post("/password/forgot", json={"email": "nobody-here@example.com"})
    known = await auth.client.post("/password/forgot", json={"email": user["email"].upper()})
    assert unknown.status_code == known.status_code == 202 and unknown.json() == known.json()
    assert not [m for m in auth.mailbox.messages if m["To"] == "nobody-here@example.com"]
    code = await auth.code_from_mail(user["email"], "Reset your password")

    weak = await auth.client.post("/password/reset", json={"code": code, "new_password": "password"})
    assert weak.status_code == 422  # policy applies; the code is still good afterwards
    reset = await auth.client.post("/password/reset", json={"code": code, "new_password": "a brand new passphrase"})
    assert reset.status_code == 204
    again = await auth.client.post("/password/reset", json={"code": code, "new_password": "yet another passphrase"})
    assert again.status_code == 400  # single use

    # Every session ended, other services told; the old password is gone, the new one works.
    for tokens in (laptop, phone):
        assert (await auth.client.post("/refresh", json={"refresh_token": tokens["refresh_token"]})).status_code == 401
        assert (await auth.client.get("/me", headers=bearer(tokens))).status_code == 401
    assert await auth.events("auth.user.sessions_revoked.v1", user_id=user["id"])
    old = await auth.client.post("/login", json={"email": user["email"], "password": PASSWORD},
                                 headers={"X-Real-IP": random_ip()})
    assert old.status_code == 401
    await auth.login(user["email"], "a brand new passphrase")
    assert await auth.audit("password_reset", user["id"])


async def test_change_password_needs_the_current_one_and_ends_other_sessions(auth: Auth) -> None:
    user = await auth.register()
    other, current = await auth.login(user["email"]), await auth.login(user["email"])
    wrong = await auth.client.post("/password/change", headers=bearer(current), json={
        "current_password": "not my password", "new_password": "a different passphrase"})
    assert wrong.status_code == 403 and wrong.json()["code"] == "invalid_password"
    [failure] = await auth.audit("password_change", user["id"])
    assert failure.outcome == "failure"

    changed = await auth.client.post("/password/change", headers=bearer(current), json={
        "current_password": PASSWORD, "new_password": "a different passphrase"})
    assert changed.status_code == 204
    assert (await auth.client.get("/me", headers=bearer(current))).status_code == 200  # this session stays
    assert (await auth.client.get("/me", headers=bearer(other))).status_code == 401
    assert (await auth.client.post("/refresh", json={"refresh_token": other["refresh_token"]})).status_code == 401
    assert await auth.events("auth.user.sessions_revoked.v1", user_id=user["id"])
    await auth.mailbox.wait_for(user["email"], subject_contains="password was changed")
    await auth.login(user["email"], "a different passphrase")


async def test_wrong_password_guesses_on_sensitive_changes_are_limited(auth: Auth) -> None:
    _user, tokens = await auth.user_with_tokens()
    statuses = []
    for _ in range(auth.settings.password_checks_per_account_per_15_minutes + 1):
        response = await auth.client.request("DELETE", "/me", headers=bearer(tokens), json={"password": "guess!!!"})
        statuses.append(response.status_code)
    assert statuses[-1] == 429 and set(statuses[:-1]) == {403}
    # Even the right password waits now: the limit is on the account, not on being wrong.
    blocked = await auth.client.request("DELETE", "/me", headers=bearer(tokens), json={"password": PASSWORD})
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) > 0


async def test_email_change_needs_password_and_the_new_mailbox(auth: Auth) -> None:
    user, tokens = await auth.user_with_tokens()
    taken = await auth.register()
    new_email = f"moved-{uuid.uuid4().hex[:8]}@example.com"
    reset_code_before = None
    await auth.client.post("/password/forgot", json={"email": user["email"]})
    reset_code_before = await auth.code_from_mail(user["email"], "Reset your password")

    wrong = await auth.client.post("/email/change", headers=bearer(tokens),
                                   json={"new_email": new_email, "password": "not the password"})
    assert wrong.status_code == 403
    clash = await auth.client.post("/email/change", headers=bearer(tokens),
                                   json={"new_email": taken["email"], "password": PASSWORD})
    assert clash.status_code == 409
    asked = await auth.client.post("/email/change", headers=bearer(tokens),
                                   json={"new_email": new_email.upper(), "password": PASSWORD})
    assert asked.status_code == 202
    await auth.mailbox.wait_for(user["email"], subject_contains="being changed")
    code = await auth.code_from_mail(new_email, "Confirm your new email")
    # Nothing changes before the confirmation.
    assert (await auth.client.get("/me", headers=bearer(tokens))).json()["email"] == user["email"]

    confirmed = await auth.client.post("/email/change/confirm", json={"code": code})
    assert confirmed.status_code == 200
    assert confirmed.json()["email"] == new_email and confirmed.json()["email_verified"] is True
    await auth.login(new_email)
    # A reset code mailed to the old address is void now.
    void = await auth.client.post("/password/reset", json={"code": reset_code_before,
                                                             "new_password": "hijack attempt passphrase"})
    assert void.status_code == 400
    assert await auth.audit("email_change", user["id"])


async def test_profile_update_is_allow_listed(auth: Auth) -> None:
    user, tokens = await auth.user_with_tokens()
    for forbidden in ({"roles": ["admin"]}, {"email_verified": True}, {"id": str(uuid.uuid4())},
                      {"email": "x@example.com"}, {"is_active": False}, {"password_hash": "x"}):
        response = await auth.client.patch("/me", headers=bearer(tokens), json={"full_name": "Ok", **forbidden})
        assert response.status_code == 422, forbidden
    me = (await auth.client.get("/me", headers=bearer(tokens))).json()
    assert me["roles"] == ["student"] and me["full_name"] == "Test User"  # nothing applied
    updated = await auth.client.patch("/me", headers=bearer(tokens), json={"full_name": "  Renamed Person "})
    assert updated.status_code == 200 and updated.json()["full_name"] == "Renamed Person"
    assert (await auth.client.patch("/me", headers=bearer(tokens), json={"full_name": ""})).status_code == 422
    assert await auth.audit("profile_update", user["id"])


async def test_export_and_erasure(auth: Auth) -> None:
    user, tokens = await auth.user_with_tokens()
    export = await auth.client.get("/me/export", headers=bearer(tokens))
    assert export.status_code == 200 and "attachment" in export.headers["content-disposition"]
    archive = zipfile.ZipFile(io.BytesIO(export.content))
    data = json.loads(archive.read("auth.json"))
    # Only auth runs here: the other services' parts are missing, and the manifest says so.
    manifest = json.loads(archive.read("manifest.json"))
    assert (manifest["complete"], sorted(manifest["missing"])) == (False, ["billing", "catalog", "playback"])
    assert data["account"]["id"] == user["id"] and data["account"]["email"] == user["email"]
    assert len(data["sessions"]) == 1 and {"register", "login"} <= {a["action"] for a in data["activity"]}

    refused = await auth.client.request("DELETE", "/me", headers=bearer(tokens), json={"password": "wrong one"})
    assert refused.status_code == 403
    erased = await auth.client.request("DELETE", "/me", headers=bearer(tokens), json={"password": PASSWORD})
    assert erased.status_code == 204

    [event] = await auth.events("auth.user.deleted.v1", user_id=user["id"])
    assert set(event) == {"user_id", "deleted_at"}
    billing = bearer(await auth.service_token("billing", BILLING_SECRET))
    assert (await auth.client.get(f"/internal/users/{user['id']}", headers=billing)).status_code == 404
    assert (await auth.client.get("/me", headers=bearer(tokens))).status_code == 401
    assert (await auth.client.post("/refresh", json={"refresh_token": tokens["refresh_token"]})).status_code == 401
    gone = await auth.client.post("/login", json={"email": user["email"], "password": PASSWORD},
                                  headers={"X-Real-IP": random_ip()})
    assert gone.status_code == 401
    # The audit trail survives with ids only; the address is free for a new account.
    entries = await auth.audit("erasure", user["id"])
    assert [e.outcome for e in entries] == ["failure", "success"]
    assert all(user["email"] not in str(e.details) for e in entries)
    async with auth.runtime.db.session() as session:
        assert await session.get(User, uuid.UUID(user["id"])) is None
    await auth.register(user["email"])


async def test_outdated_hash_parameters_are_upgraded_at_login(auth: Auth) -> None:
    user = await auth.register()
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
    async with auth.runtime.db.transaction() as session:
        await session.execute(sa.update(User).where(User.id == uuid.UUID(user["id"])).values(password_hash=weak))
    await auth.login(user["email"])
    async with auth.runtime.db.session() as session:
        stored = await session.scalar(sa.select(User.password_hash).where(User.id == uuid.UUID(user["id"])))
    assert stored is not None and stored != weak
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


async def _outbox_rows(auth: Auth, user_id: str) -> list[Any]:
    async with auth.runtime.db.session() as session:
        rows = (await session.execute(sa.select(outbox).order_by(outbox.c.created_at))).all()
    return [row for row in rows if row.envelope["payload"].get("user_id") == user_id]


async def _published(auth: Auth, user_id: str, routing_key: str) -> Any:
    """The relay runs in the harness: wait (bounded) until it marked the row sent."""
    for _ in range(100):
        rows = [r for r in await _outbox_rows(auth, user_id) if r.routing_key == routing_key]
        if rows and rows[0].published_at is not None:
            return rows[0]
        await asyncio.sleep(0.1)
    raise AssertionError(f"{routing_key} of {user_id} was never published")


async def test_erasure_removes_personal_data_from_the_outbox(auth: Auth) -> None:
    """Published `registered` rows (email, full name) go with the account; other accounts' rows and
    events without personal data stay."""
    user, tokens = await auth.user_with_tokens()
    other = await auth.register(full_name="Someone Else")
    published = await _published(auth, user["id"], "auth.user.registered.v1")
    assert published.envelope["payload"]["email"] == user["email"]  # the control: it was there
    await auth.client.post("/logout-all", headers=bearer(tokens))  # a row without personal data
    await _published(auth, user["id"], "auth.user.sessions_revoked.v1")

    erased = await auth.client.request("DELETE", "/me", headers=bearer(tokens), json={"password": PASSWORD})
    assert erased.status_code == 401  # logout-all ended this session: sign in again to erase
    tokens = await auth.login(user["email"])
    erased = await auth.client.request("DELETE", "/me", headers=bearer(tokens), json={"password": PASSWORD})
    assert erased.status_code == 204

    left = await _outbox_rows(auth, user["id"])
    assert [r.routing_key for r in left] == ["auth.user.sessions_revoked.v1", "auth.user.deleted.v1"]
    async with auth.runtime.db.session() as session:
        everything = [str(e) for e in (await session.scalars(sa.select(outbox.c.envelope))).all()]
    assert not any(user["email"] in envelope for envelope in everything)
    [kept] = [r for r in await _outbox_rows(auth, other["id"]) if r.routing_key == "auth.user.registered.v1"]
    assert kept.envelope["payload"]["email"] == other["email"]


async def test_erasure_scrubs_an_unpublished_event_but_keeps_it(auth: Auth) -> None:
    """An account erased before its `registered` row left: the row stays (the relay still sends it,
    before `deleted`) with the same id and ids, but without the email and name."""
    email = f"fleeting-{uuid.uuid4().hex[:8]}@example.com"
    async with auth.runtime.db.transaction() as session:  # the relay cannot see the row before commit
        user = await service.register(db_session=session, email=email, password=PASSWORD, full_name="Fleeting")
        [waiting] = [r for r in (await session.execute(sa.select(outbox))).all()
                     if r.envelope["payload"].get("user_id") == str(user.id)]
        assert waiting.published_at is None and waiting.envelope["payload"]["email"] == email
        await service.erase(db_session=session, user_id=user.id, verified_hash=user.password_hash,
                            ctx=RequestContext())
    rows = await _outbox_rows(auth, str(user.id))
    assert [r.routing_key for r in rows] == ["auth.user.registered.v1", "auth.user.deleted.v1"]
    scrubbed = rows[0]
    assert scrubbed.id == waiting.id and scrubbed.attempts == waiting.attempts
    assert scrubbed.envelope["event_id"] == waiting.envelope["event_id"]
    assert scrubbed.envelope["payload"] == {"user_id": str(user.id), "email": None, "full_name": None,
                                           "roles": ["student"]}
