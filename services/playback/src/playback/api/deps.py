"""Dependencies of playback's routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from common.app import get_runtime, get_settings
from common.runtime import Runtime
from playback.cdn import MediaSigner
from playback.media import LocalMediaStore
from playback.settings import PlaybackSettings
from playback.signing import TokenKey
from playback.streams import StreamRegistry

RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_token_key(request: Request) -> TokenKey:
    key: TokenKey = request.app.state.runtime.resources["token_key"]
    return key


async def get_media_store(request: Request) -> LocalMediaStore:
    store: LocalMediaStore = request.app.state.runtime.resources["media"]
    return store


async def get_streams(request: Request) -> StreamRegistry:
    streams: StreamRegistry = request.app.state.runtime.resources["streams"]
    return streams


async def get_media_signer(request: Request) -> MediaSigner:
    signer: MediaSigner = request.app.state.runtime.resources["media_signer"]
    return signer


SettingsDep = Annotated[PlaybackSettings, Depends(get_settings)]
TokenKeyDep = Annotated[TokenKey, Depends(get_token_key)]
MediaStoreDep = Annotated[LocalMediaStore, Depends(get_media_store)]
StreamsDep = Annotated[StreamRegistry, Depends(get_streams)]
MediaSignerDep = Annotated[MediaSigner, Depends(get_media_signer)]
