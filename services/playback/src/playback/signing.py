"""Playback tokens (EdDSA JWTs signed with playback's own key), segment URL signatures, watermarks.

Segment signatures follow Nginx `secure_link_md5 "$secure_link_expires/media/$asset/ $secret"`:
one signature covers an asset's whole prefix, so a manifest costs one hash, not one per segment.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import os
import time
import uuid
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from common.errors import Unauthorized
from common.security import VerifiedTokens, constant_time_equals
from playback.settings import PlaybackSettings

log = logging.getLogger(__name__)

ALGORITHM = "EdDSA"
ISSUER = "triple-academy-playback"
AUDIENCE = "playback"
REQUIRED_CLAIMS = ["iss", "aud", "sub", "sid", "aid", "lid", "cid", "jti", "iat", "exp", "wm"]


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass(frozen=True)
class TokenKey:
    kid: str
    private_key: Ed25519PrivateKey

    @cached_property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()


def key_id(public_key: Ed25519PublicKey) -> str:
    """RFC 7638 JWK thumbprint: the same key always gets the same kid, across restarts and pods."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    canonical = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": _b64url(raw)},
                           separators=(",", ":"), sort_keys=True)
    return _b64url(hashlib.sha256(canonical.encode()).digest())


def token_key_from_pem(pem: bytes) -> TokenKey:
    private = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(private, Ed25519PrivateKey):
        raise ValueError("the playback token key must be an Ed25519 private key")
    return TokenKey(kid=key_id(private.public_key()), private_key=private)


def generate_pem() -> bytes:
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _load_or_create(path: Path) -> bytes:
    """Development only: create the key once (0600, never overwritten) and reuse it afterwards."""
    if path.exists():
        return path.read_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = generate_pem()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race: use its key
        return path.read_bytes()
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    log.info("generated a development playback token key", extra={"path": str(path)})
    return pem


def load_token_key(settings: PlaybackSettings) -> TokenKey:
    """Configured key (value, then file); outside production a persisted generated one."""
    if settings.token_private_key is not None:
        return token_key_from_pem(settings.token_private_key.get_secret_value().encode())
    if settings.token_private_key_file is not None:
        return token_key_from_pem(settings.token_private_key_file.read_bytes())
    if settings.environment == "production":
        raise RuntimeError("no playback token key configured")
    return token_key_from_pem(_load_or_create(settings.generated_token_key_file))


async def open_token_key(settings: PlaybackSettings) -> TokenKey:
    return await asyncio.to_thread(load_token_key, settings)


@dataclass(frozen=True)
class PlaybackClaims:
    user_id: uuid.UUID
    session_id: uuid.UUID
    asset_id: uuid.UUID
    lesson_id: uuid.UUID
    course_id: uuid.UUID
    watermark: str


def sign_playback_token(key: TokenKey, *, claims: PlaybackClaims, issued_at: int, expires_at: int) -> str:
    payload: dict[str, Any] = {
        "iss": ISSUER, "aud": AUDIENCE, "sub": str(claims.user_id), "sid": str(claims.session_id),
        "aid": str(claims.asset_id), "lid": str(claims.lesson_id), "cid": str(claims.course_id),
        "jti": uuid.uuid4().hex, "iat": issued_at, "exp": expires_at, "wm": claims.watermark}
    return jwt.encode(payload, key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid})


# A player sends one token with its master and every variant playlist: verified once per key.
_VERIFIED = VerifiedTokens(expired_message="playback token expired")


def verify_playback_token(key: TokenKey, token: str | None) -> PlaybackClaims:
    """Algorithm and key pinned; iss, aud and exp checked; any failure is a 401."""
    if not token:
        raise Unauthorized("missing playback token", code="missing_token")
    raw = _VERIFIED.get(key.kid, token) or _VERIFIED.put(_verified_claims(key, token), key.kid, token)
    return PlaybackClaims(user_id=uuid.UUID(raw["sub"]), session_id=uuid.UUID(raw["sid"]),
                          asset_id=uuid.UUID(raw["aid"]), lesson_id=uuid.UUID(raw["lid"]),
                          course_id=uuid.UUID(raw["cid"]), watermark=str(raw["wm"]))


def _verified_claims(key: TokenKey, token: str) -> dict[str, Any]:
    try:
        header = jwt.get_unverified_header(token)
    except (jwt.PyJWTError, ValueError) as exc:  # ValueError: text that is not even UTF-8 encodable
        raise Unauthorized("malformed playback token", code="invalid_token") from exc
    if header.get("alg") != ALGORITHM or header.get("kid") != key.kid:
        raise Unauthorized("playback token algorithm or key id not accepted", code="invalid_token")
    try:
        raw: dict[str, Any] = jwt.decode(token, key=key.public_key, algorithms=[ALGORITHM], audience=AUDIENCE,
                                         issuer=ISSUER, options={"require": REQUIRED_CLAIMS})
        for claim in ("sub", "sid", "aid", "lid", "cid"):
            uuid.UUID(raw[claim])  # a signed token with a malformed id is refused, and never cached
        return raw
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("playback token expired", code="token_expired") from exc
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise Unauthorized("invalid playback token", code="invalid_token") from exc


def watermark(secret: str, user_id: uuid.UUID, session_id: uuid.UUID) -> str:
    """Short, unguessable id of (user, session) for forensic watermarking; the key is derived from
    the secure-link secret with a distinct label so the two uses never share a key."""
    wm_key = hmac.new(secret.encode(), b"triple-academy/watermark/v1", hashlib.sha256).digest()
    digest = hmac.new(wm_key, f"{user_id}|{session_id}".encode(), hashlib.sha256).digest()
    return base64.b32encode(digest[:10]).decode()


def media_signature(secret: str, asset_id: str, expires: int) -> str:
    """base64url_nopad(md5("{expires}/media/{asset_id}/ {secret}")), exactly as Nginx computes it.

    MD5 is what `secure_link_md5` offers; the secret inside the hashed string is what protects it.
    """
    digest = hashlib.md5(f"{expires}/media/{asset_id}/ {secret}".encode()).digest()  # noqa: S324
    return _b64url(digest)


def media_link_valid(secret: str, asset_id: str, md5: str | None, expires: str | None,
                     now: float | None = None) -> bool | None:
    """True: valid; None: signature right but expired; False: missing or wrong (Nginx: "1"/"0"/"")."""
    if not md5 or not expires or not expires.isdigit() or len(expires) > 12:
        return False
    expected = media_signature(secret, asset_id, int(expires))
    if not constant_time_equals(expected, md5):
        return False
    if int(expires) < (time.time() if now is None else now):
        return None
    return True
