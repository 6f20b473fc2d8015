"""What crosses a service boundary, typed once: event payloads (`contracts.events`, one model per
routing key, `EVENTS` the registry) and the answers of internal HTTP routes (`contracts.peers`).

Only pydantic models live here: producers build them, consumers validate with them, and
docs/contracts.md is checked against them (tests/static/test_contracts_doc.py).
"""

from contracts.events import EVENTS, Event
from contracts.peers import PeerAnswer

__all__ = ["EVENTS", "Event", "PeerAnswer"]
