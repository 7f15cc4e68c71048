"""A job's code snapshot on Kubernetes: made in the job's own pods, by an init container.

The hub pod mounts neither users' homes nor the checkpoint claim, so the snapshot that
the local service makes at submit (:mod:`.snapshot`) is made here by the first attempt's
pods, with Kubernetes' own objects:

- at submit, the service checks the spec and writes the **order** (what to copy or
  clone: :class:`SnapshotOrder`) into the job's folder, ``<state>/jobs/<id>/snapshot.json``
  (:func:`write_order`); nothing is copied yet;
- every replica's pod gets an init container ``snapshot`` (:func:`make_snapshot_container`):
  the job's image, as the pod's user, with the user's home claim at ``/home/jovyan`` and
  **only this job's folder** of the checkpoint claim (subPath
  ``.studiohub-code/<user>/<job id>``, :func:`snapshot_subpath`) at
  ``/srv/studiohub/snapshot``. It copies the notebook's or script's folder (the same
  rules and bounds as the local snapshot: hidden files and ``studiohub-jobs/`` left out,
  links kept as links, at most 5,000 files and 200 MiB) or clones the Git repository into
  a private partial folder, then renames it to ``code/``. The rename is atomic: of the
  replicas of the first attempt, one makes it and the others drop their copy; a later
  attempt finds ``code/`` and copies nothing, so **every attempt runs the same
  snapshot**. It also makes the job's ``outputs/`` and ``tensorboard/`` in the home.
- the replica container mounts that folder's ``code/`` read-only at ``/srv/studiohub/code``
  (:data:`CODE_MOUNT`) and runs there.

When a finished job is deleted, the hub pod cannot reach the snapshot either: the
executor creates a short clean-up Job (:func:`make_cleanup_job`) that removes the job's
snapshot folder (with ``?outputs=true`` also its checkpoints and its home folder) and is
itself removed by Kubernetes ten minutes after it ends.

The snapshot is taken when the first attempt's pods start, not at submit: an edit made
while the job waits in the queue is in it (docs/training.md, "On Kubernetes"). A snapshot
that fails (a missing file, a folder too large, a clone refused) fails the init
container, with its last lines as the reason; the attempt is not retried.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .snapshot import MAX_BYTES, MAX_FILES, source_of
from .spec import JobSpec

#: Where the replica container finds the snapshot (read-only).
CODE_MOUNT = "/srv/studiohub/code"
#: Where the init container finds the job's snapshot folder (it makes ``code/`` there).
SNAPSHOT_MOUNT = "/srv/studiohub/snapshot"
#: The checkpoint claim's folder of snapshots: not a user slug (those never start with
#: a dot), so no user's checkpoints (``<user>/<job id>``) can meet it.
SNAPSHOTS_DIR = ".studiohub-code"
ORDER_FILE = "snapshot.json"
INIT_CONTAINER = "snapshot"
#: Exit status of the init container when the snapshot cannot be made.
FAILED_EXIT = 3

#: Runs in the init container (``python3 -I -S -c``; standard library only). argv: kind
#: (folder|file|package|git), source (home-relative), git URL, git ref, max bytes, max
#: files, then the home-relative folders to make.
SNAPSHOT_SCRIPT = r"""
import os, re, shutil, subprocess, sys
kind, source, url, ref = sys.argv[1:5]
max_bytes, max_files, folders = int(sys.argv[5]), int(sys.argv[6]), sys.argv[7:]
snap = os.environ["STUDIOHUB_SNAPSHOT"]
code = os.path.join(snap, "code")
os.umask(0o022)
os.chdir(os.path.expanduser("~"))

def fail(message):
    print("snapshot: " + message, file=sys.stderr, flush=True)
    sys.exit(3)

for folder in folders:
    os.makedirs(folder, mode=0o700, exist_ok=True)
if os.path.isdir(code):
    print("snapshot: kept (made by an earlier attempt or replica)", flush=True)
    sys.exit(0)

def walk(top):
    for root, dirs, files in os.walk(top):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and
                         not (root == top and d == "studiohub-jobs"))
        for name in [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            dirs.remove(name)
            yield os.path.join(root, name)
        for name in sorted(files):
            if not name.startswith("."):
                yield os.path.join(root, name)

def measure(top, shown):
    count = size = 0
    for path in walk(top):
        count += 1
        size += os.lstat(path).st_size
        if count > max_files or size > max_bytes:
            fail(f"{shown} holds more than {max_files} files or {max_bytes / 2**20:g} MiB "
                 "(hidden files not counted): move the notebook or script into a folder "
                 "with only what it needs, or run it from Git")

def git(*args):
    result = subprocess.run(["git", "-c", "advice.detachedHead=false", *args],
                            stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
    return result.returncode, (result.stderr or result.stdout).strip()[-400:]

def clone(target):
    if ref != "HEAD":
        code_, why = git("clone", "--quiet", "--depth", "1", "--branch", ref, "--", url, target)
        if code_ == 0:
            return
        if not re.fullmatch(r"[0-9a-fA-F]{7,40}", ref):
            fail(f"git clone {url} {ref}: {why}")
        shutil.rmtree(target, ignore_errors=True)
        code_, why = git("clone", "--quiet", "--no-checkout", "--", url, target)
        if code_ == 0:
            code_, why = git("-C", target, "checkout", "--quiet", "--detach", ref, "--")
    else:
        code_, why = git("clone", "--quiet", "--depth", "1", "--", url, target)
    if code_:
        fail(f"git clone {url} {ref}: {why}")

if kind == "package":
    kind, source = ("folder", source) if os.path.isdir(source) else ("file", source + ".py")
partial = os.path.join(snap, ".partial-" + os.environ.get("HOSTNAME", "replica"))
shutil.rmtree(partial, ignore_errors=True)
try:
    if kind == "git":
        clone(partial)
        measure(partial, url)
    elif kind == "folder":
        if not os.path.isdir(source):
            fail(f"{source} is not a folder you can read in your home")
        measure(source, source)
        for path in walk(source):
            target = os.path.join(partial, os.path.relpath(path, source))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if os.path.islink(path):
                os.symlink(os.readlink(path), target)
            else:
                shutil.copy2(path, target)
        os.makedirs(partial, exist_ok=True)
    elif kind == "file":
        if not os.path.isfile(source):
            fail(f"{source} is not a file you can read in your home")
        os.makedirs(partial)
        shutil.copy2(source, os.path.join(partial, os.path.basename(source)))
    else:
        os.makedirs(partial)
except OSError as e:
    fail(f"could not copy {e.filename}: {e.strerror}")
try:
    os.rename(partial, code)
    print("snapshot: made", flush=True)
except OSError:
    shutil.rmtree(partial, ignore_errors=True)
    print("snapshot: kept (another replica made it first)", flush=True)
"""


@dataclass(frozen=True)
class SnapshotOrder:
    """What the init container copies: ``kind`` folder, file, package or git."""

    kind: str
    source: str = ""
    git_url: str = ""
    git_ref: str = "HEAD"
    max_bytes: int = MAX_BYTES
    max_files: int = MAX_FILES


def order_for(spec: JobSpec) -> SnapshotOrder | None:
    """The order for a notebook, script or Git job; None for a module or a command (they
    run from the home, as before)."""
    if spec.git:
        return SnapshotOrder("git", git_url=spec.git.url, git_ref=spec.git.ref or "HEAD")
    if spec.notebook or spec.script:
        source, kind = source_of(spec)
        return SnapshotOrder(kind, source)
    return None


def write_order(job_dir: Path, order: SnapshotOrder) -> None:
    """``<job dir>/snapshot.json`` (0600 in a 0700 folder: the hub pod's own)."""
    job_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = job_dir / ORDER_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(asdict(order), f)


def read_order(job_dir: str | Path) -> SnapshotOrder | None:
    """The job's order, or None (a module or command job, or a job from before)."""
    try:
        data = json.loads((Path(job_dir) / ORDER_FILE).read_text())
    except (OSError, ValueError):
        return None
    fields = SnapshotOrder.__dataclass_fields__
    return SnapshotOrder(**{k: v for k, v in data.items() if k in fields})


def snapshot_subpath(user_slug: str, job_id: str) -> str:
    """The job's folder on the checkpoint claim (its ``code/`` is the snapshot)."""
    return f"{SNAPSHOTS_DIR}/{user_slug}/{job_id}"


def make_snapshot_container(image: str, order: SnapshotOrder, *, subpath: str,
                            home_folders: Sequence[str], resources: Mapping[str, Any],
                            security: Mapping[str, Any], home_mount: str) -> dict[str, Any]:
    """The init container that makes the snapshot once per job (see the module's doc)."""
    return {
        "name": INIT_CONTAINER,
        "image": image,
        "command": ["python3", "-I", "-S", "-c", SNAPSHOT_SCRIPT, order.kind, order.source,
                    order.git_url, order.git_ref, str(order.max_bytes),
                    str(order.max_files), *home_folders],
        "workingDir": home_mount,
        "env": [{"name": "HOME", "value": home_mount},
                {"name": "STUDIOHUB_SNAPSHOT", "value": SNAPSHOT_MOUNT}],
        "resources": dict(resources),
        "securityContext": dict(security),
        # A failed snapshot's last lines become the reason the service reports.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [
            {"name": "home", "mountPath": home_mount},
            {"name": "checkpoints", "mountPath": SNAPSHOT_MOUNT, "subPath": subpath},
        ],
    }


#: Seconds a finished clean-up Job is kept (then Kubernetes deletes it and its pod).
CLEANUP_TTL = 600
CLEANUP_RESOURCES = {"cpu": "100m", "memory": str(128 * 1024**2)}


def cleanup_name(job_id: str) -> str:
    return f"job-{job_id}-cleanup"


def make_cleanup_job(job_id: str, *, user_slug: str, image: str, home_claim: str,
                     checkpoint_claim: str, outputs: bool, home_mount: str,
                     uid: int = 1000, gid: int = 100) -> dict[str, Any]:
    """A one-pod Job removing a deleted job's snapshot (and, with ``outputs``, its
    checkpoints ``<user>/<id>`` and ``~/studiohub-jobs/<id>``), as the pod's user, with
    only that user's folders mounted. Labelled so that :meth:`running` never counts it."""
    labels = {"app.kubernetes.io/name": "studiohub-job-cleanup",
              "app.kubernetes.io/managed-by": "studiohub", "studiohub.io/job": job_id}
    mounts = [{"name": "checkpoints", "mountPath": "/srv/studiohub/snapshots",
               "subPath": f"{SNAPSHOTS_DIR}/{user_slug}"}]
    volumes: list[dict[str, Any]] = [
        {"name": "checkpoints", "persistentVolumeClaim": {"claimName": checkpoint_claim}}]
    targets = [f"/srv/studiohub/snapshots/{job_id}"]
    if outputs:
        mounts += [{"name": "checkpoints", "mountPath": "/srv/studiohub/checkpoints",
                    "subPath": user_slug},
                   {"name": "home", "mountPath": home_mount}]
        volumes.append({"name": "home", "persistentVolumeClaim": {"claimName": home_claim}})
        targets += [f"/srv/studiohub/checkpoints/{job_id}",
                    f"{home_mount}/studiohub-jobs/{job_id}"]
    container = {
        "name": "cleanup", "image": image, "command": ["rm", "-rf", "--", *targets],
        "resources": {"requests": dict(CLEANUP_RESOURCES), "limits": dict(CLEANUP_RESOURCES)},
        "securityContext": {"allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": mounts,
    }
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": cleanup_name(job_id), "labels": labels},
        "spec": {"backoffLimit": 3, "ttlSecondsAfterFinished": CLEANUP_TTL,
                 "template": {"metadata": {"labels": labels}, "spec": {
                     "restartPolicy": "Never",
                     "securityContext": {"runAsUser": uid, "runAsGroup": gid,
                                         "fsGroup": gid, "runAsNonRoot": True},
                     "containers": [container], "volumes": volumes}}},
    }
