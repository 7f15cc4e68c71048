"""Pure parts of StudioHub's TensorBoard: folder checks, ids, run names, the magic's files."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from studiohub_lab.errors import Forbidden, LabError, NotFound
from studiohub_lab.tensorboard import magic
from studiohub_lab.tensorboard.folders import (
    display_path,
    instance_id,
    resolve_folders,
    run_names,
)
from studiohub_lab.tensorboard.proxy import request_headers, response_headers


@pytest.fixture
def home(tmp_path: Path) -> Path:
    for folder in ("a/logs", "b/logs", "x", "y"):
        (tmp_path / folder).mkdir(parents=True)
    return tmp_path


def test_resolve_folders_is_relative_to_the_root_and_deduplicated(home: Path) -> None:
    assert resolve_folders(["x", str(home / "x"), "./y/", "a/../x"], home, home) == [
        home / "x", home / "y"]


@pytest.mark.parametrize(("folders", "error", "message"), [
    ([], LabError, "at least one folder"),
    ([""], LabError, "is not a folder path"),
    (["/"], Forbidden, "outside your home folder"),
    (["missing"], NotFound, "does not exist"),
    (["x"] * 40, LabError, "at most 32"),
])
def test_resolve_folders_refusals(home: Path, folders: list[str], error: type[LabError],
                                  message: str) -> None:
    with pytest.raises(error, match=message):
        resolve_folders(folders, home, home)


def test_instance_id_depends_on_the_set_only() -> None:
    a, b = Path("/h/a"), Path("/h/b")
    assert instance_id([a, b]) == instance_id([b, a]) != instance_id([a])
    assert instance_id([a]).isdigit() and int(instance_id([a])) < 2**32


def test_run_names_are_the_shortest_distinct_suffixes() -> None:
    assert run_names([Path("/h/x"), Path("/h/y")]) == [("x", Path("/h/x")), ("y", Path("/h/y"))]
    assert [n for n, _ in run_names([Path("/h/a/logs"), Path("/h/b/logs")])] == [
        "a/logs", "b/logs"]


def test_display_path() -> None:
    assert display_path(Path("/h/runs/x"), Path("/h")) == "~/runs/x"
    assert display_path(Path("/h"), Path("/h")) == "~"
    assert display_path(Path("/srv/x"), Path("/h")) == "/srv/x"


def test_proxy_keeps_the_users_credentials_from_tensorboard() -> None:
    sent = request_headers([("Cookie", "jupyterhub-session=1"), ("Authorization", "token t"),
                            ("Accept", "application/json"), ("Connection", "keep-alive")])
    assert sent == {"Accept": "application/json"}
    assert response_headers([("Content-Type", "text/html"), ("Transfer-Encoding", "chunked")]
                            ) == [("Content-Type", "text/html")]


def test_magic_parses_tensorboard_arguments() -> None:
    assert magic.parse_folders(["--logdir", "runs", "--port", "0"]) == ["runs"]
    assert magic.parse_folders(["--logdir_spec", "a:runs/a,b:runs/b"]) == ["runs/a", "runs/b"]
    with pytest.raises(SystemExit):
        magic.parse_folders(["--port", "6006"])


def test_magic_environment() -> None:
    env = magic.kernel_environment("/user/ada/", "http://127.0.0.1:8888/user/ada/", "s3cret",
                                   Path("/tmp/x/tensorboard"))
    assert env["TENSORBOARD_PROXY_URL"] == "/user/ada/studiohub/tensorboard/%PORT%/"
    assert env["TENSORBOARD_BINARY"] == "/tmp/x/tensorboard"


def test_magic_info_file_matches_tensorboards_own_format(tmp_path: Path) -> None:
    """tensorboard.manager must accept our info file and find it by its cache key."""
    python = Path("/opt/studiohub/envs/tensorboard/bin/python")
    if not python.exists():
        pytest.skip("the light TensorBoard environment is not built")
    args = ["--logdir", "runs"]
    key = magic.cache_key(str(tmp_path), args)
    code = ("import json, sys; from tensorboard import manager\n"
            "print(manager.cache_key(working_directory=sys.argv[1],"
            " arguments=json.loads(sys.argv[2]), configure_kwargs={}))\n")
    theirs = subprocess.run([str(python), "-c", code, str(tmp_path), json.dumps(args)],
                            capture_output=True, text=True, check=True).stdout.strip()
    assert key == theirs
