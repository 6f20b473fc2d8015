"""Dependencies of playback's routes (the hot ones take `ResourcesDep` whole: each dependency
costs FastAPI ~10 us to solve)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from common.app import RuntimeDep as RuntimeDep
from common.app import get_settings, resources_dependency
from playback.media import LocalMediaStore
from playback.resources import PlaybackResources
from playback.settings import PlaybackSettings
from playback.streams import StreamRegistry

ResourcesDep = Annotated[PlaybackResources, Depends(resources_dependency(PlaybackResources))]


async def get_media_store(resources: ResourcesDep) -> LocalMediaStore:
    return resources.media


async def get_streams(resources: ResourcesDep) -> StreamRegistry:
    return resources.streams


SettingsDep = Annotated[PlaybackSettings, Depends(get_settings)]
MediaStoreDep = Annotated[LocalMediaStore, Depends(get_media_store)]
StreamsDep = Annotated[StreamRegistry, Depends(get_streams)]
