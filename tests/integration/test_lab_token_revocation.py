"""A deleted API token stops working on the user's server, the Lab extension included,
within 10 s (JupyterHub's single-user servers cache the hub's answer for 5 minutes by
default; StudioHub's server config sets ``HubOAuth.cache_max_age`` to 10 s)."""

from __future__ import annotations

import time

import requests

from tests.hubtools import Hub


def test_a_deleted_token_stops_working_on_the_server_within_10_s(hub: Hub) -> None:
    user = hub.new_user("tokrev")
    user.spawn(image="base", size="tiny")
    made = hub.api("POST", f"/users/{user.name}/tokens", json={"note": "revoked by test"})
    assert made.status_code == 201, made.text
    headers = {"Authorization": f"token {made.json()['token']}"}
    urls = [f"{hub.url}/user/{user.name}/studiohub/api/v1/info",
            f"{hub.url}/user/{user.name}/api/contents"]
    for url in urls:  # used once: the server has the hub's answer cached
        assert requests.get(url, headers=headers, timeout=30).status_code == 200, url
    deleted = hub.api("DELETE", f"/users/{user.name}/tokens/{made.json()['id']}")
    assert deleted.status_code == 204, deleted.text
    gone = time.monotonic()
    assert hub.api("GET", "/user", token=made.json()["token"]).status_code == 403
    refused: dict[str, float] = {}
    codes: dict[str, int] = {}
    while len(refused) < len(urls) and time.monotonic() - gone < 20:
        for url in set(urls) - set(refused):
            codes[url] = requests.get(url, headers=headers, timeout=30,
                                      allow_redirects=False).status_code
            if codes[url] == 403:
                refused[url] = time.monotonic() - gone
        time.sleep(0.5)
    assert set(refused) == set(urls), f"still answered 20 s after deletion: {codes}"
    assert max(refused.values()) <= 12, refused  # 10 s of cache, and a loaded machine
    # The user's own token still works.
    assert user.lab_api("GET", "/info").status_code == 200
    user.stop()
