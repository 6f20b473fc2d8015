"""CloudFront signing as CloudFront's edge checks it: parse the custom policy, verify the RSA-SHA1
signature with the public key, and check that the one wildcard resource covers every segment."""

from __future__ import annotations

import base64
import fnmatch
import json
import time
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from pydantic import ValidationError

from playback import cdn, hls, service, signing
from playback.settings import DEFAULT_MEDIA_ROOT, PlaybackSettings

from .conftest import PREVIEW_LESSON, _serve, stub_catalog
from .test_playback_api import _local, _token, _uris

ASSET = "20000000-0000-4000-8000-000000000001"
BASE = "https://media.academy.example"


def _cf_b64decode(text: str) -> bytes:
    return base64.b64decode(text.translate(str.maketrans("-_~", "+=/")))


def _verify(public_key: RSAPublicKey, policy: bytes, signature: bytes) -> None:
    public_key.verify(signature, policy, padding.PKCS1v15(), hashes.SHA1())  # noqa: S303


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _signer(key: rsa.RSAPrivateKey, **kwargs: object) -> cdn.CloudFrontMediaSigner:
    return cdn.CloudFrontMediaSigner(key_pair_id="K2JCJMDEHXQW5F", private_key=key, media_base_url=BASE,
                                     **kwargs)  # type: ignore[arg-type]


def test_signed_urls_carry_one_verifiable_wildcard_policy(rsa_key: rsa.RSAPrivateKey) -> None:
    text = (DEFAULT_MEDIA_ROOT / ASSET / "360p" / "index.m3u8").read_text()
    expires = hls.link_expiry(text, time.time(), 300)
    playlist, cookies = service.sign_media_playlist(hls.media_template(text, "360p"), signer=_signer(rsa_key),
                                                     media_base_url=BASE, asset_id=ASSET, expires=expires)
    assert cookies == ()
    uris = [line for line in playlist.splitlines() if line and not line.startswith("#")]
    assert len(uris) == 3 and len({urlsplit(uri).query for uri in uris}) == 1

    query = parse_qs(urlsplit(uris[0]).query)
    assert set(query) == {"Policy", "Signature", "Key-Pair-Id"} and query["Key-Pair-Id"] == ["K2JCJMDEHXQW5F"]
    policy_bytes = _cf_b64decode(query["Policy"][0])
    [statement] = json.loads(policy_bytes)["Statement"]
    assert statement["Resource"] == f"{BASE}/{ASSET}/*"
    assert statement["Condition"] == {"DateLessThan": {"AWS:EpochTime": expires}}
    for uri in uris:  # the edge matches the resource against the URL without its query
        assert fnmatch.fnmatchcase(uri.split("?")[0], statement["Resource"])
    assert not fnmatch.fnmatchcase(f"{BASE}/20000000-0000-4000-8000-000000000002/360p/a.ts", statement["Resource"])

    signature = _cf_b64decode(query["Signature"][0])
    _verify(rsa_key.public_key(), policy_bytes, signature)
    with pytest.raises(InvalidSignature):  # an edited policy (later expiry) no longer verifies
        _verify(rsa_key.public_key(), policy_bytes.replace(str(expires).encode(), str(expires + 3600).encode()),
                signature)
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(InvalidSignature):
        _verify(other_key.public_key(), policy_bytes, signature)


def test_signed_cookies_mode(rsa_key: rsa.RSAPrivateKey) -> None:
    signer = _signer(rsa_key, cookies=True, cookie_domain=".academy.example")
    text = "#EXTM3U\n#EXTINF:4.0,\nsegment_000.ts\n#EXT-X-ENDLIST\n"
    playlist, set_cookies = service.sign_media_playlist(hls.media_template(text, "360p"), signer=signer,
                                                         media_base_url=BASE, asset_id=ASSET, expires=2_000_000_000)
    assert f"{BASE}/{ASSET}/360p/segment_000.ts\n" in playlist and "?" not in playlist
    jar: SimpleCookie = SimpleCookie()
    for header in set_cookies:
        jar.load(header)
    assert set(jar) == {"CloudFront-Policy", "CloudFront-Signature", "CloudFront-Key-Pair-Id"}
    for morsel in jar.values():
        assert morsel["path"] == f"/{ASSET}/" and morsel["domain"] == ".academy.example"
        assert morsel["secure"] and morsel["httponly"]
    policy = _cf_b64decode(jar["CloudFront-Policy"].value)
    assert json.loads(policy)["Statement"][0]["Resource"] == f"{BASE}/{ASSET}/*"
    _verify(rsa_key.public_key(), policy, _cf_b64decode(jar["CloudFront-Signature"].value))


async def test_settings_open_the_configured_signer(rsa_key: rsa.RSAPrivateKey) -> None:
    pem = rsa_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    settings = PlaybackSettings(media_signer="cloudfront", cloudfront_key_pair_id="KID",
                                cloudfront_private_key=pem, media_base_url=BASE)
    signer = await cdn.open_media_signer(settings)
    assert isinstance(signer, cdn.CloudFrontMediaSigner) and signer.resource(ASSET) == f"{BASE}/{ASSET}/*"
    nginx = await cdn.open_media_signer(PlaybackSettings(secure_link_secret="k"))
    assert nginx.sign(ASSET, 1000).query == "md5=" + signing.media_signature("k", ASSET, 1000) + "&expires=1000"
    with pytest.raises(ValidationError, match="CLOUDFRONT_KEY_PAIR_ID"):
        PlaybackSettings(media_signer="cloudfront")


async def test_the_manifest_route_signs_for_cloudfront_with_the_mounted_key(rsa_key: rsa.RSAPrivateKey,
                                                                             tmp_path: Path) -> None:
    """The production wiring: the key is a file (the k8s secret mount); a viewer's variant playlist
    carries CDN URLs whose policy covers only this asset and verifies with the public key."""
    key_file = tmp_path / "cloudfront-private-key.pem"
    key_file.write_bytes(rsa_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    async with _serve(stub_catalog(), media_signer="cloudfront", cloudfront_key_pair_id="K2JCJMDEHXQW5F",
                      cloudfront_private_key_file=key_file, media_base_url=BASE) as platform:
        _, headers = await platform.new_user()
        issued = await _token(platform, headers, PREVIEW_LESSON)
        master = await platform.client.get(_local(issued["manifest_url"]))
        assert master.status_code == 200
        for variant_url in _uris(master.text):
            variant = await platform.client.get(_local(variant_url))
            assert variant.status_code == 200 and "set-cookie" not in variant.headers
            segments = _uris(variant.text)
            assert segments and len({urlsplit(uri).query for uri in segments}) == 1
            query = parse_qs(urlsplit(segments[0]).query)
            assert query["Key-Pair-Id"] == ["K2JCJMDEHXQW5F"]
            policy = _cf_b64decode(query["Policy"][0])
            [statement] = json.loads(policy)["Statement"]
            assert statement["Resource"] == f"{BASE}/{ASSET}/*"
            lifetime = statement["Condition"]["DateLessThan"]["AWS:EpochTime"] - time.time()
            grace = platform.settings.media_link_grace_seconds  # plus the media duration (6 s demo)
            assert grace < lifetime < grace + 60
            for uri in segments:
                assert uri.startswith(f"{BASE}/{ASSET}/") and fnmatch.fnmatchcase(uri.split("?")[0],
                                                                                   statement["Resource"])
            _verify(rsa_key.public_key(), policy, _cf_b64decode(query["Signature"][0]))
