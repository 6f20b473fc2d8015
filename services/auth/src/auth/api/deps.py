"""Dependencies of auth's routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from auth.settings import AuthSettings
from common.app import get_runtime, get_settings
from common.runtime import Runtime

RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


SettingsDep = Annotated[AuthSettings, Depends(get_settings)]


async def client_ip(request: Request) -> str:
    """The gateway sets X-Real-IP; a direct caller is its socket address."""
    return request.headers.get("x-real-ip") or (request.client.host if request.client else "unknown")


ClientIP = Annotated[str, Depends(client_ip)]
