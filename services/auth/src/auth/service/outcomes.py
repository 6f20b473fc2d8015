"""What auth's use cases share: roles, token purposes, the Outcome that carries an audit entry
past a refusal, and e-mail and password rules."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from email_validator import EmailNotValidError, validate_email

from auth import passwords
from auth.settings import AuthSettings
from common.errors import DomainError, InvalidInput
from common.mail import Mail

ROLES = ("student", "instructor", "admin")
SERVICE_AUDIENCES = ("auth", "catalog", "billing", "playback")

VERIFY_EMAIL, RESET_PASSWORD, CHANGE_EMAIL = "verify_email", "reset_password", "change_email"

T = TypeVar("T")


@dataclass
class Outcome(Generic[T]):
    """A result or a refusal, plus the mails to send once the transaction committed."""

    value: T | None = None
    error: DomainError | None = None
    mails: list[Mail] = field(default_factory=list)

    def unwrap(self) -> T:
        if self.error is not None:
            raise self.error
        assert self.value is not None
        return self.value


_INVALID_CREDENTIALS = "email or password is incorrect"


def normalise_email(email: str) -> str:
    """Lower-cased, trimmed; the domain in its IDNA-normalised form (email-validator)."""
    email = email.strip()
    try:
        email = validate_email(email, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise InvalidInput("this is not a valid email address", code="invalid_email") from exc
    return email.lower()


def _lookup_email(email: str) -> str:
    """For look-ups only (login, reset): never raises, never reveals anything."""
    try:
        return normalise_email(email)
    except InvalidInput:
        return email.strip().lower()


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _policy(password: str, email: str | None, settings: AuthSettings | None) -> None:
    if settings is None:
        passwords.check_policy(password, email=email)
    else:
        passwords.check_policy(password, email=email, min_length=settings.password_min_length,
                               max_length=settings.password_max_length)
