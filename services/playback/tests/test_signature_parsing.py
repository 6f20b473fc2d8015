"""Property tests of playback's parsers of untrusted input: upload signatures, media link
signatures and playback tokens. Any input gets a verdict or a 401/403, never an exception."""

from __future__ import annotations

import time
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.errors import Forbidden, Unauthorized
from playback import signing
from playback.assets.service import check_upload_signature, upload_signature

PROPERTY = settings(derandomize=True, max_examples=200, deadline=None, database=None)
ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()))
ASSET = uuid.UUID("20000000-0000-4000-8000-000000000001")
KEY = signing.token_key_from_pem(signing.generate_pem())


@PROPERTY
@given(signature=ANY_TEXT, expires=st.integers(min_value=0, max_value=2**63 - 1))
def test_upload_signature_any_text_is_403(signature: str, expires: int) -> None:
    if signature == upload_signature("s3cret", ASSET, expires):
        return
    with pytest.raises(Forbidden):
        check_upload_signature("s3cret", ASSET, expires, signature)


def test_upload_signature_genuine_and_expired() -> None:
    future = int(time.time()) + 60
    check_upload_signature("s3cret", ASSET, future, upload_signature("s3cret", ASSET, future))
    with pytest.raises(Forbidden, match="expired"):
        check_upload_signature("s3cret", ASSET, 5, upload_signature("s3cret", ASSET, 5))
    with pytest.raises(Forbidden, match="signature"):  # was a TypeError (500) before
        check_upload_signature("s3cret", ASSET, future, "ü" * 43)


@PROPERTY
@given(md5=st.one_of(st.none(), ANY_TEXT), expires=st.one_of(st.none(), ANY_TEXT))
def test_media_link_any_query_is_a_verdict(md5: str | None, expires: str | None) -> None:
    assert signing.media_link_valid("k", str(ASSET), md5, expires, now=0) in (False, None, True)


def _claims() -> signing.PlaybackClaims:
    return signing.PlaybackClaims(user_id=uuid.uuid4(), session_id=uuid.uuid4(), asset_id=ASSET,
                                  lesson_id=uuid.uuid4(), course_id=uuid.uuid4(), watermark="W" * 16)


@PROPERTY
@given(token=st.one_of(st.none(), ANY_TEXT), cut=st.integers(min_value=0, max_value=400), junk=ANY_TEXT)
def test_playback_token_anything_else_is_401(token: str | None, cut: int, junk: str) -> None:
    now = int(time.time())
    genuine = signing.sign_playback_token(KEY, claims=_claims(), issued_at=now, expires_at=now + 90)
    for candidate in (token, genuine[:cut] + junk + genuine[cut + len(junk):]):
        if candidate == genuine:
            continue
        with pytest.raises(Unauthorized):
            signing.verify_playback_token(KEY, candidate)


def test_a_genuine_playback_token_verifies() -> None:
    now = int(time.time())
    claims = _claims()
    token = signing.sign_playback_token(KEY, claims=claims, issued_at=now, expires_at=now + 90)
    assert signing.verify_playback_token(KEY, token) == claims
