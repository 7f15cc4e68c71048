"""A kernel says where it runs: ``STUDIOHUB_KERNEL_*`` in a notebook that never chose.

docs/switching.md promises ``STUDIOHUB_KERNEL_IMAGE``, ``_SIZE``, ``_SIZE_LABEL``,
``_CPU_LIMIT`` and ``_MEM_LIMIT`` inside a kernel. A placed kernel gets them from its
placement; every other kernel inherits its server's (the server's own image and size,
``contract.make_server_env``). Before, a notebook that never chose a size had none.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.hubtools import Hub, User, shut_down
from tests.integration.test_hub_logs import start_hub
from tests.integration.test_switching import notebook, open_session, switch

MIB = 1024 * 1024
GIB = 1024 * MIB
NAMES = ("IMAGE", "SIZE", "SIZE_LABEL", "CPU_LIMIT", "MEM_LIMIT")
SHOW = ("import json, os; print(json.dumps({n: os.environ.get('STUDIOHUB_KERNEL_' + n) "
        f"for n in {NAMES!r}}}))")


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """This module's own lean hub (overrides the session's)."""
    hub = start_hub(tmp_path_factory, "kernelenv")
    hub.start(timeout=300)
    yield hub
    shut_down(hub)


@pytest.fixture(scope="module")
def user(hub: Hub) -> Iterator[User]:
    user = hub.new_user("ke")
    user.spawn(image="base", size="tiny")
    yield user
    user.stop()


def kernel_env(user: User, kernel_id: str) -> dict[str, str | None]:
    result = user.run(SHOW, kernel_id, timeout=60)
    assert result.status == "ok", result
    return dict(json.loads(result.stdout))


def test_a_notebook_that_never_chose_has_its_servers_image_and_size(user: User) -> None:
    assert user.server_api("PUT", "/contents/plain.ipynb", json=notebook()).ok
    session = open_session(user, "plain.ipynb")
    assert kernel_env(user, session["kernel"]["id"]) == {
        "IMAGE": "base", "SIZE": "tiny", "SIZE_LABEL": "1 vCPU + 512 MiB",
        "CPU_LIMIT": "1", "MEM_LIMIT": str(512 * MIB)}


def test_a_switched_notebook_has_its_own_size_instead(user: User) -> None:
    assert user.server_api("PUT", "/contents/chosen.ipynb", json=notebook()).ok
    switched = switch(user, open_session(user, "chosen.ipynb"), "base", "half")
    assert kernel_env(user, switched["kernel"]["id"]) == {
        "IMAGE": "base", "SIZE": "half", "SIZE_LABEL": "0.5 vCPU + 1 GiB",
        "CPU_LIMIT": "0.5", "MEM_LIMIT": str(GIB)}
