"""The StudioHub server extension's HTTP API on a real Jupyter server (pytest-jupyter),
without TensorBoard processes: info, and every refusal of bad input as JSON 4xx.

The tests are plain functions driving pytest-jupyter's own event loop (the project runs
pytest-asyncio in auto mode, whose loop is not the one the server fixture runs on)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

pytest.importorskip("pytest_jupyter")
pytest_plugins = ["pytest_jupyter.jupyter_server"]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    (path / "runs" / "mnist").mkdir(parents=True)
    (path / "notes.txt").write_text("not a folder")
    return path


@pytest.fixture
def jp_server_config(home: Path, tmp_path: Path) -> dict[str, Any]:
    return {
        "ServerApp": {"jpserver_extensions": {"studiohub_lab": True}},
        "TensorBoardManager": {"allowed_root": str(home),
                               "python": str(tmp_path / "no-such-env" / "python")},
    }


@pytest.fixture
def jp_root_dir(home: Path) -> Path:
    return home


@pytest.fixture
def fetch(jp_fetch: Any, jp_asyncio_loop: Any) -> Any:
    def call(*parts: str, **kwargs: Any) -> Any:
        return jp_asyncio_loop.run_until_complete(jp_fetch(*parts, **kwargs))
    return call


def fetch_error(fetch: Any, *parts: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    with pytest.raises(HTTPClientError) as info:
        fetch(*parts, **kwargs)
    response = info.value.response
    assert response is not None
    return info.value.code, json.loads(response.body)


def test_info_reports_image_size_and_limits(fetch: Any,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STUDIOHUB_IMAGE", "pytorch-cpu")
    monkeypatch.setenv("STUDIOHUB_SIZE", "small")
    monkeypatch.setenv("STUDIOHUB_MEM_LIMIT", "4294967296")
    monkeypatch.setenv("STUDIOHUB_CPU_LIMIT", "2")
    response = fetch("studiohub", "api", "v1", "info")
    assert response.code == 200
    from studiohub_lab import __version__

    assert json.loads(response.body) == {
        "version": __version__, "image": "pytorch-cpu", "size": "small", "switching": "none",
        "limits": {"memory": 4 * 1024**3, "cpu": 2.0}}


def _hub_env(monkeypatch: pytest.MonkeyPatch, switching: str) -> None:
    monkeypatch.setenv("JUPYTERHUB_API_URL", "http://127.0.0.1:9/hub/api")  # never reached
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "token")
    monkeypatch.setenv("JUPYTERHUB_USER", "alice")
    monkeypatch.setenv("STUDIOHUB_SWITCHING", switching)


@pytest.mark.parametrize(("path", "method", "body"), [
    ("kernel-options", "GET", None),
    ("kernel-choices", "POST", b'{"path": "a.ipynb", "image": "base", "size": "small"}'),
    ("server-restart", "POST", b'{"image": "base", "size": "small"}'),
])
def test_one_pod_per_server_says_how_to_change_size(fetch: Any,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    path: str, method: str,
                                                    body: bytes | None) -> None:
    """On Kubernetes the hub places no kernels: a 409 saying what to do, not a hub 404."""
    _hub_env(monkeypatch, "server")
    code, answer = fetch_error(fetch, "studiohub", "api", "v1", path, method=method,
                               body=body)
    assert code == 409
    assert "one pod (Kubernetes)" in answer["message"]
    assert "start it with another profile" in answer["message"]
    info = json.loads(fetch("studiohub", "api", "v1", "info").body)
    assert info["switching"] == "server"


def test_a_studiohub_spawned_server_switches_per_notebook(
        fetch: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _hub_env(monkeypatch, "notebook")
    info = json.loads(fetch("studiohub", "api", "v1", "info").body)
    assert info["switching"] == "notebook"
    code, answer = fetch_error(fetch, "studiohub", "api", "v1", "kernel-options")
    assert code == 502 and "cannot reach the hub" in answer["message"]


def test_info_without_a_spawner_reports_nulls(fetch: Any,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("STUDIOHUB_IMAGE", "STUDIOHUB_SIZE", "STUDIOHUB_CPU_LIMIT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("STUDIOHUB_MEM_LIMIT", "lots")  # unreadable: ignored, not a 500
    body = json.loads((fetch("studiohub", "api", "v1", "info")).body)
    assert body["image"] is None and body["size"] is None
    assert body["limits"] == {"memory": None, "cpu": None}


def test_info_accepts_quantities(fetch: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STUDIOHUB_MEM_LIMIT", "512M")
    monkeypatch.setenv("STUDIOHUB_CPU_LIMIT", "0.5")
    body = json.loads((fetch("studiohub", "api", "v1", "info")).body)
    assert body["limits"] == {"memory": 512 * 1024**2, "cpu": 0.5}


def test_api_needs_authentication(fetch: Any) -> None:
    code, body = fetch_error(fetch, "studiohub", "api", "v1", "info",
                                   headers={"Authorization": "token wrong"})
    assert code == 403
    assert body["status"] == 403


def test_tensorboard_proxy_needs_authentication(fetch: Any) -> None:
    with pytest.raises(HTTPClientError) as info:
        fetch("studiohub", "tensorboard", "123/", headers={
            "Authorization": "token wrong"}, follow_redirects=False)
    assert info.value.code in (302, 403)


@pytest.mark.parametrize(("body", "status", "message"), [
    (b"{not json", 400, "request body is not valid JSON"),
    (b"[1]", 400, "request body must be a JSON object"),
    (b"{}", 400, "folders: required"),
    (b'{"folders": [], "x": 1}', 400, "unknown field(s) x"),
    (b'{"folders": []}', 400, "give a list of at least one folder"),
    (b'{"folders": "runs"}', 400, "give a list of at least one folder"),
    (b'{"folders": [3]}', 400, "3 is not a folder path"),
    (b'{"folders": ["/etc"]}', 403, "'/etc' is outside your home folder"),
    (b'{"folders": ["../.."]}', 403, "is outside your home folder"),
    (b'{"folders": ["missing"]}', 404, "folder 'missing' does not exist"),
    (b'{"folders": ["notes.txt"]}', 400, "'notes.txt' is not a folder"),
])
def test_open_refuses_bad_folders(fetch: Any, body: bytes, status: int,
                                        message: str) -> None:
    code, answer = fetch_error(fetch, "studiohub", "api", "v1", "tensorboards",
                                     method="POST", body=body)
    assert (code, answer["status"]) == (status, status)
    assert message in answer["message"]


def test_link_out_of_home_is_refused(fetch: Any, home: Path) -> None:
    (home / "escape").symlink_to("/etc")
    code, answer = fetch_error(fetch, "studiohub", "api", "v1", "tensorboards",
                                     method="POST", body=b'{"folders": ["escape"]}')
    assert code == 403 and "outside your home folder" in answer["message"]


def test_missing_tensorboard_environment_is_a_clear_503(fetch: Any) -> None:
    code, answer = fetch_error(fetch, "studiohub", "api", "v1", "tensorboards",
                                     method="POST", body=b'{"folders": ["runs/mnist"]}')
    assert code == 503
    assert "TensorBoard's environment is missing" in answer["message"]


def test_unknown_tensorboard_is_404(fetch: Any) -> None:
    for method in ("GET", "DELETE"):
        code, answer = fetch_error(fetch, "studiohub", "api", "v1", "tensorboards",
                                         "12345", method=method)
        assert code == 404 and answer["message"] == "no TensorBoard 12345: open its folders again"
    code, answer = fetch_error(fetch, "studiohub", "tensorboard", "12345/")
    assert code == 404
    with pytest.raises(HTTPClientError) as redirect:
        fetch("studiohub", "tensorboard", "12345", follow_redirects=False)
    assert redirect.value.code == 302 and redirect.value.response is not None
    assert redirect.value.response.headers["Location"].endswith("/studiohub/tensorboard/12345/")


def test_list_starts_empty(fetch: Any) -> None:
    response = fetch("studiohub", "api", "v1", "tensorboards")
    assert json.loads(response.body) == {"tensorboards": []}


def test_kernel_token_is_checked(fetch: Any) -> None:
    code, answer = fetch_error(fetch, "studiohub", "api", "v1", "tensorboards",
                                     headers={"X-StudioHub-Kernel-Token": "guess"})
    assert code == 403 and answer["message"] == "invalid StudioHub kernel token"


# --- bad input: a clear 4xx naming the problem, never a 500, and nothing changes -----------

def lab_app(jp_serverapp: Any) -> Any:
    return jp_serverapp.extension_manager.extension_points["studiohub_lab"].app


DEEP_ARRAY = b"[" * 10_000  # under every endpoint's size limit
DEEP_OBJECT = json.dumps({"folders": ["runs"], "x": json.loads('{"a":' * 900 + "1" + "}" * 900)}
                         ).encode()


@pytest.mark.parametrize("path", ["tensorboards", "kernel-choices", "server-restart",
                                  "sharing/shares", "sharing/shares/abc/versions",
                                  "sharing/shares/abc/copy"])
@pytest.mark.parametrize(("body", "status", "message"), [
    (DEEP_ARRAY, 400, "request body nests too deeply"),
    (DEEP_OBJECT, 400, "request body nests too deeply"),
    (b'{"x": "' + b"y" * 20_000_000 + b'"}', 413, "at most"),
    (b"\xff\xfe{", 400, "request body is not valid JSON"),
    (json.dumps({"path": "\ud800.ipynb", "folders": ["\ud800"]}).encode(), 400,
     "request body has a string that is not Unicode text"),
])
def test_bodies_too_deep_or_too_large_are_refused(fetch: Any, path: str, body: bytes,
                                                  status: int, message: str) -> None:
    code, answer = fetch_error(fetch, "studiohub", "api", "v1", *path.split("/"),
                               method="POST", body=body)
    assert (code, answer["status"]) == (status, status)
    assert message in answer["message"] and len(answer["message"]) < 300


@pytest.mark.parametrize("path", ["tensorboards", "kernel-choices", "sharing/shares"])
def test_the_issue_s_deep_array_is_a_4xx(fetch: Any, path: str) -> None:
    """``"[" * 100000``: too deep where 100 kB are accepted, else too large."""
    code, answer = fetch_error(fetch, "studiohub", "api", "v1", *path.split("/"),
                               method="POST", body=b"[" * 100_000)
    assert (code, answer["message"].split(":")[0]) in {
        (400, "request body nests too deeply"),
        (413, "request body is 100000 bytes; at most 16384 are accepted here")}, answer


@pytest.mark.parametrize(("folder", "message"), [
    ("runs\0/mnist", "is not a folder path"),
    ("r" * 5000, "is longer than a folder path can be"),
    ("x" * 300, "File name too long"),
    ("~nosuchaccount/runs", "does not exist"),
])
def test_folders_that_cannot_be_paths_are_400s_quoted_short(fetch: Any, folder: str,
                                                            message: str) -> None:
    code, answer = fetch_error(fetch, "studiohub", "api", "v1", "tensorboards",
                               method="POST", body=json.dumps({"folders": [folder]}).encode())
    assert code in (400, 404) and message in answer["message"], answer
    assert len(answer["message"]) < 300


def test_a_refused_open_starts_nothing(fetch: Any, jp_serverapp: Any) -> None:
    """``?wait=bogus`` is refused before the folders are opened: no TensorBoard starts."""
    manager = lab_app(jp_serverapp).tensorboards
    manager.python = "/bin/true"  # would "start" (and fail) if anything were started
    body = b'{"folders": ["runs/mnist"]}'
    code, answer = fetch_error(fetch, "studiohub", "api", "v1", "tensorboards",
                               method="POST", body=body, params={"wait": "bogus"})
    assert code == 400 and answer["message"] == \
        "wait='bogus': use wait=ready or wait=stopped"
    assert manager.instances == {}
    assert json.loads(fetch("studiohub", "api", "v1", "tensorboards").body) == \
        {"tensorboards": []}
    long = "w" * 5_000
    code, answer = fetch_error(fetch, "studiohub", "api", "v1", "tensorboards",
                               method="POST", body=body, params={"wait": long})
    assert code == 400 and len(answer["message"]) < 300
    assert manager.instances == {}


@pytest.fixture
def base_kernel(jp_data_dir: Path) -> str:
    """An image kernel spec on this server, as StudioHub's environments install them."""
    from studiohub.contract import kernel_name

    name = kernel_name("base")
    spec = jp_data_dir / "kernels" / name
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Base", "language": "python"}))
    return name


def test_a_choice_is_recorded_without_asking_the_hub(
        fetch: Any, jp_serverapp: Any, monkeypatch: pytest.MonkeyPatch,
        base_kernel: str) -> None:
    """The hub (never reached here) checks the choice when the kernel is placed."""
    _hub_env(monkeypatch, "notebook")
    body = {"path": "a.ipynb", "image": "base", "size": "giant",
            "replaces": "0b0a5d6e-1c2f-4b3a-9d8e-7f6a5b4c3d2e"}
    answer = json.loads(fetch("studiohub", "api", "v1", "kernel-choices", method="POST",
                              body=json.dumps(body)).body)
    assert answer == {"kernel_name": base_kernel, "image": "base", "size": "giant",
                      "image_label": "base", "size_label": "giant"}
    book = lab_app(jp_serverapp).book
    assert book.for_kernel("a.ipynb", base_kernel).size == "giant"


@pytest.mark.parametrize(("body", "message"), [
    ({"path": "a.ipynb", "image": "base"}, "size: required"),
    ({"path": "a.ipynb", "image": "base", "size": ["tiny"]}, "size must be str, not list"),
    ({"path": "a.ipynb", "image": "base", "size": "tiny", "x": 1}, "unknown field(s) x"),
    ({"path": "a.ipynb", "image": "b" * 10_000, "size": "tiny"}, "image 'bbbb"),
    ({"path": "a\0.ipynb", "image": "base", "size": "tiny"}, "path: the notebook's path"),
    ({"path": "../x.ipynb", "image": "base", "size": "tiny"}, "is outside this server's root"),
    ({"path": "a.ipynb", "image": "base", "size": "tiny", "replaces": "k1"},
     "replaces 'k1' is not a kernel id"),
])
def test_a_bad_choice_is_a_400_and_records_nothing(
        fetch: Any, jp_serverapp: Any, monkeypatch: pytest.MonkeyPatch, base_kernel: str,
        body: dict[str, Any], message: str) -> None:
    _hub_env(monkeypatch, "notebook")
    code, answer = fetch_error(fetch, "studiohub", "api", "v1", "kernel-choices",
                               method="POST", body=json.dumps(body))
    assert code == 400 and message in answer["message"] and len(answer["message"]) < 300
    assert lab_app(jp_serverapp).book.by_path == {}


def test_a_choice_without_a_kernel_here_asks_the_hub_why(
        fetch: Any, jp_serverapp: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """No kernel spec for the image: the hub's dry run says why (here: unreachable)."""
    _hub_env(monkeypatch, "notebook")
    code, answer = fetch_error(fetch, "studiohub", "api", "v1", "kernel-choices",
                               method="POST", body=json.dumps(
                                   {"path": "a.ipynb", "image": "pytorch", "size": "tiny"}))
    assert code == 502 and "cannot reach the hub" in answer["message"]
    assert lab_app(jp_serverapp).book.by_path == {}
