"""What `kubectl get` prints: the API server's Table rendering of a resource's printer columns."""

from __future__ import annotations

import json

from kubernetes import client

TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io"


def get_table(
    api: client.ApiClient, path: str, *, wide: bool = False
) -> tuple[list[str], list[list[object]]]:
    """The column names and rows the server renders for ``path`` (priority-0 columns unless
    ``wide``), e.g. ``/apis/smartresume.io/v1alpha1/namespaces/ns/smartresumeruns``."""
    method, url, headers, body, _ = api.param_serialize(
        "GET", path, header_params={"Accept": TABLE_ACCEPT}, auth_settings=["BearerToken"]
    )
    response = json.loads(api.call_api(method, url, header_params=headers, body=body).read())
    shown = [
        index
        for index, column in enumerate(response["columnDefinitions"])
        if wide or column.get("priority", 0) == 0
    ]
    columns = [response["columnDefinitions"][index]["name"] for index in shown]
    return columns, [[row["cells"][index] for index in shown] for row in response["rows"]]
