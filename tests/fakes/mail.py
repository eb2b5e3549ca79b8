"""Mail for tests and the demo: a real SMTP server (aiosmtpd) and a fake of SendGrid's v3 API.

``SmtpServer`` listens on 127.0.0.1, asks for a login (``AUTH PLAIN``/``LOGIN`` without TLS, as a
local relay may) and keeps every message it accepted, parsed. ``FakeSendGrid`` serves
``POST /v3/mail/send`` the way SendGrid does where we depend on it: Bearer key or 401, a JSON body
with personalizations, from, subject and content or 400, then 202 with an empty body.
"""

from __future__ import annotations

import email
import email.policy
import logging
import socket
import threading
import warnings
from email.message import EmailMessage
from typing import Any, Final

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from fakes.server import FakeService, Request, Response

# A login without TLS is what a local relay may accept; aiosmtpd warns about it on every session.
warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
logging.getLogger("mail.log").setLevel(logging.ERROR)

SMTP_USER: Final = "smart-resume"
SMTP_PASSWORD: Final = "smtp-secret-password-0001"
SENDGRID_KEY: Final = "SG.fake-sendgrid-key.secret-0001"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SmtpServer:
    """A local SMTP server; ``messages`` are the accepted e-mails, in order."""

    def __init__(self, port: int = 0) -> None:
        self.port = port or free_port()
        self.messages: list[EmailMessage] = []
        self.raw: list[bytes] = []
        self._lock = threading.Lock()
        self._controller = Controller(
            self,
            hostname="127.0.0.1",
            port=self.port,
            authenticator=self._authenticate,
            auth_require_tls=False,
            auth_required=True,
        )

    def start(self) -> SmtpServer:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def subjects(self) -> list[str]:
        with self._lock:
            return [str(message["Subject"]) for message in self.messages]

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        content = bytes(envelope.original_content or b"")
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        with self._lock:
            self.raw.append(content)
            self.messages.append(parsed)  # type: ignore[arg-type]
        return "250 OK"

    @staticmethod
    def _authenticate(
        server: Any, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            SMTP_USER.encode(),
            SMTP_PASSWORD.encode(),
        )
        return AuthResult(success=ok, handled=False)


def text_of(message: EmailMessage, subtype: str = "plain") -> str:
    part = message.get_body(preferencelist=(subtype,))
    return "" if part is None else str(part.get_content())  # type: ignore[attr-defined]


class FakeSendGrid(FakeService):
    """``POST /v3/mail/send``; ``mails`` holds the accepted JSON payloads."""

    name = "sendgrid"

    def __init__(self, *, api_key: str = SENDGRID_KEY) -> None:
        super().__init__()
        self.api_key = api_key
        self.mails: list[dict[str, Any]] = []

    def handle(self, request: Request) -> Response:
        if (request.method, request.path) != ("POST", "/v3/mail/send"):
            return Response.json({"errors": [{"message": "not found"}]}, 404)
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return Response.json({"errors": [{"message": "authorization required"}]}, 401)
        try:
            body = request.json()
            recipients = body["personalizations"][0]["to"]
            assert recipients and all("email" in r for r in recipients)
            assert body["from"]["email"] and body["subject"] and body["content"]
        except (ValueError, KeyError, IndexError, TypeError, AssertionError):
            return Response.json({"errors": [{"message": "bad request"}]}, 400)
        with self._lock:
            self.mails.append(body)
        return Response(status=202)
