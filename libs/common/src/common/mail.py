"""Outgoing mail behind one interface: SMTP in distributed mode, the log in embedded mode.

Services build the message; this module only delivers it, so auth (verification, reset) and
billing (receipts) send mail the same way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol

import aiosmtplib

from common.settings import ServiceSettings

log = logging.getLogger("common.mail")


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    content_type: str = "application/octet-stream"


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    text: str
    attachments: tuple[Attachment, ...] = ()


class Mailer(Protocol):
    async def send(self, mail: Mail) -> None: ...


def build_message(mail: Mail, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = mail.to
    message["Subject"] = mail.subject
    message.set_content(mail.text)
    for attachment in mail.attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        message.add_attachment(attachment.content, maintype=maintype, subtype=subtype or "octet-stream",
                               filename=attachment.filename)
    return message


class SMTPMailer:
    """aiosmtplib on the event loop: no thread per message, a timeout on every connection."""

    def __init__(self, host: str, port: int, sender: str, *, username: str | None = None,
                 password: str | None = None, start_tls: bool = False, timeout: float = 10.0) -> None:
        self.host, self.port, self.sender = host, port, sender
        self.username, self.password = username, password
        self.start_tls, self.timeout = start_tls, timeout

    async def send(self, mail: Mail) -> None:
        await aiosmtplib.send(build_message(mail, self.sender), hostname=self.host, port=self.port,
                              username=self.username, password=self.password,
                              start_tls=self.start_tls, timeout=self.timeout)


class LogMailer:
    """Embedded mode: the log is the mailbox, so a developer can follow a verification link."""

    def __init__(self, sender: str) -> None:
        self.sender = sender

    async def send(self, mail: Mail) -> None:
        log.info("mail (not sent: no SMTP host configured)\nTo: %s\nSubject: %s\n\n%s%s",
                 mail.to, mail.subject, mail.text,
                 "".join(f"\n[attachment {a.filename}, {len(a.content)} bytes]" for a in mail.attachments))


def build_mailer(settings: ServiceSettings) -> Mailer:
    if not settings.smtp_host:
        return LogMailer(settings.mail_from)
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    return SMTPMailer(settings.smtp_host, settings.smtp_port, settings.mail_from,
                      username=settings.smtp_username, password=password,
                      start_tls=settings.smtp_starttls)
