"""StudioSpawner without a hub: builders against literals, the form per domain, validation."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from jupyterhub.spawner import SpawnException
from tornado import web

from studiohub import contract, gpus, labdefaults
from studiohub import placement as placements
from studiohub.catalog import Catalog, load_catalog
from studiohub.cgroups import Capabilities
from studiohub.placement import Placement
from studiohub.spawners.local import (
    FAST_SINGLEUSER,
    StudioSpawner,
    form_to_options,
    make_args,
    make_cmd,
    make_cull_args,
    make_env,
    make_options_form,
    process_start_ticks,
)
from tests.hubtools import TEST_CATALOG

V1 = Capabilities("v1", {"memory": Path("/sys/fs/cgroup/memory")}, memory=True, cpu=True,
                  pids=True, swap=True)
NONE = Capabilities("none", reason="no cgroup mounted")


@pytest.fixture
def catalog_file(tmp_path: Path) -> Path:
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(TEST_CATALOG))
    return path


@pytest.fixture
def catalog(catalog_file: Path) -> Catalog:
    return load_catalog(catalog_file)


@pytest.fixture(autouse=True)
def fresh_allocator() -> Iterator[None]:
    gpus.reset_shared_allocator()
    yield
    gpus.reset_shared_allocator()


ALL_IMAGES = ("base", "tensorflow", "pytorch", "mxnet", "tensorflow-gpu", "pytorch-gpu",
              "mxnet-gpu")


def make_spawner(catalog_file: Path, groups: tuple[str, ...] = (), name: str = "alice",
                 saved: dict[str, str] | None = None, built: tuple[str, ...] = ALL_IMAGES,
                 **traits: Any) -> StudioSpawner:
    user = SimpleNamespace(name=name, groups=[SimpleNamespace(name=g) for g in groups],
                           url=f"/user/{name}/")
    orm = SimpleNamespace(user_options=saved or {}, server=None, name="")
    traits.setdefault("gpu_ids", ["GPU-a", "GPU-b"])
    spawner = StudioSpawner(user=user, orm_spawner=orm, catalog_path=str(catalog_file),
                            use_cgroups=False, **traits)
    spawner.image_built = lambda image_id: image_id in built  # type: ignore[method-assign]
    return spawner


class Inputs(HTMLParser):
    """(name, value, checked, disabled) of every <input> in a form."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.found: list[tuple[str, str, bool, bool]] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "input":
            a = dict(attrs)
            self.found.append((a["name"] or "", a["value"] or "", "checked" in a,
                               "disabled" in a))


# --- pure builders -------------------------------------------------------------------------


def test_cmd_runs_the_hub_python() -> None:
    assert make_cmd("/opt/studiohub/hub/bin/python3") == [
        "/opt/studiohub/hub/bin/python3", "-c", FAST_SINGLEUSER]
    assert make_cmd("/py", fast=False) == ["/py", "-m", "jupyterhub.singleuser"]
    assert 'sys.modules["rfc3987_syntax"] = None' in FAST_SINGLEUSER
    assert FAST_SINGLEUSER.index("gc.disable()") < FAST_SINGLEUSER.index("import main") \
        < FAST_SINGLEUSER.index("gc.enable()") < FAST_SINGLEUSER.index("main()")


def test_fast_start_runs_the_real_server_entry_point() -> None:
    """The launcher is valid Python that ends in jupyterhub.singleuser's main."""
    compile(FAST_SINGLEUSER, "<fast-singleuser>", "exec")
    from jupyterhub.singleuser import main

    assert callable(main)


def test_cull_and_kernel_args() -> None:
    assert make_cull_args(0, 120, False, False) == []
    cull = make_cull_args(1200, 60, True, False)
    assert cull == ["--MappingKernelManager.cull_idle_timeout=1200",
                    "--MappingKernelManager.cull_interval=60",
                    "--MappingKernelManager.cull_busy=True",
                    "--MappingKernelManager.cull_connected=False"]
    assert make_args("studiohub-base", cull) == [
        *cull, "--MappingKernelManager.default_kernel_name=studiohub-base"]
    assert make_args(None) == []


def test_env_for_a_cpu_size(catalog: Catalog) -> None:
    choice = catalog.choose(["team-a"], {"size": "half"})
    env = make_env(choice, gpu_ids=[], caps=V1, cgroup="jupyter-alice",
                   jupyter_data="/opt/studiohub/share/jupyter", hub_bin="/opt/studiohub/hub/bin",
                   jupyter_path="/extra")
    assert env == {
        "CUDA_VISIBLE_DEVICES": "",
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
        "JUPYTER_PATH": "/opt/studiohub/share/jupyter:/extra",
        # The operator's JupyterLab defaults: no Jupyter news unless lab.jupyter_news.
        "JUPYTER_CONFIG_PATH": str(labdefaults.config_dir(False)),
        "PATH": "/opt/studiohub/hub/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
                "/sbin:/bin",
        "STUDIOHUB_IMAGE": "base",
        "STUDIOHUB_IMAGE_LABEL": "Base Python 3.11 · CPU",
        "STUDIOHUB_SIZE": "half",
        "STUDIOHUB_SIZE_LABEL": "0.5 vCPU + 1 GiB",
        "STUDIOHUB_CPU_LIMIT": "0.5",
        "STUDIOHUB_MEM_LIMIT": "1073741824",
        "STUDIOHUB_GPU_LIMIT": "0",
        "STUDIOHUB_LIMITS": "memory,cpu,pids",
        "STUDIOHUB_LIMITS_SUMMARY": V1.summary,
        "STUDIOHUB_CGROUP": "jupyter-alice",
        "STUDIOHUB_SWITCHING": "notebook",
        # Inherited by every kernel that was not placed: it runs on the server's own.
        "STUDIOHUB_KERNEL_IMAGE": "base",
        "STUDIOHUB_KERNEL_SIZE": "half",
        "STUDIOHUB_KERNEL_SIZE_LABEL": "0.5 vCPU + 1 GiB",
        "STUDIOHUB_KERNEL_CPU_LIMIT": "0.5",
        "STUDIOHUB_KERNEL_MEM_LIMIT": "1073741824",
    }


def test_the_operator_turns_jupyter_news_on_for_everyone(catalog: Catalog) -> None:
    choice = catalog.choose(["team-a"], {"size": "half"})
    env = make_env(choice, gpu_ids=[], caps=V1, cgroup="", jupyter_data="/d",
                   hub_bin="/hub/bin", jupyter_news=True)
    overrides = Path(env["JUPYTER_CONFIG_PATH"]) / "labconfig/default_setting_overrides.json"
    settings = json.loads(overrides.read_text())[labdefaults.NOTIFICATION_PLUGIN]
    assert settings == {"checkForUpdates": True, "fetchNews": "true"}
    off = labdefaults.config_dir(False) / "labconfig/default_setting_overrides.json"
    assert json.loads(off.read_text())[labdefaults.NOTIFICATION_PLUGIN] == {
        "checkForUpdates": False, "fetchNews": "false"}


def test_env_for_a_gpu_size_without_cgroups(catalog: Catalog) -> None:
    choice = catalog.choose(["ml-research"], {"image": "pytorch-gpu", "size": "gpu-large"})
    env = make_env(choice, gpu_ids=["GPU-a", "GPU-b"], caps=NONE, cgroup="",
                   jupyter_data="/d", hub_bin="/hub/bin", path="/home/me/bin:/usr/bin")
    assert {k: env[k] for k in ("CUDA_VISIBLE_DEVICES", "PATH", "JUPYTER_PATH",
                                "STUDIOHUB_GPU_LIMIT", "STUDIOHUB_LIMITS")} == {
        "CUDA_VISIBLE_DEVICES": "GPU-a,GPU-b", "PATH": "/hub/bin:/home/me/bin:/usr/bin",
        "JUPYTER_PATH": "/d", "STUDIOHUB_GPU_LIMIT": "2", "STUDIOHUB_LIMITS": "none"}
    assert env["STUDIOHUB_LIMITS_SUMMARY"].startswith("instance sizes are NOT enforced")


def test_form_fields_become_options() -> None:
    assert form_to_options({"image": ["base"], "size": ["tiny"], "_xsrf": ["t"]}) == {
        "image": "base", "size": "tiny"}
    assert form_to_options({"colour": ["red"]}) == {"colour": "red"}


# --- the options form per domain ------------------------------------------------------------


def test_form_for_everyone(catalog: Catalog) -> None:
    page = make_options_form(catalog, [], {}, V1, gpu_count=0)
    assert Inputs(page).found == [
        ("image", "base", True, False), ("image", "tensorflow", False, False),
        ("image", "pytorch", False, False), ("image", "mxnet", False, False),
        ("size", "half", False, False), ("size", "tiny", False, False),
        ("size", "small", False, False), ("size", "giant", False, False),
        ("size", "medium", True, False)]
    assert "PyTorch 2.13 · CPU" in page and "1 vCPU + 512 MiB" in page
    assert "GPU" not in page.replace("CPU", "")
    assert 'role="alert"' not in page


def test_form_for_a_team_shows_only_its_choices(catalog: Catalog) -> None:
    page = make_options_form(catalog, ["team-a"], {}, V1, gpu_count=0)
    assert Inputs(page).found == [
        ("image", "base", True, False),
        ("size", "half", True, False), ("size", "tiny", False, False)]
    assert "PyTorch" not in page and "2 vCPU + 4 GiB" not in page


def test_form_preselects_saved_options_and_ignores_stale_ones(catalog: Catalog) -> None:
    page = make_options_form(catalog, [], {"image": "mxnet", "size": "half"}, V1, 0)
    checked = [(n, v) for n, v, c, _ in Inputs(page).found if c]
    assert checked == [("image", "mxnet"), ("size", "half")]
    page = make_options_form(catalog, ["team-a"], {"image": "pytorch"}, V1, 0)
    assert [(n, v) for n, v, c, _ in Inputs(page).found if c] == [("image", "base"),
                                                                  ("size", "half")]


def test_form_without_gpus_disables_gpu_choices_and_says_why(catalog: Catalog) -> None:
    page = make_options_form(catalog, ["ml-research"], {}, NONE, gpu_count=0)
    disabled = sorted(v for _, v, _, d in Inputs(page).found if d)
    assert disabled == ["gpu-large", "gpu-medium", "mxnet-gpu", "pytorch-gpu",
                        "tensorflow-gpu"]
    assert "This host has no GPU: sizes needing more are unavailable." in page
    assert "Note: instance sizes are NOT enforced on this host (no cgroup mounted)" in page
    assert "(needs 2 GPU)" in page


def test_form_with_one_gpu_offers_the_one_gpu_size(catalog: Catalog) -> None:
    page = make_options_form(catalog, ["ml-research"], {"image": "pytorch-gpu"}, V1, 1)
    rows = {v: (c, d) for _, v, c, d in Inputs(page).found}
    assert rows["pytorch-gpu"] == (True, False)
    assert rows["gpu-medium"] == (True, False)  # checked: the only size that fits
    assert rows["gpu-large"] == (False, True)
    assert rows["medium"] == (False, True)  # cannot run a GPU image
    assert "This host has 1 GPU(s): sizes needing more are unavailable." in page
    assert 'data-sizes="gpu-medium"' in page


# --- validation, from the form and the REST API -----------------------------------------------


@pytest.mark.parametrize("form, message", [
    ({"image": ["nope"]}, "unknown image 'nope': allowed values are base"),
    ({"image": ["base"], "colour": ["red"]},
     "unknown option(s) 'colour': allowed options are 'image' and 'size'"),
    ({"size": ["medium"]},
     "size 'medium' is not allowed in your domains (team-a): allowed sizes are half, tiny"),
])
def test_form_refusals_are_400_naming_allowed_values(catalog_file: Path, form: dict[str, Any],
                                                     message: str) -> None:
    spawner = make_spawner(catalog_file, groups=("team-a",))
    with pytest.raises(SpawnException) as e:
        spawner.options_from_form({**form, "_xsrf": ["token"]})
    assert e.value.status_code == 400 and e.value.reason == "user_options"
    assert e.value.message == message


def test_form_choice_is_normalised(catalog_file: Path) -> None:
    spawner = make_spawner(catalog_file)
    assert spawner.options_from_form({"image": ["pytorch"], "_xsrf": ["t"]}) == {
        "image": "pytorch", "size": "medium"}


async def test_rest_options_go_through_the_hubs_apply_hook(catalog_file: Path) -> None:
    spawner = make_spawner(catalog_file, groups=("team-a",), saved={"image": "nope"})
    with pytest.raises(web.HTTPError) as e:
        await spawner._run_apply_user_options({"image": "nope"})
    assert e.value.status_code == 400
    assert e.value.log_message == "unknown image 'nope': allowed values are base"
    assert spawner.orm_spawner.user_options == {}  # not kept as the next default
    await spawner._run_apply_user_options({"size": "half"})
    assert spawner.choice is not None and spawner.choice.size.id == "half"
    assert (spawner.mem_limit, spawner.cpu_limit) == (1024**3, 0.5)


async def test_an_image_not_built_here_is_refused_with_the_command(catalog_file: Path
                                                                  ) -> None:
    spawner = make_spawner(catalog_file, built=("base",), saved={"image": "pytorch"})
    with pytest.raises(web.HTTPError) as e:
        await spawner._run_apply_user_options({"image": "pytorch", "size": "half"})
    assert e.value.status_code == 409
    assert "`studiohub env build pytorch`" in str(e.value.log_message)
    assert spawner.orm_spawner.user_options == {}
    await spawner._run_apply_user_options({"image": "base", "size": "half"})


def test_form_disables_images_not_built_here(catalog: Catalog) -> None:
    page = make_options_form(catalog, [], {}, V1, 0, built=lambda image_id: image_id == "base")
    images = {value: disabled for name, value, _, disabled in Inputs(page).found
              if name == "image"}
    assert images["base"] is False and images["pytorch"] is True
    # The default image not built: the first one that is comes preselected instead.
    page = make_options_form(catalog, [], {}, V1, 0, built=lambda image_id: image_id == "mxnet")
    checked = [(name, value) for name, value, on, _ in Inputs(page).found if on]
    assert checked == [("image", "mxnet"), ("size", "medium")]
    assert "<code>studiohub env build pytorch</code>" in page


async def test_a_size_this_machine_cannot_hold_is_refused_and_disabled(catalog_file: Path
                                                                      ) -> None:
    spawner = make_spawner(catalog_file)
    with pytest.raises(web.HTTPError) as e:
        await spawner._run_apply_user_options({"image": "base", "size": "giant"})
    assert e.value.status_code == 409
    assert str(e.value.log_message).startswith(
        "1 vCPU + 4 TiB cannot run here: needs 4 TiB; this machine has ")
    sizes = {value: disabled for name, value, _, disabled in
             Inputs(spawner.render_options_form()).found if name == "size"}
    assert sizes["giant"] is True and sizes["tiny"] is False
    assert "(needs 4 TiB; this machine has" in spawner.render_options_form()


def test_gpu_size_for_a_user_without_the_domain(catalog_file: Path) -> None:
    spawner = make_spawner(catalog_file)
    with pytest.raises(SpawnException) as e:
        spawner.apply_choice({"image": "base", "size": "gpu-medium"})
    # A real size outside the domains is said to be so; the one that would then be a 409
    # (this machine can never hold it) is marked in the list.
    assert e.value.message == ("size 'gpu-medium' is not allowed in your domains (everyone): "
                               "allowed sizes are giant (too big for this machine), half, "
                               "medium, small, tiny")


def test_busy_gpus_are_a_409_naming_holders(catalog_file: Path) -> None:
    alice = make_spawner(catalog_file, groups=("ml-research",), name="alice")
    bob = make_spawner(catalog_file, groups=("ml-research",), name="bob")
    carol = make_spawner(catalog_file, groups=("ml-research",), name="carol")
    alice._take_gpus(1)
    bob._take_gpus(1)
    assert (alice.held_gpus, bob.held_gpus) == (["GPU-a"], ["GPU-b"])
    with pytest.raises(SpawnException) as e:
        carol._take_gpus(1)
    assert e.value.status_code == 409
    assert e.value.message == ("no GPU free: 2 of 2 in use by alice, bob; choose a CPU size "
                               "or try later")
    alice.clear_state()
    carol._take_gpus(1)
    assert carol.held_gpus == ["GPU-a"]


# --- state -----------------------------------------------------------------------------------


def test_state_round_trip_re_reserves_gpus(catalog_file: Path) -> None:
    before = make_spawner(catalog_file, groups=("ml-research",))
    before.pid, before.pid_started, before.cgroup = 4242, 99, "jupyter-alice"
    before.held_gpus = ["GPU-b"]
    state = before.get_state()
    assert state == {"pid": 4242, "pid_started": 99, "cgroup": "jupyter-alice",
                     "gpus": ["GPU-b"]}

    gpus.reset_shared_allocator()  # the hub restarted
    after = make_spawner(catalog_file, groups=("ml-research",))
    after.load_state(state)
    assert (after.pid, after.pid_started, after.cgroup, after.held_gpus) == (
        4242, 99, "jupyter-alice", ["GPU-b"])
    assert [g.id for g in after.allocator.held_by("alice")] == ["GPU-b"]
    bob = make_spawner(catalog_file, groups=("ml-research",), name="bob")
    bob.load_state({"pid": 1, "gpus": ["GPU-b"]})  # a corrupt state cannot take it too
    assert bob.held_gpus == []


def test_hub_restart_re_reserves_placed_kernels_gpus(catalog_file: Path,
                                                     tmp_path: Path) -> None:
    book_path = tmp_path / "placements.json"
    placements.book(book_path).add(Placement("alice", "k1", "jupyter-alice", "pytorch-gpu",
                                             "gpu-medium", 4, 16 * 2**30, ("GPU-a",)))
    placements.service._placers.clear()  # the hub restarted: the book is read from its file
    alice = make_spawner(catalog_file, groups=("ml-research",),
                         placements_file=str(book_path))
    alice.load_state({"pid": 4242, "pid_started": 99, "cgroup": "jupyter-alice"})
    assert [g.id for g in alice.allocator.held_by("alice/kernel/k1")] == ["GPU-a"]
    bob = make_spawner(catalog_file, groups=("ml-research",), name="bob")
    with pytest.raises(gpus.NoGpuFree, match="alice/kernel/k1"):
        bob.allocator.allocate("bob", 2)
    assert [g.id for g in bob.allocator.allocate("bob", 1)] == ["GPU-b"]


def test_stopped_state_is_empty(catalog_file: Path) -> None:
    spawner = make_spawner(catalog_file)
    assert spawner.get_state() == {}


async def test_a_reused_pid_is_not_our_server(catalog_file: Path) -> None:
    spawner = make_spawner(catalog_file)
    spawner.load_state({"pid": os.getpid(), "pid_started": 1})
    assert await spawner.poll() == 0
    assert spawner.pid == 0  # and it was never signalled: this test process is alive

    spawner.load_state({"pid": os.getpid(), "pid_started": process_start_ticks(os.getpid())})
    assert await spawner.poll() is None


def test_args_name_the_images_kernel_when_registered(catalog_file: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STUDIOHUB_PREFIX", str(tmp_path))
    spawner = make_spawner(catalog_file, kernel_cull_idle_timeout=600)
    spawner.apply_choice({"image": "pytorch"})
    spawner.args = ["--debug"]
    cull = make_cull_args(600, 120, False, False)
    # Only the kernels of the images this user's domains allow, built or not yet (one
    # built while the server runs then shows there); the default only once registered.
    allowed = [f"--KernelSpecManager.allowed_kernelspecs={contract.kernel_name(i.id)}"
               for i in load_catalog(catalog_file).allowed_images([])]
    assert "--KernelSpecManager.allowed_kernelspecs=studiohub-pytorch" in allowed
    assert "--KernelSpecManager.allowed_kernelspecs=studiohub-pytorch-gpu" not in allowed
    assert spawner.get_args() == [*cull, *allowed, "--debug"]
    spec = tmp_path / "share" / "jupyter" / "kernels" / "studiohub-pytorch"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text("{}")
    assert spawner.get_args() == [
        *cull, "--MappingKernelManager.default_kernel_name=studiohub-pytorch",
        *allowed, "--debug"]


def test_traits_are_documented_config() -> None:
    own = ["catalog_path", "cgroup_root", "use_cgroups", "pids_limit", "unix_user_prefix",
           "gpu_ids", "fast_start", "ready_poll_interval", "server_log_dir",
           "kernel_cull_idle_timeout", "kernel_cull_interval", "kernel_cull_busy",
           "kernel_cull_connected", "max_placed_memory", "placement_pending_timeout",
           "log_max_bytes"]
    traits = StudioSpawner.class_traits(config=True)
    for name in own:
        assert traits[name].help, name
    assert sys.executable  # the server runs with the hub's interpreter (make_cmd)


# --- readiness -------------------------------------------------------------------------------


async def test_ready_at_the_first_poll_after_the_port_accepts(
        catalog_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every wait is one ``ready_poll_interval`` and the first poll after the server listens
    ends it: no growing back-off, which costs the stock hub seconds (benchmarks/spawn)."""
    import asyncio
    import socket
    import subprocess

    real_sleep, sleeps = asyncio.sleep, []
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))  # bound, not listening yet: connections are refused

        async def one_poll_interval(seconds: float) -> None:
            sleeps.append(seconds)
            if len(sleeps) == 5:
                server.listen()
            await real_sleep(0)

        monkeypatch.setattr(asyncio, "sleep", one_poll_interval)
        spawner = make_spawner(catalog_file, server_log_dir=str(tmp_path))
        spawner.port = server.getsockname()[1]
        # The "server" holds the socket too, so the listener is its own.
        spawner.proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"],
                                        pass_fds=[server.fileno()])
        try:
            await asyncio.wait_for(spawner._wait_ready(), 10)
        finally:
            spawner.proc.kill()
            spawner.proc.wait()
    assert sleeps == [spawner.ready_poll_interval] * 5


async def test_a_port_another_process_listens_on_is_not_the_server_ready(
        catalog_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another account's process listening on the server's port answers connections; the
    hub must not take that for the server (it would route the user's requests there).
    The server, unable to bind, exits, and the spawn fails (then tries another port)."""
    import socket
    import subprocess

    real_sleep, sleeps = asyncio.sleep, []
    spawner = make_spawner(catalog_file, server_log_dir=str(tmp_path))
    spawner.proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])

    async def one_poll_interval(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 5:  # still not taken for ready: the server gives up
            spawner.proc.kill()
            spawner.proc.wait()
        await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", one_poll_interval)
    with socket.socket() as intruder:
        intruder.bind(("127.0.0.1", 0))
        intruder.listen()
        spawner.port = intruder.getsockname()[1]
        try:
            with pytest.raises(SpawnException):
                await asyncio.wait_for(spawner._wait_ready(), 10)
        finally:
            spawner.proc.kill()
            spawner.proc.wait()
    assert len(sleeps) == 5


async def test_a_port_taken_before_the_server_binds_it_is_replaced(
        catalog_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A port ``random_port`` found free can be taken (an outgoing connection's local port)
    before the server binds it; the server exits saying so, and the spawn goes on with
    another port instead of failing."""
    import asyncio
    import socket
    import subprocess

    import jupyter_server.serverapp

    from studiohub.spawners import local as spawner_module

    # The words matched are jupyter_server's own for a taken port when port_retries=0.
    assert "port %i is not available" in Path(jupyter_server.serverapp.__file__).read_text()
    server = ("import socket, sys, time\n"
              "port = int(sys.argv[1])\n"
              "s = socket.socket()\n"
              "try:\n"
              "    s.bind(('127.0.0.1', port))\n"
              "except OSError:\n"
              "    print(f'[C] ERROR: the Jupyter server could not be started because '\n"
              "          f'port {port} is not available.')\n"
              "    sys.exit(1)\n"
              "s.listen()\n"
              "time.sleep(30)\n")
    spawner = make_spawner(catalog_file, server_log_dir=str(tmp_path))
    spawner.log_path.parent.mkdir(parents=True, exist_ok=True)

    def popen() -> None:
        with spawner.log_path.open("ab") as log:
            spawner.proc = subprocess.Popen([sys.executable, "-c", server, str(spawner.port)],
                                            stdout=log, stderr=subprocess.STDOUT)
        spawner.pid = spawner.proc.pid

    with socket.socket() as taken, socket.socket() as probe:
        taken.bind(("127.0.0.1", 0))  # bound and not listening, as a client's port is
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
        probe.close()
        ports = iter([taken.getsockname()[1], free])
        monkeypatch.setattr(spawner_module, "random_port", lambda: next(ports))
        monkeypatch.setattr(spawner, "_popen", popen)
        spawner.port = 0
        try:
            await asyncio.wait_for(spawner._run_server(), 20)
            assert spawner.port == free
        finally:
            spawner.proc.kill()
            spawner.proc.wait()
    assert "is not available" in spawner.log_path.read_text()


async def test_stop_sends_sigterm_not_sigint(catalog_file: Path, tmp_path: Path) -> None:
    """jupyter_server, off a terminal, shuts down on SIGTERM; a SIGINT can land inside a
    request handler, be swallowed, and leave the server running for interrupt_timeout."""
    import inspect
    import subprocess

    from jupyter_server.serverapp import ServerApp

    assert "signal.SIGTERM, self._signal_stop" in inspect.getsource(ServerApp.init_signal)
    seen = tmp_path / "signals"
    server = ("import signal, sys, time\n"
              f"seen = open({str(seen)!r}, 'a', buffering=1)\n"
              "def note(sig, frame):\n"
              "    seen.write(signal.Signals(sig).name + '\\n')\n"
              "    if sig == signal.SIGTERM:\n"
              "        sys.exit(0)\n"
              "signal.signal(signal.SIGINT, note)\n"
              "signal.signal(signal.SIGTERM, note)\n"
              "seen.write('ready\\n')\n"
              "while True:\n"
              "    time.sleep(0.05)\n")
    spawner = make_spawner(catalog_file, server_log_dir=str(tmp_path), interrupt_timeout=2)
    spawner.proc = subprocess.Popen([sys.executable, "-c", server], start_new_session=True)
    spawner.pid = spawner.proc.pid
    try:
        for _ in range(600):  # its handlers are set: a signal now is noted, not fatal
            if seen.exists() and "ready" in seen.read_text():
                break
            await asyncio.sleep(0.05)
        await asyncio.wait_for(spawner.stop(), 30)
    finally:
        spawner.proc.kill()
        spawner.proc.wait()
    assert seen.read_text().split() == ["ready", "SIGTERM"]
    assert spawner.proc.returncode == 0 and spawner.pid == 0


async def test_a_server_that_dies_fails_the_spawn_at_once(catalog_file: Path,
                                                          tmp_path: Path) -> None:
    import subprocess

    spawner = make_spawner(catalog_file, server_log_dir=str(tmp_path))
    spawner.log_path.write_text("starting\nPermissionError: [Errno 13] /home/x\n")
    spawner.port = 1
    spawner.proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"], text=True)
    with pytest.raises(SpawnException) as e:
        await spawner._wait_ready()
    assert e.value.message == ("Your server exited while starting (status 3): "
                               "PermissionError: [Errno 13] /home/x")
    assert e.value.reason == "exited" and "starting\n" in e.value.log_message


# --- one validation per start, the form's escaping, TMPDIR, the split --------------------------


async def test_a_start_validates_its_options_once(catalog_file: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The form, the hub's apply hook and ``start`` all ask; the catalog answers once."""
    spawner = make_spawner(catalog_file)
    calls = []
    original = Catalog.choose

    def counted(self: Catalog, groups: Any, options: Any, note: Any = None) -> Any:
        calls.append(dict(options))
        return original(self, groups, options, note)

    monkeypatch.setattr(Catalog, "choose", counted)
    options = spawner.options_from_form({"image": ["base"], "size": ["half"], "_xsrf": ["t"]})
    await spawner._run_apply_user_options(options)
    assert spawner.apply_choice(options).size.id == "half"  # what start() does first
    assert calls == [{"image": "base", "size": "half"}]
    spawner.options_from_form({"image": ["base"], "size": ["tiny"]})  # another choice
    assert len(calls) == 2


def test_the_form_escapes_what_the_catalog_says(catalog_file: Path) -> None:
    data = yaml.safe_load(catalog_file.read_text())
    data["images"] = {"base": {"description": '<script>alert("x")</script> & more'}}
    data["sizes"]["tiny"]["display_name"] = "<b>tiny</b>"
    catalog_file.write_text(yaml.safe_dump(data))
    page = make_options_form(load_catalog(catalog_file), [], {}, V1, 0)
    assert "<script>alert" not in page and "&lt;script&gt;alert(&#34;x&#34;)" in page
    assert "&amp; more" in page and "&lt;b&gt;tiny&lt;/b&gt;" in page
    assert page.count("<script>") == 1  # the form's own


def test_the_server_s_temporary_files_are_in_its_account_s_private_dir(
        catalog: Catalog) -> None:
    choice = catalog.choose([], {"image": "base", "size": "half"})
    env = make_env(choice, gpu_ids=[], caps=NONE, cgroup="", jupyter_data="/d",
                   hub_bin="/hub/bin", kernel_sockets="/run/studiohub/1001",
                   tmpdir="/home/jupyter-ada/.tmp")
    assert env["TMPDIR"] == "/home/jupyter-ada/.tmp"
    assert env["STUDIOHUB_KERNEL_SOCKETS"] == "/run/studiohub/1001"
    assert "TMPDIR" not in make_env(choice, gpu_ids=[], caps=NONE, cgroup="",
                                    jupyter_data="/d", hub_bin="/hub/bin")


def test_the_kubernetes_spawner_imports_nothing_of_the_local_one() -> None:
    import subprocess

    code = ("import sys, studiohub.spawners.kube, studiohub.kube\n"
            "print(sorted(m for m in ('studiohub.spawners.local', 'psutil', "
            "'studiohub.cgroups') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_refusals_mark_images_not_built_here(catalog_file: Path) -> None:
    spawner = make_spawner(catalog_file, built=("base",))
    with pytest.raises(SpawnException) as e:
        spawner.apply_choice({"image": "julia"})
    assert e.value.status_code == 400
    assert e.value.message == ("unknown image 'julia': allowed values are base, mxnet (not "
                               "built here), pytorch (not built here), tensorflow (not built "
                               "here)")
