"""The operator as a subprocess (``smart-resume operator``), as tests and the demo run it."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from harness.waiting import wait_for


class OperatorProcess:
    """``smart-resume operator`` as a subprocess; can be stopped and restarted mid-run."""

    def __init__(
        self, env: dict[str, str], namespace: str, log_path: Path, *, verbose: bool = True
    ) -> None:
        self._env = env
        self._verbose = verbose
        self._namespace = namespace
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None
        self.metrics_port = 0

    def start(self) -> OperatorProcess:
        port = _free_port()
        self.metrics_port = _free_port()
        env = {**self._env, "SMART_RESUME_OPERATOR_METRICS_PORT": str(self.metrics_port)}
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "smart_resume.cli",
                    "--log-format",
                    "plain",
                    *(["--verbose"] if self._verbose else []),
                    "operator",
                    "-n",
                    self._namespace,
                    "--liveness",
                    f"http://127.0.0.1:{port}/healthz",
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(lambda: self._healthy(port), timeout=30, what="operator liveness endpoint")
        return self

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(sig)
            try:
                self._process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    @property
    def pid(self) -> int:
        assert self._process is not None, "the operator is not running"
        return self._process.pid

    def scrape(self) -> str:
        """The operator's ``/metrics`` page, in Prometheus' text format."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            return str(response.read().decode())

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _healthy(self, port: int) -> bool:
        assert self._process is not None
        if self._process.poll() is not None:
            raise AssertionError(
                f"operator exited with {self._process.returncode}:\n{self.log()[-3000:]}"
            )
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
