"""Dependencies of playback's routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from common.app import RuntimeDep as RuntimeDep
from common.app import get_settings, resources_dependency
from playback.access_records import AccessRecorder
from playback.cdn import MediaSigner
from playback.media import LocalMediaStore
from playback.resources import PlaybackResources
from playback.settings import PlaybackSettings
from playback.signing import TokenKey
from playback.streams import StreamRegistry

ResourcesDep = Annotated[PlaybackResources, Depends(resources_dependency(PlaybackResources))]


async def get_token_key(resources: ResourcesDep) -> TokenKey:
    return resources.token_key


async def get_media_store(resources: ResourcesDep) -> LocalMediaStore:
    return resources.media


async def get_streams(resources: ResourcesDep) -> StreamRegistry:
    return resources.streams


async def get_media_signer(resources: ResourcesDep) -> MediaSigner:
    return resources.media_signer


async def get_access_records(resources: ResourcesDep) -> AccessRecorder:
    return resources.access_records


SettingsDep = Annotated[PlaybackSettings, Depends(get_settings)]
TokenKeyDep = Annotated[TokenKey, Depends(get_token_key)]
MediaStoreDep = Annotated[LocalMediaStore, Depends(get_media_store)]
StreamsDep = Annotated[StreamRegistry, Depends(get_streams)]
MediaSignerDep = Annotated[MediaSigner, Depends(get_media_signer)]
AccessRecordsDep = Annotated[AccessRecorder, Depends(get_access_records)]
