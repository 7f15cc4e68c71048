"""What the offline Kubernetes tests share: the Kubernetes versions every object is
validated against, and a kubeconfig naming a cluster that is never contacted."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import kubernetes_validate
import pytest
from kubernetes_asyncio.config import kube_config

#: The oldest and newest Kubernetes versions the chart supports (Chart.yaml kubeVersion).
K8S_VERSIONS = ("1.30", "1.37")

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: offline, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: offline, user: {token: not-a-token}}]
contexts: [{name: offline, context: {cluster: offline, user: offline, namespace: studiohub}}]
current-context: offline
"""


def validate(obj: dict[str, Any]) -> None:
    """Strictly valid for every supported Kubernetes version."""
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(obj, version, strict=True)


def offline_kubeconfig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A kubeconfig naming a server that is never contacted (KubeSpawner loads one).
    Use as a module's autouse fixture: ``pytest.fixture(scope="module", autouse=True)``."""
    path = tmp_path_factory.mktemp("kube") / "config"
    path.write_text(KUBECONFIG)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KUBECONFIG", str(path))
        # Read from the environment when kubernetes_asyncio is imported: set it too.
        mp.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))
        yield
