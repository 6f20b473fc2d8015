from catalog.models import Base, include_in_autogenerate
from common.migrations import run_env

run_env(Base.metadata, include_object=include_in_autogenerate)
