"""Where the control-plane binaries and kubectl come from: ``KUBEBUILDER_ASSETS``, or a Go build.

``KUBEBUILDER_ASSETS`` is the envtest convention for a folder holding prebuilt binaries. Without
it, ``hack/build-k8s-binaries.sh`` builds them from Go modules into a cache outside the
repository, keyed by Kubernetes version, and reuses that cache on the next call.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "hack" / "build-k8s-binaries.sh"
NAMES = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl")


class BinariesError(RuntimeError):
    """Raised with an actionable message when the binaries can be neither found nor built."""


@dataclasses.dataclass(frozen=True)
class Binaries:
    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kubectl: Path
    """For the install tests: ``kubectl kustomize`` and ``kubectl apply -k``."""


def locate_binaries() -> Binaries:
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    folder = Path(assets) if assets else _build()
    missing = [name for name in NAMES if not os.access(folder / name, os.X_OK)]
    if missing:
        source = "KUBEBUILDER_ASSETS" if assets else "the build cache"
        raise BinariesError(f"{source} ({folder}) lacks executable {', '.join(missing)}")
    return Binaries(*(folder / name for name in NAMES))


def _build() -> Path:
    if shutil.which("go") is None and not _cached():
        raise BinariesError(
            "no Go toolchain on PATH and KUBEBUILDER_ASSETS is not set. Install Go >= 1.24 "
            "(Debian: apt-get install golang-go, or https://go.dev/dl), or set KUBEBUILDER_ASSETS "
            "to a folder with kube-apiserver, kube-controller-manager, etcd and kubectl (for "
            "example from `setup-envtest use -p path`), or set SMART_RESUME_TEST_KUBECONFIG to use "
            "an existing cluster."
        )
    result = subprocess.run(["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, text=True)
    if result.returncode:
        raise BinariesError(
            f"building the control-plane binaries failed (exit {result.returncode}); the build "
            "output above says why. Retry with `bash hack/build-k8s-binaries.sh`."
        )
    return Path(result.stdout.strip().splitlines()[-1])


def _cached() -> bool:
    """True when the build script would find a complete cache without needing Go."""
    result = subprocess.run(["bash", str(BUILD_SCRIPT), "--check"], capture_output=True, text=True)
    return result.returncode == 0
