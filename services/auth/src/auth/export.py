"""A learner's whole footprint as one zip: auth's own part plus what every other service holds
about them, each asked through its internal export route (no service reads another's tables).

Synchronous, because every part is bounded by the person, not by the platform: enrollments,
certificates and orders grow with courses bought, playback sessions are capped by playback, and
billing renders at most `billing.export.MAX_INVOICE_PDFS` documents (about 0.1 s of CPU each with
an embedded Unicode font). The peers are asked concurrently, once each, with a timeout long enough
for those PDFs (`PART_TIMEOUT_SECONDS`), so the answer takes about the slowest peer.

A peer that does not answer does not fail the export: its part is missing and `manifest.json` says
so (`complete: false`, `missing: [...]`); the learner can ask again later.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import json
import re
import uuid
import zipfile
from typing import Any

from common.db import utcnow
from common.http import ServiceClient, optional_model
from common.runtime import Runtime
from contracts.peers import BillingExport, CatalogExport, PlaybackExport

PEERS: dict[str, type[CatalogExport | BillingExport | PlaybackExport]] = {
    "catalog": CatalogExport, "billing": BillingExport, "playback": PlaybackExport}
# Longer than the usual call timeout: billing renders the invoice PDFs while auth waits. No retry:
# a part that timed out once would only be rendered again.
PART_TIMEOUT_SECONDS = 30.0
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


async def _part(runtime: Runtime, peer: str, user_id: uuid.UUID) -> dict[str, Any] | None:
    """The peer's export of the user, or None when it cannot give it now."""
    client = ServiceClient(runtime.http, getattr(runtime.settings, f"{peer}_url"), peer, runtime.tokens,
                           timeout=PART_TIMEOUT_SECONDS, retries=0)
    answer = await optional_model(client, f"/internal/users/{user_id}/export", PEERS[peer])
    return answer.model_dump(mode="json") if answer is not None else None


def _take_pdfs(billing: dict[str, Any]) -> dict[str, bytes]:
    """Billing sends each document's PDF inline (base64); the archive keeps them as files."""
    files: dict[str, bytes] = {}
    for document in billing.get("invoices", []):
        encoded = document.pop("pdf_base64", None)
        if not isinstance(encoded, str):
            continue
        try:
            content = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        name = f"invoices/{_SAFE_NAME.sub('_', str(document.get('invoice_number', 'document')))}.pdf"
        files[name] = content
        document["pdf_file"] = name
    return files


async def archive(runtime: Runtime, user_id: uuid.UUID, own: dict[str, Any]) -> bytes:
    """The zip: manifest.json, one JSON file per service, invoices/*.pdf."""
    answers = await asyncio.gather(*(_part(runtime, peer, user_id) for peer in PEERS))
    parts: dict[str, dict[str, Any]] = {"auth": own}
    parts.update({peer: answer for peer, answer in zip(PEERS, answers, strict=True) if answer is not None})
    pdfs = _take_pdfs(parts["billing"]) if "billing" in parts else {}
    missing = [peer for peer, answer in zip(PEERS, answers, strict=True) if answer is None]
    manifest = {"user_id": str(user_id), "exported_at": utcnow().isoformat(), "complete": not missing,
                "missing": missing, "files": sorted([f"{name}.json" for name in parts] + list(pdfs))}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive_file:
        archive_file.writestr("manifest.json", json.dumps(manifest, indent=2))
        for name, part in parts.items():
            archive_file.writestr(f"{name}.json", json.dumps(part, indent=2, ensure_ascii=False))
        for name, content in pdfs.items():
            archive_file.writestr(name, content)
    return buffer.getvalue()
