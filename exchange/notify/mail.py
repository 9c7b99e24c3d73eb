"""E-mail over SMTP (aiosmtplib): the server the operator configured, plain text in UTF-8.

Each message carries its delivery's id as its Message-ID, so a copy sent twice — a resend,
or a retry after the worker died between handing it over and recording that — is the same
message to every mail client and archive, which keep one.
"""

from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Literal

import aiosmtplib

from exchange.notify.robots import SENT, Outcome


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    security: Literal["starttls", "tls", "none"]
    username: str
    password: str
    sender: str
    timeout: float

    def __repr__(self) -> str:  # never the password, wherever this ends up printed
        return f"SmtpSettings(host={self.host!r}, port={self.port}, security={self.security!r})"


def compose(
    settings: SmtpSettings,
    to: str,
    subject: str,
    body: str,
    delivery_id: str,
    language: str,
    now: datetime,
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(now)
    domain = settings.sender.rpartition("@")[2].strip(">") or "cloud-exchange.invalid"
    message["Message-ID"] = f"<{delivery_id}@{domain}>"
    message["Content-Language"] = "zh-CN" if language == "zh" else language
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to it
    message.set_content(body, charset="utf-8")
    return message


async def send(settings: SmtpSettings, message: EmailMessage) -> Outcome:
    try:
        await aiosmtplib.send(
            message,
            hostname=settings.host,
            port=settings.port,
            username=settings.username or None,
            password=settings.password or None,
            use_tls=settings.security == "tls",
            start_tls=settings.security == "starttls",
            timeout=settings.timeout,
        )
    except aiosmtplib.SMTPRecipientsRefused as refused:
        codes = [error.code for error in refused.recipients]
        temporary = all(400 <= code < 500 for code in codes)
        return Outcome(False, f"recipient refused: {codes}", retry=temporary)
    except aiosmtplib.SMTPResponseException as error:
        # 4xx: the server is busy or greylisting, try later; 5xx: it will not take it.
        return Outcome(False, f"SMTP {error.code}: {error.message[:150]}", 400 <= error.code < 500)
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
        return Outcome(False, f"mail server unreachable: {type(error).__name__}", retry=True)
    return SENT
