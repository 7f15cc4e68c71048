"""The REST API's refusals say what is wrong, in the order a newcomer meets them.

A real size outside the user's domains is "not allowed in your domains", naming them;
an unknown user name (``$USER`` is ``root`` in a root shell) is a 404 naming it, from
JupyterHub's own server API and from StudioHub's; a body sent while the server runs is
checked before "already running", so its mistake is the answer.
"""

from __future__ import annotations

from tests.hubtools import Hub


def test_a_size_outside_my_domains_is_said_to_be_so(hub: Hub) -> None:
    user = hub.new_user("wsize", groups=("team-a",))
    r = user.api("POST", f"/users/{user.name}/server", json={"image": "base", "size": "medium"})
    assert r.status_code == 400, r.text
    assert r.json()["message"] == ("size 'medium' is not allowed in your domains (team-a): "
                                   "allowed sizes are half, tiny")
    r = user.api("POST", f"/users/{user.name}/server", json={"image": "pytorch"})
    assert r.status_code == 400, r.text
    assert r.json()["message"] == ("image 'pytorch' is not allowed in your domains (team-a): "
                                   "allowed images are base")


def test_an_unknown_user_is_a_404_that_names_it(hub: Hub) -> None:
    for method in ("POST", "DELETE"):
        r = hub.api(method, "/users/root/server", json={"image": "base", "size": "tiny"})
        assert r.status_code == 404, r.text
        assert r.json()["message"] == "no user 'root': use your hub user name"
    # StudioHub's API: a token for a user may place only that user's kernels.
    user = hub.new_user("wroot")
    for token in (None, user.token):  # the admin's, the user's
        r = hub.api("GET", "/studiohub/users/root/kernel-options", token=token)
        assert r.status_code == 403, r.text
        assert r.json()["message"] == ("this token may not place kernels for 'root': use "
                                       "your hub user name")


def test_a_body_sent_while_the_server_runs_is_checked_first(hub: Hub) -> None:
    user = hub.new_user("wrun")
    user.spawn(image="base", size="tiny")
    r = user.api("POST", f"/users/{user.name}/server", json={"image": "nope", "size": "tiny"})
    assert r.status_code == 400, r.text
    assert r.json()["message"].startswith("unknown image 'nope': allowed values are base")
    r = user.api("POST", f"/users/{user.name}/server", json={"image": "base", "size": "tiny"})
    assert r.status_code == 400, r.text
    assert "is already running" in r.json()["message"]
    assert user.api("GET", f"/users/{user.name}").json()["servers"][""]["ready"] is True
