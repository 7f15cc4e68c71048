"""The Helm chart (helm/studiohub), rendered and checked without a cluster or a helm binary.

The chart is copied to a temporary directory with a *stub* of its dependency, the official
jupyterhub chart, in ``charts/`` (tests/fixtures/charts/jupyterhub: same name and version,
rendering only the hub objects our values reach, where the real chart puts them), then
rendered and linted by Helm's own Go SDK (helm-python-sdk). Every rendered object is
validated with kubernetes-validate in strict mode against the oldest and newest Kubernetes
versions the chart supports. The hub side is checked the way the hub would run it: the
``hub.extraConfig`` snippet is executed on a traitlets Config, with the environment and
files the rendered objects give the hub pod, and the pod a GPU user would get is built
by KubeSpawner from the result. Nothing here reaches a cluster: this proves what a cluster
would receive, not that it ran.
"""

from __future__ import annotations

import base64
import copy
import re
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import helm_python as helm
import pytest
import yaml
from kubernetes_asyncio.client import ApiClient
from traitlets.config import Config

from studiohub import catalog as catalog_module
from studiohub import kube
from studiohub.catalog import CatalogError, load_catalog
from studiohub.units import QuantityError, parse_memory
from tests.kubetools import K8S_VERSIONS, offline_kubeconfig, validate

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "studiohub"
STUB = ROOT / "tests" / "fixtures" / "charts" / "jupyterhub"
GPU_VALUES = CHART / "ci" / "gpu-values.yaml"
RELEASE = NAMESPACE = "studiohub"
POD_IP = "10.0.0.5"
BUILTIN = load_catalog()


# --- rendering -----------------------------------------------------------------------------


class Rendered:
    """The objects and NOTES.txt of one render."""

    def __init__(self, files: dict[str, str]) -> None:
        self.notes = next(text for path, text in files.items() if path.endswith("NOTES.txt"))
        self.sourced: list[tuple[str, dict[str, Any]]] = [
            (path, doc) for path, text in sorted(files.items())
            if not path.endswith("NOTES.txt") for doc in yaml.safe_load_all(text) if doc]
        self.objects = [doc for _, doc in self.sourced]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        found = [o for o in self.objects
                 if o["kind"] == kind and o["metadata"]["name"] == name]
        assert len(found) == 1, f"{kind} {name}: {len(found)} rendered"
        return found[0]

    def names(self, kind: str) -> set[str]:
        return {o["metadata"]["name"] for o in self.objects if o["kind"] == kind}

    def hub_values(self) -> dict[str, Any]:
        """The official chart's values as the hub reads them (the hub Secret's values.yaml)."""
        secret = self.get("Secret", "hub")
        return yaml.safe_load(base64.b64decode(secret["data"]["values.yaml"]))

    def hub_container(self) -> dict[str, Any]:
        pod = self.get("Deployment", "hub")["spec"]["template"]["spec"]
        return next(c for c in pod["containers"] if c["name"] == "hub")


@pytest.fixture(scope="module")
def chart_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """helm/studiohub with the stub in charts/, where `helm dependency update` puts the
    real chart (a real one downloaded into the source tree is left out)."""
    root = tmp_path_factory.mktemp("chart") / "studiohub"
    shutil.copytree(CHART, root, ignore=shutil.ignore_patterns("charts"))
    shutil.copytree(STUB, root / "charts" / "jupyterhub")
    return root


def render(chart_dir: Path, values: dict[str, Any] | None = None, *,
           name: str = RELEASE, namespace: str = NAMESPACE) -> Rendered:
    # A fresh handle per render: rendering mutates the loaded chart.
    with helm.Chart.load(chart_dir) as chart:
        return Rendered(chart.render(values or {}, name=name, namespace=namespace,
                                     is_install=True))


def gpu_values() -> dict[str, Any]:
    return yaml.safe_load(GPU_VALUES.read_text())


VALUES = {"default": dict, "gpu": gpu_values}


@pytest.fixture(scope="module", params=sorted(VALUES))
def case(request: pytest.FixtureRequest, chart_dir: Path) -> tuple[dict[str, Any], Rendered]:
    values = VALUES[request.param]()
    return values, render(chart_dir, values)


def with_values(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """``base`` with ``value`` at the dotted ``path`` (created as needed)."""
    values = copy.deepcopy(base)
    *parents, last = path.split(".")
    node = values
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return values


# --- the chart as a package ------------------------------------------------------------------


def test_chart_depends_on_the_pinned_official_chart() -> None:
    meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert meta["apiVersion"] == "v2"
    assert meta["kubeVersion"] == f">={K8S_VERSIONS[0]}.0-0"
    [dep] = meta["dependencies"]
    assert dep["name"] == "jupyterhub" and "alias" not in dep
    assert dep["repository"] == "https://hub.jupyter.org/helm-chart/"
    assert re.fullmatch(r"\d+\.\d+\.\d+", dep["version"]), "pin an exact version"
    stub = yaml.safe_load((STUB / "Chart.yaml").read_text())
    assert (stub["name"], stub["version"]) == (dep["name"], dep["version"])


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("values", sorted(VALUES))
def test_lint_is_clean(chart_dir: Path, values: str, version: str) -> None:
    report = helm.lint(str(chart_dir), VALUES[values](), strict=True,
                       kube_version=f"v{version}.0")
    assert report["errors"] == [] and report["messages"] == []


def test_every_rendered_object_is_valid(case: tuple[dict[str, Any], Rendered]) -> None:
    _, rendered = case
    assert len(rendered.objects) >= 9
    for obj in rendered.objects:
        validate(obj)


# --- StudioHub's objects -----------------------------------------------------------------------


def test_catalog_configmap_is_what_values_gave(case: tuple[dict[str, Any], Rendered]) -> None:
    values, rendered = case
    cm = rendered.get("ConfigMap", "studiohub-catalog")
    studiohub = values.get("studiohub", {})
    assert yaml.safe_load(cm["data"]["catalog.yaml"]) == studiohub.get("catalog", {})
    files = studiohub.get("catalogFiles", {})
    assert set(cm["data"]) == {"catalog.yaml", "sharing", "jobs", "jobsCheckpointClaim",
                               *files}
    assert all(cm["data"][name] == content for name, content in files.items())
    assert cm["data"]["sharing"] == "true"
    labels = cm["metadata"]["labels"]
    assert labels["app.kubernetes.io/instance"] == RELEASE
    assert labels["app.kubernetes.io/name"] == "studiohub"


def write_configmap(cm: dict[str, Any], where: Path) -> Path:
    """The ConfigMap as the hub sees it mounted: one file per key."""
    where.mkdir(parents=True, exist_ok=True)
    for key, content in cm["data"].items():
        (where / key).write_text(content)
    return where


def test_default_catalog_is_the_builtin_one(chart_dir: Path, tmp_path: Path) -> None:
    cm = render(chart_dir).get("ConfigMap", "studiohub-catalog")
    loaded = load_catalog(write_configmap(cm, tmp_path) / "catalog.yaml")
    assert (loaded.images, loaded.sizes, loaded.domains) == (
        BUILTIN.images, BUILTIN.sizes, BUILTIN.domains)


def test_gpu_catalog_loads_as_the_hub_would(chart_dir: Path, tmp_path: Path) -> None:
    cm = render(chart_dir, gpu_values()).get("ConfigMap", "studiohub-catalog")
    mounted = write_configmap(cm, tmp_path)
    loaded = load_catalog(mounted / "catalog.yaml")
    assert "mxnet" not in loaded.images and "vision" in loaded.domains
    rapids = loaded.images["rapids-gpu"]
    assert rapids.requirements == ((mounted / "rapids-gpu-requirements.txt").resolve(),)
    xlarge = loaded.sizes["gpu-xlarge"]
    # Numbers cross Helm's values (float64) intact: bytes, fractions of a CPU.
    assert (xlarge.gpus, xlarge.memory, xlarge.cpus) == (4, 128 * 1024**3, 16)
    assert loaded.sizes["small"].cpus == 0.5
    assert xlarge.node_selector == {"studiohub.dev/accelerator": "nvidia-gpu",
                                    "studiohub.dev/gpu-model": "a100"}
    assert sorted(c.image.id for c in loaded.allowed_pairs(["vision"])
                  if c.size.id == "gpu-xlarge") == [
        "base", "pytorch", "pytorch-gpu", "rapids-gpu", "tensorflow-gpu"]


def test_a_catalog_the_hub_refuses_renders_and_fails_at_hub_start(
        chart_dir: Path, tmp_path: Path) -> None:
    # References between entries are not the schema's to check: the hub refuses such a
    # catalog when it loads it at start, naming the file and the key (docs say so).
    values = with_values({}, "studiohub.catalog.domains",
                         {"team": {"display_name": "Team", "images": ["nope"]}})
    cm = render(chart_dir, values).get("ConfigMap", "studiohub-catalog")
    path = write_configmap(cm, tmp_path) / "catalog.yaml"
    with pytest.raises(CatalogError) as info:
        load_catalog(path)
    assert str(info.value) == (f"catalog {path}: domains.team.images.0: 'nope' matches "
                               "nothing: defined are base, mxnet, mxnet-gpu, pytorch, "
                               "pytorch-gpu, tensorflow, tensorflow-gpu")


def test_sharing_claim(chart_dir: Path) -> None:
    pvc = render(chart_dir).get("PersistentVolumeClaim", "studiohub-sharing")
    assert pvc["spec"] == {"accessModes": ["ReadWriteOnce"],
                           "resources": {"requests": {"storage": "10Gi"}}}
    assert pvc["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    gpu = render(chart_dir, gpu_values()).get("PersistentVolumeClaim", "studiohub-sharing")
    assert gpu["spec"]["storageClassName"] == "fast-ssd"
    assert gpu["spec"]["resources"]["requests"]["storage"] == "50Gi"
    # "" is a class too (no dynamic provisioning), distinct from null (the default class).
    empty = render(chart_dir, with_values({}, "studiohub.sharing.storage.storageClassName", ""))
    assert empty.get("PersistentVolumeClaim", "studiohub-sharing")["spec"][
        "storageClassName"] == ""


def test_our_own_objects_are_a_configmap_a_claim_and_the_models_role(
        case: tuple[dict[str, Any], Rendered]) -> None:
    # The only RBAC of our own by default is the models service's (model endpoints, on
    # by default): the other hub pieces (KubeSpawner, the sharing service) need nothing
    # beyond the official chart's hub Role: the catalog is a mounted file, and sharing
    # speaks HTTP.
    _, rendered = case
    ours = {(o["kind"], o["metadata"]["name"]) for path, o in rendered.sourced
            if path.startswith("studiohub/templates/")}
    assert ours == {("ConfigMap", "studiohub-catalog"),
                    ("PersistentVolumeClaim", "studiohub-sharing"),
                    ("Role", "studiohub-models"), ("RoleBinding", "studiohub-models")}


# --- the hub pod: image, mounts, environment, ports ------------------------------------------


def test_hub_pod_mounts_the_catalog_and_the_sharing_volume(chart_dir: Path) -> None:
    rendered = render(chart_dir)
    pod = rendered.get("Deployment", "hub")["spec"]["template"]["spec"]
    hub = rendered.hub_container()
    assert hub["image"] == "studiohub/hub:0.1.0"
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in hub["volumeMounts"]}
    catalog_dir = str(Path(kube.CATALOG_PATH).parent)
    catalog_volume = volumes[mounts[catalog_dir]["name"]]
    assert catalog_volume["configMap"]["name"] in rendered.names("ConfigMap")
    assert "subPath" not in mounts[catalog_dir]  # updates must reach the hub
    sharing_dir = str(Path(kube.SHARING_DIR).parent)
    sharing_volume = volumes[mounts[sharing_dir]["name"]]
    assert sharing_volume["persistentVolumeClaim"]["claimName"] in rendered.names(
        "PersistentVolumeClaim")
    env = {e["name"]: e for e in hub["env"]}
    assert env["STUDIOHUB_CATALOG"]["value"] == kube.CATALOG_PATH
    assert env["STUDIOHUB_POD_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}


def test_the_sharing_service_is_reachable(chart_dir: Path) -> None:
    rendered = render(chart_dir)
    service = rendered.get("Service", "hub")
    assert {"name": "sharing", "port": kube.SHARING_PORT, "targetPort": kube.SHARING_PORT,
            "protocol": "TCP"} in service["spec"]["ports"]
    hub_labels = rendered.get("Deployment", "hub")["spec"]["template"]["metadata"]["labels"]
    values = rendered.hub_values()
    user_labels = values["singleuser"]["extraLabels"]

    def selected(rule_peers: list[dict[str, Any]], labels: dict[str, str]) -> bool:
        return any(p["podSelector"]["matchLabels"].items() <= labels.items()
                   for p in rule_peers)

    def ports(rule: dict[str, Any]) -> set[int]:
        return {p["port"] for p in rule["ports"]}

    hub_np = rendered.get("NetworkPolicy", "hub")["spec"]
    # users' servers and the proxy (labelled network-access-hub by the official chart) -> 8082
    assert any(kube.SHARING_PORT in ports(r) and selected(r["from"], user_labels)
               for r in hub_np["ingress"])
    # the sharing service -> the proxy's plain HTTP port (servers-url)
    assert any(8000 in ports(r) and selected(r["to"], {"app": "jupyterhub",
                                                       "component": "proxy"})
               for r in hub_np["egress"])
    for policy in ("singleuser", "proxy"):
        egress = rendered.get("NetworkPolicy", policy)["spec"]["egress"]
        assert any(kube.SHARING_PORT in ports(r) and selected(r["to"], hub_labels)
                   for r in egress), policy


def test_singleuser_defaults_follow_the_catalog(chart_dir: Path) -> None:
    values = render(chart_dir).hub_values()
    single = values["singleuser"]
    default_image = BUILTIN.images[BUILTIN.default_image].container_image
    assert f"{single['image']['name']}:{single['image']['tag']}" == default_image
    assert single["defaultUrl"] == "/lab"
    assert single["storage"]["type"] == "dynamic"
    assert single["storage"]["homeMountPath"] == "/home/jovyan"
    # The pre-puller sees no Python-built profiles: the catalog's CPU images are listed.
    pulled = {f"{i['name']}:{i['tag']}" for i in values["prePuller"]["extraImages"].values()}
    cpu = {i.container_image for i in BUILTIN.images.values() if not i.gpu}
    assert pulled | {default_image} == cpu
    assert values["prePuller"]["hook"]["enabled"] is False


# --- the hub side: hub.extraConfig as the official chart runs it ----------------------------


kubeconfig = pytest.fixture(scope="module", autouse=True)(offline_kubeconfig)


def chart_config(values: dict[str, Any]) -> Config:
    """What the official chart's jupyterhub_config.py (4.4.0) has set when it runs
    hub.extraConfig, for the keys StudioHub's values touch.

    A model read from that file, for tests: the real file runs in the hub image.
    """
    c = Config()
    hub, single = values["hub"], values["singleuser"]
    c.JupyterHub.spawner_class = "kubespawner.KubeSpawner"
    c.JupyterHub.base_url = hub.get("baseUrl") or "/"
    c.JupyterHub.services = []
    c.JupyterHub.load_roles = []
    c.KubeSpawner.environment = dict(single.get("extraEnv") or {})
    c.KubeSpawner.profile_list = single.get("profileList") or []
    c.KubeSpawner.image = f"{single['image']['name']}:{single['image']['tag']}"
    c.KubeSpawner.tolerations = [*values["scheduling"]["userPods"]["tolerations"],
                                 *(single.get("extraTolerations") or [])]
    storage = single["storage"]
    if storage["type"] == "dynamic":
        dynamic = storage["dynamic"]
        c.KubeSpawner.storage_pvc_ensure = True
        if dynamic.get("storageClass") is not None:
            c.KubeSpawner.storage_class = dynamic["storageClass"]
        c.KubeSpawner.storage_access_modes = dynamic["storageAccessModes"]
        c.KubeSpawner.storage_capacity = storage["capacity"]
        name = dynamic["volumeNameTemplate"]
        c.KubeSpawner.volumes = {name: {"name": name,
                                        "persistentVolumeClaim": {"claimName": "{pvc_name}"}}}
        c.KubeSpawner.volume_mounts = {name: {"name": name,
                                              "mountPath": storage["homeMountPath"]}}
    if single.get("defaultUrl") is not None:
        c.Spawner.default_url = single["defaultUrl"]
    for section, traits in (hub.get("config") or {}).items():
        c[section].update(traits)
    return c


def hub_environment(rendered: Rendered, mounts: dict[str, Path]) -> dict[str, str]:
    """The hub container's env, resolved against the rendered ConfigMaps; paths under
    a mount are moved to where the test "mounted" it."""
    env = {}
    for var in rendered.hub_container()["env"]:
        if "value" in var:
            value = var["value"]
        elif "configMapKeyRef" in var["valueFrom"]:
            ref = var["valueFrom"]["configMapKeyRef"]
            value = rendered.get("ConfigMap", ref["name"])["data"][ref["key"]]
        else:
            value = {"status.podIP": POD_IP, "metadata.namespace": NAMESPACE}[
                var["valueFrom"]["fieldRef"]["fieldPath"]]
        for mount, local in mounts.items():
            if value.startswith(mount + "/"):
                value = str(local) + value[len(mount):]
        env[var["name"]] = value
    return env


def hub_config(rendered: Rendered, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
               ) -> tuple[Config, Path]:
    """Run hub.extraConfig, in key order, on the chart's config with the hub pod's env."""
    pod = rendered.get("Deployment", "hub")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {}
    for mount in rendered.hub_container()["volumeMounts"]:
        config_map = volumes[mount["name"]].get("configMap")
        if config_map and config_map["name"].startswith("studiohub"):
            local = tmp_path / mount["name"]
            write_configmap(rendered.get("ConfigMap", config_map["name"]), local)
            mounts[mount["mountPath"].rstrip("/")] = local
    for name, value in hub_environment(rendered, mounts).items():
        monkeypatch.setenv(name, value)
    values = rendered.hub_values()
    c = chart_config(values)
    for _, snippet in sorted(values["hub"]["extraConfig"].items()):
        exec(snippet, {"c": c})
    return c, mounts[str(Path(kube.CATALOG_PATH).parent)] / "catalog.yaml"


def test_extra_config_installs_studiohub_in_the_hub(
        case: tuple[dict[str, Any], Rendered], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    values, rendered = case
    c, catalog_path = hub_config(rendered, tmp_path, monkeypatch)
    assert c.JupyterHub.spawner_class == "studiohub.spawners.kube.StudioKubeSpawner"
    assert c.StudioKubeSpawner.catalog_path == str(catalog_path)
    assert callable(c.StudioKubeSpawner.profile_list)
    assert c.KubeSpawner.default_url == "/lab"
    domains = load_catalog(catalog_path).domains
    hub_config_values = values.get("jupyterhub", {}).get("hub", {}).get("config", {})
    if any(section.get("manage_groups") for section in hub_config_values.values()):
        # The identity provider's groups are the domains (JupyterHub refuses both).
        assert "load_groups" not in c.JupyterHub
    else:
        assert set(c.JupyterHub.load_groups) == set(domains)
    [sharing] = [s for s in c.JupyterHub.services if s["name"] == "sharing"]
    assert sharing["url"] == f"http://{POD_IP}:{kube.SHARING_PORT}"
    assert f"--data-dir={kube.SHARING_DIR}" in sharing["command"]
    assert f"--catalog={catalog_path}" in sharing["command"]
    # Users' servers reach it through the hub Service's extra port.
    assert c.KubeSpawner.environment["STUDIOHUB_SHARING_URL"] == \
        f"http://hub:{kube.SHARING_PORT}/services/sharing/"
    admins = values.get("jupyterhub", {}).get("hub", {}).get("config", {}).get(
        "Authenticator", {}).get("admin_users", [])
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    assert roles["sharing-auditors"]["users"] == sorted(admins)


async def test_gpu_user_gets_the_pod_the_catalog_promises(
        chart_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rendered = render(chart_dir, gpu_values())
    c, _ = hub_config(rendered, tmp_path, monkeypatch)
    user = SimpleNamespace(name="ada", id=3, url="/user/ada/", server=None,
                           groups=[SimpleNamespace(name="vision")])
    spawner = kube.StudioKubeSpawner(_mock=True, config=c, user=user)
    assert [p["slug"] for p in spawner.profile_list(spawner)] == [
        "small", "medium", "gpu-medium", "gpu-large", "gpu-xlarge"]
    spawner.user_options = {"image": "rapids-gpu", "size": "gpu-xlarge"}
    await spawner.load_user_options()
    async with ApiClient() as api:
        pod = api.sanitize_for_serialization(await spawner.get_pod_manifest())
        pvc = api.sanitize_for_serialization(spawner.get_pvc_manifest())
    validate(pod)
    validate(pvc)
    container = pod["spec"]["containers"][0]
    assert container["image"] == "registry.example.org/studiohub/rapids-gpu:0.1.0"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "4"
    assert int(container["resources"]["requests"]["memory"]) == 128 * 1024**3
    assert pod["spec"]["nodeSelector"] == {"studiohub.dev/accelerator": "nvidia-gpu",
                                           "studiohub.dev/gpu-model": "a100"}
    tolerations = pod["spec"]["tolerations"]
    assert tolerations[0]["key"] == "hub.jupyter.org/dedicated"  # the chart's, kept
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} \
        in tolerations
    # Home: the official chart's per-user claim from singleuser.storage.
    assert {"name": "volume-ada", "persistentVolumeClaim": {"claimName": "claim-ada"}} \
        in pod["spec"]["volumes"]
    assert {"name": "volume-ada", "mountPath": "/home/jovyan"} in container["volumeMounts"]
    assert pvc["spec"]["storageClassName"] == "fast-ssd"
    assert pvc["spec"]["resources"]["requests"]["storage"] == "20Gi"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["STUDIOHUB_SHARING_URL"] == "http://hub:8082/services/sharing/"
    assert env["STUDIOHUB_IMAGE"] == "rapids-gpu"


# --- sharing off -----------------------------------------------------------------------------


def sharing_off(chart_dir: Path) -> dict[str, Any]:
    hub = yaml.safe_load((chart_dir / "values.yaml").read_text())["jupyterhub"]["hub"]
    values = with_values({}, "studiohub.sharing.enabled", False)
    values = with_values(values, "jupyterhub.hub.extraVolumes",
                         [v for v in hub["extraVolumes"] if "persistentVolumeClaim" not in v])
    return with_values(values, "jupyterhub.hub.extraVolumeMounts",
                       [m for m in hub["extraVolumeMounts"] if m["name"] != "studiohub-sharing"])


def test_sharing_off(chart_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rendered = render(chart_dir, sharing_off(chart_dir))
    assert rendered.names("PersistentVolumeClaim") == set()
    assert rendered.get("ConfigMap", "studiohub-catalog")["data"]["sharing"] == "false"
    for obj in rendered.objects:
        validate(obj)
    c, _ = hub_config(rendered, tmp_path, monkeypatch)
    assert c.JupyterHub.spawner_class == "studiohub.spawners.kube.StudioKubeSpawner"
    assert not [s for s in c.JupyterHub.services if s["name"] == "sharing"]
    assert "STUDIOHUB_SHARING_URL" not in c.KubeSpawner.environment


# --- refusals: the schema, and the render-time checks --------------------------------------


@pytest.mark.parametrize(("path", "value", "message"), [
    ("studiohub.sharing.enabled", "yes",
     "at '/studiohub/sharing/enabled': got string, want boolean"),
    ("studiohub.sharng", {}, "at '/studiohub': additional properties 'sharng' not allowed"),
    ("studihub", {}, "at '': additional properties 'studihub' not allowed"),
    ("studiohub.sharing.storage.size", "10 gigs",
     "at '/studiohub/sharing/storage/size': '10 gigs' does not match pattern"),
    ("studiohub.sharing.storage.accessModes", ["ReadWriteSometimes"],
     "at '/studiohub/sharing/storage/accessModes/0'"),
    ("studiohub.catalog", [], "at '/studiohub/catalog': got array, want object"),
    ("studiohub.catalog.frobs", {}, "at '/studiohub/catalog': additional properties 'frobs'"),
    ("studiohub.catalog.sizes.small.cpus", "two",
     "at '/studiohub/catalog/sizes/small/cpus': got string, want number"),
    ("studiohub.catalog.sizes.small.gpu", 1,
     "at '/studiohub/catalog/sizes/small': additional properties 'gpu' not allowed"),
    ("studiohub.catalog.sizes.huge.memory", "lots",
     "at '/studiohub/catalog/sizes/huge/memory': 'lots' does not match pattern"),
    ("studiohub.catalog.images.base.accelerator", "tpu",
     "at '/studiohub/catalog/images/base/accelerator'"),
    ("studiohub.catalog.images.Bad_Id", {}, "invalid propertyName 'Bad_Id'"),
    ("studiohub.catalog.sizes.gpu-medium.kubernetes.taints", [],
     "at '/studiohub/catalog/sizes/gpu-medium/kubernetes': additional properties 'taints'"),
    ("studiohub.catalog.sizes.gpu-medium.kubernetes.node_selector", {"pool": "no spaces"},
     "at '/studiohub/catalog/sizes/gpu-medium/kubernetes/node_selector/pool'"),
    ("studiohub.catalogFiles", {"catalog.yaml": "x"},
     "at '/studiohub/catalogFiles/catalog.yaml': false schema"),
])
def test_schema_refuses_bad_values_naming_the_key(
        chart_dir: Path, path: str, value: Any, message: str) -> None:
    values = with_values({}, path, value)
    with helm.Chart.load(chart_dir) as chart, pytest.raises(helm.HelmValuesError) as info:
        chart.validate_schema(values)
    assert message in str(info.value)
    with pytest.raises(helm.HelmValuesError) as info:  # and helm refuses to render
        render(chart_dir, values)
    assert message in str(info.value)


@pytest.mark.parametrize(("values", "message"), [
    ({"jupyterhub": {"hub": {"extraVolumes": [{"name": "mine", "emptyDir": {}}]}}},
     "jupyterhub.hub.extraVolumes and extraVolumeMounts must mount the ConfigMap "
     "studiohub-catalog at /usr/local/etc/studiohub (no subPath): a list you set replaces "
     "the chart's whole list"),
    ({"jupyterhub": {"hub": {"extraVolumeMounts": [
        {"name": "studiohub-catalog", "mountPath": "/usr/local/etc/studiohub/catalog.yaml",
         "subPath": "catalog.yaml"},
        {"name": "studiohub-sharing", "mountPath": "/srv/studiohub"}]}}},
     "must mount the ConfigMap studiohub-catalog"),
    ({"jupyterhub": {"hub": {"extraVolumeMounts": [
        {"name": "studiohub-catalog", "mountPath": "/usr/local/etc/studiohub"}]}}},
     "studiohub.sharing.enabled is true but jupyterhub.hub.extraVolumes and "
     "extraVolumeMounts do not mount the PersistentVolumeClaim studiohub-sharing"),
    ({"studiohub": {"sharing": {"enabled": False}}},
     "studiohub.sharing.enabled and studiohub.jobs.enabled are false but "
     "jupyterhub.hub.extraVolumes still names the PersistentVolumeClaim studiohub-sharing"),
    ({"jupyterhub": {"hub": {"extraConfig": {"studiohub": None}}}},
     "jupyterhub.hub.extraConfig.studiohub is missing"),
    ({"jupyterhub": {"fullnameOverride": "lab"}},
     "jupyterhub.fullnameOverride must stay \"\""),
])
def test_render_refuses_values_that_unplug_studiohub(
        chart_dir: Path, values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmRenderError) as info:
        render(chart_dir, values)
    assert message in str(info.value)


# --- NOTES.txt -------------------------------------------------------------------------------


def test_notes_tell_the_next_steps(chart_dir: Path) -> None:
    notes = render(chart_dir, name="lab", namespace="ml").notes
    assert "installed as release lab in namespace ml" in notes
    assert "kubectl --namespace ml get service proxy-public" in notes
    assert "kubectl --namespace ml logs deploy/hub" in notes
    assert "WARNING: the authenticator is JupyterHub's \"dummy\" one" in notes
    assert "kubectl --namespace ml get configmap studiohub-catalog" in notes
    assert "/usr/local/etc/studiohub/catalog.yaml" in notes
    assert "kubectl --namespace ml get pvc studiohub-sharing" in notes
    assert r"GPUS:.status.allocatable.nvidia\.com/gpu" in notes
    gpu = render(chart_dir, gpu_values()).notes
    assert "WARNING" not in gpu and "With generic-oauth (jupyterhub.hub.config)" in gpu
    assert "studiohub-sharing" not in render(chart_dir, sharing_off(chart_dir)).notes


# --- the schema against the catalog's own ------------------------------------------------------


def test_values_schema_follows_the_catalog_schema() -> None:
    schema = yaml.safe_load((CHART / "values.schema.json").read_text())
    ours = schema["properties"]["studiohub"]["properties"]["catalog"]
    theirs = catalog_module._SCHEMA
    assert set(ours["properties"]) == set(theirs["properties"])
    for table in ("images", "sizes", "domains"):
        assert set(ours["properties"][table]["additionalProperties"]["properties"]) == \
            set(theirs["properties"][table]["additionalProperties"]["properties"])
    assert set(ours["properties"]["defaults"]["properties"]) == \
        set(theirs["properties"]["defaults"]["properties"])
    our_kube = ours["properties"]["sizes"]["additionalProperties"]["properties"]["kubernetes"]
    their_kube = catalog_module._KUBERNETES
    assert set(our_kube["properties"]) == set(their_kube["properties"])
    assert set(our_kube["properties"]["tolerations"]["items"]["properties"]) == \
        set(their_kube["properties"]["tolerations"]["items"]["properties"])


@pytest.mark.parametrize("memory", ["4G", "4GiB", "512m", "1.5Gi", " 2 gb ", "4 T", "16", "4X",
                                    "four", "4GiBs", ""])
def test_schema_memory_pattern_agrees_with_the_hub(memory: str) -> None:
    schema = yaml.safe_load((CHART / "values.schema.json").read_text())
    pattern = schema["properties"]["studiohub"]["properties"]["catalog"]["properties"][
        "sizes"]["additionalProperties"]["properties"]["memory"]["pattern"]
    try:
        parse_memory(memory)
        accepted = True
    except QuantityError:
        accepted = False
    assert bool(re.search(pattern, memory)) is accepted


def test_every_key_of_our_schema_is_described() -> None:
    schema = yaml.safe_load((CHART / "values.schema.json").read_text())
    missing = []

    def walk(node: Any, where: str) -> None:
        if not isinstance(node, dict):
            return
        for key, sub in (node.get("properties") or {}).items():
            if isinstance(sub, dict) and not sub.get("description") and "$ref" not in sub:
                missing.append(f"{where}.{key}")
            walk(sub, f"{where}.{key}")
        walk(node.get("additionalProperties"), f"{where}.*")
        walk(node.get("items"), f"{where}[]")

    walk(schema["properties"]["studiohub"], "studiohub")
    # The toleration fields mirror Kubernetes' own; everything else says what it does.
    assert [m for m in missing if ".tolerations[]." not in m] == []


# --- docs/deploy-kubernetes.md: its examples and tables --------------------------------------

DOC = ROOT / "docs" / "deploy-kubernetes.md"


def doc_yaml_blocks() -> list[Any]:
    return [yaml.safe_load(block)
            for block in re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.S)]


def test_docs_manifests_are_valid() -> None:
    manifests = [b for b in doc_yaml_blocks() if "kind" in b]
    assert [m["kind"] for m in manifests] == ["Pod"]
    for manifest in manifests:
        validate(manifest)


def test_docs_values_examples_render(chart_dir: Path) -> None:
    examples = [b for b in doc_yaml_blocks() if "kind" not in b]
    assert len(examples) >= 5
    for values in examples:
        assert set(values) <= {"studiohub", "jupyterhub"}, values
        for obj in render(chart_dir, values).objects:
            validate(obj)


def test_docs_tables_are_the_builtin_catalog() -> None:
    text = DOC.read_text()
    for size in BUILTIN.sizes.values():
        selector = ", ".join(f"`{k}: {v}`" for k, v in size.node_selector.items()) or "—"
        tolerations = ", ".join(f"`{t['key']}` {t['operator']} {t['effect']}"
                                for t in size.tolerations) or "—"
        row = (f"| `{size.id}` | {size.display_name} | {size.cpus:g} | "
               f"{size.memory // 1024**3} GiB ({size.memory}) | {size.gpus or '—'} | "
               f"{selector} | {tolerations} |")
        assert row in text
    for image in BUILTIN.images.values():
        assert f"| `{image.id}` | {image.label} | `{image.container_image}` |" in text


# --- training jobs: RBAC and the checkpoint claim ---------------------------------------------


def jobs_values(**checkpoints: Any) -> dict[str, Any]:
    values = with_values({}, "studiohub.jobs.enabled", True)
    for key, value in checkpoints.items():
        values = with_values(values, f"studiohub.jobs.checkpoints.{key}", value)
    return values


def test_jobs_off_renders_no_role_and_no_checkpoint_claim(chart_dir: Path) -> None:
    rendered = render(chart_dir)
    # The models service's Role is on by default; the jobs service's is not.
    assert rendered.names("Role") == rendered.names("RoleBinding") == {"studiohub-models"}
    assert "studiohub-jobs" not in rendered.names("PersistentVolumeClaim")


def test_jobs_on_gives_the_hubs_account_a_role_in_the_namespace_only(chart_dir: Path) -> None:
    rendered = render(chart_dir, jobs_values())
    for obj in rendered.objects:
        validate(obj)
        assert obj["kind"] not in ("ClusterRole", "ClusterRoleBinding")
    role = rendered.get("Role", "studiohub-jobs")
    assert "namespace" not in role["metadata"]  # the release's, given by helm
    rules = {(tuple(r["apiGroups"]), tuple(r["resources"])): r["verbs"] for r in role["rules"]}
    assert rules == {
        (("batch",), ("jobs",)): ["create", "get", "list", "watch", "delete"],
        (("",), ("services",)): ["create", "get", "list", "delete"],
        (("networking.k8s.io",), ("networkpolicies",)): ["create", "get", "list", "delete"],
        (("",), ("pods",)): ["get", "list", "watch"],
        (("",), ("pods/log",)): ["get"],
    }
    binding = rendered.get("RoleBinding", "studiohub-jobs")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "hub",
                                    "namespace": NAMESPACE}]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": "studiohub-jobs"}
    claim = rendered.get("PersistentVolumeClaim", "studiohub-jobs")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "100Gi"
    assert "storageClassName" not in claim["spec"]


def test_jobs_binding_follows_the_hubs_service_account_and_the_claims_values(
        chart_dir: Path) -> None:
    values = with_values(jobs_values(claimName="ckpts", size="5Ti", storageClassName="nfs"),
                         "jupyterhub.hub.serviceAccount.name", "custom-hub")
    rendered = render(chart_dir, values)
    assert rendered.get("RoleBinding", "studiohub-jobs")["subjects"][0]["name"] == "custom-hub"
    claim = rendered.get("PersistentVolumeClaim", "ckpts")
    assert (claim["spec"]["storageClassName"], claim["spec"]["resources"]["requests"]) == \
        ("nfs", {"storage": "5Ti"})


@pytest.mark.parametrize(("key", "value"), [("claimName", "Not_A_Name"), ("size", "lots"),
                                            ("accessModes", ["Everywhere"])])
def test_jobs_values_outside_the_schema_are_refused(chart_dir: Path, key: str,
                                                    value: Any) -> None:
    with pytest.raises(helm.HelmValuesError) as info:
        render(chart_dir, jobs_values(**{key: value}))
    assert f"/studiohub/jobs/checkpoints/{key}" in str(info.value)


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_lint_is_clean_with_jobs(chart_dir: Path, version: str) -> None:
    report = helm.lint(str(chart_dir), jobs_values(), strict=True,
                       kube_version=f"v{version}.0")
    assert report["errors"] == [] and report["messages"] == []


# --- training jobs: the service in the hub pod -----------------------------------------------


def test_jobs_on_turns_the_jobs_service_on_in_the_hub(
        chart_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rendered = render(chart_dir, jobs_values(claimName="ckpts"))
    for obj in rendered.objects:
        validate(obj)
    data = rendered.get("ConfigMap", "studiohub-catalog")["data"]
    assert (data["jobs"], data["jobsCheckpointClaim"]) == ("true", "ckpts")
    env = {e["name"]: e for e in rendered.hub_container()["env"]}
    assert env["STUDIOHUB_JOBS"]["valueFrom"]["configMapKeyRef"] == {
        "name": "studiohub-catalog", "key": "jobs"}
    c, catalog_path = hub_config(rendered, tmp_path, monkeypatch)
    [jobs] = [s for s in c.JupyterHub.services if s["name"] == "jobs"]
    assert jobs["url"] == f"http://{POD_IP}:{kube.JOBS_PORT}"
    for arg in ("--executor=kubernetes", "--checkpoint-claim=ckpts",
                f"--state-dir={kube.JOBS_STATE_DIR}", f"--catalog={catalog_path}"):
        assert arg in jobs["command"], arg
    # The official chart's claims: KubeSpawner's default template (the chart sets none).
    assert "--home-claim-template=claim-{username}" in jobs["command"]
    assert c.KubeSpawner.environment["STUDIOHUB_JOBS_URL"] == \
        f"http://hub:{kube.JOBS_PORT}/services/jobs/"
    # Its store and logs: the studiohub volume, mounted in the hub pod.
    mounts = {m["mountPath"] for m in rendered.hub_container()["volumeMounts"]}
    assert kube.JOBS_STATE_DIR in mounts
    assert "studiohub-sharing" in rendered.names("PersistentVolumeClaim")


def test_the_jobs_service_is_reachable(chart_dir: Path) -> None:
    rendered = render(chart_dir, jobs_values())
    assert {"name": "jobs", "port": kube.JOBS_PORT, "targetPort": kube.JOBS_PORT,
            "protocol": "TCP"} in rendered.get("Service", "hub")["spec"]["ports"]
    hub_np = rendered.get("NetworkPolicy", "hub")["spec"]
    assert any({"port": kube.JOBS_PORT, "protocol": "TCP"} in r["ports"]
               for r in hub_np["ingress"])
    for policy in ("singleuser", "proxy"):
        egress = rendered.get("NetworkPolicy", policy)["spec"]["egress"]
        assert any({"port": kube.JOBS_PORT, "protocol": "TCP"} in r["ports"] for r in egress)


def test_jobs_off_leaves_the_jobs_service_out(chart_dir: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    rendered = render(chart_dir)
    assert rendered.get("ConfigMap", "studiohub-catalog")["data"]["jobs"] == "false"
    c, _ = hub_config(rendered, tmp_path, monkeypatch)
    assert not [s for s in c.JupyterHub.services if s["name"] == "jobs"]
    assert "STUDIOHUB_JOBS_URL" not in c.KubeSpawner.environment


def test_jobs_without_sharing_keep_their_volume(chart_dir: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    hub = yaml.safe_load((chart_dir / "values.yaml").read_text())["jupyterhub"]["hub"]
    values = with_values(jobs_values(), "studiohub.sharing.enabled", False)
    rendered = render(chart_dir, values)
    assert "studiohub-sharing" in rendered.names("PersistentVolumeClaim")
    c, _ = hub_config(rendered, tmp_path, monkeypatch)
    assert [s["name"] for s in c.JupyterHub.services] == ["jobs"]
    # Without the volume the jobs service would have nowhere to keep its store: refused.
    values = with_values(values, "jupyterhub.hub.extraVolumes",
                         [v for v in hub["extraVolumes"] if "persistentVolumeClaim" not in v])
    values = with_values(values, "jupyterhub.hub.extraVolumeMounts",
                         [m for m in hub["extraVolumeMounts"]
                          if m["name"] != "studiohub-sharing"])
    with pytest.raises(helm.HelmRenderError) as info:
        render(chart_dir, values)
    assert "studiohub.jobs.enabled is true but jupyterhub.hub.extraVolumes" in str(info.value)


def test_jobs_replicas_accept_no_connection_but_their_attempts_policy(chart_dir: Path) -> None:
    """The chart's policy selects every replica and allows nothing; the only ingress a
    replica gets is its attempt's own NetworkPolicy's (made by the executor)."""
    from studiohub.jobs.kube import make_labels, make_network_policy

    assert "studiohub-jobs" not in render(chart_dir).names("NetworkPolicy")
    policy = render(chart_dir, jobs_values()).get("NetworkPolicy", "studiohub-jobs")
    validate(policy)
    labels = make_labels("0123456789ab", "alice", 1)  # what every replica's pod carries
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert selector.items() <= labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert policy["spec"]["ingress"] == []
    own = make_network_policy("job-0123456789ab-a1", labels)["spec"]
    assert own["podSelector"]["matchLabels"].items() <= labels.items()
    other_job = make_labels("ba9876543210", "alice", 1)
    assert not own["ingress"][0]["from"][0]["podSelector"]["matchLabels"].items() <= \
        other_job.items()


# --- model endpoints: the models service's RBAC and reach ---------------------------------------


def models_values(**models: Any) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, value in models.items():
        values = with_values(values, f"studiohub.models.{key}", value)
    return values


def role_rules(rendered: Rendered, name: str = "studiohub-models") -> dict[
        tuple[tuple[str, ...], tuple[str, ...]], list[str]]:
    role = rendered.get("Role", name)
    assert "namespace" not in role["metadata"]  # the release's, given by helm
    return {(tuple(r["apiGroups"]), tuple(r["resources"])): r["verbs"] for r in role["rules"]}


MODELS_CORE_RULES = {
    (("apps",), ("deployments",)): ["create", "get", "list", "watch", "patch", "delete"],
    (("",), ("services",)): ["create", "get", "list", "patch", "delete"],
    (("networking.k8s.io",), ("networkpolicies",)): ["create", "get", "list", "delete"],
    (("",), ("pods",)): ["get", "list", "watch"],
    (("",), ("pods/log",)): ["get"],
}
HTTPROUTES = (("gateway.networking.k8s.io",), ("httproutes",))
INFERENCESERVICES = (("serving.kserve.io",), ("inferenceservices",))


def test_models_role_by_default_covers_deployments_services_and_policies_only(
        chart_dir: Path) -> None:
    rendered = render(chart_dir)
    assert role_rules(rendered) == MODELS_CORE_RULES  # no Gateway named, no KServe
    binding = rendered.get("RoleBinding", "studiohub-models")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "hub",
                                    "namespace": NAMESPACE}]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": "studiohub-models"}
    for obj in rendered.objects:
        assert obj["kind"] not in ("ClusterRole", "ClusterRoleBinding")


@pytest.mark.parametrize(("gateway", "kserve"), [(True, False), (False, True), (True, True)])
def test_models_role_adds_httproutes_with_a_gateway_and_inferenceservices_with_kserve(
        chart_dir: Path, gateway: bool, kserve: bool) -> None:
    values = models_values(kserve=kserve)
    if gateway:
        values = with_values(values, "studiohub.models.gateway",
                             {"name": "internal", "namespace": "gateways"})
    rendered = render(chart_dir, values)
    for obj in rendered.objects:
        validate(obj)
    expected = dict(MODELS_CORE_RULES)
    if gateway:
        expected[HTTPROUTES] = ["create", "get", "list", "patch", "delete"]
    if kserve:
        expected[INFERENCESERVICES] = ["create", "get", "list", "watch", "patch", "delete"]
    assert role_rules(rendered) == expected


def test_models_role_covers_every_kind_the_builders_make(chart_dir: Path) -> None:
    """Every object studiohub.serving.kube builds, with a Gateway and with KServe, is of
    a resource the Role lets the models service create, patch and delete."""
    from studiohub.serving import kube as serving_kube

    values = with_values(models_values(kserve=True), "studiohub.models.gateway.name", "gw")
    rules = role_rules(render(chart_dir, values))
    plural = {"Deployment": ("apps", "deployments"), "Service": ("", "services"),
              "NetworkPolicy": ("networking.k8s.io", "networkpolicies"),
              "HTTPRoute": ("gateway.networking.k8s.io", "httproutes"),
              "InferenceService": ("serving.kserve.io", "inferenceservices")}
    spec = serving_kube.VersionSpec(1, "onnx", "pytorch", "small",
                                    serving_kube.ModelSource("models", "alice/iris/1"))
    built = [*serving_kube.make_endpoint_objects(BUILTIN, "iris", "alice", [spec],
                                                 gateway=serving_kube.GatewayRef("gw")),
             *serving_kube.make_endpoint_objects(BUILTIN, "iris", "alice", [spec],
                                                 kserve=True)]
    assert {o["kind"] for o in built} == set(plural)
    for obj in built:
        group, resource = plural[obj["kind"]]
        verbs = rules[((group,), (resource,))]
        assert {"create", "delete"} <= set(verbs), obj["kind"]


def test_models_off_renders_no_models_role(chart_dir: Path) -> None:
    rendered = render(chart_dir, models_values(enabled=False, kserve=True))
    assert "studiohub-models" not in rendered.names("Role") | rendered.names("RoleBinding")


def test_models_binding_follows_the_hubs_service_account(chart_dir: Path) -> None:
    values = with_values({}, "jupyterhub.hub.serviceAccount.name", "custom-hub")
    rendered = render(chart_dir, values)
    assert rendered.get("RoleBinding", "studiohub-models")["subjects"][0]["name"] == \
        "custom-hub"


@pytest.mark.parametrize(("path", "value", "where"), [
    ("studiohub.models.kserve", "yes", "/studiohub/models/kserve"),
    ("studiohub.models.gateway.name", "Not A Gateway", "/studiohub/models/gateway/name"),
    ("studiohub.models.gateway.namespace", "Bad_NS", "/studiohub/models/gateway/namespace"),
    ("studiohub.models.gateway.port", 80, "/studiohub/models/gateway"),
    ("studiohub.models.canary", 10, "/studiohub/models"),
])
def test_models_values_outside_the_schema_are_refused(chart_dir: Path, path: str,
                                                      value: Any, where: str) -> None:
    with pytest.raises(helm.HelmValuesError) as info:
        render(chart_dir, with_values({}, path, value))
    assert f"at '{where}'" in str(info.value)


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_lint_is_clean_with_models_gateway_and_kserve(chart_dir: Path, version: str) -> None:
    values = with_values(models_values(kserve=True), "studiohub.models.gateway",
                         {"name": "internal", "namespace": "gateways"})
    report = helm.lint(str(chart_dir), values, strict=True, kube_version=f"v{version}.0")
    assert report["errors"] == [] and report["messages"] == []


def test_the_hub_pod_reaches_the_model_replicas(chart_dir: Path) -> None:
    """The hub's NetworkPolicy lets the models service (in the hub pod) reach every
    endpoint replica's port, the port their own NetworkPolicy opens to the hub pod."""
    from studiohub.serving import kube as serving_kube

    rendered = render(chart_dir)
    replica = serving_kube.make_labels("iris", "alice", 1)
    egress = rendered.get("NetworkPolicy", "hub")["spec"]["egress"]
    assert any({"port": serving_kube.MODEL_PORT, "protocol": "TCP"} in r["ports"]
               and any(p["podSelector"]["matchLabels"].items() <= replica.items()
                       for p in r["to"])
               for r in egress)
    hub_labels = rendered.get("Deployment", "hub")["spec"]["template"]["metadata"]["labels"]
    policy = serving_kube.make_network_policy("iris", "alice")
    [rule] = policy["spec"]["ingress"]
    assert rule["from"][0]["podSelector"]["matchLabels"].items() <= hub_labels.items()
