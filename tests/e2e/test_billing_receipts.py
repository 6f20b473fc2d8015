"""Receipts end to end: the embedded platform (`python -m gateway`, real auth, catalog, playback and
billing) with billing's mail pointed at a real SMTP server in this process. A payment on the local
checkout page and an admin refund each put one mail in the box, addressed with what auth's real
`/internal/users/{id}` says (email and name)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest

from common.testing import MailCatcher, mail_text, smtp_server
from gateway.distributed import REPO_ROOT, free_port

DEMO_ADMIN = ("admin@triple.academy", "Admin-Demo-2026!")
DEMO_COURSE = "10000000-0000-4000-8000-000000000001"


def _ready(url: str) -> bool:
    try:
        return all(httpx.get(f"{url}/api/{s}/health/ready", timeout=2).status_code == 200
                   for s in ("auth", "catalog", "playback", "billing"))
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def mailing_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, MailCatcher]]:
    """An embedded platform of its own: billing's SMTP settings come from its environment."""
    data_dir: Path = tmp_path_factory.mktemp("embedded-mail")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with smtp_server() as mailbox:
        env = {**os.environ, "GATEWAY_PORT": str(port), "GATEWAY_PUBLIC_BASE_URL": url,
               "GATEWAY_DATA_DIR": str(data_dir), "GATEWAY_LOGIN_RATE_LIMIT": "1200r/m",
               "GATEWAY_LOGIN_BURST": "200", "BILLING_SMTP_HOST": mailbox.host,
               "BILLING_SMTP_PORT": str(mailbox.port), "BILLING_WORKER_INTERVAL_SECONDS": "1"}
        log = (data_dir / "gateway.log").open("wb")
        process = subprocess.Popen([sys.executable, "-m", "gateway"], cwd=REPO_ROOT, env=env, stdout=log,
                                   stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 90
            while not _ready(url):
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError((data_dir / "gateway.log").read_text()[-3000:])
                time.sleep(0.3)
            yield url, mailbox
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:  # a shutdown that hangs is a failure, but leave no process behind
                process.kill()
                process.wait(timeout=10)
                raise


def _mail(mailbox: MailCatcher, to: str, subject: str) -> EmailMessage:
    """The catcher's own wait (10 s); its SMTP server runs in a thread of its own."""
    return asyncio.run(mailbox.wait_for(to, subject_contains=subject))


def test_payment_and_refund_receipts_reach_the_buyer(mailing_platform: tuple[str, MailCatcher]) -> None:
    url, mailbox = mailing_platform
    email, name = f"receipt-{uuid.uuid4().hex[:8]}@example.com", f"Grace Receipt {uuid.uuid4().hex[:4]}"
    with httpx.Client(base_url=url, timeout=15) as client:
        registered = client.post("/api/auth/register", json={"email": email, "password": "a long enough passphrase",
                                                              "full_name": name})
        assert registered.status_code == 201, registered.text
        login = client.post("/api/auth/login", json={"email": email, "password": "a long enough passphrase"})
        learner = {"Authorization": f"Bearer {login.json()['access_token']}"}
        checkout = client.post("/api/billing/checkout", json={"course_id": DEMO_COURSE}, headers=learner)
        assert checkout.status_code == 201, checkout.text
        order_id = checkout.json()["order_id"]
        assert client.post(checkout.json()["checkout_url"] + "/pay").status_code == 200

        receipt_mail = _mail(mailbox, email, "Receipt for Protected Video Streaming 101")
        receipt = mail_text(receipt_mail)
        assert f"Hello {name}," in receipt and "Paid:     49.00 EUR" in receipt and order_id in receipt, receipt
        invoice = client.get(f"/api/billing/orders/{order_id}/invoice", headers=learner)
        assert invoice.status_code == 200, invoice.text
        attached = [(part.get_filename(), part.get_content()) for part in receipt_mail.iter_attachments()]
        number = invoice.headers["content-disposition"].split('filename="')[1].rstrip('"')
        assert [name for name, _ in attached] == [number] and number.startswith("INV-")
        assert attached[0][1].startswith(b"%PDF-")

        admin_login = client.post("/api/auth/login", json={"email": DEMO_ADMIN[0], "password": DEMO_ADMIN[1]})
        admin = {"Authorization": f"Bearer {admin_login.json()['access_token']}"}
        refund = client.post(f"/api/billing/orders/{order_id}/refund", json={"reason": "requested_by_customer"},
                             headers=admin)
        assert refund.json()["status"] == "refunded", refund.text
        refund_mail = mail_text(_mail(mailbox, email, "Refund for Protected Video Streaming 101"))
        assert f"Hello {name}," in refund_mail and "We refunded 49.00 EUR" in refund_mail, refund_mail
        credit_notes = [part.get_filename() for part in
                        _mail(mailbox, email, "Refund for Protected Video Streaming 101").iter_attachments()]
        assert len(credit_notes) == 1 and str(credit_notes[0]).startswith("CN-")
        time.sleep(1.5)  # a worker round later: still exactly these two mails
        assert len([m for m in mailbox.messages if m["To"] == email]) == 2
