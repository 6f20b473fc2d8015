"""Request and response bodies; requests forbid unknown fields (no mass assignment). No response
model has a password or hash field."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from common.bounds import EMAIL_MAX_LENGTH
from common.schemas import StrictModel

# The body bound only (the policy, with its configurable limits, is checked in service.py).
Password = Field(min_length=8, max_length=1024)
Code = Field(min_length=16, max_length=200)
Role = Literal["student", "instructor", "admin"]
Email = Annotated[EmailStr, Field(max_length=EMAIL_MAX_LENGTH)]


class UserCreate(StrictModel):
    email: Email
    password: str = Password
    full_name: str = Field(min_length=1, max_length=200)


class LoginRequest(StrictModel):
    email: Email
    password: str = Field(min_length=1, max_length=1024)
    # "cookie": the refresh token comes back in an httpOnly cookie, not in the body (browsers).
    refresh_transport: Literal["body", "cookie"] = "body"


class RefreshRequest(StrictModel):
    refresh_token: str = Field(min_length=10, max_length=200)


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    full_name: str
    roles: list[str]
    is_active: bool
    email_verified: bool
    created_at: dt.datetime


class AdminUserRead(UserRead):
    updated_at: dt.datetime | None
    email_verified_at: dt.datetime | None
    last_login_at: dt.datetime | None
    disabled_at: dt.datetime | None


class UserPage(BaseModel):
    items: list[AdminUserRead]
    total: int
    page: int
    page_size: int


class ProfileUpdate(StrictModel):
    """The allow-list: nothing else about an account is the client's to set."""

    full_name: str | None = Field(default=None, min_length=1, max_length=200)


class PasswordConfirmation(StrictModel):
    password: str = Field(min_length=1, max_length=1024)


class PasswordChange(StrictModel):
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Password
    sign_out_other_sessions: bool = True


class PasswordForgot(StrictModel):
    email: str = Field(min_length=3, max_length=320)


class PasswordReset(StrictModel):
    code: str = Code
    new_password: str = Password


class CodeBody(StrictModel):
    code: str = Code


class EmailChange(StrictModel):
    new_email: Email
    password: str = Field(min_length=1, max_length=1024)


class RolesUpdate(StrictModel):
    roles: list[Role] = Field(min_length=1, max_length=3)


class SessionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    created_at: dt.datetime
    last_used_at: dt.datetime
    expires_at: dt.datetime
    ip: str | None
    user_agent: str | None
    current: bool = False


class AuditRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    occurred_at: dt.datetime
    action: str
    outcome: str
    actor: str | None
    subject_id: uuid.UUID | None
    ip: str | None
    user_agent: str | None
    request_id: str | None
    details: dict[str, object]


class AuditPage(BaseModel):
    items: list[AuditRead]
    total: int
    page: int
    page_size: int


class InternalUser(BaseModel):
    user_id: uuid.UUID
    email: str
    full_name: str
    is_active: bool


class TokenPair(BaseModel):
    access_token: str
    # None when the refresh token travels in the cookie instead (refresh_transport = "cookie").
    refresh_token: str | None = None
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


class ServiceToken(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
