"""A model endpoint on Kubernetes: what the cluster receives, built as plain dicts.

Pure builders (no client, no I/O), as :mod:`studiohub.jobs.kube` for training jobs: the
models service creates what they return and nothing else. An endpoint ``iris`` with
versions 1 and 2 is

- per version, a ``Deployment`` ``model-iris--v<N>`` (:func:`make_deployment`): ``replicas``
  pods of the replica program (``python -m studiohub.modelserver ... --port 8080``, TCP
  because each replica is its own pod) on the catalog image's ``container_image``, the
  size's requests = limits, node selector and tolerations, readiness on
  ``/v2/health/ready`` (traffic reaches a replica only once its model is loaded and
  warmed up), liveness on ``/v2/health/live``; the model read-only from the shared models
  claim (``subPath`` the version's folder) or copied by an init container from the
  owner's home claim (:class:`ModelSource`);
- per version, a ``ClusterIP`` ``Service`` of the same name (port 80 → 8080), and one per
  endpoint, ``model-iris``, selecting the version with the largest share (the stable one:
  where traffic goes when the cluster cannot split);
- the canary split as a Gateway API ``HTTPRoute`` ``model-iris``
  (:func:`make_http_route`): ``/services/models/iris/`` rewritten to ``/``, one
  ``backendRef`` per version's Service weighted by its share (weights are the percentages
  and sum to 100);
- a ``NetworkPolicy`` ``model-iris``: only the hub pod (the models service runs in it),
  and the Gateway's proxies when routing goes through a Gateway, reach port 8080;
- or, when the operator says the cluster has KServe, one ``InferenceService``
  (:func:`make_inference_service`): KServe's own runtimes serve the newest version's
  model from ``pvc://<claim>/<path>`` and split with ``canaryTrafficPercent``.

Names: a version's objects end in ``--v<N>``, the endpoint's never do (a slug keeps
``--`` only before its 8-hex hash), so ``model-iris-v1``'s endpoint objects and
``iris`` version 1's cannot collide; names longer than 63 characters are shortened with
a hash (:func:`studiohub.slugs.safe_slug`).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..catalog import Catalog, Image, Size
from ..jobs.kube import CONTAINER_SECURITY, HOME_MOUNT, image_bin, make_resources
from ..slugs import safe_slug

#: The port every replica listens on (``--port``) and the Services' port in front of it.
MODEL_PORT = 8080
SERVICE_PORT = 80
#: The model of a version, inside its pod: ``--model`` (plus the source's ``entry``).
MODEL_DIR = "/models"
MODEL_PATH = f"{MODEL_DIR}/model"
#: The replicas' only writable place (the root filesystem is read-only): HOME and TMPDIR,
#: for frameworks' caches.
SCRATCH_DIR = "/tmp"
READY_PATH = "/v2/health/ready"
LIVE_PATH = "/v2/health/live"
#: Where the hub serves endpoints; the HTTPRoute matches ``<prefix><endpoint>/``.
URL_PREFIX = "/services/models/"
#: The official chart's labels of the hub pod, where the models service runs.
HUB_POD_LABELS: Mapping[str, str] = {"app": "jupyterhub", "component": "hub"}
GATEWAY_GROUP = "gateway.networking.k8s.io"
#: The largest canary split KServe knows: the newest revision and the one before it.
KSERVE_MAX_SERVING = 2

ENDPOINT_LABEL = "studiohub.dev/endpoint"
VERSION_LABEL = "studiohub.dev/version"
USER_LABEL = "studiohub.dev/user"
_APP_NAME = "studiohub-model"

#: Replica formats (``studiohub.modelserver.formats``) → KServe predictor ``model``
#: fields. TorchScript goes to Triton (``kserve-tritonserver``), not KServe's default
#: ``pytorch`` runtime, TorchServe, which wants a ``.mar`` archive rather than a
#: TorchScript file. Formats absent here have no KServe runtime (:func:`kserve_model`).
KSERVE_FORMATS: Mapping[str, Mapping[str, str]] = {
    "tensorflow-savedmodel": {"modelFormat": "tensorflow", "protocolVersion": "v1"},
    "torchscript": {"modelFormat": "pytorch", "runtime": "kserve-tritonserver",
                    "protocolVersion": "v2"},
    "onnx": {"modelFormat": "onnx", "runtime": "kserve-tritonserver",
             "protocolVersion": "v2"},
}
_NO_KSERVE = {
    "mxnet": "KServe has no serving runtime for MXNet",
    "torch-export": "KServe has no serving runtime for torch.export programs (Triton's "
                    "PyTorch backend loads TorchScript: export with torch.jit instead)",
}
_URL_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~-]*$")


@dataclass(frozen=True)
class ModelSource:
    """Where a version's model is read from, inside a claim.

    ``claim`` is the shared models claim (the folder ``path`` mounted read-only as the
    ``subPath``) or, with ``copy``, the owner's home claim: an init container mounts it
    read-only and copies ``path`` into the pod's own ``emptyDir`` (a home claim is often
    ``ReadWriteOnce``, held by the user's server: the shared claim is the one that scales).
    ``entry``: the file inside ``path`` given to ``--model`` when it is not ``path``
    itself (``""``).
    """

    claim: str
    path: str
    copy: bool = False
    entry: str = ""


@dataclass(frozen=True)
class VersionSpec:
    """One version of an endpoint as the models service keeps it: catalog ids, the
    replica format, the share of traffic (percent) and where the model is."""

    version: int
    format: str
    image: str
    size: str
    model: ModelSource
    replicas: int = 1
    traffic: int = 100


@dataclass(frozen=True)
class GatewayRef:
    """The Gateway the HTTPRoutes attach to (the chart's ``studiohub.models.gateway``).

    ``namespace``: the Gateway's (``None``: the endpoint's own); ``proxies_namespace``:
    where its data plane runs when not there (Envoy Gateway's, for one), admitted to
    the replicas by the NetworkPolicy; ``section``: one listener of the Gateway."""

    name: str
    namespace: str | None = None
    section: str | None = None
    proxies_namespace: str | None = None


# --- names and labels ---------------------------------------------------------------------


def object_name(endpoint: str, version: int | None = None) -> str:
    """``model-<endpoint>`` (the endpoint's Service, HTTPRoute, NetworkPolicy,
    InferenceService) or ``model-<endpoint>--v<N>`` (a version's Deployment and Service):
    DNS-1035 labels of at most 63 characters, shortened with a hash when needed."""
    if version is None:
        return "model-" + safe_slug(endpoint, 63 - len("model-"))
    suffix = f"--v{_version(version)}"
    return "model-" + safe_slug(endpoint, 63 - len("model-") - len(suffix)) + suffix


def make_labels(endpoint: str, user: str, version: int | None = None) -> dict[str, str]:
    labels = {"app.kubernetes.io/name": _APP_NAME,
              "app.kubernetes.io/instance": object_name(endpoint, version),
              "app.kubernetes.io/component": "model-server",
              "app.kubernetes.io/part-of": "studiohub",
              "app.kubernetes.io/managed-by": "studiohub",
              ENDPOINT_LABEL: safe_slug(endpoint, 63),
              USER_LABEL: safe_slug(user, 63)}
    if version is not None:
        labels[VERSION_LABEL] = str(_version(version))
    return labels


def _selector(endpoint: str, version: int | None = None) -> dict[str, str]:
    """The labels that pick an endpoint's replicas (of one version when given)."""
    labels = make_labels(endpoint, "", version)
    keys = ["app.kubernetes.io/name", ENDPOINT_LABEL]
    if version is not None:
        keys.append(VERSION_LABEL)
    return {k: labels[k] for k in keys}


# --- checks -------------------------------------------------------------------------------


def _version(version: int) -> int:
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"a version is a whole number from 1 (got {version!r})")
    return version


def _relative(path: str, what: str) -> str:
    """A path inside a claim: relative, normalised, not leaving the claim."""
    normal = posixpath.normpath(path) if path else ""
    if (not path or path.startswith("/") or normal.startswith("..") or normal != path
            or "\\" in path):
        raise ValueError(f"{what} {path!r} must be a relative path inside the claim, "
                         "without '..', '.' or a trailing '/'")
    return path


def resolve(catalog: Catalog, spec: VersionSpec) -> tuple[Image, Size]:
    """The version's catalog image and size; an unknown id, a size that cannot run the
    image, or fewer than one replica is a ValueError naming what is allowed."""
    if spec.image not in catalog.images:
        raise ValueError(f"version {spec.version}: unknown image {spec.image!r}: defined "
                         f"are {', '.join(sorted(catalog.images))}")
    if spec.size not in catalog.sizes:
        raise ValueError(f"version {spec.version}: unknown size {spec.size!r}: defined "
                         f"are {', '.join(sorted(catalog.sizes))}")
    image, size = catalog.images[spec.image], catalog.sizes[spec.size]
    if not size.can_run(image):
        raise ValueError(f"version {spec.version}: size {size.id!r} cannot run image "
                         f"{image.id!r}")
    if isinstance(spec.replicas, bool) or not isinstance(spec.replicas, int) \
            or spec.replicas < 1:
        raise ValueError(f"version {spec.version}: replicas must be a whole number of at "
                         f"least 1 (got {spec.replicas!r}); delete the endpoint or roll "
                         "back instead of scaling to none")
    return image, size


def check_split(versions: Sequence[VersionSpec]) -> None:
    """Every version once, shares of 0..100 percent adding up to 100."""
    if not versions:
        raise ValueError("an endpoint needs at least one version")
    numbers = [_version(v.version) for v in versions]
    if len(set(numbers)) != len(numbers):
        raise ValueError(f"versions must be distinct (got {numbers})")
    for v in versions:
        if isinstance(v.traffic, bool) or not isinstance(v.traffic, int) \
                or not 0 <= v.traffic <= 100:
            raise ValueError(f"version {v.version}: traffic is a whole percentage 0..100 "
                             f"(got {v.traffic!r})")
    total = sum(v.traffic for v in versions)
    if total != 100:
        shares = ", ".join(f"v{v.version}={v.traffic}" for v in versions)
        raise ValueError(f"traffic shares must add up to 100 (got {total}: {shares})")


def primary(versions: Sequence[VersionSpec]) -> VersionSpec:
    """The version with the largest share; on a tie the older one (the stable side)."""
    check_split(versions)
    return max(versions, key=lambda v: (v.traffic, -v.version))


# --- a version: Deployment and Service ------------------------------------------------------


def model_arg(source: ModelSource) -> str:
    """``--model``: where the version's model is inside the replica's container."""
    if not source.entry:
        return MODEL_PATH
    return f"{MODEL_PATH}/{_relative(source.entry, 'model entry')}"


def make_command(image: Image, endpoint: str, spec: VersionSpec) -> list[str]:
    """The replica program in the image's own environment, listening on TCP."""
    return [f"{image_bin(image.id)}/python", "-m", "studiohub.modelserver",
            "--model", model_arg(spec.model), "--format", spec.format,
            "--name", endpoint, "--version", str(spec.version),
            "--port", str(MODEL_PORT)]


def _model_volumes(spec: VersionSpec, image: Image, size: Size,
                   security: Mapping[str, Any]) -> tuple[list[dict[str, Any]],
                                                         list[dict[str, Any]],
                                                         list[dict[str, Any]]]:
    """(volumes, the server's model mount, init containers) for the version's source."""
    source = spec.model
    path = _relative(source.path, "model path")
    if not source.copy:
        volume = {"name": "model", "persistentVolumeClaim": {"claimName": source.claim,
                                                             "readOnly": True}}
        mount = {"name": "model", "mountPath": MODEL_PATH, "subPath": path,
                 "readOnly": True}
        return [volume], [mount], []
    copier = {
        "name": "copy-model",
        "image": image.container_image,
        # cp -R of a folder or a file onto a name that does not exist yet: a copy of it.
        "command": ["cp", "-R", "--", f"{HOME_MOUNT}/{path}", MODEL_PATH],
        "resources": make_resources(size),
        "securityContext": dict(security),
        "volumeMounts": [{"name": "home", "mountPath": HOME_MOUNT, "readOnly": True},
                         {"name": "model", "mountPath": MODEL_DIR}],
    }
    volumes = [{"name": "home", "persistentVolumeClaim": {"claimName": source.claim,
                                                          "readOnly": True}},
               {"name": "model", "emptyDir": {}}]
    mount = {"name": "model", "mountPath": MODEL_DIR, "readOnly": True}
    return volumes, [mount], [copier]


def make_deployment(catalog: Catalog, endpoint: str, user: str, spec: VersionSpec, *,
                    uid: int = 1000, gid: int = 100) -> dict[str, Any]:
    """One version's replicas: never fewer ready than asked during an update
    (``maxUnavailable: 0``), each drained for a few seconds before it stops so the
    Service stops sending to it first."""
    image, size = resolve(catalog, spec)
    labels = make_labels(endpoint, user, spec.version)
    security = {**CONTAINER_SECURITY, "readOnlyRootFilesystem": True, "runAsNonRoot": True}
    volumes, mounts, init = _model_volumes(spec, image, size, security)
    probe = {"port": "http", "scheme": "HTTP"}
    container = {
        "name": "model-server",
        "image": image.container_image,
        "command": make_command(image, endpoint, spec),
        "env": [{"name": "HOME", "value": SCRATCH_DIR}, {"name": "TMPDIR", "value": SCRATCH_DIR},
                {"name": "STUDIOHUB_ENDPOINT", "value": endpoint},
                {"name": "STUDIOHUB_ENDPOINT_VERSION", "value": str(spec.version)}],
        "ports": [{"name": "http", "containerPort": MODEL_PORT, "protocol": "TCP"}],
        "resources": make_resources(size),
        # Loading a large model takes a while: liveness waits for startup to pass.
        "startupProbe": {"httpGet": {"path": LIVE_PATH, **probe}, "periodSeconds": 5,
                         "timeoutSeconds": 3, "failureThreshold": 120},
        "readinessProbe": {"httpGet": {"path": READY_PATH, **probe}, "periodSeconds": 2,
                           "timeoutSeconds": 2, "failureThreshold": 2,
                           "successThreshold": 1},
        "livenessProbe": {"httpGet": {"path": LIVE_PATH, **probe}, "periodSeconds": 10,
                          "timeoutSeconds": 5, "failureThreshold": 3},
        "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
        "securityContext": security,
        "volumeMounts": [*mounts, {"name": "scratch", "mountPath": SCRATCH_DIR}],
    }
    pod: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 30,
        "securityContext": {"runAsUser": uid, "runAsGroup": gid, "fsGroup": gid,
                            "runAsNonRoot": True,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": [*volumes, {"name": "scratch", "emptyDir": {}}],
    }
    if init:
        pod["initContainers"] = init
    if size.node_selector:
        pod["nodeSelector"] = dict(size.node_selector)
    if size.tolerations:
        pod["tolerations"] = [dict(t) for t in size.tolerations]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": object_name(endpoint, spec.version), "labels": labels},
        "spec": {
            "replicas": spec.replicas,
            "revisionHistoryLimit": 2,
            "selector": {"matchLabels": _selector(endpoint, spec.version)},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {"metadata": {"labels": dict(labels)}, "spec": pod},
        },
    }


def _service(name: str, labels: Mapping[str, str],
             selector: Mapping[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "labels": dict(labels)},
            "spec": {"type": "ClusterIP", "selector": dict(selector),
                     "ports": [{"name": "http", "port": SERVICE_PORT,
                                "targetPort": "http", "protocol": "TCP"}]}}


def make_version_service(endpoint: str, user: str, version: int) -> dict[str, Any]:
    """One version's ready replicas at ``http://model-<endpoint>--v<N>:80``."""
    return _service(object_name(endpoint, version), make_labels(endpoint, user, version),
                    _selector(endpoint, version))


def make_endpoint_service(endpoint: str, user: str,
                          versions: Sequence[VersionSpec]) -> dict[str, Any]:
    """``http://model-<endpoint>:80``: the version with the largest share
    (:func:`primary`), the whole endpoint for a caller that cannot split."""
    main = primary(versions)
    labels = {**make_labels(endpoint, user), VERSION_LABEL: str(main.version)}
    return _service(object_name(endpoint), labels, _selector(endpoint, main.version))


# --- the endpoint: routing, network policy -----------------------------------------------------


def _url_segment(endpoint: str) -> str:
    if not _URL_SAFE.match(endpoint):
        raise ValueError(f"endpoint name {endpoint!r} cannot be one segment of a URL path")
    return endpoint


def make_http_route(endpoint: str, user: str, versions: Sequence[VersionSpec],
                    gateway: GatewayRef, *, prefix: str = URL_PREFIX,
                    hostnames: Sequence[str] = ()) -> dict[str, Any]:
    """The canary split: ``<prefix><endpoint>/…`` → ``/…`` on each version's Service,
    weighted by its share (a 0 keeps a version's replicas out of rotation)."""
    check_split(versions)
    if not prefix.startswith("/") or not prefix.endswith("/"):
        raise ValueError(f"the URL prefix {prefix!r} must start and end with '/'")
    parent: dict[str, Any] = {"group": GATEWAY_GROUP, "kind": "Gateway",
                              "name": gateway.name}
    if gateway.namespace:
        parent["namespace"] = gateway.namespace
    if gateway.section:
        parent["sectionName"] = gateway.section
    spec: dict[str, Any] = {
        "parentRefs": [parent],
        "rules": [{
            "matches": [{"path": {"type": "PathPrefix",
                                  "value": f"{prefix}{_url_segment(endpoint)}/"}}],
            "filters": [{"type": "URLRewrite",
                         "urlRewrite": {"path": {"type": "ReplacePrefixMatch",
                                                 "replacePrefixMatch": "/"}}}],
            "backendRefs": [{"group": "", "kind": "Service",
                             "name": object_name(endpoint, v.version),
                             "port": SERVICE_PORT, "weight": v.traffic}
                            for v in sorted(versions, key=lambda v: v.version)],
        }],
    }
    if hostnames:
        spec["hostnames"] = list(hostnames)
    return {"apiVersion": f"{GATEWAY_GROUP}/v1", "kind": "HTTPRoute",
            "metadata": {"name": object_name(endpoint),
                         "labels": make_labels(endpoint, user)},
            "spec": spec}


def _gateway_peer(gateway: GatewayRef) -> dict[str, Any]:
    """The Gateway's proxies: their namespace's pods, or, for a Gateway in the endpoint's
    own namespace, the pods labelled with its name (the Gateway API's label for the
    proxies an implementation runs for a Gateway, GEP-1762)."""
    namespace = gateway.proxies_namespace or gateway.namespace
    if namespace:
        return {"namespaceSelector": {"matchLabels": {
            "kubernetes.io/metadata.name": namespace}}}
    return {"podSelector": {"matchLabels": {
        f"{GATEWAY_GROUP}/gateway-name": gateway.name}}}


def make_network_policy(endpoint: str, user: str, *,
                        hub_labels: Mapping[str, str] = HUB_POD_LABELS,
                        gateway: GatewayRef | None = None) -> dict[str, Any]:
    """Ingress to the endpoint's replicas (every version) on their port only from the hub
    pod, where the models service checks who calls, and, with ``gateway``, from the
    Gateway's proxies, which forward the HTTPRoute's traffic (make that Gateway internal:
    whoever reaches it reaches the replicas without the hub's checks). Nothing else in
    the cluster reaches a replica; egress is not restricted."""
    peers: list[dict[str, Any]] = [{"podSelector": {"matchLabels": dict(hub_labels)}}]
    if gateway is not None:
        peers.append(_gateway_peer(gateway))
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": object_name(endpoint), "labels": make_labels(endpoint, user)},
        "spec": {"podSelector": {"matchLabels": _selector(endpoint)},
                 "policyTypes": ["Ingress"],
                 "ingress": [{"from": peers,
                              "ports": [{"port": MODEL_PORT, "protocol": "TCP"}]}]},
    }


# --- KServe ----------------------------------------------------------------------------------


def kserve_model(spec: VersionSpec) -> dict[str, Any]:
    """The predictor's ``model`` for a version's format, or a ValueError saying why KServe
    cannot serve it (StudioHub's own Deployments can)."""
    if spec.format in _NO_KSERVE:
        raise ValueError(f"version {spec.version}: format {spec.format!r} cannot be served "
                         f"by KServe: {_NO_KSERVE[spec.format]}; deploy it without KServe "
                         "(studiohub.models.kserve: false serves it with StudioHub's own "
                         "Deployments)")
    if spec.format not in KSERVE_FORMATS:
        raise ValueError(f"version {spec.version}: unknown model format {spec.format!r}: "
                         f"KServe serves {', '.join(sorted(KSERVE_FORMATS))}")
    fields = KSERVE_FORMATS[spec.format]
    path = _relative(spec.model.path, "model path")
    model: dict[str, Any] = {"modelFormat": {"name": fields["modelFormat"]},
                             "protocolVersion": fields["protocolVersion"],
                             "storageUri": f"pvc://{spec.model.claim}/{path}"}
    if "runtime" in fields:
        model["runtime"] = fields["runtime"]
    return model


def make_inference_service(catalog: Catalog, endpoint: str, user: str,
                           versions: Sequence[VersionSpec]) -> dict[str, Any]:
    """The endpoint as one KServe InferenceService: the newest version's model, with
    ``canaryTrafficPercent`` its share while below 100 (KServe sends the rest to the
    revision it last rolled out, so at most two versions may hold traffic). Fixed
    replicas (``minReplicas`` = ``maxReplicas``), the size's resources and placement.
    Canary splits need KServe's Serverless (Knative) mode."""
    check_split(versions)
    serving = [v for v in versions if v.traffic]
    if len(serving) > KSERVE_MAX_SERVING:
        raise ValueError(f"KServe splits traffic between two versions at most; "
                         f"{len(serving)} have a share "
                         f"({', '.join(f'v{v.version}' for v in serving)})")
    # A share of 0 for the newest is a rollback: canaryTrafficPercent 0.
    newest = max(versions, key=lambda v: v.version)
    _, size = resolve(catalog, newest)
    model = {**kserve_model(newest), "resources": make_resources(size)}
    predictor: dict[str, Any] = {"minReplicas": newest.replicas,
                                 "maxReplicas": newest.replicas,
                                 "model": model}
    if newest.traffic < 100:
        predictor["canaryTrafficPercent"] = newest.traffic
    if size.node_selector:
        predictor["nodeSelector"] = dict(size.node_selector)
    if size.tolerations:
        predictor["tolerations"] = [dict(t) for t in size.tolerations]
    return {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": object_name(endpoint),
                         "labels": make_labels(endpoint, user, newest.version)},
            "spec": {"predictor": predictor}}


# --- everything at once ------------------------------------------------------------------------


def make_endpoint_objects(catalog: Catalog, endpoint: str, user: str,
                          versions: Sequence[VersionSpec], *,
                          gateway: GatewayRef | None = None, kserve: bool = False,
                          uid: int = 1000, gid: int = 100,
                          prefix: str = URL_PREFIX) -> list[dict[str, Any]]:
    """What the cluster holds for an endpoint in this state, in the order to apply it:
    KServe's InferenceService alone, or the versions' Deployments and Services, the
    endpoint's Service and NetworkPolicy, and the HTTPRoute when a Gateway is given."""
    check_split(versions)
    if kserve:
        return [make_inference_service(catalog, endpoint, user, versions)]
    objects: list[dict[str, Any]] = []
    for spec in sorted(versions, key=lambda v: v.version):
        objects.append(make_deployment(catalog, endpoint, user, spec, uid=uid, gid=gid))
        objects.append(make_version_service(endpoint, user, spec.version))
    objects.append(make_endpoint_service(endpoint, user, versions))
    objects.append(make_network_policy(endpoint, user, gateway=gateway))
    if gateway is not None:
        objects.append(make_http_route(endpoint, user, versions, gateway, prefix=prefix))
    return objects
