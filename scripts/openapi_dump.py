"""Write every service's public OpenAPI document to web/openapi/<service>.json, no server needed.

The web app's typed client is generated from these files (`make web-client`); a test compares
them with what the services answer today, so the checked-in client never drifts from the API.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from common.settings import SERVICE_NAMES

REPO_ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = REPO_ROOT / "web" / "openapi"


def documents() -> dict[str, dict[str, Any]]:
    """Each service's document from `create_app` with the embedded settings (nothing is opened)."""
    import auth.main
    import billing.main
    import catalog.main
    import playback.main
    from auth.settings import AuthSettings
    from billing.settings import BillingSettings
    from catalog.settings import CatalogSettings
    from gateway.embedded import service_overrides
    from gateway.settings import GatewaySettings
    from playback.settings import PlaybackSettings

    factories = {"auth": (auth.main.create_app, AuthSettings), "catalog": (catalog.main.create_app, CatalogSettings),
                 "billing": (billing.main.create_app, BillingSettings),
                 "playback": (playback.main.create_app, PlaybackSettings)}
    with tempfile.TemporaryDirectory() as data_dir:
        gateway = GatewaySettings(data_dir=Path(data_dir))
        return {name: factories[name][0](factories[name][1](**service_overrides(gateway, name))).openapi()
                for name in SERVICE_NAMES}


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 when a checked-in document differs")
    args = parser.parse_args()
    stale = []
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for name, doc in documents().items():
        path = OUT_DIR / f"{name}.json"
        text = render(doc)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print(f"stale OpenAPI documents: {', '.join(stale)}; run `make web-client`", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
