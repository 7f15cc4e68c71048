"""The environment each replica of a training job gets, per framework (pure functions)."""

from __future__ import annotations

import json

import pytest

from studiohub.jobs.replicas import (
    MXNET,
    PLAIN,
    PYTORCH,
    TENSORFLOW,
    Replica,
    framework_env,
    framework_kind,
    make_replica_env,
    make_replicas,
)


def addresses(n: int) -> list[str]:
    return [f"127.0.0.1:{20000 + i}" for i in range(n)]


def test_framework_kind_reads_the_catalogs_framework_names() -> None:
    assert [framework_kind(f) for f in ("TensorFlow", "PyTorch", "MXNet", "Python")] == \
        [TENSORFLOW, PYTORCH, MXNET, PLAIN]


def test_tensorflow_multi_worker_mirrored_every_replica_a_worker() -> None:
    replicas = make_replicas(TENSORFLOW, 2)
    assert [r.name for r in replicas] == ["worker-0", "worker-1"]
    env = framework_env(TENSORFLOW, replicas, addresses(2), replicas[1])
    assert json.loads(env["TF_CONFIG"]) == {
        "cluster": {"worker": ["127.0.0.1:20000", "127.0.0.1:20001"]},
        "task": {"type": "worker", "index": 1}}


def test_tensorflow_parameter_servers_add_a_chief_and_ps_tasks() -> None:
    replicas = make_replicas(TENSORFLOW, 2, parameter_servers=1)
    assert [(r.name, r.rank) for r in replicas] == [("chief-0", 0), ("worker-0", 1),
                                                    ("worker-1", 2), ("ps-0", 3)]
    config = json.loads(framework_env(TENSORFLOW, replicas, addresses(4), replicas[3])
                        ["TF_CONFIG"])
    assert config == {"cluster": {"chief": ["127.0.0.1:20000"],
                                  "worker": ["127.0.0.1:20001", "127.0.0.1:20002"],
                                  "ps": ["127.0.0.1:20003"]},
                      "task": {"type": "ps", "index": 0}}


def test_a_single_tensorflow_replica_gets_no_tf_config() -> None:
    replicas = make_replicas(TENSORFLOW, 1)
    assert framework_env(TENSORFLOW, replicas, addresses(1), replicas[0]) == {}


def test_pytorch_gets_torchruns_contract_with_replica_zero_as_master() -> None:
    replicas = make_replicas(PYTORCH, 3)
    env = framework_env(PYTORCH, replicas, ["w0.svc:29500", "w1.svc:29500", "w2.svc:29500"],
                        replicas[2])
    assert env == {"MASTER_ADDR": "w0.svc", "MASTER_PORT": "29500", "WORLD_SIZE": "3",
                   "RANK": "2", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1",
                   "GROUP_RANK": "2"}


def test_mxnet_dist_sync_has_a_scheduler_servers_and_workers() -> None:
    replicas = make_replicas(MXNET, 2, parameter_servers=1)
    assert [r.name for r in replicas] == ["scheduler-0", "server-0", "worker-0", "worker-1"]
    envs = [framework_env(MXNET, replicas, addresses(4), r) for r in replicas]
    assert [e["DMLC_ROLE"] for e in envs] == ["scheduler", "server", "worker", "worker"]
    assert {(e["DMLC_PS_ROOT_URI"], e["DMLC_PS_ROOT_PORT"], e["DMLC_NUM_SERVER"],
             e["DMLC_NUM_WORKER"]) for e in envs} == {("127.0.0.1", "20000", "1", "2")}


def test_mxnet_with_several_workers_gets_a_server_even_when_none_was_asked() -> None:
    assert [r.role for r in make_replicas(MXNET, 2)] == ["scheduler", "server", "worker",
                                                        "worker"]
    assert [r.role for r in make_replicas(MXNET, 1)] == ["worker"]


@pytest.mark.parametrize(("kind", "workers", "ps", "message"), [
    (PYTORCH, 0, 0, "workers must be at least 1"),
    (PYTORCH, 2, -1, "parameter_servers must be 0 or more"),
    (PYTORCH, 2, 1, "parameter_servers are for TensorFlow and MXNet jobs, not pytorch"),
])
def test_impossible_shapes_are_refused(kind: str, workers: int, ps: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_replicas(kind, workers, ps)


def test_the_whole_environment_names_the_job_attempt_replica_and_directories() -> None:
    replicas = make_replicas(PYTORCH, 2)
    env = make_replica_env(PYTORCH, replicas, addresses(2), replicas[1], job_id="j-1",
                           attempt=2, checkpoint_dir="/c", output_dir="/o",
                           tensorboard_dir="/t")
    assert {k: v for k, v in env.items() if k.startswith("STUDIOHUB_")} == {
        "STUDIOHUB_JOB_ID": "j-1", "STUDIOHUB_ATTEMPT": "2", "STUDIOHUB_REPLICA": "worker-1",
        "STUDIOHUB_REPLICA_RANK": "1", "STUDIOHUB_REPLICAS": "2",
        "STUDIOHUB_CHECKPOINT_DIR": "/c", "STUDIOHUB_OUTPUT_DIR": "/o",
        "STUDIOHUB_TENSORBOARD_DIR": "/t"}
    assert env["RANK"] == "1"


def test_one_address_per_replica() -> None:
    replicas = make_replicas(PYTORCH, 2)
    with pytest.raises(ValueError, match="one address per replica"):
        framework_env(PYTORCH, replicas, addresses(1), replicas[0])


def test_replica_names() -> None:
    assert Replica("ps", 1, 3).name == "ps-1"
