"""Names of the API and of a run's children."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from smart_resume import resource

CRD_PATH = Path(__file__).resolve().parents[1] / "crds" / "smartresumeruns.smartresume.io.yaml"
# A Job name must be a DNS subdomain and, through its pods' job-name label, a label value.
DNS_SUBDOMAIN_63 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def test_constants__match_the_crd() -> None:
    """The code and crds/ name the same group, version, kind, plural and short name."""
    crd = yaml.safe_load(CRD_PATH.read_text())
    assert crd["metadata"]["name"] == resource.CRD_NAME
    assert crd["spec"]["group"] == resource.GROUP
    assert [v["name"] for v in crd["spec"]["versions"]] == [resource.VERSION]
    names = crd["spec"]["names"]
    assert (names["kind"], names["plural"]) == (resource.KIND, resource.PLURAL)
    assert names["shortNames"] == [resource.SHORT_NAME]


def test_lease_name__names_the_stream() -> None:
    """Each stream has one Lease per namespace, whatever the run."""
    assert resource.lease_name(3) == "smart-resume-stream-3"


@pytest.mark.parametrize(
    ("run_name", "stream", "expected"),
    [
        pytest.param("nightly", 3, "nightly-s3", id="short"),
        pytest.param("a" * 60, 1, "a" * 60 + "-s1", id="exactly-63"),
    ],
)
def test_job_name__short_names_are_kept(run_name: str, stream: int, expected: str) -> None:
    """A name that fits is ``<run>-s<n>``, readable as it is."""
    assert resource.job_name(run_name, stream) == expected


@pytest.mark.parametrize(
    "run_name",
    [
        pytest.param("r" * 253, id="longest-run-name"),
        pytest.param("nightly-" * 10, id="cut-at-a-dash"),
        pytest.param("a" * 51 + "." + "b" * 40, id="cut-at-a-dot"),
    ],
)
def test_job_name__long_names_are_cut_and_hashed(run_name: str) -> None:
    """A long run name gives a valid name of at most 63 characters that still names the stream."""
    name = resource.job_name(run_name, 64)
    assert len(name) <= resource.MAX_NAME_LENGTH
    assert DNS_SUBDOMAIN_63.match(name), name
    assert name.endswith("-s64")
    assert name == resource.job_name(run_name, 64)


def test_job_name__long_names_with_one_prefix_differ() -> None:
    """Two runs whose names differ only past the cut still get distinct Jobs."""
    prefix = "scheduled-smart-resume-run-for-the-agency-" * 2
    assert resource.job_name(prefix + "001", 1) != resource.job_name(prefix + "002", 1)


@pytest.mark.parametrize(
    ("stream", "labels", "selector"),
    [
        pytest.param(
            None, {"smartresume.io/run": "nightly"}, "smartresume.io/run=nightly", id="run"
        ),
        pytest.param(
            2,
            {"smartresume.io/run": "nightly", "smartresume.io/stream": "2"},
            "smartresume.io/run=nightly,smartresume.io/stream=2",
            id="stream",
        ),
    ],
)
def test_labels__and_selector_agree(
    stream: int | None, labels: dict[str, str], selector: str
) -> None:
    """The selector of a run (or one of its streams) matches exactly the labels put on children."""
    assert resource.labels("nightly", stream) == labels
    assert resource.selector("nightly", stream) == selector


def test_labels__long_run_name_fits_a_label_value() -> None:
    """A run name over 63 characters is shortened like a Job name, as label values must be."""
    value = resource.labels("x" * 200)[resource.LABEL_RUN]
    assert len(value) <= resource.MAX_NAME_LENGTH
    assert value == resource.labels("x" * 200, 1)[resource.LABEL_RUN]


def _numbers_without_maximum(node: object, path: str) -> list[str]:
    if isinstance(node, dict):
        found = (
            [path] if node.get("type") in ("integer", "number") and "maximum" not in node else []
        )
        return found + [
            hit
            for key, value in node.items()
            for hit in _numbers_without_maximum(value, f"{path}.{key}")
        ]
    if isinstance(node, list):
        return [
            hit
            for i, value in enumerate(node)
            for hit in _numbers_without_maximum(value, f"{path}[{i}]")
        ]
    return []


@pytest.mark.parametrize(
    "crd", sorted(CRD_PATH.parent.glob("*.smartresume.io.yaml")), ids=lambda p: p.name
)
def test_crds__every_number_has_an_upper_bound(crd: Path) -> None:
    """No open-ended number in any schema, spec or status: each integer and number has a maximum."""
    schema = yaml.safe_load(crd.read_text())["spec"]["versions"][0]["schema"]
    assert _numbers_without_maximum(schema, "") == []
