"""Pure parts of StudioHub's TensorBoard: folder checks, ids, run names, the magic's files."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
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
    from benchmarks.tensorboard.environments import ensure_tensorboard_env

    # Built where StudioHub builds it, once (a no-op after; the integration tests use the
    # same one): a skip here would leave the format unchecked on a fresh machine.
    python = ensure_tensorboard_env()
    args = ["--logdir", "runs"]
    key = magic.cache_key(str(tmp_path), args)
    code = ("import json, sys; from tensorboard import manager\n"
            "print(manager.cache_key(working_directory=sys.argv[1],"
            " arguments=json.loads(sys.argv[2]), configure_kwargs={}))\n")
    theirs = subprocess.run([str(python), "-c", code, str(tmp_path), json.dumps(args)],
                            capture_output=True, text=True, check=True).stdout.strip()
    assert key == theirs


# --- %tensorboard's info file: never written where other accounts can plant links ----------

VICTIM = "nobody"
ATTACKER = "daemon"
WRITE_INFO = """
import sys
sys.stdin.readline()  # meanwhile the attacker plants a link for this very pid
from studiohub_lab.tensorboard import magic
try:
    print("wrote", magic.write_info(7, "runs", [], "test"))
except OSError as e:
    print("refused:", e)
"""


def as_account(account: str, code: str, env: dict[str, str], stdin: str = ""
               ) -> subprocess.Popen[str]:
    pw = pwd.getpwnam(account)
    return subprocess.Popen([sys.executable, "-c", code], user=pw.pw_uid, group=pw.pw_gid,
                            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A world-writable temporary folder without the sticky bit, and a victim's file."""
    if os.geteuid() != 0:
        pytest.skip("needs root to act as two unix accounts (run under make test)")
    base = Path(tempfile.mkdtemp(prefix="tb-info-"))
    try:
        base.chmod(0o755)
        (base / "shared").mkdir(mode=0o777)
        (base / "shared").chmod(0o777)
        home = base / "home"
        home.mkdir(mode=0o700)
        (home / "secret.txt").write_text("precious\n")
        victim = pwd.getpwnam(VICTIM)
        for path in (home, home / "secret.txt"):
            os.chown(path, victim.pw_uid, victim.pw_gid)
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def plant_and_write(base: Path, make_dir: str) -> str:
    """The victim's process waits; the attacker makes ``.tensorboard-info`` as told and
    plants ``pid-<victim pid>.info`` → the victim's file; the victim writes its info."""
    shared, secret = base / "shared", base / "home" / "secret.txt"
    env = {"PATH": "/usr/bin:/bin", "TMPDIR": str(shared)}
    victim = as_account(VICTIM, WRITE_INFO, env)
    plant = (f"import os\nd = {str(shared / magic.INFO_DIR)!r}\n{make_dir}\n"
             f"os.symlink({str(secret)!r}, os.path.join(d, 'pid-{victim.pid}.info'))\n")
    pw = pwd.getpwnam(ATTACKER)
    attacker = subprocess.run([sys.executable, "-c", plant], user=pw.pw_uid,
                              group=pw.pw_gid, capture_output=True, text=True, env=env,
                              check=False)
    if "victim-owned" in make_dir:
        info = shared / magic.INFO_DIR
        os.chown(info, pwd.getpwnam(VICTIM).pw_uid, -1)
    assert attacker.returncode == 0, attacker.stderr
    out, err = victim.communicate("go\n", timeout=60)
    assert victim.returncode == 0, err
    return out


def test_info_file_refuses_a_folder_other_accounts_own(shared_tmp: Path) -> None:
    out = plant_and_write(shared_tmp, "os.mkdir(d); os.chmod(d, 0o777)")
    assert out.startswith("refused:") and "belongs to another account" in out, out
    assert (shared_tmp / "home" / "secret.txt").read_text() == "precious\n"


def test_info_file_refuses_a_link_as_the_folder(shared_tmp: Path) -> None:
    out = plant_and_write(shared_tmp, "os.mkdir(d + '-x', 0o777); os.chmod(d + '-x', 0o777)"
                                      "\nos.symlink(d + '-x', d); d = d + '-x'")
    assert out.startswith("refused:") and "is not a folder of yours" in out, out
    assert (shared_tmp / "home" / "secret.txt").read_text() == "precious\n"


def test_the_users_own_folder_others_can_write_is_made_private_first(
        shared_tmp: Path) -> None:
    """As TensorBoard itself (and StudioHub before) made it: the user's, mode 0777, with
    a link another account planted: made 0700, the link replaced, never followed."""
    out = plant_and_write(shared_tmp, "os.mkdir(d); os.chmod(d, 0o777)  # victim-owned")
    assert out.startswith("wrote"), out
    assert (shared_tmp / "home" / "secret.txt").read_text() == "precious\n"
    info = shared_tmp / "shared" / magic.INFO_DIR
    assert stat.S_IMODE(info.stat().st_mode) == 0o700
    written = Path(out.split()[-1])
    assert not written.is_symlink() and json.loads(written.read_text())["port"] == 7


def test_info_file_in_a_private_folder_replaces_a_link_instead_of_following_it(
        shared_tmp: Path) -> None:
    """A link left inside the user's own private folder is replaced, never followed."""
    info = shared_tmp / "shared" / magic.INFO_DIR
    victim = pwd.getpwnam(VICTIM)
    info.mkdir(mode=0o700)
    os.chown(info, victim.pw_uid, victim.pw_gid)
    secret = shared_tmp / "home" / "secret.txt"
    env = {"PATH": "/usr/bin:/bin", "TMPDIR": str(shared_tmp / "shared")}
    process = as_account(VICTIM, WRITE_INFO, env)
    link = info / f"pid-{process.pid}.info"
    link.symlink_to(secret)
    out, err = process.communicate("go\n", timeout=60)
    assert out.startswith("wrote"), (out, err)
    assert secret.read_text() == "precious\n"
    assert not link.is_symlink() and json.loads(link.read_text())["port"] == 7


def test_a_new_info_folder_is_private(shared_tmp: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "TMPDIR": str(shared_tmp / "shared")}
    process = as_account(VICTIM, WRITE_INFO, env)
    out, _ = process.communicate("go\n", timeout=60)
    assert out.startswith("wrote"), out
    info = shared_tmp / "shared" / magic.INFO_DIR
    assert stat.S_IMODE(info.stat().st_mode) == 0o700
    assert info.stat().st_uid == pwd.getpwnam(VICTIM).pw_uid


# --- TensorBoard's fonts load under the board's prefix ---------------------------------

def tensorboard_index_html() -> bytes:
    """TensorBoard's own index.html, from the package in StudioHub's TensorBoard env."""
    import zipfile

    from benchmarks.tensorboard.environments import ensure_tensorboard_env

    python = ensure_tensorboard_env()
    site = subprocess.run([str(python), "-c", "import tensorboard, os; "
                           "print(os.path.dirname(tensorboard.__file__))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    with zipfile.ZipFile(Path(site) / "webfiles.zip") as files:
        return files.read("index.html")


@pytest.mark.parametrize("encoding", ["", "gzip"])
def test_tensorboards_fonts_are_named_under_its_prefix(encoding: str) -> None:
    import gzip

    from tornado.httputil import HTTPHeaders

    from studiohub_lab.tensorboard.proxy import prefix_font_urls

    page = tensorboard_index_html()
    assert b"url(/font-roboto/" in page  # what made the browser ask the hub's root
    headers = HTTPHeaders({"Content-Type": "text/html; charset=utf-8"})
    if encoding:
        headers["Content-Encoding"] = encoding
    body = gzip.compress(page) if encoding else page
    prefix = "/user/ada/studiohub/tensorboard/abc123/"
    out = prefix_font_urls(headers, body, prefix)
    out = gzip.decompress(out) if encoding else out
    assert b"url(/font-roboto/" not in out
    assert out.count(b"url(/user/ada/studiohub/tensorboard/abc123/font-roboto/") == \
        page.count(b"url(/font-roboto/")
    # Only HTML is touched: a font or script passes through byte for byte.
    other = HTTPHeaders({"Content-Type": "application/javascript"})
    assert prefix_font_urls(other, body, prefix) == body
