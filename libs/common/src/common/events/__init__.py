"""Integration events: envelope, transactional outbox, inbox, and two transports behind one interface."""

from common.events.bus import EventBus, EventHandler
from common.events.envelope import Envelope
from common.events.outbox import EventPayload, add_event, add_raw_event

__all__ = ["Envelope", "EventBus", "EventHandler", "EventPayload", "add_event", "add_raw_event"]
