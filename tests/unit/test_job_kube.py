"""A training job attempt's Kubernetes objects: built offline, validated strictly against
the official schemas of the oldest and newest supported Kubernetes (no cluster here)."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from studiohub.catalog import Size
from studiohub.jobs import kube
from studiohub.jobs.replicas import PYTORCH, TENSORFLOW, make_replica_env, make_replicas
from tests.kubetools import validate

GPU_SIZE = Size("gpu-small", "4 vCPU + 16 GiB + 1 GPU", 4, 16 * 1024**3, gpus=1,
                node_selector={"cloud.google.com/gke-accelerator": "nvidia-l4"},
                tolerations=({"key": "nvidia.com/gpu", "operator": "Exists",
                              "effect": "NoSchedule"},))


def attempt_objects(kind: str, workers: int, ps: int = 0) -> tuple[dict[str, Any],
                                                                  dict[str, Any]]:
    name = kube.job_object_name("7f3a", 2)
    replicas = make_replicas(kind, workers, ps)
    addresses = kube.replica_addresses(name, replicas)
    envs = [make_replica_env(kind, replicas, addresses, r, job_id="7f3a", attempt=2,
                             checkpoint_dir=kube.CHECKPOINTS_MOUNT, output_dir="/o",
                             tensorboard_dir="/t") for r in replicas]
    labels = kube.make_labels("7f3a", "Alice", 2)
    job = kube.make_job(name, labels=labels, image="ghcr.io/acme/pytorch-gpu:2.5",
                        size=GPU_SIZE, per_index_env=envs,
                        command=["python", "train.py", "--epochs", "2"],
                        common_env={"DATA": "/data"}, home_claim="claim-alice",
                        checkpoint_claim="studiohub-jobs", job_dir="alice/7f3a",
                        timeout=3600)
    return kube.make_service(name, labels), job


def test_the_objects_are_valid_for_every_supported_kubernetes() -> None:
    service, job = attempt_objects(PYTORCH, 2)
    validate(service)
    validate(job)


def test_an_indexed_job_of_all_replicas_with_the_sizes_resources_and_placement() -> None:
    service, job = attempt_objects(TENSORFLOW, 2, ps=1)
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"],
            spec["backoffLimit"], spec["activeDeadlineSeconds"]) == ("Indexed", 4, 4, 0, 3600)
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    assert container["resources"] == {
        "requests": {"cpu": "4", "memory": str(16 * 1024**3), "nvidia.com/gpu": "1"},
        "limits": {"cpu": "4", "memory": str(16 * 1024**3), "nvidia.com/gpu": "1"}}
    assert pod["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists",
                                   "effect": "NoSchedule"}]
    assert pod["subdomain"] == service["metadata"]["name"] == job["metadata"]["name"]
    assert service["spec"]["clusterIP"] == "None"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert [v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"]] == \
        ["claim-alice", "studiohub-jobs"]
    assert job["metadata"]["labels"]["studiohub.io/user"] == "alice--" + \
        job["metadata"]["labels"]["studiohub.io/user"].split("--")[1]


def test_user_code_failures_fail_the_attempt_and_disruptions_are_ignored() -> None:
    _, job = attempt_objects(PYTORCH, 2)
    rules = job["spec"]["podFailurePolicy"]["rules"]
    assert rules == [
        {"action": "Ignore",
         "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
        {"action": "FailJob", "onExitCodes": {"containerName": "replica", "operator": "In",
                                              "values": [1, 2]}}]


def run_entry(job: dict[str, Any], index: int, printer: str) -> str:
    """Run the pod's real entry command under /bin/sh as replica ``index`` would."""
    command = job["spec"]["template"]["spec"]["containers"][0]["command"]
    argv = [*command[:4], "python3", "-c", printer]
    return subprocess.run(argv, env={"JOB_COMPLETION_INDEX": str(index), "PATH": "/usr/bin"},
                          capture_output=True, text=True, check=True).stdout


def test_each_index_execs_the_command_with_its_own_framework_variables() -> None:
    _, job = attempt_objects(TENSORFLOW, 2, ps=1)
    printer = "import json, os; print(os.environ['TF_CONFIG'])"
    task = json.loads(run_entry(job, 3, printer))["task"]
    assert task == {"type": "ps", "index": 0}
    cluster = json.loads(run_entry(job, 0, printer))["cluster"]
    name = job["metadata"]["name"]
    assert cluster["worker"] == [f"{name}-1.{name}:2222", f"{name}-2.{name}:2222"]
    _, torch_job = attempt_objects(PYTORCH, 2)
    env = json.loads(run_entry(torch_job, 1, "import json, os; print(json.dumps(dict("
                                             "os.environ)))"))
    assert (env["RANK"], env["WORLD_SIZE"], env["STUDIOHUB_ATTEMPT"]) == ("1", "2", "2")
    assert env["MASTER_ADDR"] == f"{torch_job['metadata']['name']}-0." \
                                 f"{torch_job['metadata']['name']}"


def test_an_unknown_index_exits_instead_of_running_without_its_variables() -> None:
    _, job = attempt_objects(PYTORCH, 2)
    command = job["spec"]["template"]["spec"]["containers"][0]["command"]
    done = subprocess.run([*command[:4], "true"], env={"JOB_COMPLETION_INDEX": "9"},
                          capture_output=True, text=True)
    assert done.returncode == 3 and "unknown replica index 9" in done.stderr


def test_names_are_dns_labels_even_for_long_ids() -> None:
    name = kube.job_object_name("x" * 80, 12)
    assert len(name) <= 52 and name == name.lower()


def test_each_attempt_gets_a_network_policy_for_its_own_replicas_only() -> None:
    """Ingress to the attempt's pods from the attempt's pods only: every port between
    replicas, none from anyone else (another job, another attempt, a server)."""
    name = kube.job_object_name("7f3a", 2)
    labels = kube.make_labels("7f3a", "Alice", 2)
    policy = kube.make_network_policy(name, labels)
    validate(policy)
    spec = policy["spec"]
    selector = spec["podSelector"]["matchLabels"]
    assert selector == {"studiohub.io/job": labels["studiohub.io/job"],
                        "studiohub.io/attempt": "2"}
    assert spec["policyTypes"] == ["Ingress"] and "egress" not in spec
    assert spec["ingress"] == [{"from": [{"podSelector": {"matchLabels": selector}}]}]

    def admitted(peer: dict[str, str]) -> bool:
        return selector.items() <= peer.items()

    assert admitted(labels)
    assert not admitted(kube.make_labels("8e4b", "Alice", 2))  # another job
    assert not admitted(kube.make_labels("7f3a", "Alice", 1))  # an earlier attempt
    assert not admitted({"component": "singleuser-server", "hub.jupyter.org/username":
                         "mallory"})
