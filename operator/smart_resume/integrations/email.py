"""Sending e-mail: SMTP (the default: plain, STARTTLS or TLS, optional login) or SendGrid's v3
``mail/send`` API.

Both raise our ``TransientError`` (the mail service may take it later: connection failures, SMTP
4xx, HTTP 429/5xx) or ``PermanentError`` (bad credentials, a rejected address: SMTP 5xx, HTTP
4xx), never with a credential in the message. Headers are built with the standard library's
``email`` package, which refuses a header value with a line break; callers pass single-line
subjects anyway (``core.alerts.one_line``).
"""

from __future__ import annotations

import dataclasses
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any, Final, Protocol

import requests

from smart_resume.config import EmailSettings
from smart_resume.core.errors import ConfigurationError, PermanentError, TransientError
from smart_resume.integrations import http

SMTP: Final = "smtp"
SENDGRID: Final = "sendgrid"


@dataclasses.dataclass(frozen=True)
class Email:
    subject: str
    text: str
    html: str = ""
    kind: str = ""
    """A fixed word (e.g. ``RunReport``) for mail filters: header ``X-Smart-Resume-Alert``,
    SendGrid category."""


class Mailer(Protocol):
    def send(self, email: Email) -> None: ...


def build_mailer(settings: EmailSettings) -> Mailer | None:
    """The configured mailer, or None when no recipient is set (alerts become Events only).

    Raises:
        ConfigurationError: recipients are set but the sender or the transport is not.
    """
    if not settings.recipients:
        return None
    if not settings.sender:
        raise ConfigurationError("SMART_RESUME_EMAIL_SENDER is required with recipients")
    if settings.transport == SENDGRID:
        if not settings.sendgrid_api_key:
            raise ConfigurationError("SMART_RESUME_EMAIL_SENDGRID_API_KEY is required")
        return SendGridMailer(settings)
    if not settings.smtp_host:
        raise ConfigurationError("SMART_RESUME_EMAIL_SMTP_HOST is required with recipients")
    return SmtpMailer(settings)


class SmtpMailer:
    def __init__(self, settings: EmailSettings) -> None:
        self._settings = settings

    def send(self, email: Email) -> None:
        s = self._settings
        message = EmailMessage()
        message["From"] = s.sender
        message["To"] = ", ".join(s.recipients)
        message["Subject"] = email.subject
        message["Message-ID"] = make_msgid(domain=s.sender.rpartition("@")[2] or None)
        if email.kind:
            message["X-Smart-Resume-Alert"] = email.kind
        message.set_content(email.text)
        if email.html:
            message.add_alternative(email.html, subtype="html")
        try:
            with self._connect() as smtp:
                if s.smtp_starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if s.smtp_username:
                    smtp.login(s.smtp_username, s.smtp_password.reveal())
                smtp.send_message(message)
        except smtplib.SMTPResponseException as exc:
            error = TransientError if 400 <= exc.smtp_code < 500 else PermanentError
            raise error(
                f"SMTP {s.smtp_host}:{s.smtp_port} answered {exc.smtp_code}: "
                f"{http.snippet(_text(exc.smtp_error))}",
                service=SMTP,
                status=exc.smtp_code,
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise TransientError(
                f"SMTP {s.smtp_host}:{s.smtp_port}: {type(exc).__name__}: {http.snippet(str(exc))}",
                service=SMTP,
            ) from exc

    def _connect(self) -> smtplib.SMTP:
        s = self._settings
        if s.smtp_tls:
            return smtplib.SMTP_SSL(
                s.smtp_host,
                s.smtp_port,
                timeout=s.smtp_timeout_seconds,
                context=ssl.create_default_context(),
            )
        return smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_seconds)


class SendGridMailer:
    def __init__(self, settings: EmailSettings) -> None:
        self._settings = settings
        # One send per message; the notifier retries across ticks, so urllib3 retries briefly.
        self._session = http.build_session(http.retry_policy(total=2))

    def send(self, email: Email) -> None:
        s = self._settings
        content = [{"type": "text/plain", "value": email.text}]
        if email.html:
            content.append({"type": "text/html", "value": email.html})
        payload: dict[str, Any] = {
            "personalizations": [{"to": [{"email": address} for address in s.recipients]}],
            "from": {"email": s.sender},
            "subject": email.subject,
            "content": content,
        }
        if email.kind:
            payload["categories"] = [email.kind]
        key = s.sendgrid_api_key.reveal()
        try:
            response = self._session.post(
                f"{s.sendgrid_url.rstrip('/')}/v3/mail/send",
                json=payload,
                headers={"Authorization": f"Bearer {key}"},
                timeout=(5, s.smtp_timeout_seconds),
            )
        except requests.RequestException as exc:
            raise TransientError(
                f"SendGrid request failed: {type(exc).__name__}", service=SENDGRID
            ) from exc
        try:
            http.raise_for_status(response, service=SENDGRID)
        except (TransientError, PermanentError) as exc:
            raise type(exc)(
                str(exc).replace(key, "***"), service=SENDGRID, status=exc.status
            ) from None


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value
