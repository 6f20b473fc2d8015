"""Billing use cases: checkout, the one idempotent fulfilment, provider events, refunds, reads, erasure.

Verbs that change one thing take a keyword-only `db_session`. Checkout, webhook application and
refunds also talk to the provider or must retry a lost race, so they take the `Database` and open
their own short transactions around the remote call (never holding one open across it).

Money invariants, all enforced under a row lock of the order (or of every order of one learner and
course, for fulfilment):
- an order becomes paid once, whatever reports it (webhook, success page), and emits one event;
- one learner holds at most one open checkout per course, and a second payment for a course they
  already own is refunded automatically (no event: catalog's access stays with the first order);
- refunds never exceed what was paid; a full refund emits `billing.order.refunded.v1` once.
"""

from .checkout import attach_checkout, checkout, create_order, fetch_offer, fetch_progress, order_by_key
from .erasure import delete_erased_customers, erase_user
from .fulfilment import expire_ended_sessions, fulfill, settle_unpaid
from .outcomes import WEBHOOK_EVENTS, WEBHOOK_REJECTED, WORK_PENDING, CheckoutResult
from .queries import admin_list_orders, get_order, list_orders, order_for_checkout_page
from .refunds import process_refund, request_refund, self_refund
from .webhooks import apply_provider_event, confirm_payment, handle_provider_event

__all__ = [
    "WEBHOOK_EVENTS",
    "WEBHOOK_REJECTED",
    "WORK_PENDING",
    "CheckoutResult",
    "admin_list_orders",
    "apply_provider_event",
    "attach_checkout",
    "checkout",
    "confirm_payment",
    "create_order",
    "delete_erased_customers",
    "erase_user",
    "expire_ended_sessions",
    "fetch_offer",
    "fetch_progress",
    "fulfill",
    "get_order",
    "handle_provider_event",
    "list_orders",
    "order_by_key",
    "order_for_checkout_page",
    "process_refund",
    "request_refund",
    "self_refund",
    "settle_unpaid",
]
