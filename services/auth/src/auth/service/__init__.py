"""Auth use cases: accounts, credentials, mailed tokens, profile, erasure, service clients.

Use cases that must leave an audit entry even when they refuse (a wrong password) return an
`Outcome` instead of raising, so the route commits the entry and then answers with the error.
Mails are returned to the route, which sends them after the response (no timing signal, no SMTP
latency in the request).
"""

from .accounts import confirm_password, current_account, get_user, login, new_password_hash, register, update_profile
from .clients import create_admin, ensure_service_clients, internal_user, issue_service_token
from .erasure import PERSONAL_EVENT_FIELDS, erase, export
from .mailed_tokens import (
    change_password,
    confirm_email_change,
    request_email_change,
    request_password_reset,
    resend_verification,
    reset_password,
    start_email_verification,
    verify_email,
)
from .outcomes import CHANGE_EMAIL, RESET_PASSWORD, ROLES, SERVICE_AUDIENCES, VERIFY_EMAIL, Outcome, T, normalise_email

__all__ = [
    "CHANGE_EMAIL",
    "PERSONAL_EVENT_FIELDS",
    "RESET_PASSWORD",
    "ROLES",
    "SERVICE_AUDIENCES",
    "VERIFY_EMAIL",
    "Outcome",
    "T",
    "change_password",
    "confirm_email_change",
    "confirm_password",
    "create_admin",
    "current_account",
    "ensure_service_clients",
    "erase",
    "export",
    "get_user",
    "internal_user",
    "issue_service_token",
    "login",
    "new_password_hash",
    "normalise_email",
    "register",
    "request_email_change",
    "request_password_reset",
    "resend_verification",
    "reset_password",
    "start_email_verification",
    "update_profile",
    "verify_email",
]
