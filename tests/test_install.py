"""The install in ``manifests/`` and ``crds/``, read as files: what kustomize cannot check.

Rendering and applying them on a real API server is in ``tests/cluster/test_install.py``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from harness import binaries, manifests
from smart_resume import config, resource

REPO = Path(__file__).resolve().parents[1]
CRDS = REPO / "crds"


def _documents(*names: str) -> list[dict[str, Any]]:
    return [doc for name in names for doc in manifests.load(name)]


def _one(documents: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for d in documents if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def _stream_lease_rules(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in role["rules"] if "leases" in r["resources"] and "resourceNames" in r]


def test_crds_kustomization__lists_every_crd_file() -> None:
    """Every CRD file in crds/ is listed in crds/kustomization.yaml, so `apply -k` installs it."""
    kustomization = yaml.safe_load((CRDS / "kustomization.yaml").read_text())
    crd_files = sorted(
        path.name
        for path in CRDS.glob("*.yaml")
        if yaml.safe_load(path.read_text()).get("kind") == "CustomResourceDefinition"
    )
    assert crd_files, "no CRD found in crds/"
    assert sorted(kustomization["resources"]) == crd_files


def test_stream_lease_rules__name_exactly_the_streams_the_crd_allows() -> None:
    """The operator's and the worker's Lease rights list one Lease per stream the CRD allows."""
    crd = yaml.safe_load((CRDS / "smartresumeruns.smartresume.io.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    items = schema["properties"]["spec"]["properties"]["streams"]["items"]
    expected = [resource.lease_name(n) for n in range(items["minimum"], items["maximum"] + 1)]
    documents = _documents("runs/rbac.yaml")
    for role in ("smart-resume-operator", "smart-resume-worker"):
        (rule,) = _stream_lease_rules(_one(documents, "Role", role))
        assert rule["resourceNames"] == expected, role


def test_lease_rules__only_create_is_granted_without_names() -> None:
    """No account may touch a Lease by any name; only creating one cannot be limited by name."""
    documents = _documents("runs/rbac.yaml", "nightly/rbac.yaml", "operator/rbac.yaml")
    for role in (d for d in documents if d["kind"] in ("Role", "ClusterRole")):
        for rule in role["rules"]:
            if "leases" in rule["resources"] and "resourceNames" not in rule:
                assert rule["verbs"] == ["create"], role["metadata"]["name"]


def test_operator_rbac__grants_nothing_namespaced_cluster_wide() -> None:
    """Cluster-wide, the operator only reads CRDs and namespaces; all else is per namespace."""
    documents = _documents("operator/rbac.yaml")
    cluster_roles = [d for d in documents if d["kind"] == "ClusterRole"]
    granted = {
        (group, res, verb)
        for role in cluster_roles
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for res in rule["resources"]
        for verb in rule["verbs"]
    }
    assert granted == {
        ("apiextensions.k8s.io", "customresourcedefinitions", "list"),
        ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
        ("", "namespaces", "list"),
        ("", "namespaces", "watch"),
    }


def test_settings_configmap__holds_only_known_non_secret_settings() -> None:
    """Every key of the settings ConfigMap is a setting of config.py, and none is a secret."""
    data = _one(_documents("operator/config.yaml"), "ConfigMap", "smart-resume-config")["data"]
    known = {name for name, _ in _settings()}
    assert set(data) <= known, set(data) - known
    assert not set(data) & set(config.secret_env_names())


def test_operator_deployment__serves_the_namespace_the_roles_are_in() -> None:
    """The operator watches exactly the namespaces that runs/rbac.yaml grants it."""
    deployment = _one(_documents("operator/deployment.yaml"), "Deployment", "smart-resume-operator")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    served = [a.removeprefix("--namespace=") for a in args if a.startswith("--namespace=")]
    role_namespaces = {
        d["metadata"]["namespace"] for d in _documents("runs/rbac.yaml") if d["kind"] == "Role"
    }
    assert served == sorted(role_namespaces)


def test_pod_templates__meet_the_restricted_pod_security_profile() -> None:
    """Every pod the install starts (operator, nightly CronJob) is restricted-compliant."""
    documents = _documents("operator/deployment.yaml", "nightly/cronjob.yaml")
    pods = [d["spec"]["template"]["spec"] for d in documents if d["kind"] == "Deployment"]
    pods += [
        d["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        for d in documents
        if d["kind"] == "CronJob"
    ]
    assert len(pods) == 2
    for pod in pods:
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["readOnlyRootFilesystem"] is True
            assert context["capabilities"] == {"drop": ["ALL"]}
            assert {"requests", "limits"} <= set(container["resources"])


# -- the README's configuration reference ----------------------------------------------------


def _settings() -> list[tuple[str, object]]:
    """Every ``SMART_RESUME_*`` setting of config.py with its default, in declaration order."""
    return [
        (config.env_name(group.name, field.name), getattr(group.default, field.name))
        for group in dataclasses.fields(config.Settings)
        for field in dataclasses.fields(group.default)  # type: ignore[arg-type]
    ]


def _shown(default: object) -> str:
    """A default as the README's table shows it."""
    if default in ("", ()):
        return "(empty)"
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    if isinstance(default, tuple):
        return f"`{','.join(default)}`"
    return f"`{default}`"


def _reference_rows() -> list[tuple[str, str, str]]:
    """(variable, default, meaning) of each row of the README's configuration reference."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("### Configuration reference", 1)[1].split("\n#", 1)[0]
    matches = (
        re.fullmatch(r"\| `(SMART_RESUME_\w+)` \| (.*?) \| (.*) \|", line.strip())
        for line in section.splitlines()
    )
    return [(m[1], m[2], m[3]) for m in matches if m]


def test_readme_configuration_reference__lists_every_setting_with_its_default() -> None:
    """The README's configuration table has exactly one row per setting of config.py, with
    config.py's default, and marks exactly the secrets as secrets."""
    settings = _settings()
    names = [name for name, _, _ in _reference_rows()]
    assert sorted(names) == sorted(name for name, _ in settings)
    rows = {name: (shown, meaning) for name, shown, meaning in _reference_rows()}
    for name, default in settings:
        shown, meaning = rows[name]
        assert shown == _shown(default), name
        assert meaning.startswith("**secret**") == isinstance(default, config.Secret), name


# -- kubectl in the binaries cache -----------------------------------------------------------


def _check_cache(cache: Path, names: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    folder = cache / "k8s-v1.33.13"
    folder.mkdir(parents=True)
    for name in names:
        (folder / name).write_text("#!/bin/sh\n")
        (folder / name).chmod(0o755)
    return subprocess.run(
        ["bash", str(binaries.BUILD_SCRIPT), "--check"],
        env={**os.environ, "SMART_RESUME_CACHE": str(cache), "K8S_VERSION": "v1.33.13"},
        capture_output=True,
        text=True,
        timeout=10,
    )


def test_build_script__a_cache_without_kubectl_is_incomplete(tmp_path: Path) -> None:
    """A cache built before kubectl joined the list is not taken as complete (a build would
    add kubectl alone); with kubectl it is, and the script names the folder."""
    control_plane = ("etcd", "kube-apiserver", "kube-controller-manager")
    assert _check_cache(tmp_path / "old", control_plane).returncode == 1
    complete = _check_cache(tmp_path / "new", (*control_plane, "kubectl"))
    assert complete.returncode == 0
    assert complete.stdout.strip() == str(tmp_path / "new" / "k8s-v1.33.13")
