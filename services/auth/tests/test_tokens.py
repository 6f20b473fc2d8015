"""Access tokens (RFC 8725): pinned algorithm, issuer, audience and expiry; signing-key rotation
with several keys in JWKS; private keys encrypted at rest."""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
import uuid
from typing import Any

import jwt
import pytest
import sqlalchemy as sa
from auth_testkit import Auth, bearer, claims, open_auth
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auth import keys
from auth.main import create_app
from auth.models import SigningKey
from auth.resources import AuthResources
from common.db import utcnow
from common.http import LazyASGITransport
from common.testing import serve_in_process


def _b64(data: dict[str, Any] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


async def _status(auth: Auth, token: str) -> int:
    return (await auth.client.get("/me", headers=bearer(token))).status_code


async def test_forged_and_misdirected_tokens_are_rejected(auth: Auth) -> None:
    _user, tokens = await auth.user_with_tokens()
    good = tokens["access_token"]
    header, body = jwt.get_unverified_header(good), claims(good)
    assert await _status(auth, good) == 200

    # alg "none": no signature at all.
    none = f"{_b64({**header, 'alg': 'none'})}.{_b64(body)}."
    assert await _status(auth, none) == 401
    # HS256 keyed with the published public key (algorithm confusion).
    jwk = next(k for k in (await auth.client.get("/.well-known/jwks.json")).json()["keys"]
               if k["kid"] == header["kid"])
    public_raw = base64.urlsafe_b64decode(jwk["x"] + "==")
    import hashlib
    import hmac

    signing_input = f"{_b64({'alg': 'HS256', 'kid': header['kid'], 'typ': 'JWT'})}.{_b64(body)}"
    for secret in (public_raw, jwk["x"].encode(), json.dumps(jwk).encode()):
        sig = _b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())
        assert await _status(auth, f"{signing_input}.{sig}") == 401

    # A key of our own making, with a kid auth never published.
    stranger = Ed25519PrivateKey.generate()
    assert await _status(auth, jwt.encode(body, stranger, algorithm="EdDSA", headers={"kid": "nope"})) == 401
    assert await _status(auth, jwt.encode(body, stranger, algorithm="EdDSA",
                                          headers={"kid": header["kid"]})) == 401

    # Properly signed by auth's key, but for the wrong audience or issuer, or expired.
    async with auth.runtime.db.session() as session:
        key = await auth.app.state.runtime.resources_as(AuthResources).keyring.signing_key(db_session=session)
    now = int(time.time())
    assert await _status(auth, keys.sign(key, body)) == 200  # the control: our own re-signing is accepted
    for bad in ({"aud": "catalog"}, {"aud": "some-other-api"}, {"iss": "https://evil.example"},
                {"exp": now - 60, "iat": now - 1000, "nbf": now - 1000}):
        assert await _status(auth, keys.sign(key, {**body, **bad})) == 401, bad
    missing_exp = {k: v for k, v in body.items() if k != "exp"}
    assert await _status(auth, keys.sign(key, missing_exp)) == 401
    expired = await auth.client.get("/me", headers=bearer(keys.sign(key, {**body, "exp": now - 60})))
    assert expired.json()["code"] == "token_expired"


async def test_key_rotation_publishes_first_signs_later_retires_after_expiry() -> None:
    async with open_auth(jwks_cache_seconds=0, jwks_refetch_cooldown_seconds=0, signing_key_cache_seconds=0) as auth:
        user, before = await auth.user_with_tokens()
        old_kid = jwt.get_unverified_header(before["access_token"])["kid"]

        async with auth.runtime.db.transaction() as session:
            pending = await keys.rotate(db_session=session, settings=auth.settings,
                                        activate_in=dt.timedelta(hours=1))
            with pytest.raises(keys.SigningKeyError):  # one pending key at a time
                await keys.rotate(db_session=session, settings=auth.settings)
        published = [k["kid"] for k in (await auth.client.get("/.well-known/jwks.json")).json()["keys"]]
        assert set(published) == {old_kid, pending.kid}
        # Published but not yet signing.
        waiting = await auth.login(user["email"])
        assert jwt.get_unverified_header(waiting["access_token"])["kid"] == old_kid

        # The activation time passes: the new key signs, the old one still verifies.
        async with auth.runtime.db.transaction() as session:
            await session.execute(sa.update(SigningKey).where(SigningKey.kid == pending.kid)
                                  .values(activates_at=utcnow() - dt.timedelta(seconds=1)))
        after = await auth.login(user["email"])
        assert jwt.get_unverified_header(after["access_token"])["kid"] == pending.kid
        assert await _status(auth, after["access_token"]) == 200
        assert await _status(auth, before["access_token"]) == 200
        async with auth.runtime.db.session() as session:
            old = await session.get(SigningKey, old_kid)
            assert old is not None and old.retire_after is not None
            longest = max(auth.settings.access_token_ttl_seconds, auth.settings.service_token_ttl_seconds)
            assert old.retire_after >= pending.activates_at + dt.timedelta(seconds=longest)

        # Past its tokens' lifetime the old key leaves JWKS and its tokens stop verifying.
        async with auth.runtime.db.transaction() as session:
            await session.execute(sa.update(SigningKey).where(SigningKey.kid == old_kid)
                                  .values(retire_after=utcnow() - dt.timedelta(seconds=1)))
            assert await keys.prune(db_session=session) == [old_kid]
        published = [k["kid"] for k in (await auth.client.get("/.well-known/jwks.json")).json()["keys"]]
        assert published == [pending.kid]
        assert await _status(auth, before["access_token"]) == 401
        assert await _status(auth, after["access_token"]) == 200
        async with auth.runtime.db.session() as session:
            pruned = await session.get(SigningKey, old_kid)
            assert pruned is not None and pruned.private_key == "" and pruned.retired_at is not None


async def test_private_keys_are_encrypted_at_rest_and_rewrapped() -> None:
    first, second = keys.generate_kek(), keys.generate_kek()
    async with open_auth(signing_key_encryption_keys=first, signing_key_cache_seconds=0) as auth:
        async with auth.runtime.db.session() as session:
            [row] = (await session.scalars(sa.select(SigningKey))).all()
        assert row.private_key.startswith("aesgcm:") and "PRIVATE KEY" not in row.private_key
        user, tokens = await auth.user_with_tokens()
        assert await _status(auth, tokens["access_token"]) == 200

        # A ciphertext is bound to its kid: moved to another row it does not decrypt.
        encryption = keys.KeyEncryption.from_settings(auth.settings)
        with pytest.raises(Exception):  # noqa: B017 - cryptography's InvalidTag
            encryption.open("another-kid", row.private_key)

        # KEK rotation: the new KEK first, the old one still listed; rewrap moves every key over.
        rotated = auth.settings.model_copy(update={"signing_key_encryption_keys": type(
            auth.settings.signing_key_encryption_keys)(f"{second},{first}")})
        async with auth.runtime.db.transaction() as session:
            assert await keys.rewrap(db_session=session, settings=rotated) == 1
            rewrapped = await session.get(SigningKey, row.kid)
            assert rewrapped is not None
        assert rewrapped.private_key != row.private_key
        only_new = keys.KeyEncryption.from_settings(rotated.model_copy(update={
            "signing_key_encryption_keys": type(rotated.signing_key_encryption_keys)(second)}))
        assert only_new.open(row.kid, rewrapped.private_key).startswith(b"-----BEGIN PRIVATE KEY-----")
        with pytest.raises(keys.SigningKeyError):
            keys.KeyEncryption.from_settings(auth.settings.model_copy(update={
                "signing_key_encryption_keys": None})).open(row.kid, row.private_key)
        assert uuid.UUID(user["id"])


async def test_not_ready_while_no_key_can_sign() -> None:
    """auth restarted without the key-encryption key its keys were stored under (a secret lost
    between `make migrate` and `make up`): every login would fail, so it must not report ready."""
    kek = keys.generate_kek()
    async with open_auth(signing_key_encryption_keys=kek) as auth:
        assert (await auth.client.get("/health/ready")).status_code == 200
        without_kek = auth.settings.model_copy(update={"signing_key_encryption_keys": None})
        transport = LazyASGITransport()
        async with serve_in_process(create_app(without_kek, http_transport=transport), transport) as client:
            ready = await client.get("/health/ready")
            assert ready.status_code == 503, ready.text
            assert ready.json()["checks"]["signing_key"] == "failed: SigningKeyError"
            assert {name for name, result in ready.json()["checks"].items() if result != "ok"} == {"signing_key"}
            with pytest.raises(keys.SigningKeyError):  # what every login meets (a 500 over a socket)
                await client.post("/login", json={"email": "admin@triple.academy", "password": "Admin-Demo-2026!"})
        assert (await auth.client.get("/health/ready")).status_code == 200
