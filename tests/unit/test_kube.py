"""KubeSpawner on the catalog, without a cluster.

Real pod manifests are built by KubeSpawner itself (``_mock=True``, a dummy kubeconfig,
``load_user_options()`` then ``get_pod_manifest()``), serialized the way its client
sends them, and validated with kubernetes-validate in strict mode against the oldest
and newest Kubernetes versions the chart supports (``kubeVersion`` in Chart.yaml).
No API server is contacted: this proves what a cluster would receive, not that it ran.
"""

from __future__ import annotations

import copy
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from jupyterhub.spawner import SpawnException
from kubernetes_asyncio.client import ApiClient
from traitlets.config import Config

from studiohub import kube
from studiohub.catalog import (
    BUILTIN_CATALOG,
    CatalogError,
    load_catalog,
    parse_catalog,
)
from tests.kubetools import offline_kubeconfig, validate

ROOT = Path(__file__).resolve().parents[2]
GIB = 1024**3
CATALOG = load_catalog()

kubeconfig = pytest.fixture(scope="module", autouse=True)(offline_kubeconfig)


def make_config() -> Config:
    c = Config()
    kube.update_kube_spawner(c, "")
    kube.update_home(c, capacity="10Gi", storage_class="standard")
    # What the official chart sets for user pods (scheduling.userPods.tolerations).
    c.KubeSpawner.tolerations = [{"key": "hub.jupyter.org/dedicated", "operator": "Equal",
                                  "value": "user", "effect": "NoSchedule"}]
    return c


def make_spawner(groups: list[str], options: dict[str, Any] | None = None,
                 name: str = "alice") -> kube.StudioKubeSpawner:
    user = SimpleNamespace(name=name, id=7, url=f"/user/{name}/", server=None,
                           groups=[SimpleNamespace(name=g) for g in groups])
    spawner = kube.StudioKubeSpawner(_mock=True, config=make_config(), user=user)
    spawner.user_options = options or {}
    return spawner


async def pod_for(groups: list[str], options: dict[str, Any]) -> dict[str, Any]:
    spawner = make_spawner(groups, options)
    await spawner.load_user_options()
    async with ApiClient() as api:
        return api.sanitize_for_serialization(await spawner.get_pod_manifest())


def env_of(pod: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}


ALLOWED = sorted({(tuple(sorted([d])), p.image.id, p.size.id)
                  for d in CATALOG.domains for p in CATALOG.allowed_pairs([d])})


# --- every allowed image x size, as the pod a cluster would receive ----------------------


@pytest.mark.parametrize(("groups", "image_id", "size_id"), ALLOWED,
                         ids=[f"{g[0]}-{i}-{s}" for g, i, s in ALLOWED])
async def test_pod_of_every_allowed_pair_is_valid_and_sized(
        groups: tuple[str, ...], image_id: str, size_id: str) -> None:
    pod = await pod_for(list(groups), {"image": image_id, "size": size_id})
    validate(pod)
    image, size = CATALOG.images[image_id], CATALOG.sizes[size_id]
    container = pod["spec"]["containers"][0]
    assert container["image"] == image.container_image
    resources = container["resources"]
    assert float(resources["requests"]["cpu"]) == float(resources["limits"]["cpu"]) == size.cpus
    assert int(resources["requests"]["memory"]) == int(resources["limits"]["memory"]) \
        == size.memory
    if size.gpus:
        assert resources["limits"][kube.GPU_RESOURCE] == str(size.gpus)
    else:
        assert kube.GPU_RESOURCE not in resources["limits"]
    assert pod["spec"].get("nodeSelector", {}) == dict(size.node_selector)
    tolerations = pod["spec"]["tolerations"]
    assert tolerations[0]["key"] == "hub.jupyter.org/dedicated"  # the chart's are kept
    assert tolerations[1:] == [dict(t) for t in size.tolerations]
    assert {"name": "home", "persistentVolumeClaim": {"claimName": "claim-alice"}} \
        in pod["spec"]["volumes"]
    assert {"name": "home", "mountPath": "/home/jovyan"} in container["volumeMounts"]
    env = env_of(pod)
    assert env["STUDIOHUB_IMAGE"] == image_id and env["STUDIOHUB_SIZE"] == size_id
    assert env["STUDIOHUB_MEM_LIMIT"] == str(size.memory)
    assert env["STUDIOHUB_GPU_LIMIT"] == str(size.gpus)
    assert env["STUDIOHUB_IMAGE_LABEL"] == image.label


def test_every_catalog_image_and_size_is_covered() -> None:
    assert {i for _, i, _ in ALLOWED} == set(CATALOG.images)
    assert {s for _, _, s in ALLOWED} == set(CATALOG.sizes)


async def test_home_claim_is_valid() -> None:
    spawner = make_spawner(["everyone"])
    async with ApiClient() as api:
        pvc = api.sanitize_for_serialization(spawner.get_pvc_manifest())
    validate(pvc)
    assert pvc["metadata"]["name"] == "claim-alice"
    assert pvc["spec"]["resources"]["requests"]["storage"] == "10Gi"
    assert pvc["spec"]["storageClassName"] == "standard"


async def test_no_options_start_the_catalog_default() -> None:
    pod = await pod_for(["everyone"], {})
    env = env_of(pod)
    assert (env["STUDIOHUB_IMAGE"], env["STUDIOHUB_SIZE"]) == ("base", "medium")


async def test_kubespawner_form_vocabulary_is_accepted() -> None:
    pod = await pod_for(["ml-research"], {"profile": "gpu-medium", "image": "mxnet-gpu"})
    assert pod["spec"]["containers"][0]["image"] == "studiohub/mxnet-gpu:0.1.0"


async def test_saved_options_are_left_as_given() -> None:
    spawner = make_spawner(["everyone"], {"image": "pytorch", "size": "small"})
    await spawner.load_user_options()
    assert spawner.user_options == {"image": "pytorch", "size": "small"}


# --- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize(("groups", "options", "message"), [
    (["everyone"], {"image": "nope"},
     "unknown image 'nope': allowed values are base, mxnet, pytorch, tensorflow"),
    (["everyone"], {"image": "pytorch-gpu"},
     "image 'pytorch-gpu' is not allowed in your domains (everyone): allowed images are"),
    (["everyone"], {"size": "gpu-medium"},
     "size 'gpu-medium' is not allowed in your domains (everyone): allowed sizes are "
     "large, medium, small"),
    (["everyone"], {"profile": "gpu-large", "image": "base"},
     "size 'gpu-large' is not allowed in your domains (everyone)"),
    (["ml-research"], {"image": "pytorch-gpu", "size": "small"},
     "size 'small' cannot run image 'pytorch-gpu' (it has no GPU); sizes that can: "
     "gpu-large, gpu-medium"),
    (["ml-research"], {"image": "base", "image--unlisted-choice": "evil/image:latest"},
     "unknown option(s) 'image--unlisted-choice'"),
    (["ml-research"], {"profile": "small", "size": "large"}, "disagree"),
    (["ml-research"], {"image": ["base"]}, "unknown image ['base']"),
])
async def test_refused_with_400_naming_allowed_values(
        groups: list[str], options: dict[str, Any], message: str) -> None:
    spawner = make_spawner(groups, options)
    with pytest.raises(SpawnException) as info:
        await spawner.load_user_options()
    assert info.value.status_code == 400
    assert message in info.value.message


async def test_form_refuses_before_spawning() -> None:
    spawner = make_spawner(["everyone"])
    form = {"profile": ["gpu-medium"], "profile-option-gpu-medium--image": ["pytorch-gpu"]}
    with pytest.raises(SpawnException) as info:
        spawner.options_from_form(form)
    assert info.value.status_code == 400
    ok = {"profile": ["large"], "profile-option-large--image": ["pytorch"]}
    assert spawner.options_from_form(ok) == {"image": "pytorch", "size": "large"}


# --- profile_list: plain data from the catalog ------------------------------------------


def test_profile_of_a_gpu_size() -> None:
    size = CATALOG.sizes["gpu-medium"]
    images = [CATALOG.images["pytorch-gpu"], CATALOG.images["base"]]
    base = [{"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user",
             "effect": "NoSchedule"}]
    assert kube.make_profile(size, images, default_image="pytorch-gpu",
                             base_tolerations=base) == {
        "display_name": "4 vCPU + 16 GiB + 1 GPU",
        "slug": "gpu-medium",
        "description": "4 vCPU, 16 GiB memory, 1 NVIDIA GPU",
        "default": False,
        "kubespawner_override": {
            "cpu_guarantee": 4.0, "cpu_limit": 4.0,
            "mem_guarantee": 16 * GIB, "mem_limit": 16 * GIB,
            "extra_resource_limits": {"nvidia.com/gpu": "1"},
            "node_selector": {"studiohub.dev/accelerator": "nvidia-gpu"},
            "tolerations": [*base, {"key": "nvidia.com/gpu", "operator": "Exists",
                                    "effect": "NoSchedule"}],
            "environment": {
                "STUDIOHUB_SIZE": "gpu-medium",
                "STUDIOHUB_SIZE_LABEL": "4 vCPU + 16 GiB + 1 GPU",
                "STUDIOHUB_CPU_LIMIT": "4", "STUDIOHUB_MEM_LIMIT": str(16 * GIB),
                "STUDIOHUB_GPU_LIMIT": "1", "STUDIOHUB_LIMITS": "memory,cpu",
                "STUDIOHUB_LIMITS_SUMMARY": "CPU and memory limits enforced by Kubernetes",
                "STUDIOHUB_SWITCHING": "server",
                # A kernel that was not placed (every kernel on Kubernetes) runs on these.
                "STUDIOHUB_KERNEL_SIZE": "gpu-medium",
                "STUDIOHUB_KERNEL_SIZE_LABEL": "4 vCPU + 16 GiB + 1 GPU",
                "STUDIOHUB_KERNEL_CPU_LIMIT": "4", "STUDIOHUB_KERNEL_MEM_LIMIT": str(16 * GIB),
            },
        },
        "profile_options": {"image": {"display_name": "Image", "choices": {
            "pytorch-gpu": {
                "display_name": "PyTorch 2.13 · GPU", "default": True,
                "kubespawner_override": {
                    "image": "studiohub/pytorch-gpu:0.1.0",
                    "environment": {"STUDIOHUB_IMAGE": "pytorch-gpu",
                                    "STUDIOHUB_IMAGE_LABEL": "PyTorch 2.13 · GPU",
                                    "STUDIOHUB_KERNEL_IMAGE": "pytorch-gpu"}}},
            "base": {
                "display_name": "Base Python 3.11 · CPU", "default": False,
                "kubespawner_override": {
                    "image": "studiohub/base-cpu:0.1.0",
                    "environment": {"STUDIOHUB_IMAGE": "base",
                                    "STUDIOHUB_IMAGE_LABEL": "Base Python 3.11 · CPU",
                                    "STUDIOHUB_KERNEL_IMAGE": "base"}}},
        }}},
    }


def test_profiles_follow_the_users_domains() -> None:
    everyone = kube.make_profile_list(CATALOG, ["everyone"])
    assert [p["slug"] for p in everyone] == ["small", "medium", "large"]
    assert [p["slug"] for p in everyone if p["default"]] == ["medium"]
    for profile in everyone:
        choices = profile["profile_options"]["image"]["choices"]
        assert sorted(choices) == ["base", "mxnet", "pytorch", "tensorflow"]
        assert [k for k, v in choices.items() if v["default"]] == ["base"]
    research = {p["slug"]: p for p in kube.make_profile_list(CATALOG, ["ml-research"])}
    assert sorted(research) == sorted(CATALOG.sizes)
    gpu_choices = research["gpu-large"]["profile_options"]["image"]["choices"]
    assert sorted(gpu_choices) == sorted(CATALOG.images)
    assert "pytorch-gpu" not in research["xlarge"]["profile_options"]["image"]["choices"]
    # No domain group: the default domain; unknown groups change nothing.
    assert kube.make_profile_list(CATALOG, ["not-a-domain"]) == everyone


async def test_profile_list_is_a_callable_of_the_spawner() -> None:
    spawner = make_spawner(["everyone"])
    profiles = spawner.profile_list(spawner)
    assert [p["slug"] for p in profiles] == ["small", "medium", "large"]
    form = await spawner._render_options_form_dynamically(spawner)
    assert "PyTorch 2.13 · CPU" in form and "gpu-medium" not in form


def test_dict_tolerations_are_kept_as_a_list() -> None:
    assert kube.tolerations_list({"b": {"key": "b"}, "a": {"key": "a"}}) == [
        {"key": "a"}, {"key": "b"}]


# --- the catalog's kubernetes block --------------------------------------------------------


@pytest.mark.parametrize(("block", "message"), [
    ({"node_selector": {"Bad Key!": "x"}}, "not a valid Kubernetes label key"),
    ({"node_selector": {"pool": "no spaces"}}, "not a valid Kubernetes label value"),
    ({"tolerations": [{"key": "gpu", "operator": "Exists", "value": "x"}]},
     "operator Exists takes no value"),
    ({"tolerations": [{"operator": "Equal", "value": "x"}]}, "without a key must use"),
    ({"tolerations": [{"key": "k", "effect": "NoSchedule", "tolerationSeconds": 5}]},
     "only to effect NoExecute"),
    ({"tolerations": [{"key": "k", "effect": "Sometimes"}]}, "'Sometimes' is not one of"),
    ({"taints": []}, "allowed keys: node_selector, tolerations"),
])
def test_bad_kubernetes_block_is_refused_by_key(block: dict[str, Any], message: str) -> None:
    data = yaml.safe_load(BUILTIN_CATALOG.read_text())
    data = copy.deepcopy(data)
    data["sizes"]["small"]["kubernetes"] = block
    with pytest.raises(CatalogError) as info:
        parse_catalog(data, "ops.yaml")
    assert str(info.value).startswith("catalog ops.yaml: sizes.small.kubernetes")
    assert message in str(info.value)


# --- configure(c): what hub.extraConfig runs ---------------------------------------------


def test_configure_sets_spawner_groups_and_sharing() -> None:
    c = Config()
    c.JupyterHub.base_url = "/studio/"
    c.Authenticator.admin_users = {"root"}
    c.KubeSpawner.environment = {"FROM_CHART": "1"}
    kube.configure(c, "")
    kube.configure(c, "")  # idempotent
    assert c.JupyterHub.spawner_class == "studiohub.spawners.kube.StudioKubeSpawner"
    assert set(c.JupyterHub.load_groups) == set(CATALOG.domains)
    services = [s for s in c.JupyterHub.services if s["name"] == "sharing"]
    assert len(services) == 1
    assert services[0]["url"].endswith(f":{kube.SHARING_PORT}")
    assert f"--data-dir={kube.SHARING_DIR}" in services[0]["command"]
    url = "http://hub:8082/studio/services/sharing/"
    assert c.KubeSpawner.environment == {"FROM_CHART": "1", "STUDIOHUB_SHARING_URL": url}
    assert c.Spawner.environment["STUDIOHUB_SHARING_URL"] == url
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    assert roles["sharing-auditors"]["users"] == ["root"]


def test_groups_from_the_identity_provider_are_left_to_it() -> None:
    """hub.config's manage_groups (OIDC groups as domains): JupyterHub refuses load_groups."""
    c = Config()
    c.GenericOAuthenticator.manage_groups = True
    kube.configure(c, "", sharing=False)
    assert "load_groups" not in c.JupyterHub


def test_configure_uses_the_pod_ip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STUDIOHUB_POD_IP", "10.1.2.3")
    c = Config()
    kube.configure(c, "")
    assert c.JupyterHub.services[0]["url"] == "http://10.1.2.3:8082"


def test_catalog_path_default(tmp_path: Path) -> None:
    assert kube.default_catalog_path({"STUDIOHUB_CATALOG": "/x.yaml"}) == "/x.yaml"
    assert kube.default_catalog_path({}) in ("", kube.CATALOG_PATH)


def test_configure_hands_the_catalog_to_the_sharing_service(tmp_path: Path) -> None:
    # The service decides who may open a share by the catalog's domains: it must read
    # the operator's catalog (the chart's ConfigMap), not only the built-in one.
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text("domains:\n  vision:\n    display_name: Vision\n")
    c = Config()
    kube.configure(c, str(catalog), sharing=True)
    service = next(s for s in c.JupyterHub.services if s["name"] == "sharing")
    assert f"--catalog={catalog}" in service["command"]
    assert "vision" in c.JupyterHub.load_groups


@pytest.mark.parametrize(("environ", "enabled"), [
    ({}, True), ({"STUDIOHUB_SHARING": "true"}, True), ({"STUDIOHUB_SHARING": "False"}, False),
])
def test_sharing_switch_from_the_environment(environ: dict[str, str], enabled: bool) -> None:
    assert kube.sharing_enabled(environ) is enabled


def test_configure_without_sharing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STUDIOHUB_SHARING", "false")
    c = Config()
    kube.configure(c, "")
    assert c.JupyterHub.spawner_class == "studiohub.spawners.kube.StudioKubeSpawner"
    assert not c.JupyterHub.get("services")
    assert "STUDIOHUB_SHARING_URL" not in c.KubeSpawner.get("environment", {})
    monkeypatch.setenv("STUDIOHUB_SHARING", "yes")
    with pytest.raises(ValueError, match="STUDIOHUB_SHARING='yes': use true or false"):
        kube.configure(Config(), "")


def test_sharing_reaches_servers_through_the_proxys_plain_http_port(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert kube.proxy_address({}) == ("proxy-public", 80)
    # The official chart's automatic HTTPS: proxy-public is Traefik (port 80 redirects).
    https = {"PROXY_HTTP_SERVICE_HOST": "10.96.0.9", "PROXY_HTTP_SERVICE_PORT": "8000"}
    assert kube.proxy_address(https) == ("proxy-http", 8000)
    for name, value in https.items():
        monkeypatch.setenv(name, value)
    c = Config()
    kube.configure(c, "", sharing=True)
    assert "--servers-url=http://proxy-http:8000" in c.JupyterHub.services[0]["command"]


# --- the training jobs service in the hub pod ----------------------------------------------


def jobs_service(c: Config) -> dict[str, Any]:
    [service] = [s for s in c.JupyterHub.services if s["name"] == "jobs"]
    return service


def test_configure_runs_the_jobs_service_with_the_kubernetes_executor(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text("{}\n")
    monkeypatch.setenv("STUDIOHUB_POD_IP", "10.1.2.3")
    monkeypatch.setenv("STUDIOHUB_JOBS_CHECKPOINT_CLAIM", "ckpts")
    monkeypatch.setenv("STUDIOHUB_JOBS_DB_URL", "postgresql://u:secret@db/jobs")
    c = Config()
    c.JupyterHub.base_url = "/studio/"
    c.KubeSpawner.environment = {"FROM_CHART": "1"}
    kube.configure(c, str(catalog), jobs=True)
    kube.configure(c, str(catalog), jobs=True)  # idempotent
    service = jobs_service(c)
    assert service["url"] == "http://10.1.2.3:8083"
    command = service["command"]
    assert command[1:3] == ["-m", "studiohub.jobs"]
    for arg in ("--executor=kubernetes", "--checkpoint-claim=ckpts",
                "--home-claim-template=claim-{username}", "--state-dir=/srv/studiohub",
                f"--catalog={catalog}"):
        assert command.count(arg) == 1, arg
    assert not any("secret" in part for part in command)
    # The password stays in the environment; no hub prefix (no image envs in the hub pod).
    assert service["environment"] == {"STUDIOHUB_JOBS_DB_URL": "postgresql://u:secret@db/jobs"}
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    # No placement scope: the kube-scheduler places replicas, not the hub's placement API.
    assert "jobs-service" not in roles
    assert not any("jobs-placement" in scope for r in roles.values() for scope in r["scopes"])
    assert "access:services!service=jobs" in roles["user"]["scopes"]
    assert "access:services!service=jobs" in c.Spawner.server_token_scopes
    url = "http://hub:8083/studio/services/jobs/"
    assert c.KubeSpawner.environment["STUDIOHUB_JOBS_URL"] == url
    assert c.KubeSpawner.environment["FROM_CHART"] == "1"
    assert c.Spawner.environment["STUDIOHUB_JOBS_URL"] == url


def test_the_jobs_service_names_home_claims_as_kubespawner_does() -> None:
    c = Config()
    kube.update_home(c)  # pvc_name_template claim-{user_server}
    kube.configure(c, "", jobs=True)
    assert "--home-claim-template=claim-{user_server}" in jobs_service(c)["command"]


@pytest.mark.parametrize(("environ", "enabled"), [
    ({}, False), ({"STUDIOHUB_JOBS": "true"}, True), ({"STUDIOHUB_JOBS": "False"}, False),
])
def test_jobs_switch_from_the_environment(environ: dict[str, str], enabled: bool) -> None:
    assert kube.jobs_enabled(environ) is enabled


def test_configure_without_jobs_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STUDIOHUB_JOBS", raising=False)
    c = Config()
    kube.configure(c, "")
    assert not [s for s in c.JupyterHub.services if s["name"] == "jobs"]
    assert "STUDIOHUB_JOBS_URL" not in c.KubeSpawner.get("environment", {})
    monkeypatch.setenv("STUDIOHUB_JOBS", "true")
    c = Config()
    kube.configure(c, "")
    assert jobs_service(c)
    monkeypatch.setenv("STUDIOHUB_JOBS", "yes")
    with pytest.raises(ValueError, match="STUDIOHUB_JOBS='yes': use true or false"):
        kube.configure(Config(), "")


def test_the_jobs_service_reads_the_command_configure_gives_it() -> None:
    from studiohub.jobs.app import JobsApp

    c = Config()
    kube.configure(c, "", jobs=True, sharing=False)
    app = JobsApp()
    app.parse_command_line(jobs_service(c)["command"][3:])
    assert (app.executor, app.checkpoint_claim, app.home_claim_template, app.state_dir) == (
        "kubernetes", "studiohub-jobs", "claim-{username}", "/srv/studiohub")
