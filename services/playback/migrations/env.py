from common.migrations import run_env
from playback.models import Base

run_env(Base.metadata)
