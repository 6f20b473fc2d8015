"""The SMTP adapter delivers a real message to a real (local) SMTP server."""

from __future__ import annotations

from common.mail import LogMailer, Mail, SMTPMailer, build_mailer
from common.settings import ServiceSettings
from common.testing import smtp_server


async def test_smtp_mailer_delivers_to_a_real_server() -> None:
    with smtp_server() as mailbox:
        mailer = build_mailer(ServiceSettings(**mailbox.settings()))
        assert isinstance(mailer, SMTPMailer)
        await mailer.send(Mail(to="learner@example.com", subject="Welcome", text="Hello there"))
        message = await mailbox.wait_for("learner@example.com", subject_contains="Welcome")
    assert message["From"] == "Triple Academy <no-reply@triple.academy>"
    assert message.get_content().strip() == "Hello there"


def test_without_smtp_host_mail_goes_to_the_log() -> None:
    assert isinstance(build_mailer(ServiceSettings()), LogMailer)
