"""Write the worker Job the operator would create, as YAML, for checkov (`make lint`).

The run is a fictional one in the install's runs namespace, the settings are the defaults of
config.py with the install's image, so the Job is the one a default install starts.

    python hack/render_worker_job.py OUT.yaml
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from smart_resume.config import JobSettings
from smart_resume.core.spec import RunSpec
from smart_resume.kube.jobs import build_job_manifest

RUN = {
    "apiVersion": "smartresume.io/v1alpha1",
    "kind": "SmartResumeRun",
    "metadata": {
        "name": "nightly-x7k2",
        "namespace": "smart-resume-runs",
        "uid": "00000000-0000-4000-8000-000000000001",
    },
    "spec": {"streams": [1]},
}


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: object) -> bool:
        return True  # the Job's labels appear twice; write them out twice, as the API does


def main(out: Path) -> None:
    manifest = build_job_manifest(
        run=RUN,
        spec=RunSpec.from_body(RUN),
        stream=1,
        settings=JobSettings(image="smart-resume-operator:0.1.0"),
        forwarded_env={"SMART_RESUME_AIRTABLE_MASTER_BASE_ID": "appMASTERBASE0001"},
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.dump(manifest, Dumper=_Dumper, sort_keys=False))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
