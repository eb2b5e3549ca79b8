"""The base of the local fakes (Airtable, AI, Apify, SendGrid): real HTTP on 127.0.0.1.

Each fake is a ``FakeService`` subclass that implements ``handle(request)``; this base owns the
socket, the thread, fault and latency injection and request counting, so the tests and the demo
exercise the project's real HTTP clients (retries, timeouts, pooling) end to end.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


@dataclasses.dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def param(self, name: str, default: str | None = None) -> str | None:
        return next((value for key, value in self.query if key == name), default)


@dataclasses.dataclass(frozen=True)
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def json(cls, payload: Any, status: int = 200) -> Response:
        return cls(status=status, body=json.dumps(payload).encode())

    @classmethod
    def html(cls, text: str, status: int) -> Response:
        return cls(status=status, body=text.encode(), content_type="text/html; charset=utf-8")


@dataclasses.dataclass
class _Fault:
    response: Response | None
    remaining: int
    delay_seconds: float = 0.0
    path_contains: str = ""


class FakeService:
    """A threaded HTTP server; subclasses implement ``handle``.

    Use as a context manager, or ``start()``/``stop()``; ``url`` is ``http://127.0.0.1:<port>``.
    """

    name = "fake"

    def __init__(self, *, latency_seconds: float = 0.0) -> None:
        self.latency_seconds = latency_seconds
        self.keep_requests = True
        """False: requests are counted, not kept (for long benchmarks)."""
        self.request_counts: collections.Counter[str] = collections.Counter()
        self.requests: list[Request] = []
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- to implement -------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        raise NotImplementedError

    # -- fault injection ----------------------------------------------------------------------

    def fail_next(self, response: Response, *, times: int = 1, path_contains: str = "") -> None:
        """Answer the next ``times`` matching requests with ``response`` instead of handling
        them."""
        with self._lock:
            self._faults.append(_Fault(response, times, path_contains=path_contains))

    def stall_next(self, seconds: float, *, times: int = 1, path_contains: str = "") -> None:
        """Delay the next ``times`` matching requests by ``seconds`` before handling them."""
        with self._lock:
            self._faults.append(_Fault(None, times, seconds, path_contains))

    def clear_faults(self) -> None:
        """Forget every fault not yet used up: the service answers normally again."""
        with self._lock:
            self._faults.clear()

    def _take_fault(self, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.path_contains in path and fault.remaining > 0:
                    fault.remaining -= 1
                    if not fault.remaining:
                        self._faults.remove(fault)
                    return fault
        return None

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"{self.name} is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def total_requests(self) -> int:
        return sum(self.request_counts.values())

    def start(self) -> FakeService:
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body leave in two writes; with Nagle on, delayed ACKs add ~40 ms to each.
            disable_nagle_algorithm = True

            def _serve(self) -> None:
                service._dispatch(self)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{self.name}-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- plumbing -----------------------------------------------------------------------------

    def _dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        request = Request(
            method=handler.command,
            path=parts.path,
            query=parse_qsl(parts.query, keep_blank_values=True),
            headers={key.lower(): value for key, value in handler.headers.items()},
            body=handler.rfile.read(length) if length else b"",
        )
        with self._lock:
            self.request_counts[f"{request.method} {request.path}"] += 1
            if self.keep_requests:
                self.requests.append(request)
        fault = self._take_fault(request.path)
        delay = self.latency_seconds + (fault.delay_seconds if fault else 0.0)
        if delay:
            time.sleep(delay)
        if fault is not None and fault.response is not None:
            response = fault.response
        else:
            try:
                response = self.handle(request)
            except Exception as exc:  # a bug in a fake must show up as a 500, not a hung client
                response = Response.json(
                    {"error": {"type": "FAKE_ERROR", "message": repr(exc)}}, 500
                )
        try:
            handler.send_response(response.status)
            handler.send_header("Content-Type", response.content_type)
            handler.send_header("Content-Length", str(len(response.body)))
            for key, value in response.headers:
                handler.send_header(key, value)
            handler.end_headers()
            handler.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (its read timeout fired): nothing left to answer
