"""What ships: the wheel (and the image, which installs it) holds the operator and worker only."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel_files(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--wheel-dir",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = out.glob("smart_resume_operator-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def test_wheel__ships_operator_and_worker_without_test_fakes(wheel_files: list[str]) -> None:
    """The wheel carries the package's modules and metadata, and none of the local fakes."""
    modules = [name for name in wheel_files if not name.split("/")[0].endswith(".dist-info")]
    print(f"wheel: {len(wheel_files)} files, {len(modules)} of them the package's")
    assert all(name.startswith("smart_resume/") for name in modules), modules
    assert {
        "smart_resume/cli.py",
        "smart_resume/controller/handlers.py",
        "smart_resume/worker/main.py",
    } <= set(modules)
    assert not [name for name in modules if "fake" in name or "/testing/" in name]


def test_image__installs_only_the_package() -> None:
    """The Dockerfile copies the package sources and nothing of the tests or benchmarks."""
    copies = [
        line.split()[1:-1]
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY ")
    ]
    assert [path for sources in copies for path in sources] == [
        "pyproject.toml",
        "README.md",
        "operator",
    ]
