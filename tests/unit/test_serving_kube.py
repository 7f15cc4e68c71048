"""A model endpoint's Kubernetes objects (studiohub.serving.kube): built offline and
validated strictly, never applied (no cluster here).

Core objects (Deployment, Service, NetworkPolicy) are validated with kubernetes-validate
in strict mode against the oldest and newest Kubernetes the chart supports (1.30, 1.37).
HTTPRoute (Gateway API) and InferenceService (KServe) are custom resources, which
kubernetes-validate has no schema for: they are checked against **our own** JSON schemas
in tests/fixtures/crds/, written from the Gateway API v1 and KServe v1beta1 API
references for the fields StudioHub writes, strict (an unknown field fails), plus the
Gateway API's CEL rules that a schema cannot say (:func:`check_http_route`). Our schema
is not the projects' CRD: it proves the objects follow the references as we read them,
not that a given Gateway implementation or KServe release accepts them.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from studiohub.catalog import load_catalog
from studiohub.serving import kube
from studiohub.serving.kube import GatewayRef, ModelSource, VersionSpec
from tests.kubetools import validate

CATALOG = load_catalog()
CRDS = Path(__file__).resolve().parents[1] / "fixtures" / "crds"
GATEWAY = GatewayRef("internal", namespace="gateways")
SHARED = ModelSource("studiohub-models", "alice/iris/1")
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
HUB_POD = {"app": "jupyterhub", "component": "hub", "release": "studiohub"}
USER_SERVER = {"app": "jupyterhub", "component": "singleuser-server",
               "hub.jupyter.org/network-access-hub": "true"}


def schema(name: str) -> dict[str, Any]:
    return json.loads((CRDS / f"{name}.schema.json").read_text())


def version(number: int, traffic: int, *, fmt: str = "onnx", image: str = "pytorch",
            size: str = "small", replicas: int = 2,
            model: ModelSource | None = None) -> VersionSpec:
    return VersionSpec(number, fmt, image, size,
                       model or ModelSource("studiohub-models", f"alice/iris/{number}"),
                       replicas=replicas, traffic=traffic)


def objects(versions: Sequence[VersionSpec], endpoint: str = "iris", **kw: Any
            ) -> dict[tuple[str, str], dict[str, Any]]:
    built = kube.make_endpoint_objects(CATALOG, endpoint, "alice", versions, **kw)
    by_key = {(o["kind"], o["metadata"]["name"]): o for o in built}
    assert len(by_key) == len(built), "two objects of one kind share a name"
    return by_key


def of_kind(built: dict[tuple[str, str], dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for (k, _), o in built.items() if k == kind]


def check_http_route(route: dict[str, Any]) -> None:
    """Our HTTPRoute schema, then the reference's CEL rules that StudioHub's route meets."""
    jsonschema.validate(route, schema("httproute-v1"))
    for rule in route["spec"]["rules"]:
        for match in rule.get("matches", []):
            path = match["path"]
            if path["type"] in ("Exact", "PathPrefix"):
                value = path["value"]
                assert value.startswith("/"), value
                assert not any(bad in value for bad in ("//", "/./", "/../", "%2f", "%2F",
                                                        "#")), value
                assert not value.endswith(("/..", "/.")), value
        for f in rule.get("filters", []):
            rewrite = f.get("urlRewrite", {}).get("path")
            if rewrite and rewrite["type"] == "ReplacePrefixMatch":
                # Only with a PathPrefix match, and then set.
                assert rule["matches"] and all(m["path"]["type"] == "PathPrefix"
                                               for m in rule["matches"])
                assert "replacePrefixMatch" in rewrite
        for ref in rule["backendRefs"]:
            if ref.get("kind", "Service") == "Service" and ref.get("group", "") == "":
                assert "port" in ref, "a Service backend needs its port"


def check_inference_service(isvc: dict[str, Any]) -> None:
    """Our InferenceService schema; its Kubernetes-typed fields inside a Pod that
    kubernetes-validate checks."""
    jsonschema.validate(isvc, schema("inferenceservice-v1beta1"))
    predictor = isvc["spec"]["predictor"]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "check",
                                                           "labels": isvc["metadata"]["labels"]},
           "spec": {"containers": [{"name": "kserve-container", "image": "x",
                                    "resources": predictor["model"]["resources"]}],
                    **{k: predictor[k] for k in ("nodeSelector", "tolerations")
                       if k in predictor}}}
    validate(pod)


# --- validity -----------------------------------------------------------------------------


def test_every_object_is_valid_for_every_supported_kubernetes() -> None:
    built = objects([version(1, 90), version(2, 10, size="gpu-medium",
                                             image="pytorch-gpu", fmt="torchscript")],
                    gateway=GATEWAY)
    assert sorted(k for k, _ in built) == ["Deployment", "Deployment", "HTTPRoute",
                                           "NetworkPolicy", "Service", "Service", "Service"]
    for (kind, _), obj in built.items():
        if kind == "HTTPRoute":
            check_http_route(obj)
        else:
            validate(obj)


def test_a_home_copy_and_a_gateway_in_the_endpoints_namespace_are_valid_too() -> None:
    home = ModelSource("claim-alice", "models/net.onnx", copy=True)
    built = objects([version(1, 100, model=home)], gateway=GatewayRef("studio"))
    for (kind, _), obj in built.items():
        check_http_route(obj) if kind == "HTTPRoute" else validate(obj)


@pytest.mark.parametrize("mistake", [
    ("spec", "rules", 0, "backendRefs", 0, "weight", -1),
    ("spec", "rules", 0, "backendRefs", 0, "weigth", 5),
    ("spec", "rules", 0, "filters", 0, "type", "Rewrite"),
    ("spec", "parentRefs", 0, "namespace", "Not_A_Namespace"),
])
def test_our_http_route_schema_is_strict(mistake: tuple[Any, ...]) -> None:
    """The schema refuses what the Gateway API refuses (a negative weight, an unknown
    filter, a bad namespace) and, strictly, any unknown field."""
    route = kube.make_http_route("iris", "alice", [version(1, 100)], GATEWAY)
    *path, key, value = mistake
    node: Any = route
    for step in path:
        node = node[step]
    node[key] = value
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(route, schema("httproute-v1"))


# --- the canary split ------------------------------------------------------------------------


@pytest.mark.parametrize("split", [(100,), (90, 10), (50, 50), (0, 100), (70, 20, 10),
                                   (100, 0)])
def test_route_weights_follow_the_split_and_sum_to_100(split: tuple[int, ...]) -> None:
    versions = [version(n, share) for n, share in enumerate(split, start=1)]
    built = objects(versions, gateway=GATEWAY)
    route = built[("HTTPRoute", "model-iris")]
    check_http_route(route)
    [rule] = route["spec"]["rules"]
    refs = rule["backendRefs"]
    assert [r["weight"] for r in refs] == list(split) and sum(split) == 100
    services = {name for kind, name in built if kind == "Service"}
    for number, ref in enumerate(refs, start=1):
        assert ref["name"] == kube.object_name("iris", number) in services
        assert (ref["kind"], ref["group"], ref["port"]) == ("Service", "", 80)
    assert rule["matches"] == [{"path": {"type": "PathPrefix",
                                         "value": "/services/models/iris/"}}]
    assert rule["filters"] == [{"type": "URLRewrite", "urlRewrite": {"path": {
        "type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}}}]
    assert route["spec"]["parentRefs"] == [{"group": "gateway.networking.k8s.io",
                                            "kind": "Gateway", "name": "internal",
                                            "namespace": "gateways"}]


def test_each_version_service_reaches_its_own_replicas_and_the_endpoint_the_main_one() -> None:
    built = objects([version(1, 70), version(2, 30)])
    for number in (1, 2):
        name = kube.object_name("iris", number)
        service = built[("Service", name)]
        pods = built[("Deployment", name)]["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= pods.items()
        other = built[("Deployment", kube.object_name("iris", 3 - number))]
        assert not service["spec"]["selector"].items() <= \
            other["spec"]["template"]["metadata"]["labels"].items()
        assert service["spec"]["type"] == "ClusterIP"
        assert service["spec"]["ports"] == [{"name": "http", "port": 80,
                                             "targetPort": "http", "protocol": "TCP"}]
    endpoint = built[("Service", "model-iris")]
    assert endpoint["spec"]["selector"]["studiohub.dev/version"] == "1"
    # A 50/50 split keeps the older version as the endpoint's main one.
    tie = objects([version(1, 50), version(2, 50)])[("Service", "model-iris")]
    assert tie["spec"]["selector"]["studiohub.dev/version"] == "1"
    assert "HTTPRoute" not in {k for k, _ in built}  # no Gateway named: no route


# --- a version's Deployment --------------------------------------------------------------------


def test_the_deployment_runs_the_replica_program_with_probes_and_no_privileges() -> None:
    spec = version(3, 100, fmt="onnx", replicas=3)
    deployment = kube.make_deployment(CATALOG, "iris", "alice", spec, uid=1000, gid=100)
    validate(deployment)
    assert deployment["metadata"]["name"] == "model-iris--v3"
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0,
                                                               "maxSurge": 1}
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["image"] == CATALOG.images["pytorch"].container_image
    assert container["command"] == [
        "/opt/studiohub/envs/pytorch/bin/python", "-m", "studiohub.modelserver",
        "--model", "/models/model", "--format", "onnx", "--name", "iris",
        "--version", "3", "--port", "8080"]
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["startupProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["readinessProbe"]["httpGet"]["port"] == "http"
    small = CATALOG.sizes["small"]
    assert container["resources"] == {
        "requests": {"cpu": f"{small.cpus:g}", "memory": str(small.memory)},
        "limits": {"cpu": f"{small.cpus:g}", "memory": str(small.memory)}}
    assert "nodeSelector" not in pod and "tolerations" not in pod
    assert pod["securityContext"]["runAsUser"] == 1000
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True, "runAsNonRoot": True}
    assert pod["automountServiceAccountToken"] is False
    # The model: the shared claim, the version's folder, read-only.
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["model"]["persistentVolumeClaim"] == {"claimName": "studiohub-models",
                                                         "readOnly": True}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/models/model"] == {"name": "model", "mountPath": "/models/model",
                                       "subPath": "alice/iris/3", "readOnly": True}
    # The only writable place, given to the frameworks as HOME and TMPDIR.
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["HOME"] == env["TMPDIR"] == "/tmp"
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert {k: labels[k] for k in ("studiohub.dev/endpoint", "studiohub.dev/version",
                                   "studiohub.dev/user", "app.kubernetes.io/name")} == {
        "studiohub.dev/endpoint": "iris", "studiohub.dev/version": "3",
        "studiohub.dev/user": "alice", "app.kubernetes.io/name": "studiohub-model"}
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_a_gpu_size_gets_its_gpus_nodes_and_tolerations() -> None:
    gpu = CATALOG.sizes["gpu-medium"]
    assert gpu.gpus and gpu.node_selector and gpu.tolerations  # the built-in catalog's
    spec = version(1, 100, image="pytorch-gpu", size="gpu-medium", fmt="torchscript")
    deployment = kube.make_deployment(CATALOG, "iris", "alice", spec)
    validate(deployment)
    pod = deployment["spec"]["template"]["spec"]
    resources = pod["containers"][0]["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == str(gpu.gpus)
    assert resources["requests"]["nvidia.com/gpu"] == str(gpu.gpus)
    assert resources["limits"]["memory"] == str(gpu.memory)
    assert pod["nodeSelector"] == dict(gpu.node_selector)
    assert pod["tolerations"] == [dict(t) for t in gpu.tolerations]
    assert pod["containers"][0]["image"] == CATALOG.images["pytorch-gpu"].container_image


def test_a_model_in_the_home_is_copied_by_an_init_container(tmp_path: Path) -> None:
    """The init container mounts the home claim read-only and copies the model into the
    pod's own volume; its command is run here for real, on folders standing for the
    mounts, for a model folder and a model file."""
    for source, entry in ((ModelSource("claim-alice", "models/net", copy=True), ""),
                          (ModelSource("claim-alice", "models/sym", copy=True,
                                       entry="net-symbol.json"), "net-symbol.json")):
        deployment = kube.make_deployment(CATALOG, "iris", "alice",
                                          version(1, 100, model=source))
        validate(deployment)
        pod = deployment["spec"]["template"]["spec"]
        [init] = pod["initContainers"]
        assert init["image"] == pod["containers"][0]["image"]
        assert {m["mountPath"]: m.get("readOnly", False) for m in init["volumeMounts"]} \
            == {"/home/jovyan": True, "/models": False}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["home"]["persistentVolumeClaim"]["claimName"] == "claim-alice"
        assert volumes["model"] == {"name": "model", "emptyDir": {}}
        server_mount = next(m for m in pod["containers"][0]["volumeMounts"]
                            if m["name"] == "model")
        assert server_mount == {"name": "model", "mountPath": "/models", "readOnly": True}
        command = pod["containers"][0]["command"]
        assert command[command.index("--model") + 1] == \
            "/models/model" + (f"/{entry}" if entry else "")

    home, models = tmp_path / "home", tmp_path / "models"
    (home / "models" / "net" / "variables").mkdir(parents=True)
    (home / "models" / "net" / "saved_model.pb").write_bytes(b"pb")
    (home / "models" / "net.onnx").write_bytes(b"onnx")
    for path, check in (("models/net", models / "model" / "saved_model.pb"),
                        ("models/net.onnx", models / "model")):
        models.mkdir(exist_ok=True)
        init = kube.make_deployment(
            CATALOG, "iris", "alice",
            version(1, 100, model=ModelSource("claim-alice", path, copy=True)),
        )["spec"]["template"]["spec"]["initContainers"][0]
        argv = [re.sub(r"^/models", str(models), re.sub(r"^/home/jovyan", str(home), a))
                for a in init["command"]]
        subprocess.run(argv, check=True)
        assert check.is_file() and (models / "model").exists()
        subprocess.run(["rm", "-r", str(models)], check=True)


# --- names ----------------------------------------------------------------------------------------


def test_long_names_stay_dns_labels_and_unique() -> None:
    long_a, long_b = "a" * 70 + "-one", "a" * 70 + "-two"
    names = set()
    for endpoint in (long_a, long_b, "iris", "iris-v1", "Iris", "x" * 40):
        for number in (None, 1, 12, 123456):
            name = kube.object_name(endpoint, number)
            assert len(name) <= 63 and DNS_1035.match(name), name
            assert name not in names, name
            names.add(name)
    # Deterministic, and every object of a long endpoint is valid.
    assert kube.object_name(long_a, 2) == kube.object_name(long_a, 2)
    built = kube.make_endpoint_objects(CATALOG, long_a, "Alice Smith@example.org",
                                       [version(2, 100)], gateway=GATEWAY)
    for obj in built:
        assert len(obj["metadata"]["name"]) <= 63
        check_http_route(obj) if obj["kind"] == "HTTPRoute" else validate(obj)
    # ``iris`` version 1 and an endpoint called ``iris-v1`` never share an object.
    assert kube.object_name("iris", 1) != kube.object_name("iris-v1")


# --- who reaches the replicas ----------------------------------------------------------------


def admitted(policy: dict[str, Any], labels: dict[str, str], namespace: str = "studiohub",
             port: int = 8080) -> bool:
    """Would this peer reach port ``port`` of the selected pods (the policy's own
    namespace is ``studiohub``)?"""
    for rule in policy["spec"]["ingress"]:
        if not any(p["port"] == port for p in rule["ports"]):
            continue
        for peer in rule["from"]:
            if "namespaceSelector" in peer:
                wanted = peer["namespaceSelector"]["matchLabels"]
                if wanted == {"kubernetes.io/metadata.name": namespace}:
                    return True
            elif namespace == "studiohub" and \
                    peer["podSelector"]["matchLabels"].items() <= labels.items():
                return True
    return False


def test_only_the_hub_pod_reaches_the_replicas_port() -> None:
    built = objects([version(1, 80), version(2, 20)])
    policy = built[("NetworkPolicy", "model-iris")]
    validate(policy)
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    for number in (1, 2):
        pods = built[("Deployment", kube.object_name("iris", number))]["spec"]["template"]
        assert policy["spec"]["podSelector"]["matchLabels"].items() <= \
            pods["metadata"]["labels"].items()
    other = kube.make_labels("other", "bob", 1)
    assert not policy["spec"]["podSelector"]["matchLabels"].items() <= other.items()
    assert admitted(policy, HUB_POD)
    assert not admitted(policy, HUB_POD, port=22)
    assert not admitted(policy, USER_SERVER)
    assert not admitted(policy, kube.make_labels("other", "bob", 1))
    assert not admitted(policy, HUB_POD, namespace="elsewhere")


def test_with_a_gateway_its_proxies_reach_the_replicas_too() -> None:
    policy = objects([version(1, 100)], gateway=GATEWAY)[("NetworkPolicy", "model-iris")]
    assert admitted(policy, {}, namespace="gateways")
    assert admitted(policy, HUB_POD) and not admitted(policy, USER_SERVER)
    split = GatewayRef("eg", namespace="infra", proxies_namespace="envoy-gateway-system")
    policy = kube.make_network_policy("iris", "alice", gateway=split)
    assert admitted(policy, {}, namespace="envoy-gateway-system")
    assert not admitted(policy, {}, namespace="infra")
    local = kube.make_network_policy("iris", "alice", gateway=GatewayRef("studio"))
    assert admitted(local, {"gateway.networking.k8s.io/gateway-name": "studio"})
    assert not admitted(local, USER_SERVER)


# --- KServe ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "image", "expected"), [
    ("tensorflow-savedmodel", "tensorflow", {"modelFormat": {"name": "tensorflow"},
                                             "protocolVersion": "v1"}),
    ("torchscript", "pytorch", {"modelFormat": {"name": "pytorch"},
                                "runtime": "kserve-tritonserver", "protocolVersion": "v2"}),
    ("onnx", "pytorch", {"modelFormat": {"name": "onnx"}, "runtime": "kserve-tritonserver",
                         "protocolVersion": "v2"}),
])
def test_kserve_serves_the_newest_version_with_the_canary_share(
        fmt: str, image: str, expected: dict[str, Any]) -> None:
    versions = [version(1, 90, fmt=fmt, image=image),
                version(2, 10, fmt=fmt, image=image, replicas=3)]
    [isvc] = kube.make_endpoint_objects(CATALOG, "iris", "alice", versions, kserve=True,
                                        gateway=GATEWAY)
    check_inference_service(isvc)
    assert isvc["metadata"]["name"] == "model-iris"
    predictor = isvc["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 10
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (3, 3)
    model = predictor["model"]
    assert {k: v for k, v in model.items() if k not in ("storageUri", "resources")} == \
        expected
    assert model["storageUri"] == "pvc://studiohub-models/alice/iris/2"
    # Promoted: no canary field; rolled back: 0 % to the newest.
    promoted = kube.make_inference_service(CATALOG, "iris", "alice",
                                           [version(1, 0, fmt=fmt, image=image),
                                            version(2, 100, fmt=fmt, image=image)])
    assert "canaryTrafficPercent" not in promoted["spec"]["predictor"]
    back = kube.make_inference_service(CATALOG, "iris", "alice",
                                       [version(1, 100, fmt=fmt, image=image),
                                        version(2, 0, fmt=fmt, image=image)])
    assert back["spec"]["predictor"]["canaryTrafficPercent"] == 0


def test_kserve_gpu_predictor_gets_the_sizes_resources_and_placement() -> None:
    spec = version(1, 100, image="pytorch-gpu", size="gpu-medium", fmt="torchscript")
    isvc = kube.make_inference_service(CATALOG, "iris", "alice", [spec])
    check_inference_service(isvc)
    predictor = isvc["spec"]["predictor"]
    gpu = CATALOG.sizes["gpu-medium"]
    assert predictor["model"]["resources"]["limits"]["nvidia.com/gpu"] == str(gpu.gpus)
    assert predictor["nodeSelector"] == dict(gpu.node_selector)
    assert predictor["tolerations"] == [dict(t) for t in gpu.tolerations]


# --- refusals -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("versions", "kserve", "message"), [
    ([version(1, 100, size="huge")], False, "unknown size 'huge': defined are "),
    ([version(1, 100, image="cobol")], False, "unknown image 'cobol': defined are "),
    ([version(1, 100, replicas=0)], False, "replicas must be a whole number of at least 1"),
    ([version(1, 100, image="pytorch-gpu")], False,
     "size 'small' cannot run image 'pytorch-gpu'"),
    ([version(1, 100, fmt="mxnet", image="mxnet")], True,
     "format 'mxnet' cannot be served by KServe: KServe has no serving runtime for MXNet"),
    ([version(1, 100, fmt="torch-export")], True,
     "format 'torch-export' cannot be served by KServe"),
    ([version(1, 90), version(2, 20)], False, "traffic shares must add up to 100 (got 110"),
    ([version(1, 100), version(1, 0)], False, "versions must be distinct"),
    ([version(1, 101)], False, "traffic is a whole percentage 0..100"),
    ([], False, "an endpoint needs at least one version"),
    ([version(1, 50), version(2, 30), version(3, 20)], True,
     "KServe splits traffic between two versions at most"),
    ([version(1, 100, model=ModelSource("c", "../bob/model"))], False,
     "must be a relative path inside the claim"),
    ([version(1, 100, model=ModelSource("c", "/etc"))], False,
     "must be a relative path inside the claim"),
])
def test_bad_input_is_refused_with_a_clear_message(versions: list[VersionSpec],
                                                   kserve: bool, message: str) -> None:
    with pytest.raises(ValueError) as info:
        kube.make_endpoint_objects(CATALOG, "iris", "alice", versions, kserve=kserve,
                                   gateway=GATEWAY)
    assert message in str(info.value)


def test_mxnet_is_served_without_kserve() -> None:
    built = objects([version(1, 100, fmt="mxnet", image="mxnet")])
    deployment = built[("Deployment", kube.object_name("iris", 1))]
    validate(deployment)
    command = deployment["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[:3] == ["/opt/studiohub/envs/mxnet/bin/python", "-m",
                           "studiohub.modelserver"]
    assert command[command.index("--format") + 1] == "mxnet"
