"""The models service's decisions with its executors faked (the real ones run in
tests/integration/test_endpoints.py): what a refusal leaves, what waits for the lock,
when a replaced version retires, what a delete forgets."""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from studiohub.jobs.model import ReplicaState
from studiohub.jobs.placing import PlacementRefused
from studiohub.serving import model as m
from studiohub.serving.model import EndpointError
from studiohub.serving.service import Caller, Models
from studiohub.serving.store import Store

ALICE = Caller("alice")


class Runner:
    """Places, starts and stops nothing; records what it was asked."""

    def __init__(self) -> None:
        self.refuse = False
        self.placing: asyncio.Event | None = None  # set: place() waits for it
        self.probe: asyncio.Event | None = None  # set: ready() waits for it
        self.stopped: list[tuple[str, str, float]] = []
        self.released: list[str] = []
        self.forgotten: list[str] = []
        self.started: list[str] = []

    async def place(self, user: str, v: dict[str, Any], names: list[str]) -> dict[str, Any]:
        if self.placing is not None:
            await self.placing.wait()
        if self.refuse:
            raise PlacementRefused(409, "no room for 1 x tiny: wait or choose a smaller size")
        return {n: {"gpus": [], "procs": [], "env": {}} for n in names}

    async def release(self, user: str, holder: str) -> None:
        self.released.append(holder)

    async def start(self, endpoint: dict[str, Any], v: dict[str, Any], name: str,
                    attempt: int) -> None:
        self.started.append(v["holder"])

    async def stop(self, endpoint: dict[str, Any], v: dict[str, Any], name: str,
                   attempt: int) -> None:
        self.stopped.append((v["holder"], name, time.monotonic()))

    async def poll(self, endpoint: dict[str, Any], v: dict[str, Any], name: str,
                   attempt: int) -> ReplicaState:
        return ReplicaState(name=name, running=True)

    def claim_socket(self, user: str, holder: str, name: str) -> bool:
        return True

    async def ready(self, holder: str, name: str) -> bool:
        if self.probe is not None:
            await self.probe.wait()
        return False

    def socket_path(self, holder: str, name: str) -> str:
        return f"/run/test/{holder}-{name}.sock"

    def forget(self, holder: str) -> None:
        self.forgotten.append(holder)

    def log_tail(self, holder: str, name: str, attempt: int) -> str:
        return ""


class Balancer:
    def running(self) -> bool:
        return True

    def apply(self, state: Any) -> bool:
        return False

    def ensure_running(self, state: Any) -> None:
        pass

    def set_tokens(self, tokens: Any, patience: float = 0.0) -> None:
        pass

    def old_workers(self) -> tuple[int, ...]:
        return ()

    def adopt(self) -> bool:
        return True

    def stop(self) -> None:
        pass


def version(number: int, status: str, holder: str, state: str = "ready") -> dict[str, Any]:
    return {"version": number, "holder": holder, "user": "alice", "status": status,
            "format": "torchscript", "framework": "PyTorch", "image": "pytorch",
            "size": "tiny", "replicas": 1, "source": "m", "model_dir": "/home/a/m",
            "reason": "", "created": "t", "started": 0.0, "canary_percent": None,
            "placement": {"replica-0": {}}, "next_attempt": 5,
            "replica_state": {"replica-0": {"attempt": 4, "restarts": 3, "state": state,
                                            "reason": ""}}}


@pytest.fixture
def runner() -> Runner:
    return Runner()


@pytest.fixture
def models(tmp_path: Path, runner: Runner) -> Iterator[Models]:
    store = Store(f"sqlite:///{tmp_path / 'models.sqlite'}")
    made = Models(store, runner, Balancer(), catalog=lambda: None,  # type: ignore[arg-type]
                  home_of=lambda user: "/home/a", copy_model=None,  # type: ignore[arg-type]
                  remove_copy=None, drain_seconds=0.3)  # type: ignore[arg-type]
    endpoint = {"name": "ep", "user": "alice", "domain": "everyone", "created": "t",
                "live": 2, "canary": None, "canary_percent": 0, "history": [1],
                "versions": [version(1, m.RETIRED, "aaaaaaaaaaaa", "stopped"),
                             version(2, m.SERVING, "bbbbbbbbbbbb")]}
    made.endpoints["ep"] = endpoint
    store.save(endpoint)
    yield made
    store.engine.dispose()


def test_a_refused_rollback_leaves_the_retired_version_as_it_was(
        models: Models, runner: Runner) -> None:
    before = copy.deepcopy(models.endpoints["ep"])
    runner.refuse = True
    with pytest.raises(EndpointError, match="no room") as refused:
        asyncio.run(models.rollback(ALICE, "ep"))
    assert refused.value.status == 409
    assert models.endpoints["ep"] == before
    assert models.store.endpoints() == [before]
    assert not models._launching and runner.started == []


def test_a_rollback_whose_endpoint_was_deleted_meanwhile_starts_nothing(
        models: Models, runner: Runner) -> None:
    async def scenario() -> None:
        runner.placing = asyncio.Event()
        rollback = asyncio.ensure_future(models.rollback(ALICE, "ep"))
        await asyncio.sleep(0.05)  # waiting for its placement
        await models.delete(ALICE, "ep")
        runner.placing.set()
        with pytest.raises(EndpointError, match="changed while version 1 was being placed"):
            await rollback

    asyncio.run(scenario())
    assert runner.started == [] and models.store.endpoints() == []
    new_holder = runner.released[-1]
    assert new_holder not in ("aaaaaaaaaaaa", "bbbbbbbbbbbb")  # the rollback's placement


def test_a_second_rollback_while_the_first_places_its_version_is_refused(
        models: Models, runner: Runner) -> None:
    async def scenario() -> None:
        runner.placing = asyncio.Event()
        first = asyncio.ensure_future(models.rollback(ALICE, "ep"))
        await asyncio.sleep(0.05)  # waiting for its placement
        with pytest.raises(EndpointError, match="try again in a few seconds") as second:
            await models.rollback(ALICE, "ep")
        assert second.value.status == 409
        runner.placing.set()
        await first

    asyncio.run(scenario())
    v1 = models.endpoints["ep"]["versions"][0]
    assert v1["status"] == m.STARTING and runner.started == [v1["holder"]]
    assert runner.released == []


def test_a_readiness_probe_that_never_answers_does_not_hold_the_lock(
        models: Models, runner: Runner) -> None:
    """A replica its owner stopped accepts connections and never answers: the tick asks
    it outside the lock, so deploys, rollbacks and the others' supervision go on."""
    models.endpoints["ep"]["versions"][1]["replica_state"]["replica-0"]["state"] = "starting"

    async def scenario() -> None:
        runner.probe = asyncio.Event()
        tick = asyncio.ensure_future(models.tick())
        await asyncio.sleep(0.1)
        assert not models.lock.locked()  # the probe waits; the lock is free
        with pytest.raises(EndpointError, match="one serving version"):  # answered now
            await asyncio.wait_for(models.set_traffic(ALICE, "ep", 50), 1)
        runner.probe.set()
        await tick

    asyncio.run(scenario())


def test_a_silent_replica_delays_no_other_replicas_promotion(
        models: Models, runner: Runner) -> None:
    """One replica that never answers its probe: the tick still records the others'."""
    v2 = models.endpoints["ep"]["versions"][1]
    v2["replica_state"]["replica-0"]["state"] = "starting"
    silent = asyncio.Event()

    async def ready(holder: str, name: str) -> bool:
        if name == "replica-1":
            await silent.wait()
        return True

    runner.ready = ready  # type: ignore[method-assign]
    v2["replica_state"]["replica-1"] = {**v2["replica_state"]["replica-0"]}
    started = time.monotonic()
    asyncio.run(models.tick())
    assert time.monotonic() - started < 1.5
    assert v2["replica_state"]["replica-0"]["state"] == "ready"
    assert v2["replica_state"]["replica-1"]["state"] == "starting"


def test_a_restarted_replica_never_ready_is_started_again(
        models: Models, runner: Runner) -> None:
    rs = models.endpoints["ep"]["versions"][1]["replica_state"]["replica-0"]
    rs.update(state="starting", since=time.time() - 601)
    asyncio.run(models.tick())
    assert rs["state"] == "restarting" and rs["restarts"] == 4
    assert "not ready 600 s after its start" in rs["reason"]
    assert [s[0] for s in runner.stopped] == ["bbbbbbbbbbbb"]


def test_a_version_replaced_again_while_it_drains_drains_again(
        models: Models, runner: Runner) -> None:
    endpoint = models.endpoints["ep"]
    old = endpoint["versions"][1]

    async def scenario() -> float:
        endpoint["live"] = 1  # version 2 replaced: it drains for 0.3 s
        models._retire_later(endpoint, old)
        await asyncio.sleep(0.2)
        endpoint["live"] = 2  # given the traffic back (a rollback)...
        await asyncio.sleep(0.05)
        endpoint["live"] = 1  # ...and replaced again
        replaced = time.monotonic()
        models._retire_later(endpoint, old)
        while not runner.stopped:
            await asyncio.sleep(0.01)
        return runner.stopped[0][2] - replaced

    waited = asyncio.run(scenario())
    assert waited >= 0.3, waited  # a full drain from the last replacement
    assert old["status"] == m.RETIRED


def test_tokens_are_capped_per_endpoint_and_a_refusal_stores_none(models: Models) -> None:
    for _ in range(m.MAX_TOKENS):
        models.create_token(ALICE, "ep")
    with pytest.raises(EndpointError, match="revoke one") as refused:
        models.create_token(ALICE, "ep", "one more")
    assert refused.value.status == 409
    assert len(models.store.tokens("ep")) == m.MAX_TOKENS


def test_delete_forgets_every_holder_of_the_endpoint(models: Models, runner: Runner) -> None:
    models.endpoints["ep"]["versions"][0]["old_holders"] = ["cccccccccccc"]
    asyncio.run(models.delete(ALICE, "ep"))
    assert sorted(runner.forgotten) == ["aaaaaaaaaaaa", "bbbbbbbbbbbb", "cccccccccccc"]
    assert [s[0] for s in runner.stopped] == ["bbbbbbbbbbbb"]  # the one that ran
