"""Playback use cases: who may watch what, playback sessions and tokens, concurrent streams,
per-viewer playlists, watch progress, and the audit of every decision.

Money and access follow one chain: catalog grants or revokes an enrollment, playback honours it
through its read model, re-checked at every token and manifest fetch so a refund cuts playback
quickly; the revoke event also ends the sessions already running.
"""

from .catalog_lookups import catalog_says_enrolled, get_course_lessons, get_lesson
from .decisions import authorize_manifest, heartbeat, log_refusal, manifest_url, start_playback, stop
from .ending import end_sessions, erase_user
from .entitlements import (
    HeldEntitlement,
    ManifestSession,
    TokenFacts,
    decide_entitlement,
    manifest_session,
    record_enrollment,
    token_facts,
)
from .outcomes import (
    ACCESS_DECISIONS,
    ASSET_DURATION_CACHE_SECONDS,
    COMPLETION_SHARE,
    ENROLLMENT_REVOKED,
    MAX_PLAYBACK_RATE,
    PUBLISHED,
    REPLACED,
    RESTART_NEAR_END_SECONDS,
    SESSIONS_ENDED,
    SIGNED_OUT,
    STOPPED,
    TIMED_OUT,
    USER_DISABLED,
    Gone,
    Heartbeat,
    IssuedToken,
    Refusal,
)
from .playlists import (
    TEMPLATE_CACHE_ENTRIES,
    TEMPLATE_CACHE_SECONDS,
    master_playlist,
    media_playlist,
    sign_media_playlist,
)
from .progress import asset_duration, course_progress, watermark_sessions

__all__ = [
    "ACCESS_DECISIONS",
    "ASSET_DURATION_CACHE_SECONDS",
    "COMPLETION_SHARE",
    "ENROLLMENT_REVOKED",
    "MAX_PLAYBACK_RATE",
    "PUBLISHED",
    "REPLACED",
    "RESTART_NEAR_END_SECONDS",
    "SESSIONS_ENDED",
    "SIGNED_OUT",
    "STOPPED",
    "TEMPLATE_CACHE_ENTRIES",
    "TEMPLATE_CACHE_SECONDS",
    "TIMED_OUT",
    "USER_DISABLED",
    "Gone",
    "Heartbeat",
    "HeldEntitlement",
    "IssuedToken",
    "ManifestSession",
    "Refusal",
    "TokenFacts",
    "asset_duration",
    "authorize_manifest",
    "catalog_says_enrolled",
    "course_progress",
    "decide_entitlement",
    "end_sessions",
    "erase_user",
    "get_course_lessons",
    "get_lesson",
    "heartbeat",
    "log_refusal",
    "manifest_session",
    "manifest_url",
    "master_playlist",
    "media_playlist",
    "record_enrollment",
    "sign_media_playlist",
    "start_playback",
    "stop",
    "token_facts",
    "watermark_sessions",
]
