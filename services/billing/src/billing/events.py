"""Events billing consumes: none yet (auth.user.deleted.v1 arrives with account deletion)."""

from common.events.consumer import HandlerMap

HANDLERS: HandlerMap = {}
