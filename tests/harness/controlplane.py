"""A real, local Kubernetes control plane: etcd, kube-apiserver and kube-controller-manager.

There is no Docker engine on our machines, so kind cannot run; like controller-runtime's envtest we
run the control-plane binaries as local processes, and we add the controller-manager so that the
Job, CronJob, garbage-collector, namespace and service-account controllers are real too. There is
no scheduler and no kubelet: ``podrunner`` plays the kubelet's part for Job pods.

Everything binds to 127.0.0.1 on free ports. The admin identity is a static token in
``system:masters``; authorization is RBAC, so service-account tokens see real permissions.

Command line (what ``make cluster-up`` / ``make cluster-down`` call)::

    python -m harness.controlplane up   [--dir .cluster]   # start, or reuse a healthy one
    python -m harness.controlplane down [--dir .cluster]   # stop, remove every temporary file
    python -m harness.controlplane status [--dir .cluster]
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from harness.binaries import BinariesError, locate_binaries

STATE_FILE = "state.json"
KUBECONFIG_FILE = "kubeconfig"
READY_TIMEOUT_SECONDS = 90.0
STOP_TIMEOUT_SECONDS = 15.0
CONTROLLERS = (
    "job-controller",
    "cronjob-controller",
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "pod-garbage-collector-controller",
    "ttl-after-finished-controller",
    "root-ca-certificate-publisher-controller",
)


class ControlPlaneError(RuntimeError):
    """Raised with an actionable message when the control plane cannot be started or stopped."""


@dataclasses.dataclass
class State:
    """What a running control plane leaves in ``<dir>/state.json`` so that any process can stop
    it."""

    workdir: str
    """Temporary directory with etcd's data, certificates and logs; removed by ``down``."""
    pids: dict[str, int]
    ports: dict[str, int]
    token: str

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports['apiserver']}"


AUDIT_LOG_FILE = "audit.log"
AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived, ResponseStarted]
rules:
  - level: Metadata
"""
"""One audit event per request (watches when they end), with its user and user agent."""


def audit_policy(users: tuple[str, ...]) -> str:
    """``AUDIT_POLICY``, or with ``users`` the requests of those users only."""
    if not users:
        return AUDIT_POLICY
    return AUDIT_POLICY + f"    users: {json.dumps(list(users))}\n  - level: None\n"


class ControlPlane:
    """One control plane whose state and kubeconfig live in ``state_dir``.

    ``controller_manager_qps`` sets the controller-manager's client rate limit (``--kube-api-qps``,
    burst twice that; the binary's default is 20/30); ``audit`` makes the apiserver write an audit
    log (``audit_log_path``) naming each request's user and user agent, of the ``audit_users``
    only if given (the tests log the operator's requests, not the whole suite's).
    """

    def __init__(
        self,
        state_dir: Path,
        *,
        controller_manager_qps: int | None = None,
        audit: bool = False,
        audit_users: tuple[str, ...] = (),
    ) -> None:
        self.state_dir = state_dir.resolve()
        self.kubeconfig = self.state_dir / KUBECONFIG_FILE
        self._controller_manager_qps = controller_manager_qps
        self._audit = audit
        self._audit_users = audit_users

    # -- public -----------------------------------------------------------------------------

    def up(self) -> State:
        """Start the control plane, or reuse the one already running; return its state."""
        existing = self._read_state()
        if existing is not None:
            if self._is_healthy(existing):
                return existing
            _log("found leftovers of an earlier control plane that is not healthy; cleaning up")
            self._stop(existing)
        self._clean_stale_files()
        bins = locate_binaries()
        workdir = Path(tempfile.mkdtemp(prefix="smart-resume-cp-", dir=_fast_tmp()))
        names = ("etcd", "etcd_peer", "apiserver", "controller_manager")
        ports = dict(zip(names, _free_ports(len(names)), strict=True))
        state = State(workdir=str(workdir), pids={}, ports=ports, token=secrets.token_hex(16))
        self.state_dir.mkdir(parents=True, exist_ok=True)
        try:
            _write_pki(workdir)
            self._start_etcd(bins.etcd, state)
            self._start_apiserver(bins.kube_apiserver, state)
            self._write_kubeconfig(self.kubeconfig, state)
            self._start_controller_manager(bins.kube_controller_manager, state)
        except BaseException:
            self._stop(state)
            raise
        return state

    def down(self) -> bool:
        """Stop every process and remove every temporary file; return whether anything was
        running."""
        state = self._read_state()
        if state is not None:
            self._stop(state)
        self._clean_stale_files()
        return state is not None

    def audit_log_path(self, state: State) -> Path:
        return Path(state.workdir) / AUDIT_LOG_FILE

    def status(self) -> str:
        state = self._read_state()
        if state is None:
            return "not running"
        return f"healthy at {state.server}" if self._is_healthy(state) else "unhealthy (run down)"

    # -- processes --------------------------------------------------------------------------

    def _start_etcd(self, binary: Path, state: State) -> None:
        work = Path(state.workdir)
        client = f"http://127.0.0.1:{state.ports['etcd']}"
        peer = f"http://127.0.0.1:{state.ports['etcd_peer']}"
        self._spawn(
            "etcd",
            state,
            [
                str(binary),
                "--name=default",
                f"--data-dir={work / 'etcd'}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=default={peer}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )
        self._await("etcd", state, f"{client}/health", tls=False)

    def _start_apiserver(self, binary: Path, state: State) -> None:
        work = Path(state.workdir)
        (work / "tokens.csv").write_text(f'{state.token},admin,admin,"system:masters"\n')
        audit: list[str] = []
        if self._audit:
            (work / "audit-policy.yaml").write_text(audit_policy(self._audit_users))
            audit = [
                f"--audit-policy-file={work / 'audit-policy.yaml'}",
                f"--audit-log-path={self.audit_log_path(state)}",
            ]
        self._spawn(
            "apiserver",
            state,
            [
                str(binary),
                f"--etcd-servers=http://127.0.0.1:{state.ports['etcd']}",
                "--bind-address=127.0.0.1",
                f"--secure-port={state.ports['apiserver']}",
                f"--tls-cert-file={work / 'serving.crt'}",
                f"--tls-private-key-file={work / 'serving.key'}",
                f"--client-ca-file={work / 'ca.crt'}",
                f"--cert-dir={work / 'apiserver-certs'}",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-account-key-file={work / 'sa.key'}",
                f"--service-account-signing-key-file={work / 'sa.key'}",
                "--authorization-mode=RBAC",
                # What a hardened cluster runs: blockOwnerDeletion needs update on the owner's
                # finalizers; namespaces labelled for it refuse pods short of `restricted`.
                "--enable-admission-plugins=OwnerReferencesPermissionEnforcement,PodSecurity",
                f"--token-auth-file={work / 'tokens.csv'}",
                "--allow-privileged=true",
                "--enable-priority-and-fairness=false",
                "--profiling=false",
                *audit,
            ],
        )
        self._await("apiserver", state, f"{state.server}/readyz", token=state.token)

    def _start_controller_manager(self, binary: Path, state: State) -> None:
        work = Path(state.workdir)
        port = state.ports["controller_manager"]
        qps = self._controller_manager_qps
        rate = [f"--kube-api-qps={qps}", f"--kube-api-burst={2 * qps}"] if qps else []
        self._spawn(
            "controller_manager",
            state,
            [
                str(binary),
                f"--kubeconfig={self.kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
                f"--cert-dir={work / 'controller-manager-certs'}",
                "--authorization-always-allow-paths=/healthz,/readyz,/livez",
                "--leader-elect=false",
                f"--service-account-private-key-file={work / 'sa.key'}",
                f"--root-ca-file={work / 'ca.crt'}",
                f"--controllers={','.join(CONTROLLERS)}",
                "--concurrent-job-syncs=10",
                *rate,
            ],
        )
        self._await("controller_manager", state, f"https://127.0.0.1:{port}/healthz", insecure=True)

    def _spawn(self, name: str, state: State, argv: list[str]) -> None:
        log = open(Path(state.workdir) / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        try:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # survives `make cluster-up` returning; not killed by Ctrl-C
                start_new_session=True,
            )
        finally:
            log.close()
        state.pids[name] = process.pid
        self._write_state(state)

    def _await(
        self,
        name: str,
        state: State,
        url: str,
        *,
        tls: bool = True,
        token: str = "",
        insecure: bool = False,
    ) -> None:
        """Poll ``url`` until it answers 200 ok, the process dies, or the deadline passes."""
        context = _tls_context(Path(state.workdir), insecure=insecure) if tls else None
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        last = "no answer yet"
        while time.monotonic() < deadline:
            if not _alive(state.pids[name]):
                raise ControlPlaneError(self._explain_exit(name, state))
            request = urllib.request.Request(url)
            if token:
                request.add_header("Authorization", f"Bearer {token}")
            try:
                with urllib.request.urlopen(request, timeout=2, context=context) as response:
                    if response.status == 200:
                        return
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}"
            except (OSError, ssl.SSLError) as exc:
                last = str(exc)
            time.sleep(0.25)
        raise ControlPlaneError(
            f"{name} did not become ready at {url} within {READY_TIMEOUT_SECONDS:.0f}s ({last}); "
            f"its log: {Path(state.workdir) / (name + '.log')}\n{_tail(state, name)}"
        )

    def _explain_exit(self, name: str, state: State) -> str:
        tail = _tail(state, name)
        hint = ""
        if "address already in use" in tail:
            hint = (
                " A port it needs is in use: another process took it; "
                "run `make cluster-down` and retry."
            )
        elif "unable to find suitable network address" in tail:
            hint = (
                " This host has no default route; "
                "the apiserver needs one to pick an advertise address."
            )
        return f"{name} exited during start-up.{hint}\n--- last lines of its log ---\n{tail}"

    def _stop(self, state: State) -> None:
        for name in ("controller_manager", "apiserver", "etcd"):
            pid = state.pids.get(name)
            if pid is not None and _alive(pid) and _is_ours(pid, state):
                _terminate(pid)
        shutil.rmtree(state.workdir, ignore_errors=True)
        (self.state_dir / STATE_FILE).unlink(missing_ok=True)
        self.kubeconfig.unlink(missing_ok=True)

    def _clean_stale_files(self) -> None:
        (self.state_dir / STATE_FILE).unlink(missing_ok=True)
        self.kubeconfig.unlink(missing_ok=True)

    # -- state ------------------------------------------------------------------------------

    def _read_state(self) -> State | None:
        path = self.state_dir / STATE_FILE
        try:
            return State(**json.loads(path.read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError):
            _log(f"ignoring unreadable {path}")
            path.unlink(missing_ok=True)
            return None

    def _write_state(self, state: State) -> None:
        path = self.state_dir / STATE_FILE
        path.write_text(json.dumps(dataclasses.asdict(state), indent=2))
        path.chmod(0o600)

    def _is_healthy(self, state: State) -> bool:
        if not all(_alive(pid) and _is_ours(pid, state) for pid in state.pids.values()):
            return False
        if len(state.pids) != 3 or not self.kubeconfig.exists():
            return False
        try:
            request = urllib.request.Request(f"{state.server}/readyz")
            request.add_header("Authorization", f"Bearer {state.token}")
            context = _tls_context(Path(state.workdir), insecure=False)
            with urllib.request.urlopen(request, timeout=2, context=context) as response:
                return response.status == 200
        except (OSError, ssl.SSLError):
            return False

    @staticmethod
    def _write_kubeconfig(path: Path, state: State) -> None:
        ca_data = base64.b64encode((Path(state.workdir) / "ca.crt").read_bytes()).decode()
        path.write_text(
            "apiVersion: v1\nkind: Config\n"
            "clusters:\n- name: smart-resume-local\n  cluster:\n"
            f"    server: {state.server}\n    certificate-authority-data: {ca_data}\n"
            "users:\n- name: admin\n  user:\n"
            f"    token: {state.token}\n"
            "contexts:\n- name: smart-resume-local\n  context:\n"
            "    cluster: smart-resume-local\n    user: admin\n    namespace: default\n"
            "current-context: smart-resume-local\n"
        )
        path.chmod(0o600)


# -- helpers ----------------------------------------------------------------------------------


def _log(message: str) -> None:
    print(f"controlplane: {message}", file=sys.stderr)


def _fast_tmp() -> str | None:
    """Prefer a RAM-backed /dev/shm for etcd's data: fsync-free and fast."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _write_pki(workdir: Path) -> None:
    """A CA, an apiserver serving certificate for 127.0.0.1/localhost, and the service-account
    key."""
    if shutil.which("openssl") is None:
        raise ControlPlaneError(
            "openssl is needed to create the control plane's certificates; "
            "install it (Debian: apt-get install openssl)"
        )

    def run(*args: str) -> None:
        result = subprocess.run(["openssl", *args], cwd=workdir, capture_output=True, text=True)
        if result.returncode:
            raise ControlPlaneError(f"openssl {args[0]} failed: {result.stderr.strip()}")

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "3650",
        "-subj",
        "/CN=smart-resume-local-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    )
    run(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=kube-apiserver",
        "-keyout",
        "serving.key",
        "-out",
        "serving.csr",
    )
    (workdir / "serving.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default.svc\n"
        "extendedKeyUsage=serverAuth\n"
    )
    run(
        "x509",
        "-req",
        "-in",
        "serving.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "3650",
        "-extfile",
        "serving.ext",
        "-out",
        "serving.crt",
    )
    run("genrsa", "-out", "sa.key", "2048")


def _tls_context(workdir: Path, *, insecure: bool) -> ssl.SSLContext:
    if insecure:  # the controller-manager serves a self-signed certificate on its health port
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=str(workdir / "ca.crt"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child (when this process started it) is not alive.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _is_ours(pid: int, state: State) -> bool:
    """Guard against pid reuse: the process must be one of ours, started with our workdir."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    return state.workdir in cmdline or (Path(state.workdir).name in cmdline)


def _terminate(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        _reap(pid)
        if not _alive(pid):
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    while _alive(pid):
        _reap(pid)
        time.sleep(0.05)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _tail(state: State, name: str, lines: int = 15) -> str:
    try:
        text = (Path(state.workdir) / f"{name}.log").read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="controlplane", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("up", "down", "status"))
    parser.add_argument(
        "--dir", default=".cluster", type=Path, help="state directory (default .cluster)"
    )
    args = parser.parse_args(argv)
    plane = ControlPlane(args.dir)
    try:
        if args.command == "up":
            state = plane.up()
            print(f"control plane ready at {state.server}; KUBECONFIG={plane.kubeconfig}")
        elif args.command == "down":
            print("control plane stopped" if plane.down() else "no control plane was running")
        else:
            print(plane.status())
    except (ControlPlaneError, BinariesError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
