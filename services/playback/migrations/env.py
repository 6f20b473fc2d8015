import playback.assets.models  # noqa: F401  (video_assets joins Base.metadata)
from common.migrations import run_env
from playback.models import Base

run_env(Base.metadata)
