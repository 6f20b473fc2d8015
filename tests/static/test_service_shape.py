"""Every service keeps the same shape (docs/service-shape.md): files a reader can hold at once, one
definition of what the services share, and typed wiring instead of string keys."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted(ROOT.glob("services/*/src/**/*.py"))
# A longer file says why in its opening lines ("Longer than ...: <reason>").
MAX_LINES = 420
REASON = re.compile(r"longer than", re.IGNORECASE)


def test_no_source_file_is_too_long_without_a_reason() -> None:
    too_long = [f"{path.relative_to(ROOT)} ({count} lines)" for path in SOURCES
                if (count := len(path.read_text().splitlines())) > MAX_LINES
                and not REASON.search("\n".join(path.read_text().splitlines()[:8]))]
    assert not too_long, f"split these along their seams or say why at the top: {too_long}"


def test_shared_definitions_live_in_one_place() -> None:
    """The request-body base, the SQLite decision and the runtime resources are defined once."""
    offenders = []
    for path in SOURCES:
        text = path.read_text()
        if "class StrictModel" in text:
            offenders.append(f"{path.relative_to(ROOT)}: StrictModel (use common.schemas)")
        if 'startswith("sqlite' in text:
            offenders.append(f"{path.relative_to(ROOT)}: SQLite test (use common.db.is_sqlite_url)")
        if re.search(r"\.resources\[", text):
            offenders.append(f"{path.relative_to(ROOT)}: string-keyed resources (use the service's typed resources)")
        if re.search(r"^RuntimeDep = ", text, re.MULTILINE):
            offenders.append(f"{path.relative_to(ROOT)}: RuntimeDep redeclared (use common.app.RuntimeDep)")
    assert not offenders, offenders


def test_libs_common_names_no_service_event() -> None:
    """Infrastructure stays generic: routing keys belong to libs/contracts and the services."""
    event_name = re.compile(r"['\"](auth|catalog|billing|playback)\.[a-z_]+\.[a-z_]+\.v\d+['\"]")
    named = [str(path.relative_to(ROOT)) for path in sorted(ROOT.glob("libs/common/src/**/*.py"))
             if event_name.search(path.read_text())]
    assert not named, named
