"""Asset use cases: create + presigned upload, completion, reads, delete, and the transcode job.

Lifecycle: uploading -> processing -> ready | failed (deleted is a tombstone). Every state change
that others care about commits together with its outbox event; the job message itself travels
through the outbox too (`playback.transcode.requested.v1`), so completing an upload and queueing
its transcode are one atomic step.
"""

from .keys import (
    ADMIN,
    MAX_PARTS,
    OUTPUT_CONTENT_TYPES,
    allowed_content_types,
    asset_prefix,
    check_upload_signature,
    forensic_reference_key,
    load_for,
    to_read,
    upload_key,
    upload_signature,
)
from .listing import delete_asset, list_assets, purge_storage
from .transcode import GAVE_UP, SCRATCH_PREFIX, assets_needing_work, clear_scratch, run_transcode
from .uploads import (
    EXPIRY_BATCH,
    UPLOAD_EXPIRED,
    Created,
    complete_upload,
    create_asset,
    expire_uploads,
    receive_upload,
)

__all__ = [
    "ADMIN",
    "EXPIRY_BATCH",
    "GAVE_UP",
    "MAX_PARTS",
    "OUTPUT_CONTENT_TYPES",
    "SCRATCH_PREFIX",
    "UPLOAD_EXPIRED",
    "Created",
    "allowed_content_types",
    "asset_prefix",
    "assets_needing_work",
    "check_upload_signature",
    "clear_scratch",
    "complete_upload",
    "create_asset",
    "delete_asset",
    "expire_uploads",
    "forensic_reference_key",
    "list_assets",
    "load_for",
    "purge_storage",
    "receive_upload",
    "run_transcode",
    "to_read",
    "upload_key",
    "upload_signature",
]
