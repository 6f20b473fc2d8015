"""Session-wide preflight: the suite talks to real PostgreSQL, Redis and RabbitMQ (and runs nginx and
ffmpeg); when one is missing, say so in one line each, before any fixture fails with a traceback.

Point the tests elsewhere with TEST_PG_ADMIN_DSN, TEST_REDIS_URL and TEST_RABBITMQ_URL (see the
README); TEST_PREFLIGHT=0 skips the check.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
# Tiers (`make test-unit`, `test-integration`, `test-e2e`). Unit: no PostgreSQL, Redis, RabbitMQ or
# gateway process (files, parsers, SQLite, in-process apps): tests/static and the files listed here,
# each checked by running it with every server unreachable. E2E: through the gateway of a running
# platform (tests/e2e, the browser and the fault scenarios). Everything else is integration.
UNIT_FILES = frozenset({
    "libs/common/tests/test_http_models.py", "libs/common/tests/test_http_retries.py",
    "libs/common/tests/test_input_parsers.py", "libs/common/tests/test_mail.py",
    "libs/common/tests/test_revocation.py", "libs/common/tests/test_settings.py",
    "libs/common/tests/test_tracing.py", "libs/contracts/tests/test_contracts.py",
    "services/auth/tests/test_settings.py", "services/billing/tests/test_invoice_pdf.py",
    "services/billing/tests/test_tax_rules.py", "services/billing/tests/test_webhook_signature_parsing.py",
    "services/catalog/tests/test_embedded_sqlite.py", "services/gateway/tests/test_embedded_edge.py",
    "services/gateway/tests/test_web.py", "services/playback/tests/test_signature_parsing.py",
    "services/playback/tests/test_signing_and_hls.py",
})
UNIT_FOLDERS = ("tests/static/",)
E2E_FOLDERS = ("tests/e2e/", "tests/web/", "tests/faults/")


def tier(path: Path) -> str:
    relative = path.resolve().relative_to(ROOT).as_posix()
    if relative in UNIT_FILES or relative.startswith(UNIT_FOLDERS):
        return "unit"
    return "e2e" if relative.startswith(E2E_FOLDERS) else "integration"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(getattr(pytest.mark, tier(Path(str(item.path)))))


def pytest_collection_finish(session: pytest.Session) -> None:
    if os.environ.get("TEST_PREFLIGHT") == "0" or session.config.option.collectonly:
        return
    if all(tier(Path(str(item.path))) == "unit" for item in session.items):
        return
    from common import preflight
    from common.testing import PG_ADMIN_DSN, RABBITMQ_URL, REDIS_URL

    lines = preflight.problems([preflight.postgres(PG_ADMIN_DSN, "TEST_PG_ADMIN_DSN"),
                                preflight.redis_server(REDIS_URL, "TEST_REDIS_URL"),
                                preflight.rabbitmq(RABBITMQ_URL, "TEST_RABBITMQ_URL")])
    lines += preflight.missing_tools({"nginx": "nginx", "ffmpeg": "ffmpeg"})
    if lines:
        pytest.exit("the tests need:\n" + "\n".join(lines), returncode=pytest.ExitCode.USAGE_ERROR)
