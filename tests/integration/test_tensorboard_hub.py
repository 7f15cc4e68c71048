"""TensorBoard in a real StudioHub: spawned servers under the hub's URL prefix, the hub's
authentication in front of every board, nothing left when the server stops."""

from __future__ import annotations

import pwd
import subprocess
import textwrap
import time

import requests

from benchmarks.tensorboard.environments import EVENTS_SCRIPT, ensure_tensorboard_env
from studiohub.users import unix_name
from tests.hubtools import Hub


def test_board_behind_the_hub_prefix_is_the_owners_only(hub: Hub) -> None:
    python = ensure_tensorboard_env()
    alice, bob = hub.new_user("tba"), hub.new_user("tbb")
    alice.spawn(image="base", size="tiny")
    bob.spawn(image="base", size="tiny")
    wrote = alice.run(textwrap.dedent(f"""
        import os, subprocess
        subprocess.run([{str(python)!r}, {str(EVENTS_SCRIPT)!r}, "runs", "--framework",
                        "tf-summary", "--runs", "2", "--steps", "20"], check=True)
        print(os.environ["TENSORBOARD_PROXY_URL"])
    """))
    assert wrote.status == "ok", wrote
    assert wrote.stdout.split()[-1] == f"/user/{alice.name}/studiohub/tensorboard/%PORT%/"

    opened = alice.lab_api("POST", "/tensorboards?wait=ready", json={"folders": ["runs"]},
                           timeout=90)
    assert opened.status_code == 200, opened.text
    board = opened.json()
    assert board["status"] == "running" and board["url"].startswith(f"/user/{alice.name}/")
    tags_url = f"{hub.url}{board['url']}data/plugin/scalars/tags"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        tags = requests.get(tags_url, headers={"Authorization": f"token {alice.token}"},
                            timeout=10)
        assert tags.status_code == 200, tags.text
        if len(tags.json()) == 2:
            break
        time.sleep(0.2)
    assert sorted(tags.json()) == ["tf-summary-000", "tf-summary-001"]

    for token in (bob.token, ""):
        refused = requests.get(tags_url, headers={"Authorization": f"token {token}"},
                               timeout=10, allow_redirects=False)
        assert refused.status_code in (302, 403, 404), refused.status_code
        assert "tf-summary" not in refused.text
    outside = alice.lab_api("POST", "/tensorboards", json={"folders": [f"/home/{bob.name}"]})
    assert outside.status_code == 403
    assert "outside your home folder" in outside.json()["message"]

    uid = pwd.getpwnam(unix_name(alice.name)).pw_uid
    assert subprocess.run(["pgrep", "-u", str(uid), "-f", "launcher.py"],
                          capture_output=True).returncode == 0
    alice.stop()
    bob.stop()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        left = subprocess.run(["pgrep", "-a", "-u", str(uid)], capture_output=True,
                              text=True).stdout
        if not left.strip():
            break
        time.sleep(0.2)
    assert left.strip() == "", f"left behind after the server stopped: {left}"
