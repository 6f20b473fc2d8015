"""The edge's per-client-IP rate limits, defined once for every deployment target.

Nginx's template (`make up`, compose, k8s) and the embedded gateway enforce the same numbers:
`nginx.render_values` and `GatewaySettings` default to these, and tests/static checks that compose
and the k8s overlay carry them too. Benchmarks raise them through settings, never here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EdgeLimits:
    # `<n>r/s` or `<n>r/m` per client IP, plus a burst answered at once (nginx `burst=N nodelay`).
    api_rate_limit: str = "100r/s"
    api_burst: int = 200
    # The strict zone of login, register and password endpoints: 5 a minute.
    login_rate_limit: str = "5r/m"
    login_burst: int = 4

    def template_values(self) -> dict[str, str]:
        """The nginx template's variables (the environment of the gateway container)."""
        return {"API_RATE_LIMIT": self.api_rate_limit, "API_BURST": str(self.api_burst),
                "LOGIN_RATE_LIMIT": self.login_rate_limit, "LOGIN_BURST": str(self.login_burst)}


EDGE_LIMITS = EdgeLimits()
