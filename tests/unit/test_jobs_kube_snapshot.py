"""Notebook, script and Git jobs on Kubernetes: the code snapshot made by the job's pods.

The init container's script (``kube_snapshot.SNAPSHOT_SCRIPT``) is run for real here, as
a process with a home and a snapshot folder in temporary directories (what the pod's
mounts would be), against real files and a real Git repository; the objects the executor
makes are validated strictly against the oldest and newest supported Kubernetes and its
calls recorded by the fake of test_jobs_kube_executor. No cluster runs here."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client as k8s

from studiohub.jobs import kube, kube_snapshot
from studiohub.jobs.kube_executor import KubeExecutor
from studiohub.jobs.kube_setup import make_kube_jobs
from studiohub.jobs.service import Jobs, JobsError, Viewer
from studiohub.jobs.store import Store
from tests.kubetools import validate
from tests.unit.test_jobs_kube_executor import NS, RecordingAPI, catalog, pod

SCRIPT = kube_snapshot.SNAPSHOT_SCRIPT


def snapshot(home: Path, snap: Path, kind: str, source: str = "", url: str = "",
             ref: str = "HEAD", max_files: int = 5000,
             folders: tuple[str, ...] = ("studiohub-jobs/0123456789ab/outputs",)
             ) -> subprocess.CompletedProcess[str]:
    """The init container's command, with the pod's mounts as these folders."""
    argv = [sys.executable, "-I", "-S", "-c", SCRIPT, kind, source, url, ref,
            str(200 * 2**20), str(max_files), *folders]
    env = {"HOME": str(home), "STUDIOHUB_SNAPSHOT": str(snap), "HOSTNAME": "job-a1-0-x",
           "PATH": os.environ["PATH"]}
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    (home / "proj" / "data").mkdir(parents=True)
    (home / "proj" / "train.py").write_text("print('v1')\n")
    (home / "proj" / "helper.py").write_text("X = 1\n")
    (home / "proj" / "data" / "small.csv").write_text("a,b\n")
    (home / "proj" / ".ipynb_checkpoints").mkdir()
    (home / "proj" / ".secret").write_text("no\n")
    os.symlink("helper.py", home / "proj" / "link.py")
    return home


def test_a_folder_is_copied_once_and_every_later_attempt_keeps_it(home: Path,
                                                                  tmp_path: Path) -> None:
    snap = tmp_path / "snap"
    snap.mkdir()
    made = snapshot(home, snap, "folder", "proj")
    assert made.returncode == 0 and "snapshot: made" in made.stdout, made.stderr
    code = snap / "code"
    assert sorted(str(p.relative_to(code)) for p in code.rglob("*")) == \
        ["data", "data/small.csv", "helper.py", "link.py", "train.py"]
    assert os.readlink(code / "link.py") == "helper.py"  # a link stays a link
    assert (home / "studiohub-jobs" / "0123456789ab" / "outputs").is_dir()
    # The user edits the script; a retry (or another replica) keeps the first snapshot.
    (home / "proj" / "train.py").write_text("print('v2')\n")
    again = snapshot(home, snap, "folder", "proj")
    assert again.returncode == 0 and "kept" in again.stdout
    assert (code / "train.py").read_text() == "print('v1')\n"
    assert [p.name for p in snap.iterdir()] == ["code"]  # no partial copy left


def test_a_file_in_the_home_a_package_and_the_refusals(home: Path, tmp_path: Path) -> None:
    (home / "solo.py").write_text("print('solo')\n")
    snap = tmp_path / "file"
    snap.mkdir()
    assert snapshot(home, snap, "file", "solo.py").returncode == 0
    assert [p.name for p in (snap / "code").iterdir()] == ["solo.py"]
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    assert snapshot(home, pkg, "package", "proj").returncode == 0
    assert (pkg / "code" / "helper.py").exists()
    for kind, source, words in (("file", "nope.py", "nope.py is not a file"),
                                ("folder", "gone", "gone is not a folder")):
        failed_dir = tmp_path / f"failed-{kind}"
        failed_dir.mkdir()
        failed = snapshot(home, failed_dir, kind, source)
        assert failed.returncode == kube_snapshot.FAILED_EXIT
        assert words in failed.stderr and not (failed_dir / "code").exists()
    too_big = tmp_path / "big"
    too_big.mkdir()
    failed = snapshot(home, too_big, "folder", "proj", max_files=2)
    assert failed.returncode == kube_snapshot.FAILED_EXIT
    assert "proj holds more than 2 files" in failed.stderr
    assert not (too_big / "code").exists()


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org",
                           *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout.strip()


def test_a_git_job_is_cloned_at_its_ref(home: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git("init", "-q", "-b", "main", cwd=repo)
    (repo / "train.py").write_text("print('first')\n")
    git("add", "train.py", cwd=repo)
    git("commit", "-q", "-m", "first", cwd=repo)
    first = git("rev-parse", "HEAD", cwd=repo)
    git("tag", "v1", cwd=repo)
    (repo / "train.py").write_text("print('second')\n")
    git("commit", "-q", "-am", "second", cwd=repo)
    for ref, text in (("HEAD", "second"), ("v1", "first"), (first[:10], "first")):
        snap = tmp_path / f"snap-{ref}"
        snap.mkdir()
        made = snapshot(home, snap, "git", url=f"file://{repo}", ref=ref)
        assert made.returncode == 0, made.stderr
        assert (snap / "code" / "train.py").read_text() == f"print('{text}')\n", ref
    snap = tmp_path / "snap-missing"
    snap.mkdir()
    failed = snapshot(home, snap, "git", url=f"file://{repo}", ref="no-such-branch")
    assert failed.returncode == kube_snapshot.FAILED_EXIT
    assert "git clone" in failed.stderr and not (snap / "code").exists()


# --- the executor's objects and calls -------------------------------------------------------


def kube_jobs(tmp_path: Path, api: RecordingAPI) -> Jobs:
    """The service as the hub pod wires it (kube_setup.make_kube_jobs), on the fake API."""
    executor = KubeExecutor(api, api, NS, catalog, networking=api,
                            checkpoint_claim="studiohub-jobs", stop_wait=1)
    return make_kube_jobs(Store(f"sqlite:///{tmp_path / 'jobs.sqlite'}"), executor,
                          catalog, state_dir=tmp_path)


def created_jobs(api: RecordingAPI) -> list[dict[str, Any]]:
    return [body for _, body in api.made("create_namespaced_job")]


def test_a_script_job_runs_in_its_snapshot_and_a_retry_uses_the_same(tmp_path: Path) -> None:
    api = RecordingAPI()
    jobs = kube_jobs(tmp_path, api)

    async def scenario() -> None:
        job = await jobs.submit(Viewer("alice"), {
            "script": "proj/train.py", "args": ["--epochs", "2"], "image": "pytorch",
            "size": "small", "workers": 2, "max_retries": 1})
        order = json.loads((tmp_path / "jobs" / job.id / "snapshot.json").read_text())
        assert (order["kind"], order["source"]) == ("folder", "proj")
        await jobs.tick()
        [first] = created_jobs(api)
        validate(first)
        name = first["metadata"]["name"]
        api.pods = [pod(name, 0, exit_code=137, phase="Failed"), pod(name, 1)]
        await jobs.tick()  # worker-0 killed: the whole group again, as attempt 2
        assert jobs.store.get(job.id).attempt == 2
        first_spec, second_spec = (j["spec"]["template"]["spec"] for j in created_jobs(api))
        subpath = f".studiohub-code/alice/{job.id}"
        for spec in (first_spec, second_spec):
            [init] = spec["initContainers"]
            assert init["name"] == "snapshot" and init["image"] == first_spec[
                "containers"][0]["image"]
            assert init["command"][5:9] == ["folder", "proj", "", "HEAD"]
            assert init["command"][11:] == [f"studiohub-jobs/{job.id}/outputs",
                                            f"studiohub-jobs/{job.id}/tensorboard"]
            assert {"name": "checkpoints", "mountPath": kube_snapshot.SNAPSHOT_MOUNT,
                    "subPath": subpath} in init["volumeMounts"]
            assert init["securityContext"] == kube.CONTAINER_SECURITY
            replica = spec["containers"][0]
            assert {"name": "checkpoints", "mountPath": kube_snapshot.CODE_MOUNT,
                    "subPath": f"{subpath}/code", "readOnly": True} in replica["volumeMounts"]
            assert replica["workingDir"] == kube_snapshot.CODE_MOUNT
            assert replica["command"][-4:] == [
                f"{kube.image_bin('pytorch')}/python",
                f"{kube_snapshot.CODE_MOUNT}/train.py", "--epochs", "2"]
        # Both attempts' pods mount the same snapshot folder: the second copies nothing.
        assert first_spec["initContainers"][0]["volumeMounts"] == \
            second_spec["initContainers"][0]["volumeMounts"]
        for _, body in api.made("create_namespaced_network_policy"):
            validate(body)
        assert [b["metadata"]["name"] for _, b in api.made("create_namespaced_network_policy")
                ] == [kube.job_object_name(job.id, 1), kube.job_object_name(job.id, 2)]
        assert ("delete_namespaced_network_policy", (name, NS)) in \
            [(m, a) for m, a, _ in api.calls]

    asyncio.run(scenario())


def test_a_notebook_job_runs_papermill_from_the_images_hub_environment(
        tmp_path: Path) -> None:
    api = RecordingAPI()
    jobs = kube_jobs(tmp_path, api)

    async def scenario() -> None:
        job = await jobs.submit(Viewer("alice"), {
            "notebook": "nb/sweep.ipynb", "parameters": {"steps": 3}, "image": "pytorch",
            "size": "small"})
        await jobs.tick()
        [created] = created_jobs(api)
        validate(created)
        command = created["spec"]["template"]["spec"]["containers"][0]["command"]
        outputs = f"{kube.HOME_MOUNT}/studiohub-jobs/{job.id}/outputs"
        assert command[4:10] == [kube.POD_HUB_PYTHON, "-m", "papermill",
                                 f"{kube_snapshot.CODE_MOUNT}/sweep.ipynb",
                                 f"{outputs}/sweep.ipynb", "-k"]
        assert command[command.index("--cwd") + 1] == kube_snapshot.CODE_MOUNT
        assert command[-2:] == ["steps", "3"]

    asyncio.run(scenario())


def test_a_git_job_is_cloned_by_the_init_container(tmp_path: Path) -> None:
    api = RecordingAPI()
    jobs = kube_jobs(tmp_path, api)

    async def scenario() -> None:
        await jobs.submit(Viewer("alice"), {
            "module": "pkg.train", "git": {"url": "https://example.org/r.git", "ref": "v1"},
            "image": "pytorch", "size": "small"})
        await jobs.tick()
        [created] = created_jobs(api)
        validate(created)
        spec = created["spec"]["template"]["spec"]
        assert spec["initContainers"][0]["command"][5:9] == \
            ["git", "", "https://example.org/r.git", "v1"]
        assert spec["containers"][0]["workingDir"] == kube_snapshot.CODE_MOUNT
        assert spec["containers"][0]["command"][-3:] == \
            [f"{kube.image_bin('pytorch')}/python", "-m", "pkg.train"]

    asyncio.run(scenario())


def test_a_failed_snapshot_fails_the_job_with_its_reason_and_no_retry(tmp_path: Path) -> None:
    api = RecordingAPI()
    jobs = kube_jobs(tmp_path, api)

    async def scenario() -> None:
        job = await jobs.submit(Viewer("alice"), {"script": "proj/train.py",
                                                  "image": "pytorch", "size": "small",
                                                  "max_retries": 2})
        await jobs.tick()
        name = kube.job_object_name(job.id, 1)
        failed = pod(name, 0, phase="Failed")
        failed.status.container_statuses = None
        failed.status.init_container_statuses = [k8s.V1ContainerStatus(
            name="snapshot", image="x", image_id="x", ready=False, restart_count=0,
            state=k8s.V1ContainerState(terminated=k8s.V1ContainerStateTerminated(
                exit_code=3, message="snapshot: proj is not a folder you can read in "
                "your home\n")))]
        api.pods = [failed]
        await jobs.tick()
        ended = jobs.store.get(job.id)
        assert (ended.status, ended.attempt) == ("failed", 1)
        assert ended.reason == "the code snapshot failed: proj is not a folder you can " \
            "read in your home"

    asyncio.run(scenario())


def test_deleting_a_finished_job_creates_its_clean_up_job(tmp_path: Path) -> None:
    """The snapshot (and, when asked, the checkpoints and the home folder) go with a
    clean-up Job mounting only that user's folders; a refused one keeps the job."""
    from kubernetes_asyncio.client.exceptions import ApiException

    api = RecordingAPI()
    jobs = kube_jobs(tmp_path, api)

    async def scenario() -> None:
        kept = await jobs.submit(Viewer("alice"), {"script": "proj/train.py",
                                                   "image": "pytorch", "size": "small"})
        both = await jobs.submit(Viewer("alice"), {"script": "proj/train.py",
                                                   "image": "pytorch", "size": "small"})
        for job in (kept, both):
            await jobs.cancel(Viewer("alice"), job.id)
        api.fail["create_namespaced_job"] = ApiException(status=403, reason="Forbidden")
        with pytest.raises(JobsError) as refused:
            await jobs.delete(Viewer("alice"), kept.id)
        assert refused.value.status == 503
        assert "Kubernetes refused the clean-up Job (403" in refused.value.message
        assert jobs.store.get(kept.id) is not None
        del api.fail["create_namespaced_job"]
        await jobs.delete(Viewer("alice"), kept.id)
        await jobs.delete(Viewer("alice"), both.id, outputs=True)
        assert jobs.store.get(kept.id) is None and jobs.store.get(both.id) is None
        assert await jobs.executor.running() == []  # clean-ups are not attempts

    asyncio.run(scenario())
    only, everything = created_jobs(api)[-2:]
    for body in (only, everything):
        validate(body)
        assert body["spec"]["ttlSecondsAfterFinished"] == kube_snapshot.CLEANUP_TTL
    container = only["spec"]["template"]["spec"]["containers"][0]
    job_id = only["metadata"]["labels"]["studiohub.io/job"]
    assert container["command"] == ["rm", "-rf", "--", f"/srv/studiohub/snapshots/{job_id}"]
    assert [m["subPath"] for m in container["volumeMounts"]] == [".studiohub-code/alice"]
    assert [v["name"] for v in only["spec"]["template"]["spec"]["volumes"]] == ["checkpoints"]
    container = everything["spec"]["template"]["spec"]["containers"][0]
    job_id = everything["metadata"]["labels"]["studiohub.io/job"]
    assert container["command"][3:] == [f"/srv/studiohub/snapshots/{job_id}",
                                        f"/srv/studiohub/checkpoints/{job_id}",
                                        f"{kube.HOME_MOUNT}/studiohub-jobs/{job_id}"]
    assert [m.get("subPath") for m in container["volumeMounts"]] == \
        [".studiohub-code/alice", "alice", None]
    claims = {v["persistentVolumeClaim"]["claimName"]
              for v in everything["spec"]["template"]["spec"]["volumes"]}
    assert claims == {"studiohub-jobs", "claim-alice"}
