"""integrations.email against a real SMTP server (aiosmtpd on 127.0.0.1) and the SendGrid fake."""

from __future__ import annotations

import pytest

from fakes.mail import (
    SENDGRID_KEY,
    SMTP_PASSWORD,
    SMTP_USER,
    FakeSendGrid,
    SmtpServer,
    free_port,
    text_of,
)
from fakes.server import Response
from smart_resume.config import EmailSettings, Secret
from smart_resume.core.alerts import one_line
from smart_resume.core.errors import ConfigurationError, PermanentError, TransientError
from smart_resume.integrations.email import Email, SendGridMailer, SmtpMailer, build_mailer

RECIPIENTS = ("ops@example.com", "lead@example.com")


def _smtp(port: int, password: str = SMTP_PASSWORD) -> SmtpMailer:
    return SmtpMailer(
        EmailSettings(
            smtp_host="127.0.0.1",
            smtp_port=port,
            smtp_username=SMTP_USER,
            smtp_password=Secret(password),
            smtp_timeout_seconds=5,
            sender="smart-resume@example.com",
            recipients=RECIPIENTS,
        )
    )


def _sendgrid(url: str) -> SendGridMailer:
    return SendGridMailer(
        EmailSettings(
            transport="sendgrid",
            sendgrid_url=url,
            sendgrid_api_key=Secret(SENDGRID_KEY),
            sender="smart-resume@example.com",
            recipients=RECIPIENTS,
        )
    )


def test_smtp_mailer__logs_in_and_sends_text_and_html() -> None:
    """One message with both parts, to every recipient, after a login with the password."""
    with SmtpServer() as server:
        _smtp(server.port).send(Email("Run report", "plain body", "<p>html body</p>", "RunReport"))
    (message,) = server.messages
    assert message["To"] == ", ".join(RECIPIENTS)
    assert message["X-Smart-Resume-Alert"] == "RunReport"
    assert text_of(message).strip() == "plain body"
    assert "<p>html body</p>" in text_of(message, "html")
    assert SMTP_PASSWORD.encode() not in server.raw[0]


def test_smtp_mailer__a_client_name_with_newlines_stays_one_header() -> None:
    """A subject built from a client ID with CR/LF cannot add a header (e.g. Bcc)."""
    with SmtpServer() as server:
        subject = one_line("client 'evil\r\nBcc: victim@example.com' quarantined")
        _smtp(server.port).send(Email(subject, "body"))
    (message,) = server.messages
    assert message["Bcc"] is None
    assert "Bcc: victim@example.com" in str(message["Subject"])


def test_smtp_mailer__wrong_password_is_permanent_and_down_is_transient() -> None:
    """535 from the server cannot pass by retrying; a refused connection may."""
    with SmtpServer() as server, pytest.raises(PermanentError) as wrong:
        _smtp(server.port, password="not-the-password").send(Email("s", "b"))
    assert wrong.value.status == 535 and "not-the-password" not in str(wrong.value)
    with pytest.raises(TransientError):
        _smtp(free_port()).send(Email("s", "b"))


def test_sendgrid_mailer__sends_v3_payload_and_maps_errors() -> None:
    """202 is success; 401 is permanent and 503 transient, neither quoting the key."""
    with FakeSendGrid() as sendgrid:
        _sendgrid(sendgrid.url).send(Email("subject", "text", "<b>html</b>", "RunReport"))
        sendgrid.fail_next(Response.json({"errors": [{"message": SENDGRID_KEY}]}, 401))
        with pytest.raises(PermanentError) as denied:
            _sendgrid(sendgrid.url).send(Email("subject", "text"))
        sendgrid.fail_next(Response.json({"errors": []}, 503), times=3)
        with pytest.raises(TransientError):
            _sendgrid(sendgrid.url).send(Email("subject", "text"))
    (mail,) = sendgrid.mails
    assert mail["subject"] == "subject" and mail["categories"] == ["RunReport"]
    assert SENDGRID_KEY not in str(denied.value)


def test_build_mailer__no_recipient_means_no_mailer_and_gaps_are_errors() -> None:
    """Without recipients alerts are Events only; recipients without a host are an error."""
    assert build_mailer(EmailSettings()) is None
    with pytest.raises(ConfigurationError, match="SMTP_HOST"):
        build_mailer(EmailSettings(sender="a@example.com", recipients=RECIPIENTS))
    with pytest.raises(ConfigurationError, match="SENDER"):
        build_mailer(EmailSettings(smtp_host="localhost", recipients=RECIPIENTS))
