"""What every playback use case shares: session end reasons, refusals, issued tokens and heartbeats,
and their metrics."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar

from prometheus_client import Counter
from pydantic import BaseModel

from common.errors import DomainError

log = logging.getLogger(__name__)
_Catalog = TypeVar("_Catalog", bound=BaseModel)

PUBLISHED = "published"
# Watch time is credited at most this fast (2x playback speed); seeking ahead earns nothing.
MAX_PLAYBACK_RATE = 2.0
# A lesson counts as completed once this share of it has been watched.
COMPLETION_SHARE = 0.9
# Resuming within this many seconds (at most 5 % of the lesson) of the end starts it over.
RESTART_NEAR_END_SECONDS = 10.0
ASSET_DURATION_CACHE_SECONDS = 300

# Why a session ended (playback_sessions.end_reason).
STOPPED, REPLACED, TIMED_OUT = "stopped", "replaced", "timed_out"
ENROLLMENT_REVOKED, USER_DISABLED, SIGNED_OUT = "enrollment_revoked", "user_disabled", "signed_out"

ACCESS_DECISIONS = Counter(
    "playback_access_decisions_total", "Playback access decisions (token, manifest, heartbeat) by outcome",
    ["action", "decision", "reason"])
SESSIONS_ENDED = Counter("playback_sessions_ended_total", "Playback sessions ended, by reason", ["reason"])


class Gone(DomainError):
    """The playback session is over (stopped, replaced, timed out, revoked): start a new one."""

    status = 410
    title = "Gone"


@dataclass(frozen=True)
class Refusal:
    """A decision against the caller, returned (not raised) so its audit row commits first."""

    error: type[DomainError]
    reason: str
    detail: str
    extra: dict[str, Any] = field(default_factory=dict)

    def raise_error(self) -> NoReturn:
        raise self.error(self.detail, code=self.reason, **self.extra)


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_in: int
    manifest_url: str
    session_id: uuid.UUID
    watermark: str
    resume_position_seconds: float


@dataclass(frozen=True)
class Heartbeat:
    session_id: uuid.UUID
    position_seconds: float
    watched_seconds: float
    watermark: str
