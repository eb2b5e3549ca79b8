"""The control-plane harness turns a bad environment into a clear error and cleans up after crashes.

A broken etcd cannot be produced for real on demand, so these tests stand in small shell scripts
for the binaries (through KUBEBUILDER_ASSETS) that fail the way a real one does.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from harness import binaries, controlplane
from harness.controlplane import ControlPlane, ControlPlaneError


def _fake_assets(folder: Path, etcd_script: str) -> Path:
    folder.mkdir()
    for name in binaries.NAMES:
        path = folder / name
        path.write_text("#!/bin/sh\n" + (etcd_script if name == "etcd" else "sleep 60\n"))
        path.chmod(0o755)
    return folder


def test_binaries__no_go_and_no_assets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without Go, KUBEBUILDER_ASSETS or a cached build, the error says how to fix it."""
    monkeypatch.delenv("KUBEBUILDER_ASSETS", raising=False)
    monkeypatch.setenv("SMART_RESUME_CACHE", str(tmp_path / "empty-cache"))
    if Path("/usr/bin/go").exists() or Path("/bin/go").exists():
        pytest.skip("go is installed in /usr/bin or /bin, so it cannot be hidden from PATH here")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    with pytest.raises(binaries.BinariesError, match="no Go toolchain.*KUBEBUILDER_ASSETS"):
        binaries.locate_binaries()


def test_binaries__assets_folder_missing_a_binary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A KUBEBUILDER_ASSETS folder that lacks a binary is named, with what is missing."""
    (tmp_path / "etcd").write_text("")
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(tmp_path))
    with pytest.raises(binaries.BinariesError, match="lacks executable .*kube-apiserver"):
        binaries.locate_binaries()


def test_build_script__check_mode_does_not_build(tmp_path: Path) -> None:
    """`--check` on an empty cache exits 1 without starting a Go build."""
    env = {**os.environ, "SMART_RESUME_CACHE": str(tmp_path)}
    result = subprocess.run(
        ["bash", str(binaries.BUILD_SCRIPT), "--check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert result.returncode == 1
    assert list(tmp_path.iterdir()) == []


def test_up__etcd_exits_with_port_in_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An etcd that dies because its port is taken gives a hint and its log, and leaves nothing
    behind."""
    assets = _fake_assets(
        tmp_path / "assets",
        'echo "listen tcp 127.0.0.1:2379: bind: address already in use"; exit 1\n',
    )
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(assets))
    plane = ControlPlane(tmp_path / "state")
    with pytest.raises(
        ControlPlaneError,
        match="(?s)etcd exited during start-up. A port it needs is in use.*address already in use",
    ):
        plane.up()
    assert not (tmp_path / "state" / controlplane.STATE_FILE).exists()
    assert not plane.kubeconfig.exists()


def test_up__etcd_never_ready(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An etcd that runs but never answers /health times out with a clear message, and is
    stopped."""
    assets = _fake_assets(tmp_path / "assets", "exec sleep 60\n")
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(assets))
    monkeypatch.setattr(controlplane, "READY_TIMEOUT_SECONDS", 1.0)
    plane = ControlPlane(tmp_path / "state")
    with pytest.raises(ControlPlaneError, match="etcd did not become ready"):
        plane.up()
    assert not (tmp_path / "state" / controlplane.STATE_FILE).exists()


def test_down__cleans_leftovers_of_a_crashed_session(tmp_path: Path) -> None:
    """A state file whose processes are gone is cleaned: its temporary directory and kubeconfig
    removed."""
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    workdir = tmp_path / "old-workdir"
    workdir.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    (state_dir / controlplane.STATE_FILE).write_text(
        json.dumps(
            {
                "workdir": str(workdir),
                "pids": {"etcd": dead.pid, "apiserver": dead.pid, "controller_manager": dead.pid},
                "ports": {"apiserver": 1},
                "token": "x",
            }
        )
    )
    (state_dir / controlplane.KUBECONFIG_FILE).write_text("stale")
    plane = ControlPlane(state_dir)
    assert plane.status() == "unhealthy (run down)"
    assert plane.down() is True
    assert not workdir.exists()
    assert list(state_dir.iterdir()) == []


@pytest.mark.cluster
def test_up_down__real_binaries_leave_nothing_behind(tmp_path: Path) -> None:
    """A real control plane comes up healthy, is reused by a second `up`, and `down` removes all."""
    plane = ControlPlane(tmp_path / "state")
    state = plane.up()
    try:
        assert plane.status().startswith("healthy at https://127.0.0.1:")
        assert plane.up().pids == state.pids, "a healthy control plane is reused, not restarted"
        assert Path(state.workdir).is_dir() and plane.kubeconfig.is_file()
    finally:
        assert plane.down() is True
    assert not any(controlplane._alive(pid) for pid in state.pids.values())
    assert not Path(state.workdir).exists()
    assert list((tmp_path / "state").iterdir()) == []
