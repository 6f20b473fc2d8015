"""`python -m gateway`: run the whole platform embedded on one port (what `make run` starts)."""

from __future__ import annotations

import uvicorn

from gateway.settings import GatewaySettings


def main() -> None:
    settings = GatewaySettings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    uvicorn.run("gateway.embedded:create_embedded_app", factory=True, host=settings.host,
                port=settings.port, proxy_headers=settings.forwarded_allow_ips is not None,
                forwarded_allow_ips=settings.forwarded_allow_ips, server_header=False, access_log=False)


if __name__ == "__main__":
    main()
