"""Events auth consumes: none (it is the source of identity)."""

from common.events.consumer import HandlerMap

HANDLERS: HandlerMap = {}
