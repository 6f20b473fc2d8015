"""Embedded gateway settings (env prefix GATEWAY_)."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.limits import EDGE_LIMITS


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8000
    public_base_url: str = "http://127.0.0.1:8000"
    data_dir: Path = Path("var/data")
    seed_demo_data: bool = True
    log_json: bool = False
    # The built web app (`make web`), served at / with SPA fallback; without it / is a JSON index.
    web_dist: Path = Path(__file__).resolve().parents[4] / "web" / "dist"

    # The edge, as the Nginx gateway does it (infra/nginx): browser origins allowed by CORS, and the
    # per-client-IP limits (`<n>r/s` or `<n>r/m` plus a burst; login = login, register, password).
    cors_origins: list[str] = ["http://localhost:3000"]
    api_rate_limit: str = EDGE_LIMITS.api_rate_limit
    api_burst: int = EDGE_LIMITS.api_burst
    login_rate_limit: str = EDGE_LIMITS.login_rate_limit
    login_burst: int = EDGE_LIMITS.login_burst
    # Proxies whose X-Forwarded-For names the client (uvicorn's forwarded_allow_ips); none by
    # default, so a client cannot pick its own rate-limit key.
    forwarded_allow_ips: str | None = None
