"""The mails auth sends. Links carry the code in the URL fragment (never sent to a server, never
in a Referer or an access log); the frontend posts it to the matching endpoint."""

from __future__ import annotations

from auth.settings import AuthSettings
from common.mail import Mail

SIGNATURE = "\n\n-- \nTriple Academy"
NOT_YOU = "\n\nIf you did not ask for this, you can ignore this message."


def _code_mail(settings: AuthSettings, to: str, subject: str, body: str, page: str, code: str,
               validity: str) -> Mail:
    link = f"{settings.link_base()}/account/{page}#code={code}"
    return Mail(to=to, subject=subject, text=(
        f"{body}\n\n{link}\n\nOr enter this code: {code}\n\n{validity}" + NOT_YOU + SIGNATURE))


def verify_email(settings: AuthSettings, to: str, name: str, code: str) -> Mail:
    return _code_mail(settings, to, "Confirm your email address",
                      f"Hello {name},\n\nplease confirm your email address for Triple Academy:", "verify-email",
                      code, f"The link expires in {settings.email_verification_ttl_hours} hours.")


def reset_password(settings: AuthSettings, to: str, name: str, code: str) -> Mail:
    return _code_mail(settings, to, "Reset your password",
                      f"Hello {name},\n\nsomeone (hopefully you) asked to reset your Triple Academy password:",
                      "reset-password", code,
                      f"The link works once and expires in {settings.password_reset_ttl_minutes} minutes. "
                      "Resetting signs you out everywhere.")


def confirm_email_change(settings: AuthSettings, to: str, name: str, code: str) -> Mail:
    return _code_mail(settings, to, "Confirm your new email address",
                      f"Hello {name},\n\nconfirm that this is the new email address of your Triple Academy "
                      "account:", "confirm-email-change", code,
                      f"The link expires in {settings.email_change_ttl_hours} hours.")


def email_change_notice(to: str, name: str, new_email: str) -> Mail:
    return Mail(to=to, subject="Your email address is being changed", text=(
        f"Hello {name},\n\na change of your Triple Academy sign-in address to {new_email} was requested. "
        "It takes effect once the new address is confirmed. If this was not you, reset your password "
        "now." + SIGNATURE))


def password_changed_notice(to: str, name: str) -> Mail:
    return Mail(to=to, subject="Your password was changed", text=(
        f"Hello {name},\n\nthe password of your Triple Academy account was just changed. If this was "
        "not you, reset your password now." + SIGNATURE))
