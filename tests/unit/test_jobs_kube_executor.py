"""The Kubernetes executor against a recording fake of the API (no cluster runs here).

The fake records every call (method, namespace, name, body, options) and answers with
``kubernetes_asyncio``'s own model objects; every object the executor would create is
validated strictly against the oldest and newest supported Kubernetes."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio.client.exceptions import ApiException

from studiohub import contract
from studiohub.catalog import BUILTIN_CATALOG, Catalog, parse_catalog
from studiohub.jobs import kube
from studiohub.jobs.kube_executor import KubeExecutor, pod_plan
from studiohub.jobs.model import AttemptPlan, ReplicaPlan
from studiohub.jobs.replicas import PYTORCH, make_replica_env, make_replicas
from tests.kubetools import validate

HOME = "/home/jupyter-alice"
JOB = "0123456789ab"
NS = "studiohub"


class RecordingAPI:
    """BatchV1Api + CoreV1Api: records calls; pods, jobs and logs are set by the test."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.pods: list[k8s.V1Pod] = []
        self.jobs: list[k8s.V1Job] = []
        self.logs: dict[str, str] = {}
        self.fail: dict[str, ApiException] = {}

    def __getattr__(self, method: str) -> Any:
        async def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((method, args, kwargs))
            if method in self.fail:
                raise self.fail[method]
            if method == "list_namespaced_pod":
                selector = kwargs["label_selector"]
                key, _, value = selector.partition("=")
                return k8s.V1PodList(items=[p for p in self.pods
                                            if p.metadata.labels.get(key) == value])
            if method == "list_namespaced_job":
                return k8s.V1JobList(items=self.jobs)
            if method == "read_namespaced_job":
                found = [j for j in self.jobs if j.metadata.name == args[0]]
                if not found:
                    raise ApiException(status=404, reason="Not Found")
                return found[0]
            if method == "read_namespaced_pod_log":
                return self.logs.get(args[0], "")
            if method.startswith("delete_"):
                self.pods = [p for p in self.pods
                             if p.metadata.labels.get(kube_label()) != args[0]]
            return None
        return call

    def made(self, method: str) -> list[Any]:
        return [args for m, args, _ in self.calls if m == method]


def kube_label() -> str:
    return "batch.kubernetes.io/job-name"


def catalog() -> Catalog:
    return parse_catalog(yaml.safe_load(BUILTIN_CATALOG.read_text()), "test")


def plan(workers: int = 2, attempt: int = 2, image: str = "pytorch",
         timeout: int | None = 3600) -> AttemptPlan:
    """The plan the service makes (local addresses and paths), as in service.build_plan."""
    replicas = make_replicas(PYTORCH, workers)
    addresses = [f"127.0.0.1:{29500 + r.rank}" for r in replicas]
    base = f"{HOME}/studiohub-jobs/{JOB}"
    plans = []
    for r in replicas:
        env = {"OMP_NUM_THREADS": "2", **make_replica_env(
            PYTORCH, replicas, addresses, r, job_id=JOB, attempt=attempt,
            checkpoint_dir=f"{base}/checkpoints", output_dir=f"{base}/outputs",
            tensorboard_dir=f"{base}/tensorboard"), "CUDA_VISIBLE_DEVICES": "0"}
        plans.append(ReplicaPlan(r.name, r.rank, env, ("0",)))
    return AttemptPlan(job_id=JOB, attempt=attempt, user="alice", unix_user="jupyter-alice",
                       command=["/opt/studiohub/envs/pytorch/bin/python", f"{base}/code/train.py",
                                "--epochs", "2"],
                       workdir=f"{base}/code", job_dir="", replicas=plans, image=image,
                       size="small", env={"SEED": "7"}, timeout=timeout)


def executor(api: RecordingAPI, tmp_path: Path | None = None) -> KubeExecutor:
    return KubeExecutor(api, api, NS, catalog, networking=api,
                        checkpoint_claim="studiohub-jobs", stop_wait=2)


def with_dir(p: AttemptPlan, tmp_path: Path) -> AttemptPlan:
    from dataclasses import replace
    return replace(p, job_dir=str(tmp_path / "jobs" / JOB))


def pod(name: str, index: int, *, phase: str = "Running", exit_code: int | None = None,
        reason: str = "", created: int = 0) -> k8s.V1Pod:
    state = k8s.V1ContainerState(
        terminated=k8s.V1ContainerStateTerminated(exit_code=exit_code, reason=reason or None)
        if exit_code is not None else None,
        running=k8s.V1ContainerStateRunning() if exit_code is None else None)
    return k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(
            name=f"{name}-{index}-x{created}", labels={kube_label(): name},
            annotations={"batch.kubernetes.io/job-completion-index": str(index)},
            creation_timestamp=datetime(2026, 1, 1, 0, created, tzinfo=UTC)),
        status=k8s.V1PodStatus(phase=phase, container_statuses=[k8s.V1ContainerStatus(
            name="replica", image="x", image_id="x", ready=exit_code is None,
            restart_count=0, state=state)]))


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_start_creates_the_service_then_the_indexed_job_all_valid(tmp_path: Path) -> None:
    api = RecordingAPI()
    run(executor(api).start(plan()))
    assert [m for m, _, _ in api.calls] == ["create_namespaced_service",
                                             "create_namespaced_network_policy",
                                             "create_namespaced_job"]
    [(ns, service)] = api.made("create_namespaced_service")
    [(ns2, job)] = api.made("create_namespaced_job")
    [(ns3, policy)] = api.made("create_namespaced_network_policy")
    assert ns == ns2 == ns3 == NS
    validate(service)
    validate(job)
    validate(policy)
    assert policy["metadata"]["name"] == job["metadata"]["name"]
    name = kube.job_object_name(JOB, 2)
    assert service["metadata"]["name"] == job["metadata"]["name"] == name
    assert job["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "studiohub"
    assert job["spec"]["completions"] == 2 and job["spec"]["activeDeadlineSeconds"] == 3600
    pod_spec = job["spec"]["template"]["spec"]
    volumes = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod_spec["volumes"]}
    assert volumes == {"home": "claim-alice", "checkpoints": "studiohub-jobs"}
    mounts = pod_spec["containers"][0]["volumeMounts"]
    assert {"name": "checkpoints", "mountPath": kube.CHECKPOINTS_MOUNT,
            "subPath": f"alice/{JOB}"} in mounts
    command = pod_spec["containers"][0]["command"]
    # The image environment's python (not the hub environment's, first on the image's PATH).
    assert command[-4:] == [f"{kube.image_bin('pytorch')}/python",
                            f"{kube.HOME_MOUNT}/studiohub-jobs/{JOB}/code/train.py",
                            "--epochs", "2"]
    script = command[2]
    # Each index's variables: addresses are the Service's DNS names, not 127.0.0.1.
    assert f"MASTER_ADDR={name}-0.{name}" in script and "127.0.0.1" not in script
    assert f"{contract.CHECKPOINT_DIR}={kube.CHECKPOINTS_MOUNT}" in script
    assert f"{contract.OUTPUT_DIR}={kube.HOME_MOUNT}/studiohub-jobs/{JOB}/outputs" in script
    assert "RANK=1" in script and "OMP_NUM_THREADS=2" in script
    assert "CUDA_VISIBLE_DEVICES" not in script  # the device plugin's, not the host's
    env = {e["name"]: e["value"] for e in pod_spec["containers"][0]["env"]}
    assert env == {"SEED": "7", "PATH": f"{kube.image_bin('pytorch')}:{kube.POD_PATH}"}
    assert "initContainers" not in pod_spec  # no snapshot order: none to make


def test_a_job_that_cannot_be_created_leaves_nothing() -> None:
    api = RecordingAPI()
    api.fail["create_namespaced_job"] = ApiException(status=403, reason="Forbidden")
    with pytest.raises(ApiException):
        run(executor(api).start(plan()))
    assert [m for m, _, _ in api.calls] == ["create_namespaced_service",
                                             "create_namespaced_network_policy",
                                             "create_namespaced_job",
                                             "delete_namespaced_network_policy",
                                             "delete_namespaced_service"]


def test_start_again_after_a_conflict_keeps_what_exists() -> None:
    api = RecordingAPI()
    api.fail["create_namespaced_service"] = ApiException(status=409, reason="AlreadyExists")
    run(executor(api).start(plan()))
    assert "create_namespaced_job" in [m for m, _, _ in api.calls]


def test_poll_reads_replicas_from_pods_exit_codes_and_oom(tmp_path: Path) -> None:
    api = RecordingAPI()
    name = kube.job_object_name(JOB, 2)
    api.jobs = [k8s.V1Job(metadata=k8s.V1ObjectMeta(name=name), status=k8s.V1JobStatus())]
    p = with_dir(plan(workers=3), tmp_path)
    api.pods = [pod(name, 0, exit_code=0, phase="Succeeded"),
                pod(name, 1, exit_code=1, phase="Failed", created=0),
                pod(name, 1, created=5),  # the newer pod of index 1 runs
                pod(name, 2, exit_code=137, reason="OOMKilled", phase="Failed")]
    api.logs = {f"{name}-1-x5": f"epoch 1\n{contract.RESUMED_FROM} /ck/ckpt-3.pt step 3\n"}
    ex = executor(api)
    states = run(ex.poll(p))
    assert [(s.name, s.running, s.exit_code, s.oom_killed) for s in states] == [
        ("worker-0", False, 0, False), ("worker-1", True, None, False),
        ("worker-2", False, 137, True)]
    size = catalog().sizes["small"]
    from studiohub.units import format_memory
    assert states[2].reason == f"OOMKilled: worker-2 used more than {format_memory(size.memory)}"
    [(_, _, options)] = [c for c in api.calls if c[0] == "list_namespaced_pod"]
    assert options == {"label_selector": f"batch.kubernetes.io/job-name={name}"}
    log = tmp_path / "jobs" / JOB / "logs" / "attempt-2" / "worker-1.log"
    assert log.read_text().startswith("epoch 1\n")
    assert ex.resumed(p) == [("worker-1", "/ck/ckpt-3.pt step 3")]


def test_a_replica_whose_pod_never_came_and_whose_job_failed_is_reported_killed(
        tmp_path: Path) -> None:
    api = RecordingAPI()
    name = kube.job_object_name(JOB, 2)
    api.jobs = [k8s.V1Job(metadata=k8s.V1ObjectMeta(name=name), status=k8s.V1JobStatus(
        conditions=[k8s.V1JobCondition(type="Failed", status="True",
                                       reason="DeadlineExceeded")]))]
    api.pods = [pod(name, 0)]
    states = run(executor(api).poll(with_dir(plan(), tmp_path)))
    assert [(s.running, s.exit_code) for s in states] == [(True, None), (False, -9)]
    api.jobs = [k8s.V1Job(metadata=k8s.V1ObjectMeta(name=name), status=k8s.V1JobStatus())]
    states = run(executor(api).poll(with_dir(plan(), tmp_path)))
    assert [(s.running, s.exit_code) for s in states] == [(True, None), (True, None)]


def test_stop_deletes_the_job_pods_first_then_the_service() -> None:
    api = RecordingAPI()
    name = kube.job_object_name(JOB, 2)
    api.pods = [pod(name, 0)]
    run(executor(api).stop(plan()))
    assert [(m, a, k) for m, a, k in api.calls if m.startswith("delete")] == [
        ("delete_namespaced_job", (name, NS), {"propagation_policy": "Foreground"}),
        ("delete_namespaced_service", (name, NS), {}),
        ("delete_namespaced_network_policy", (name, NS), {})]
    assert api.pods == []
    for method in ("delete_namespaced_job", "delete_namespaced_service",
                   "delete_namespaced_network_policy"):
        api.fail[method] = ApiException(status=404, reason="Not Found")
    run(executor(api).stop(plan()))  # twice: safe


def test_running_lists_the_unfinished_jobs_by_the_managed_by_label() -> None:
    api = RecordingAPI()

    def job(job_id: str, attempt: int, condition: str | None = None) -> k8s.V1Job:
        conditions = [k8s.V1JobCondition(type=condition, status="True")] if condition \
            else None
        return k8s.V1Job(metadata=k8s.V1ObjectMeta(
            name=kube.job_object_name(job_id, attempt),
            labels=kube.make_labels(job_id, "alice", attempt)),
            status=k8s.V1JobStatus(conditions=conditions))

    api.jobs = [job("aaaaaaaaaaaa", 1), job("bbbbbbbbbbbb", 3, "Complete"),
                job("cccccccccccc", 2, "Failed"), job("dddddddddddd", 1)]
    assert run(executor(api).running()) == [("aaaaaaaaaaaa", 1), ("dddddddddddd", 1)]
    [(_, args, options)] = api.calls
    assert args == (NS,)
    assert options == {"label_selector": "app.kubernetes.io/managed-by=studiohub"}


def test_pod_plan_keeps_the_local_plans_variables_except_addresses_and_gpus() -> None:
    p = plan()
    pods = pod_plan(p, PYTORCH, "ghcr.io/acme/pytorch:2")
    assert [e[contract.REPLICA] for e in pods.per_index_env] == ["worker-0", "worker-1"]
    assert all(e["WORLD_SIZE"] == "2" and "CUDA_VISIBLE_DEVICES" not in e
               for e in pods.per_index_env)
    assert json.dumps(pods.per_index_env).count("127.0.0.1") == 0


def test_the_jobs_service_runs_a_job_through_the_kube_executor(tmp_path: Path) -> None:
    """The real state machine (studiohub.jobs.service.Jobs) with this executor: the
    attempt is created, its pods' exits end the job, a resume line becomes an event and
    the replica's log is where the API serves it."""
    from studiohub.jobs.service import Account, Jobs, Viewer
    from studiohub.jobs.store import Store
    from tests.jobfakes import FakePlacing

    api = RecordingAPI()
    jobs = Jobs(Store(f"sqlite:///{tmp_path / 'jobs.sqlite'}"), executor(api), FakePlacing(),
                catalog, state_dir=tmp_path,
                accounts=lambda user: Account(f"jupyter-{user}", f"/home/jupyter-{user}"))

    async def scenario() -> None:
        job = await jobs.submit(Viewer("alice"), {"script": "train.py", "image": "pytorch",
                                                  "size": "small", "workers": 2})
        await jobs.tick()
        [(_, created)] = api.made("create_namespaced_job")
        validate(created)
        name = created["metadata"]["name"]
        assert name == kube.job_object_name(job.id, 1)
        api.pods = [pod(name, i, exit_code=0, phase="Succeeded") for i in range(2)]
        api.logs = {f"{name}-0-x0": f"{contract.RESUMED_FROM} /ck/ckpt-3.pt step 3\ndone\n"}
        await jobs.tick()
        ended = jobs.store.get(job.id)
        assert ended.status == "succeeded"
        events = [e.message for e in jobs.store.events(job.id) if e.kind == "resumed"]
        assert events == ["attempt 1: worker-0 resumed from checkpoint /ck/ckpt-3.pt step 3"]
        served = jobs.log_path(ended, 1, "worker-0")
        assert served.read_text().endswith("done\n")

    run(scenario())


# --- the service as the hub pod runs it (JobsApp --executor=kubernetes) ----------------------


def test_the_app_on_kubernetes_uses_the_kube_executor_and_placing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """JobsApp with Kubernetes settings: KubeExecutor.in_cluster with the chart's claims,
    KubePlacing, no local executor, the snapshot ordered for the pods, and no call to the
    hub's placement API."""
    from kubespawner.slugs import safe_slug
    from tornado.httpclient import AsyncHTTPClient

    from studiohub.jobs import local
    from studiohub.jobs.app import JobsApp
    from studiohub.jobs.placing import KubePlacing
    from studiohub.jobs.service import JobsError, Viewer

    api = RecordingAPI()
    made: dict[str, Any] = {}

    async def in_cluster(cls: type[KubeExecutor], catalog_of: Any, **kwargs: Any
                         ) -> KubeExecutor:
        made.update(kwargs)
        return KubeExecutor(api, api, NS, catalog_of, networking=api, stop_wait=2, **kwargs)

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("called on Kubernetes")

    monkeypatch.setattr(KubeExecutor, "in_cluster", classmethod(in_cluster))
    monkeypatch.setattr(local, "LocalExecutor", forbidden)
    monkeypatch.setattr(AsyncHTTPClient, "fetch", forbidden)
    app = JobsApp(executor="kubernetes", state_dir=str(tmp_path), catalog_path="",
                  checkpoint_claim="ckpts", home_claim_template="claim-{username}")

    async def scenario() -> None:
        executor = await app.make_kube_executor()
        assert made["checkpoint_claim"] == "ckpts"
        jobs = app.make_jobs(executor)
        assert jobs.executor is executor and isinstance(jobs.placing, KubePlacing)
        user = "Alice@example.org"  # KubeSpawner's slug names her claim
        script = await jobs.submit(Viewer(user), {"script": "train.py", "image": "pytorch",
                                                  "size": "small"})
        assert (tmp_path / "jobs" / script.id / "snapshot.json").exists()  # the order only
        await jobs.cancel(Viewer(user), script.id)
        with pytest.raises(JobsError) as outside:  # the catalog's domains still hold
            await jobs.submit(Viewer(user), {"module": "train", "image": "pytorch",
                                             "size": "gpu-medium"})
        assert outside.value.status == 400 and "gpu-medium" in outside.value.message
        assert jobs.store.active() == []
        job = await jobs.submit(Viewer(user), {"module": "train", "image": "pytorch",
                                               "size": "small", "workers": 2})
        await jobs.tick()
        [(_, created)] = api.made("create_namespaced_job")
        validate(created)
        pod_spec = created["spec"]["template"]["spec"]
        claims = {v["name"]: v["persistentVolumeClaim"]["claimName"]
                  for v in pod_spec["volumes"]}
        assert claims == {"home": f"claim-{safe_slug(user, max_length=48)}",
                          "checkpoints": "ckpts"}
        command = pod_spec["containers"][0]["command"]
        assert command[-3:] == [f"{kube.image_bin('pytorch')}/python", "-m", "train"]
        assert "initContainers" not in pod_spec  # a module runs from the home
        name = created["metadata"]["name"]
        api.pods = [pod(name, i, exit_code=0, phase="Succeeded") for i in range(2)]
        await jobs.tick()
        assert jobs.store.get(job.id).status == "succeeded"

    run(scenario())


def test_kube_placing_checks_the_catalog_and_books_nothing() -> None:
    from studiohub.jobs.placing import KubePlacing, PlacementRefused, ReplicaPlacement

    placing = KubePlacing(catalog)

    async def scenario() -> None:
        assert await placing.place("alice", JOB, "pytorch", "gpu-medium",
                                   ["worker-0", "worker-1"]) == {
            "worker-0": ReplicaPlacement(), "worker-1": ReplicaPlacement()}
        await placing.check("alice", JOB, "pytorch", "small", ["worker-0"])
        for image, size, replicas, message in (
                ("nope", "small", ["worker-0"], "image 'nope' is not in the catalog"),
                ("pytorch", "huge", ["worker-0"], "size 'huge' is not in the catalog"),
                ("pytorch", "small", [], "at least one replica")):
            with pytest.raises(PlacementRefused) as info:
                await placing.place("alice", JOB, image, size, replicas)
            assert info.value.status == 400 and message in info.value.message
        await placing.release("alice", JOB)

    run(scenario())
