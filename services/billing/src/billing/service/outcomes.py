"""What billing's use cases share: webhook metrics, the worker's pending-work flag, checkout's result."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from prometheus_client import Counter

from billing.models import (
    Order,
)

log = logging.getLogger(__name__)

WEBHOOK_EVENTS = Counter("billing_webhook_events_total", "Verified provider events by type and outcome",
                         ["event_type", "outcome"])
WEBHOOK_REJECTED = Counter("billing_webhook_rejected_total", "Webhook deliveries refused before any effect "
                           "(bad signature, stale, not an event)", ["reason"])


# session.info key: the transaction created work for the background worker (receipts, refunds).
WORK_PENDING = "billing_work_pending"


@dataclass(frozen=True)
class CheckoutResult:
    order: Order
    created: bool
