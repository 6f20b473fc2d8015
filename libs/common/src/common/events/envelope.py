"""The one versioned event envelope; routing key `<producer>.<event>.v<N>`."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from pydantic import BaseModel, Field


class Envelope(BaseModel):
    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    event_type: str  # "<producer>.<entity>.<verb>", e.g. "billing.order.paid"
    version: int = 1
    occurred_at: dt.datetime = Field(default_factory=lambda: dt.datetime.now(dt.UTC))
    producer: str
    correlation_id: str | None = None
    payload: dict[str, Any]

    @property
    def routing_key(self) -> str:
        return f"{self.event_type}.v{self.version}"

    @classmethod
    def new(cls, event_type: str, payload: dict[str, Any], *, version: int = 1,
            correlation_id: str | None = None) -> Envelope:
        producer = event_type.split(".", 1)[0]
        return cls(event_type=event_type, version=version, producer=producer,
                   correlation_id=correlation_id, payload=payload)
