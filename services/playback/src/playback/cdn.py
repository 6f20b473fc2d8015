"""Media URL signers: one signature per manifest, covering the asset's whole prefix.

A media playlist gets one precomputed query string (or one set of cookies) that every segment URI
shares, so signing costs the same for 10 segments or 2,000.

- `NginxSecureLinkSigner`: `md5=<sig>&expires=<unix>` as Nginx `secure_link_md5` checks it (local,
  `make up`, the embedded media app); see docs/contracts.md.
- `CloudFrontMediaSigner`: a CloudFront custom policy whose resource is `<media_base_url>/<asset>/*`
  and whose `DateLessThan` is the link expiry, signed (RSA-SHA1, as CloudFront requires) through
  botocore's `CloudFrontSigner`; as a query string (`Policy`, `Signature`, `Key-Pair-Id`) or as the
  three `CloudFront-*` cookies.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from botocore.signers import CloudFrontSigner
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from playback import signing
from playback.settings import PlaybackSettings


@dataclass(frozen=True)
class SignedMedia:
    """What one manifest needs: the query string every media URI gets ('' when cookies carry the
    signature) and the Set-Cookie header values to send with the playlist."""

    query: str
    set_cookies: tuple[str, ...] = ()


class MediaSigner(Protocol):
    def sign(self, asset_id: str, expires: int) -> SignedMedia: ...


class NginxSecureLinkSigner:
    def __init__(self, secret: str) -> None:
        self._secret = secret

    def sign(self, asset_id: str, expires: int) -> SignedMedia:
        signature = signing.media_signature(self._secret, asset_id, expires)
        return SignedMedia(query=f"md5={signature}&expires={expires}")


def cloudfront_b64(raw: bytes) -> str:
    """CloudFront's URL-safe base64: '+' -> '-', '=' -> '_', '/' -> '~'."""
    return base64.b64encode(raw).decode().translate(str.maketrans("+=/", "-_~"))


class CloudFrontMediaSigner:
    def __init__(self, *, key_pair_id: str, private_key: RSAPrivateKey, media_base_url: str,
                 cookies: bool = False, cookie_domain: str | None = None) -> None:
        self.key_pair_id = key_pair_id
        self._key = private_key
        self.media_base_url = media_base_url.rstrip("/")
        self.cookies = cookies
        self.cookie_domain = cookie_domain
        self._signer = CloudFrontSigner(key_pair_id, self._rsa_sign)
        self._path_prefix = urlsplit(self.media_base_url).path

    def _rsa_sign(self, message: bytes) -> bytes:
        return self._key.sign(message, padding.PKCS1v15(), hashes.SHA1())  # noqa: S303 (CloudFront's algorithm)

    def resource(self, asset_id: str) -> str:
        return f"{self.media_base_url}/{asset_id}/*"

    def policy(self, asset_id: str, expires: int) -> str:
        return self._signer.build_policy(self.resource(asset_id), dt.datetime.fromtimestamp(expires, dt.UTC))

    def sign(self, asset_id: str, expires: int) -> SignedMedia:
        policy = self.policy(asset_id, expires)
        if not self.cookies:
            url = self._signer.generate_presigned_url(self.resource(asset_id), policy=policy)
            return SignedMedia(query=url.split("?", 1)[1])
        attributes = f"Path={self._path_prefix}/{asset_id}/; Secure; HttpOnly; SameSite=Lax"
        if self.cookie_domain:
            attributes += f"; Domain={self.cookie_domain}"
        values = {"CloudFront-Policy": cloudfront_b64(policy.encode()),
                  "CloudFront-Signature": cloudfront_b64(self._rsa_sign(policy.encode())),
                  "CloudFront-Key-Pair-Id": self.key_pair_id}
        return SignedMedia(query="", set_cookies=tuple(f"{name}={value}; {attributes}"
                                                        for name, value in values.items()))


def _load_rsa_key(settings: PlaybackSettings) -> RSAPrivateKey:
    if settings.cloudfront_private_key is not None:
        pem = settings.cloudfront_private_key.get_secret_value().encode()
    else:
        assert settings.cloudfront_private_key_file is not None  # the settings validator ensures one
        pem = Path(settings.cloudfront_private_key_file).read_bytes()
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, RSAPrivateKey):
        raise ValueError("the CloudFront signing key must be an RSA private key")
    return key


async def open_media_signer(settings: PlaybackSettings) -> MediaSigner:
    if settings.media_signer == "cloudfront":
        key = await asyncio.to_thread(_load_rsa_key, settings)
        assert settings.cloudfront_key_pair_id is not None
        return CloudFrontMediaSigner(key_pair_id=settings.cloudfront_key_pair_id, private_key=key,
                                     media_base_url=settings.resolved_media_base_url,
                                     cookies=settings.cloudfront_signed_cookies,
                                     cookie_domain=settings.cloudfront_cookie_domain)
    return NginxSecureLinkSigner(settings.secure_link_secret.get_secret_value())
